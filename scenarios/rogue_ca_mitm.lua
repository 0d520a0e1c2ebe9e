-- Man in the middle with a rogue CA. An attacker runs a TLS endpoint whose
-- certificate comes from a different CA with exactly the fleet's names
-- ("fleetdrill Root CA", CN=localhost) and gets a device to connect to it
-- (DNS spoofing, a hostile Wi-Fi). The device pins the fleet root: it must
-- refuse the handshake before a single MQTT byte (its credentials, its data)
-- reaches the attacker.
scenario {
  name = "rogue-CA man in the middle",
  description = "A device pointed at a TLS endpoint of another CA: it must refuse the certificate (pinning), so the MITM reads nothing.",
}

local f = fleet { devices = 6, profile = "se" }

step {
  label  = "device pointed at a rogue-CA endpoint",
  attack = attacks.rogue_ca { device = f:device(4) },
  expect = "blocked", layer = "transport",
}
