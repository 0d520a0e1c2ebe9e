-- Rollback. The device took a genuine update (1.1.0, security counter 2); once that
-- image confirmed itself, the bootloader fused the application floor to 2. The
-- attacker then replays the old factory image — genuinely signed, counter 1 — in a
-- new job: below the floor, refused.
scenario {
  name = "firmware: rollback to an old signed image",
  description = "A validly signed image below the fused anti-rollback floor is refused.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(1)

local u = f:update { version = "1.1.0", counter = 2, devices = { victim } }
drill.check(u.state == "COMPLETED", "the genuine update completes: " .. u.reason)
local fw = firmware.runs(victim, "1.1.0")
drill.check(fw.floor == 2, "the floor rose to 2 once 1.1.0 confirmed (it is " .. fw.floor .. ")")

step {
  label  = "old factory image (counter 1) replayed below the floor (2)",
  attack = attacks.rollback { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.1.0")
firmware.boot_records_clean(f)
