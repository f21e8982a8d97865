"""Forager: walk to the nearest visible food, explore otherwise, reproduce when energy allows."""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.base import SavedState, make_action
from policies.scripted.perception import Perception
from society_env.world.config import SocietyConfig
from society_env.world.encodings import REPRODUCE, STAY

REPRODUCE_RESERVE = 20
"""Energy the parent keeps above the reproduction threshold, so it does not starve right after."""
TURN_PROBABILITY = 0.15
"""Chance per step that an exploring agent picks a new heading."""


class ForagerPolicy(SavedState):
    """Scripted forager. Subclasses add social behaviour by overriding :meth:`social_action`."""

    state_fields = ("rng", "heading")
    name = "forager"

    def __init__(self, config: SocietyConfig):
        self.config = config
        self.rng = np.random.default_rng()
        self.heading: dict[str, int] = {}

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.heading = {}

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        actions = {}
        with_artifacts = self.config.language and self.config.artifacts
        for agent, observation in observations.items():
            seen = Perception.read(observation, self.config)
            actions[agent] = action = self.decide(agent, seen)
            if with_artifacts:
                artifact = self.artifact_action(agent, seen, (infos.get(agent) or {}).get("view", {}))
                if artifact is not None:
                    action["artifact"] = artifact
        return actions

    def decide(self, agent: str, seen: Perception) -> Any:
        social = self.social_action(agent, seen)
        if social is not None:
            return social
        if seen.energy >= self.config.reproduce_min_energy + REPRODUCE_RESERVE and seen.has_free_neighbour_cell():
            return make_action(self.config, REPRODUCE, message=self.message(seen), text=self.text(seen))
        return make_action(self.config, self.forage(agent, seen), message=self.message(seen), text=self.text(seen))

    def forage(self, agent: str, seen: Perception) -> int:
        """A move towards the nearest reachable food, else along the agent's exploring heading."""
        for d_row, d_col in seen.food_offsets():
            move = seen.step_towards(d_row, d_col, self.rng)
            if move is not None:
                return move
        return self.explore(agent, seen)

    def explore(self, agent: str, seen: Perception) -> int:
        free = seen.free_directions()
        if not free:
            return STAY
        heading = self.heading.get(agent)
        if heading not in free or self.rng.random() < TURN_PROBABILITY:
            heading = int(self.rng.choice(free))
            self.heading[agent] = heading
        return heading

    # Hooks for the social variants.
    def social_action(self, agent: str, seen: Perception) -> Any | None:
        return None

    def artifact_action(self, agent: str, seen: Perception, view: dict[str, list]) -> dict[str, Any] | None:
        """An artifact action to do alongside this step's action (worlds with artifacts only), or None;
        ``view`` is the agent's ``infos[agent]["view"]`` (empty when no infos were given)."""
        return None

    def message(self, seen: Perception) -> int:
        return 0

    def text(self, seen: Perception) -> str:
        return ""
