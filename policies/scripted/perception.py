"""Reading a numeric observation the way the scripted policies need it: food, neighbours, messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from society_env.world.config import SocietyConfig
from society_env.world.observations import (
    AGENT_CHANNEL,
    ENERGY_CHANNEL,
    FOOD_CHANNEL,
    KIN_CHANNEL,
    MESSAGE_CHANNEL,
    split_observation,
)
from society_env.world.encodings import EAST, MOVE_DELTAS, NORTH, SOUTH, WEST

DIRECTIONS = {kind: (int(MOVE_DELTAS[kind][0]), int(MOVE_DELTAS[kind][1])) for kind in (NORTH, SOUTH, WEST, EAST)}
"""(d_row, d_col) of each move, from the rules' own table."""


@dataclass
class Neighbour:
    """Another agent in view: offset from the reader, energy, same family or not, message token."""

    d_row: int
    d_col: int
    energy: float
    kin: bool
    message: int

    @property
    def distance(self) -> int:
        return max(abs(self.d_row), abs(self.d_col))


@dataclass
class Perception:
    config: SocietyConfig
    view: np.ndarray  # (size, size, channels)
    energy: float  # in energy units (the observation stores energy / initial_energy)

    @classmethod
    def read(cls, observation: Any, config: SocietyConfig) -> "Perception":
        view, features = split_observation(np.asarray(observation["observation"] if isinstance(observation, dict) else observation), config)
        return cls(config, view, float(features[0]) * config.initial_energy)

    @property
    def radius(self) -> int:
        return self.config.view_radius

    def food_offsets(self) -> list[tuple[int, int]]:
        """Offsets of visible food, nearest first (Manhattan distance: moves are 4-neighbour)."""
        r = self.radius
        cells = np.argwhere(self.view[..., FOOD_CHANNEL] > 0) - r
        order = np.argsort(np.abs(cells).sum(axis=1), kind="stable")
        return [(int(dr), int(dc)) for dr, dc in cells[order] if (dr, dc) != (0, 0)]

    def neighbours(self) -> list[Neighbour]:
        r = self.radius
        found = []
        for row, col in np.argwhere(self.view[..., AGENT_CHANNEL] > 0):
            if (row, col) == (r, r):
                continue
            found.append(Neighbour(int(row) - r, int(col) - r,
                                   float(self.view[row, col, ENERGY_CHANNEL]) * self.config.initial_energy,
                                   bool(self.view[row, col, KIN_CHANNEL] > 0), int(self.view[row, col, MESSAGE_CHANNEL])))
        return found

    def is_free(self, d_row: int, d_col: int) -> bool:
        return not self.view[d_row + self.radius, d_col + self.radius, AGENT_CHANNEL] > 0

    def free_directions(self) -> list[int]:
        return [kind for kind, (dr, dc) in DIRECTIONS.items() if self.is_free(dr, dc)]

    def has_free_neighbour_cell(self) -> bool:
        return any(self.is_free(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))

    def step_towards(self, d_row: int, d_col: int, rng: np.random.Generator) -> int | None:
        """A free move that reduces the Manhattan distance to (d_row, d_col), or None."""
        options = []
        if d_row < 0:
            options.append(NORTH)
        if d_row > 0:
            options.append(SOUTH)
        if d_col < 0:
            options.append(WEST)
        if d_col > 0:
            options.append(EAST)
        free = [kind for kind in options if self.is_free(*DIRECTIONS[kind])]
        if not free:
            return None
        if len(free) == 2:  # prefer the axis with the longer way to go, ties broken at random
            longer = abs(d_row) - abs(d_col)
            return free[0] if longer > 0 else free[1] if longer < 0 else free[int(rng.integers(2))]
        return free[0]


def amount_index(config: SocietyConfig, wanted: float) -> int:
    """Index of the largest transfer amount not above ``wanted`` (the smallest one if none is)."""
    amounts = np.asarray(config.transfer_amounts)
    fitting = np.flatnonzero(amounts <= wanted)
    return int(fitting[np.argmax(amounts[fitting])]) if fitting.size else int(np.argmin(amounts))
