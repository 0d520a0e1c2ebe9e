-- Revocation drill. A device is declared compromised while the whole fleet is
-- busy. One-button revoke: deny-all policy, certificates revoked, live
-- connection dropped. Measured: time from the request to the device's
-- connection dropping (bound: 1 s); the device must end in its revoked state
-- (it is refused at every retry) and the rest of the fleet must not notice.
scenario {
  name = "revocation under load",
  description = "Revoke one device of a busy fleet: disconnected within 1 s, refused afterwards, the rest unaffected.",
}

-- Time runs 10x faster for the devices: telemetry every 0.5 s of real time, and
-- the revoked device's retries (its backoff) come quickly.
local f = fleet { devices = 16, profile = "se", time_scale = 10, telemetry_interval = 5 }

-- Load: let the fleet publish for a while first (30 s of device time).
f:wait_virtual(30)
local before = f:stats()
drill.check(before.online == f:size(), "the whole fleet is online before the drill")

local victim = f:device(7)
local r = step {
  label  = "revoke a device under load",
  attack = attacks.revocation { device = victim, within = 1000, settle = 10 },
  expect = "blocked", layer = "detection",
}

drill.check(victim:revoked(), "the revoked device ends in its revoked state")
drill.check(f:online() == f:size() - 1, "every other device is still online")
