-- Stolen certificate AND key from a `flash` device (no secure element: the key
-- is a file a probe can read). The copy is a genuine identity, so nothing can
-- refuse it at connect time. What must hold: it reaches only that one device's
-- own topics (cloud policy), and the audit notices one certificate used by two
-- clients at once (detection).
scenario {
  name = "stolen certificate and key (flash)",
  description = "The key of a flash device copied and used from another address: contained by the per-device policy, detected by the audit (cert-shared).",
}

local f = fleet { devices = 8, profile = "flash" }
local victim = f:device(2)

-- One attack, judged twice: the same evidence shows both layers at work.
local copy = attacks.extracted_key { victim = victim, other = f:device(5) }

step {
  label  = "copied identity limited to its own device's topics",
  attack = copy,
  expect = "contained", layer = "cloud",
}

step {
  label  = "audit flags one certificate used by two clients",
  attack = copy,
  expect = "detected", layer = "detection",
}
