-- Identity and policy attacks against a fleet provisioned by claim (the shared
-- claim credential, then a CSR signed by the device's own key, answered with its
-- certificate). A copied claimed certificate is useless without the key that
-- stayed in the token, and a claimed identity gets the per-device policy: it
-- cannot publish as another device.
scenario {
  name = "stolen certificate and cross-device publish (claim fleet)",
  description = "Devices provisioned by claim: a copied claimed certificate fails the handshake; a registered device cannot publish as another.",
}

local f = fleet { devices = 6, profile = "se", provisioning = "claim" }
drill.check(f:online() == 6, "every device claimed its certificate and came online")

step {
  label  = "certificate copied from a device that claimed it, signed with a fresh key",
  attack = attacks.stolen_cert { victim = 2 },
  expect = "blocked", layer = "identity",
}

step {
  label  = "a claimed device publishes on another device's topic",
  attack = attacks.cross_publish { attacker = 3, victim = 4 },
  expect = "blocked", layer = "cloud",
}
