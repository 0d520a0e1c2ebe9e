-- Unsigned image. An application image without a signature gets into a job (an
-- insider, a compromised build system: the job service signs job documents for
-- whatever release it is handed). The device checks the header before it writes a
-- byte: no key it trusts for the tier signed it.
scenario {
  name = "firmware: unsigned image",
  description = "An unsigned application image is rolled out to a device: refused at the header, nothing written.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(2)

step {
  label  = "unsigned application image in a job",
  attack = attacks.unsigned_image { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
firmware.boot_records_clean(f)
