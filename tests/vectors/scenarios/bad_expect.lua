local x = 1
step { attack = nil, expect = "stopped", layer = "cloud" }
