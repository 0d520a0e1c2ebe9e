-- drill.check fails at the scenario's own line (6), not inside the library.
scenario { name = "check" }


local ok = false
drill.check(ok, "the condition")
