-- scenarios/lib/firmware.lua — helpers for the firmware and OTA drills (require "firmware").
--
-- Checks written in Lua on top of the engine's own functions: d:firmware() (what the
-- device's last boot runs, its floor, its last OTA report) and f:boot_audit() (every
-- image any device's boot records say ran, re-verified by the harness). Nothing here
-- judges an attack: verdicts come from the engine's evidence.
local firmware = {}

-- The fleet's boot records hold no image that failed a check (sim/bootaudit.h).
function firmware.boot_records_clean(f)
  local a = f:boot_audit()
  drill.check(a.violations == 0, "boot records: " .. tostring(a.first_violation))
  return a
end

-- The device runs this application version (its last boot record).
function firmware.runs(device, version)
  local fw = device:firmware()
  drill.check(fw.version == version,
    string.format("%s runs application %s, expected %s", device.id, fw.version, version))
  drill.check(not fw.recovery, device.id .. " is not in recovery mode")
  return fw
end

-- Every device of the fleet runs this version.
function firmware.all_run(f, version)
  for _, d in ipairs(f:devices()) do firmware.runs(d, version) end
end

return firmware
