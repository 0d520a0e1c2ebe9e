-- A loop that would never end, hiding behind pcall: the budget still ends it.
while true do
  pcall(function() while true do end end)
end
