-- Wildcard policy misconfiguration. First the control: a device subscribing to
-- "#" and "telemetry/+" is refused. Then an operator's mistaken edit widens the
-- device policy template at run time ("allow subscribe telemetry/#"); now the
-- same device reads the whole fleet's telemetry. The policy no longer stops it:
-- the configuration audit has to flag the wildcard grant.
scenario {
  name = "wildcard policy misconfiguration",
  description = "The device policy widened to telemetry/# at run time: the leak happens, the audit flags the policy.",
}

local f = fleet { devices = 8, profile = "se" }
local d = f:device(6)

step {
  label  = "wildcard subscribe with the policy as designed",
  attack = attacks.wildcard_subscribe { attacker = d, window = 1 },
  expect = "blocked", layer = "cloud",
}

step {
  label  = "policy widened to telemetry/# at run time",
  attack = attacks.policy_widen { attacker = d, policy = "device-default", window = 1.5 },
  expect = "detected", layer = "detection",
}
