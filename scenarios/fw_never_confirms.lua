-- An image that never confirms. A genuinely signed image that never phones home once
-- it boots (a broken build: behaviour=no-confirm). It runs in trial; at its deadline
-- (60 s of device time here, 3 s real) the watchdog resets the device and the
-- bootloader reverts to the previous slot. The floor never rose: it rises only after
-- an image confirmed itself.
scenario {
  name = "firmware: new image never confirms (auto revert)",
  description = "A trial image that never phones home is reverted by the bootloader at its deadline.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20, trial = 60 }
local victim = f:device(4)

step {
  label  = "signed image that never phones home",
  attack = attacks.never_confirms { device = victim },
  expect = "contained", layer = "firmware",
}

local fw = firmware.runs(victim, "1.0.0")
drill.check(fw.floor == 1, "the floor did not rise (" .. fw.floor .. ")")
drill.check(fw.reverted >= 1, "a boot reverted the trial")
firmware.boot_records_clean(f)
