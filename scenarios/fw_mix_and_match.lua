-- Mix and match. Genuine, signed job documents delivered to the wrong device: one
-- whose targets name another device, one for another hardware revision. The device
-- acts only on a document that names it and its hardware revision.
scenario {
  name = "firmware: job document for another device or hardware revision",
  description = "Genuine documents meant for another device and for hardware revision 2: both refused.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(1)

step {
  label  = "a document for another device",
  attack = attacks.mix_and_match { device = victim, from = f:device(2) },
  expect = "blocked", layer = "firmware",
}
step {
  label  = "a document for hardware revision 2",
  attack = attacks.mix_and_match { device = victim, hw = 2, name = "mix-and-match (hw)" },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
firmware.boot_records_clean(f)
