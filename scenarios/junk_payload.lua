-- Junk payloads. A device publishes, on its own telemetry topic, text that is
-- not JSON, JSON with fields of the wrong type, 4 KiB of JSON (over the 1 KiB
-- rule) and 300 KB (over the broker's packet cap), with one valid message as
-- the control. The payload rules must drop every piece of junk; the control
-- must get through.
scenario {
  name = "junk payload",
  description = "Malformed, mistyped and oversized telemetry: dropped by the payload rules before anyone receives it.",
}

local f = fleet { devices = 6, profile = "se" }

step {
  label  = "junk on the device's own telemetry topic",
  attack = attacks.junk_payload { attacker = f:device(2) },
  expect = "blocked", layer = "cloud",
}
