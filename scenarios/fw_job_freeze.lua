-- Freeze and replay of job documents. The attacker holds the job service's broker
-- credential (its certificate and key file) but not its job key (a token): it can put
-- documents it captured on a device's notify topic, and sign none. A document the
-- device already acted on is refused as a replay (the device keeps the last seq it
-- accepted), one past its expiry as expired.
scenario {
  name = "firmware: expired and replayed job documents",
  description = "A captured document delivered again, and one delivered after it expired: both refused.",
}
local firmware = require "firmware"

local f = fleet { devices = 4, time_scale = 20 }
local victim = f:device(3)

step {
  label  = "a genuine document delivered after its expiry",
  attack = attacks.job_expired { device = victim },
  expect = "blocked", layer = "firmware",
}
step {
  label  = "a document the device already acted on, delivered again",
  attack = attacks.job_replay { device = victim },
  expect = "blocked", layer = "firmware",
}

firmware.boot_records_clean(f)
