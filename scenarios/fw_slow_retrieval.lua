-- Slow retrieval. A compromised store answers every block request later than the
-- device waits for it (the device's block timeout runs in its own, simulated time:
-- 30 s, 1.5 s of real time at x20), so the download never completes; the device
-- gives up after its retries instead of hanging on the update forever.
scenario {
  name = "firmware: slow retrieval",
  description = "Blocks served slower than the device waits: the download fails, the device stays as it was.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20, block_timeout = 30 }
local victim = f:device(3)

step {
  label  = "artifact served too slowly",
  attack = attacks.slow_retrieval { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
drill.check(victim:online(), "the device is online and working")
firmware.boot_records_clean(f)
