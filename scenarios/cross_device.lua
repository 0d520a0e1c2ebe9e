-- Cross-device publish and subscribe. A compromised device (its own, genuine
-- identity) publishes telemetry as another device and subscribes to another
-- device's commands and telemetry. The per-device policy (default deny, its own
-- topics only) must refuse both; an observer checks nothing was delivered.
scenario {
  name = "cross-device publish and subscribe",
  description = "A device publishing and subscribing as another device: refused by the per-device policy.",
}

local f = fleet { devices = 8, profile = "se" }
local attacker, victim = f:device(1), f:device(2)

step {
  label  = "publish on another device's telemetry topic",
  attack = attacks.cross_publish { attacker = attacker, victim = victim },
  expect = "blocked", layer = "cloud",
}

step {
  label  = "subscribe to another device's commands and telemetry",
  attack = attacks.cross_subscribe { attacker = attacker, victim = victim, window = 1 },
  expect = "blocked", layer = "cloud",
}
