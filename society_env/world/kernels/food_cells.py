"""Free cells for food, drawn from the spawn density: the initial food (``state.spawn_food_cells``) and each
step's regrowth (``phases.decay_and_regrow``). Rejection draws over the whole grid's density, then, on a
crowded grid, NumPy's ``choice`` without replacement over the free cells (``numpy_algorithms``): the cells
NumPy's calls would draw (``tests/test_sampling.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from society_env.world.kernels.cache import kernel
from society_env.world.kernels.numpy_algorithms import choice_without_replacement
from society_env.world.kernels.plumbing import room_in


@kernel
def accept_free_cells(cdf, draws, flat_food, flat_occupant, chosen, count, uniform):  # pragma: no cover - compiled
    """One round of food-cell rejection draws: each draw ``x`` names the cell whose share of ``cdf`` (the
    cumulative density) holds ``x * cdf[-1]`` (``np.searchsorted(cdf, x * cdf[-1], side="right")``); it is
    kept, in draw order, if it has no food and no agent. A kept cell is marked with food -1 until the caller
    restores it (so a later draw of it is rejected in O(1)). Appends to ``chosen`` and returns the new count.

    ``uniform``: the density is 1 on every cell, so ``cdf[i] == i + 1`` exactly and the search is
    ``floor(x * cdf[-1])``: the same cell without the binary search (the cache misses of a search over a big
    grid's cdf were most of the regrowth's time)."""
    last = cdf.shape[0] - 1
    total = cdf[last]
    for x in draws:
        if uniform:
            cell = min(np.int64(x * total), last)
        else:
            cell = min(np.searchsorted(cdf, x * total, side="right"), last)
        if flat_food[cell] == 0 and flat_occupant[cell] < 0:
            flat_food[cell] = -1
            chosen[count] = cell
            count += 1
    return count


class RegrowthBuffers(NamedTuple):
    """Arrays of one entry per grid cell that the exact draw of free cells (:func:`draw_free_cells`) works in,
    kept by an env across steps: allocated afresh at every step, their tens of megabytes in a big world
    came back from the kernel as new pages, and the page faults cost more than the draw (a world of
    100,000 agents: 8000-10,000 faults, about 8 ms a step). Empty arrays: allocate per call."""

    candidates: np.ndarray  # int64
    weights: np.ndarray  # float64
    cumulative: np.ndarray  # float64
    taken: np.ndarray  # bool


def regrowth_buffers(cells: int, uniform: bool = False) -> RegrowthBuffers:
    """:class:`RegrowthBuffers` for a grid of ``cells`` cells (0: none, every call allocates its own);
    ``uniform`` food draws without weights: 17 bytes a cell instead of 25."""
    return RegrowthBuffers(np.empty(cells, np.int64), np.empty(0 if uniform else cells), np.empty(cells),
                           np.empty(cells, np.bool_))


@kernel
def draw_free_cells(rng, flat_food, flat_occupant, density, cdf, count, rounds, uniform, buffers):  # pragma: no cover - compiled
    """Up to ``count`` distinct free cells (no food, no agent), each in turn with probability proportional
    to ``density`` among the cells still free: flat indices in the order drawn (``state.spawn_food_cells``
    says how). ``rounds`` rounds of rejection draws over the whole grid's density, then (a crowded grid)
    the cells still missing exactly over the free cells, capped at the free cells of positive density.
    ``flat_food`` is as it was when this returns. ``uniform``: the density is 1 everywhere
    (:func:`accept_free_cells`). ``buffers``: :class:`RegrowthBuffers` of the grid, or empty ones."""
    chosen = np.empty(max(count, 0), np.int64)
    found = 0
    for _ in range(rounds):
        if found >= count:
            break
        found = accept_free_cells(cdf, rng.random(count - found), flat_food, flat_occupant, chosen, found, uniform)
    drawn = found
    if found < count:  # the rest exactly over the free cells (the chosen ones are marked -1, so not free)
        cells = flat_food.shape[0]
        candidates = room_in(buffers.candidates, cells)
        weights = room_in(buffers.weights, 0 if uniform else cells)
        free = 0
        positive = 0
        for cell in range(cells):  # no branch on the cell's content: a random grid mispredicts every other one
            candidates[free] = cell
            is_free = (flat_food[cell] == 0) & (flat_occupant[cell] < 0)
            if not uniform:
                weights[free] = density[cell]
                positive += is_free & (density[cell] > 0)
            free += is_free
        if uniform:
            positive = free
        missing = min(count - found, positive)
        if missing > 0:
            picked = choice_without_replacement(rng, weights[:free], missing, free, buffers.cumulative, buffers.taken)
            for k in range(missing):
                chosen[found + k] = candidates[picked[k]]
            drawn += missing
    for k in range(found):
        flat_food[chosen[k]] = 0  # undo the marks: the caller decides what the cells get
    return chosen[:drawn]


