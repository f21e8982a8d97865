"""Raider: a forager that takes energy from weaker agents of other families that it can see."""

from __future__ import annotations

from typing import Any

from policies.base import make_action
from policies.scripted.forager import ForagerPolicy
from policies.scripted.perception import Perception, amount_index
from society_env.world.encodings import TAKE, view_cell_index

RAID_RANGE = 3
"""Victims must be within this many cells (Chebyshev)."""
GREED_LIMIT = 150
"""Raiders stop raiding above this energy."""
LOOT = 20


class RaiderPolicy(ForagerPolicy):
    name = "raider"

    def social_action(self, agent: str, seen: Perception) -> Any | None:
        if seen.energy >= GREED_LIMIT:
            return None
        victims = [n for n in seen.neighbours() if not n.kin and 0 < n.energy < seen.energy and n.distance <= RAID_RANGE]
        if not victims:
            return None
        victim = min(victims, key=lambda n: (n.distance, n.energy))
        target = view_cell_index(self.config, victim.d_row, victim.d_col)
        return make_action(self.config, TAKE, target, amount_index(self.config, min(LOOT, victim.energy)))
