-- cloud/registration.lua: the default JITR registration rules.
--
-- fleetdrill calls register(device) once for each factory certificate it sees
-- for the first time (the device was refused and its certificate is PENDING).
-- device fields: id, serial, fingerprint, source, firmware, sold, recalled, known.
-- Return true, "<policy>" to activate the certificate with that policy, or
-- false, "<reason>" to reject it (the certificate is revoked; the device stays out).
-- Copy this file, edit the rules and pass it with `fleetdrill run --registration-rules FILE`.

local allowed_firmware = {
  ["1.0.0"] = true,
  ["1.1.0"] = true,
  ["1.2.0"] = true,
}

function register(device)
  if not device.known then
    return false, "no manufacturing record for " .. device.id
  end
  if not device.sold then
    return false, "not sold"
  end
  if device.recalled then
    return false, "on the recall list"
  end
  if not allowed_firmware[device.firmware] then
    return false, "firmware '" .. device.firmware .. "' is not allowed"
  end
  return true, "device-default"
end
