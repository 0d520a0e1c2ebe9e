-- Endless data. A compromised store answers the last block of a genuine job with a
-- full block and keeps sending past the size the signed job declares. The device
-- stops at the first byte beyond it.
scenario {
  name = "firmware: endless data",
  description = "The store serves more bytes than the signed job declares: the download is aborted.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(2)

step {
  label  = "artifact longer than its declared length",
  attack = attacks.endless_data { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
firmware.boot_records_clean(f)
