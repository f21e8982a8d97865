"""Cooperator: a forager that gives energy to weak neighbours and announces food by message."""

from __future__ import annotations

from typing import Any

from policies.base import make_action
from policies.forager import ForagerPolicy
from policies.perception import Perception, amount_index
from society_env.observations import view_cell_index
from society_env.rules import GIVE

FOOD_TOKEN = 1
"""Message token meaning "I see food"; cooperators walk towards agents that send it."""
WEAK_ENERGY = 20
"""Neighbours below this energy get help."""
HELPER_ENERGY = 60
"""A cooperator only gives while it has at least this much."""
GIFT = 10


class CooperatorPolicy(ForagerPolicy):
    name = "cooperator"

    def social_action(self, agent: str, seen: Perception) -> Any | None:
        neighbours = seen.neighbours()
        if seen.energy >= HELPER_ENERGY:
            weak = [n for n in neighbours if n.energy < WEAK_ENERGY]
            if weak:
                needy = min(weak, key=lambda n: (n.energy, n.distance))
                target = view_cell_index(self.config, needy.d_row, needy.d_col)
                return make_action(self.config, GIVE, target, amount_index(self.config, GIFT),
                                   self.message(seen), self.text(seen))
        if not seen.food_offsets():
            callers = sorted((n for n in neighbours if n.message == FOOD_TOKEN), key=lambda n: n.distance)
            for caller in callers:
                move = seen.step_towards(caller.d_row, caller.d_col, self.rng)
                if move is not None:
                    return make_action(self.config, move, message=self.message(seen), text=self.text(seen))
        return None

    def message(self, seen: Perception) -> int:
        return FOOD_TOKEN if seen.food_offsets() and self.config.message_vocab_size > FOOD_TOKEN else 0

    def text(self, seen: Perception) -> str:
        return "food near me, come" if seen.food_offsets() else ""
