-- Identity and policy attacks against a fleet that provisioned itself by JITR
-- (factory certificates registered on first connect, the registration rules
-- deciding). A certificate copied from a device that registered just in time is
-- still useless without its key, and a JITR-registered identity gets the same
-- per-device policy as an enrolled one: it cannot publish as another device.
scenario {
  name = "stolen certificate and cross-device publish (jitr fleet)",
  description = "JITR-provisioned devices: a copied factory certificate fails the handshake; a registered device cannot publish as another.",
}

local f = fleet { devices = 6, profile = "se", provisioning = "jitr" }
drill.check(f:online() == 6, "every device registered itself and came online")

step {
  label  = "factory certificate copied from a JITR device, signed with a fresh key",
  attack = attacks.stolen_cert { victim = 2 },
  expect = "blocked", layer = "identity",
}

step {
  label  = "a JITR-registered device publishes on another device's topic",
  attack = attacks.cross_publish { attacker = 3, victim = 4 },
  expect = "blocked", layer = "cloud",
}
