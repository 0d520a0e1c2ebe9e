-- scenarios/lib/drill.lua — the library every scenario gets as `drill`.
--
-- Helpers written in Lua on top of the engine's own functions (fleet{}, step{},
-- attacks.*, scenario{}). Nothing here can judge an attack: verdicts come from
-- the engine's evidence only. docs/scenarios.md documents every function.
local drill = {}

-- drill.check(condition, message): fail the scenario (with this line) unless condition holds.
function drill.check(cond, message)
  if not cond then
    error("check failed: " .. tostring(message or "condition is false"), 2)
  end
  return cond
end

-- drill.wait_until(fleet, fn, timeout_s [, poll_s]): poll fn() until it returns a true
-- value or timeout_s of real time pass. Returns fn's value, or nil on timeout.
function drill.wait_until(f, fn, timeout_s, poll_s)
  poll_s = poll_s or 0.1
  assert(type(timeout_s) == "number" and timeout_s >= 0 and timeout_s <= 600, "timeout_s: 0 .. 600")
  assert(type(poll_s) == "number" and poll_s > 0, "poll_s > 0")
  local tries = math.floor(timeout_s / poll_s) + 1
  for _ = 1, tries do
    local v = fn()
    if v then return v end
    f:wait(poll_s)
  end
  return nil
end

-- drill.blocked / contained / detected / missed (attack, layer [, label]): step{} shorthands.
for _, outcome in ipairs { "blocked", "contained", "detected" } do
  drill[outcome] = function(attack, layer, label)
    return step { attack = attack, expect = outcome, layer = layer, label = label }
  end
end
function drill.missed(attack, label)
  return step { attack = attack, expect = "missed", label = label }
end

-- drill.others(fleet, device): every device of the fleet but this one (a device
-- or its number).
function drill.others(f, device)
  if type(device) == "number" then device = f:device(device) end
  local out = {}
  for _, d in ipairs(f:devices()) do
    if d.id ~= device.id then out[#out + 1] = d end
  end
  return out
end

return drill
