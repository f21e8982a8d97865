"""Recordings: the run directory format (``format``: the writer, the readers, a step's events) and atomic
file writes (``files``). It reads the world's state and outcome, and is read by the episode loop, the
analysis and the application layer. See docs/recording.md."""
