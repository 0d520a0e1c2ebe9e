-- A bad canary halts the rollout. A genuinely signed image that crashes at start is
-- rolled out in stages (10 % canary, 50 %, 100 %). The canary devices boot it in trial
-- and revert at once; the job service's gate sees the canary stage fail and halts:
-- the rest of the fleet is never notified. Two layers: the gate contains the rollout
-- (cloud), the bootloader contains each canary device (firmware).
scenario {
  name = "firmware: bad canary halts the rollout",
  description = "A crashing image fails its 10 % canary: the rollout halts, 90 % of the fleet never sees it.",
}
local firmware = require "firmware"

local f = fleet { devices = 20, time_scale = 20 }

local canary = attacks.bad_canary { canary = 10, behaviour = "crash" }
step {
  label  = "rollout halted at the canary stage, the rest untouched",
  attack = canary, expect = "contained", layer = "cloud",
}
step {
  label  = "every canary device reverted to its previous image",
  attack = canary, expect = "contained", layer = "firmware",
}

firmware.all_run(f, "1.0.0")
firmware.boot_records_clean(f)
