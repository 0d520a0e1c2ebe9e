-- Stolen certificate on an `se` device. The attacker copies the device's
-- certificate (it is public) and tries to log in with it; the private key never
-- left the device's secure element, so it signs with a key of its own. The
-- broker must refuse the TLS handshake (proof of possession: identity layer),
-- and the secure element must refuse to hand out the key (hardware layer).
scenario {
  name = "stolen certificate (se)",
  description = "A device certificate copied without its key: the handshake fails, and the key cannot be read out of the secure element.",
}

local f = fleet { devices = 8, profile = "se" }
local victim = f:device(3)

step {
  label  = "certificate copied, signed with a fresh key",
  attack = attacks.stolen_cert { victim = victim },
  expect = "blocked", layer = "identity",
}

step {
  label  = "private key read out of the secure element",
  attack = attacks.extracted_key { victim = victim },
  expect = "blocked", layer = "hardware",
}

-- The victim itself is not disturbed by any of it.
drill.check(victim:online(), "the victim stays online")
