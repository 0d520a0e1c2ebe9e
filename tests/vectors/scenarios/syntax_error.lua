-- A scenario that does not parse: the error names this file and line 3.
scenario { name = "syntax error" }
local x = = 1
