"""Cooperator: a forager that gives energy to weak neighbours and announces food by message.

In worlds with artifacts it also keeps food notes: with probability ``NOTE_PROBABILITY`` per step it
rewrites the first artifact lying under it (a new version: "agent_3: 4 food in sight"), or, if there
is none and it sees food, creates a note named "food note" there with the second shortest lifespan.
It reads what it stands on through the text view, so in the ``inert`` condition only creation works.
"""

from __future__ import annotations

from typing import Any

from policies.base import make_action
from policies.scripted.forager import ForagerPolicy
from policies.scripted.perception import Perception, amount_index
from society_env.world.artifacts import artifact_action
from society_env.world.encodings import GIVE, view_cell_index

FOOD_TOKEN = 1
"""Message token meaning "I see food"; cooperators walk towards agents that send it."""
WEAK_ENERGY = 20
"""Neighbours below this energy get help."""
HELPER_ENERGY = 60
"""A cooperator only gives while it has at least this much."""
GIFT = 10
NOTE_PROBABILITY = 0.1
"""Chance per step that a cooperator writes a food note (artifact worlds only)."""


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

    def artifact_action(self, agent: str, seen: Perception, view: dict[str, list]) -> dict[str, Any] | None:
        if self.rng.random() >= NOTE_PROBABILITY:
            return None
        food = len(seen.food_offsets())
        note = f"{agent}: {food} food in sight"[: self.config.artifact_text_max_chars]
        here = [name for name, dx, dy in view.get("artifacts", ()) if dx == 0 and dy == 0]
        if here:
            return artifact_action("modify", name=here[0], text=note)
        if food:
            return artifact_action("create", name="food note", text=note,
                                   lifespan=min(1, len(self.config.artifact_lifespans) - 1))
        return None
