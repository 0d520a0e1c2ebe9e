-- Artifact tampered in the store. A genuine release and a genuine job; then one byte
-- of the stored image changes behind the store's back. The header (signed) still
-- names the original payload hash, and the job the image's SHA-256: the device
-- refuses the image at the end of the download and never marks the slot.
scenario {
  name = "firmware: artifact tampered in the store",
  description = "One byte of a stored image changed after the job was signed: hash mismatch, refused.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(4)

step {
  label  = "stored artifact changed after the job was signed",
  attack = attacks.tampered_artifact { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
firmware.boot_records_clean(f)
