-- Image signed with another tier's key. The attacker stole a key that is less
-- guarded (the modules key, the config key) and signs an application image with it.
-- The keyring lists which key may sign which tier: a key of one tier verifies nothing
-- else.
scenario {
  name = "firmware: image signed with another tier's key",
  description = "Application images signed with the modules key and with the kernel key: the device refuses both.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(3)

step {
  label  = "application image signed with the modules key",
  attack = attacks.wrong_tier_key { device = victim, key_tier = "modules" },
  expect = "blocked", layer = "firmware",
}
step {
  label  = "application image signed with the kernel key",
  attack = attacks.wrong_tier_key { device = victim, key_tier = "kernel", name = "wrong-tier-key (kernel)" },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
firmware.boot_records_clean(f)
