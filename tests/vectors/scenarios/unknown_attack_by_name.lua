-- The same, by name.
local a = attack("teleport", {})
