"""Policies that drive agents of the society world (random, scripted, LLM, replay)."""
