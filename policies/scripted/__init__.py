"""Scripted policies: random, forager, cooperator and raider, and what they perceive of an observation
(``perception``). No dependency beyond the world."""
