-- A scenario with no fleet and no step: it runs to its end.
scenario { name = "runs to the end", description = "no fleet, no step" }
local t = { 3, 1, 2 }
table.sort(t)
drill.check(t[1] == 1 and os.time() > 0, "the sandbox keeps table, os.time and the drill library")
print("still here")
