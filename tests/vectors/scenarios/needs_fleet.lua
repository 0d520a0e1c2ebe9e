-- An attack before fleet{}: the error is at line 3.
scenario { name = "needs a fleet" }
step { attack = attacks.stolen_cert { victim = 1 }, expect = "blocked", layer = "identity" }
