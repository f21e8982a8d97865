"""The world's small encodings, each defined once: the action vector's layout, action kinds, move and
neighbour deltas, death causes, transfer kinds and the view-cell index of give/take targets. Everything
else (rules, observations, text view, policies, analysis) imports them from here.

Coordinates are (row, col) with row growing southwards; the text view writes offsets as (dx, dy) =
(d_col, d_row).
"""

from __future__ import annotations

import numpy as np

# The action vector: (kind, target view cell, amount index, message token).
ACTION_FIELDS = ("kind", "target", "amount", "message")
ACTION_VECTOR_LENGTH = len(ACTION_FIELDS)
"""Components of an action vector (the env's ``MultiDiscrete`` action space)."""

# Action kinds (first component of the action vector).
STAY, NORTH, SOUTH, WEST, EAST, GIVE, TAKE, REPRODUCE = range(8)
NUM_ACTION_KINDS = 8
ACTION_NAMES = ("stay", "north", "south", "west", "east", "give", "take", "reproduce")
MOVE_DELTAS = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)
"""(d_row, d_col) of action kinds STAY .. EAST."""
NEIGHBOUR_DELTAS = np.array(
    [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)], dtype=np.int64
)
"""The 8 cells around an agent (where a child may be placed)."""

# Death causes: codes in StepOutcome.death_cause, names in infos, events and summaries.
STARVATION, OLD_AGE = 1, 2
DEATH_CAUSES = {STARVATION: "starvation", OLD_AGE: "old_age"}

# Why an action failed: codes in StepOutcome.failed (0 = it did not fail), names in infos ("failed").
NO_FAILURE, NO_AGENT_AT_TARGET, NOTHING_TO_TRANSFER, NOT_ENOUGH_ENERGY, POPULATION_POOL_FULL, NO_FREE_NEIGHBOUR_CELL = range(6)
FAILURE_REASONS = ("", "no_agent_at_target", "nothing_to_transfer", "not_enough_energy", "population_pool_full",
                   "no_free_neighbour_cell")

# Transfer kinds (StepOutcome.transfer_kind).
GIVE_TRANSFER, TAKE_TRANSFER = 0, 1


def view_cell_index(config, d_row: int, d_col: int) -> int:
    """Action ``target`` index of the view cell at offset (d_row, d_col) from the agent: the view's
    cells in row-major order, ``(d_row + r) * (2r + 1) + (d_col + r)`` for view radius ``r``."""
    r = config.view_radius
    if abs(d_row) > r or abs(d_col) > r:
        raise ValueError(f"offset ({d_row}, {d_col}) is outside the view radius {r}")
    return (d_row + r) * (2 * r + 1) + (d_col + r)


def view_cell_offsets(radius: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`view_cell_index`, vectorised: (d_row, d_col) of view-cell indices."""
    d_row, d_col = np.divmod(np.asarray(index), 2 * radius + 1)
    return d_row - radius, d_col - radius
