-- TLS downgrade. A client presenting a genuine device identity offers only
-- TLS 1.2; another sends MQTT in the clear to the TLS port. The broker listens
-- for TLS 1.3 only: both must be refused during the handshake.
scenario {
  name = "TLS downgrade",
  description = "TLS 1.2-only and plaintext clients against the TLS 1.3-only listener.",
}

local f = fleet { devices = 6, profile = "se" }

step {
  label  = "TLS 1.2 only, genuine device identity",
  attack = attacks.tls_downgrade { as = f:device(1) },
  expect = "blocked", layer = "transport",
}

step {
  label  = "plaintext MQTT CONNECT to the TLS port",
  attack = attacks.plaintext {},
  expect = "blocked", layer = "transport",
}
