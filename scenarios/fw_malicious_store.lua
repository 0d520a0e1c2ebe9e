-- Compromised artifact store. The attacker owns the store (no key there: it holds
-- none) and serves its own image for a genuine job: well formed, same tier, version,
-- counter and size, signed with a key of its own. An attacker who owns the store gets
-- a denial of service, not a fleet.
scenario {
  name = "firmware: compromised artifact store",
  description = "The store serves a well-formed malicious image for a genuine job: refused at the header.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(2)

step {
  label  = "the store serves the attacker's own image",
  attack = attacks.malicious_store { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.runs(victim, "1.0.0")
firmware.boot_records_clean(f)
