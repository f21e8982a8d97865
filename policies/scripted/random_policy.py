"""Uniform random actions: the floor every other policy must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.base import SavedState, make_action
from society_env.world.config import SocietyConfig
from society_env.world.observations import numeric_action_space


class RandomPolicy(SavedState):
    """Every component of the action drawn uniformly from the action space (silent in language mode)."""

    state_fields = ("rng",)
    name = "random"

    def __init__(self, config: SocietyConfig):
        self.config = config
        self.nvec = numeric_action_space(config).nvec
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        vectors = self.rng.integers(self.nvec, size=(len(observations), self.nvec.size))
        return {agent: make_action(self.config, *vector.tolist()) for agent, vector in zip(observations, vectors)}
