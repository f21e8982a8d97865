"""The world: its config and presets, the state arrays, the rules as compiled phases, the observations
(numeric and text), and the two faces over them: the PettingZoo env (``env``) and the array API for many
worlds (``vector``). It imports numpy, numba, gymnasium and pettingzoo, and nothing else of the project.
See docs/architecture.md and docs/world.md."""
