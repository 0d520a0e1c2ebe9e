-- An attack that does not exist: the error names this file and line 4.
scenario { name = "unknown attack" }

local a = attacks.teleport { victim = 1 }
