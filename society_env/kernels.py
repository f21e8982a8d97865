"""Compiled loops (numba) for the two places where the world's work is a loop NumPy cannot express in bulk:
placing children one parent at a time (each birth changes which cells the next parent finds free) and
writing every agent's view window straight into the observation array (one pass, no temporaries).

Each function is the body of a rule or of the observation, kept here so that ``rules.py`` and
``observations.py`` read as the rules they implement. They draw no random numbers. ``cache=True`` keeps
the compiled code on disk next to this file (``__pycache__``), so only the first import on a machine
pays the compile time (docs/performance.md gives it).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def place_children(parents, preference, position, occupant, deltas, num_born, max_agents,
                   failed, pool_full, no_free_cell):  # pragma: no cover - compiled
    """Give each parent (in rank order) a child on its first free preferred neighbour cell.

    ``preference[k]`` orders the 8 ``deltas`` for ``parents[k]``. The child takes slot ``num_born + births``
    and its cell in ``occupant`` at once, so later parents see it. Parents that find the pool full or no
    free cell get ``pool_full`` / ``no_free_cell`` in ``failed``. Returns (born parents, child rows, child
    columns), in birth order."""
    height, width = occupant.shape
    count = parents.shape[0]
    born = np.empty(count, np.int64)
    rows = np.empty(count, np.int64)
    cols = np.empty(count, np.int64)
    births = 0
    for k in range(count):
        parent = parents[k]
        if num_born + births >= max_agents:
            failed[parent] = pool_full
            continue
        placed = False
        for j in range(deltas.shape[0]):
            d = preference[k, j]
            row = (position[parent, 0] + deltas[d, 0]) % height
            col = (position[parent, 1] + deltas[d, 1]) % width
            if occupant[row, col] < 0:
                occupant[row, col] = num_born + births
                born[births], rows[births], cols[births] = parent, row, col
                births += 1
                placed = True
                break
        if not placed:
            failed[parent] = no_free_cell
    return born[:births], rows[:births], cols[:births]


@njit(cache=True)
def gather_views(padded, size, rows, cols, lineage, kin_channel, exact_kin, out):  # pragma: no cover - compiled
    """Copy each agent's ``size x size`` window of the wrap-padded channel grid into the first
    ``size * size * channels`` columns of ``out[k]``, in (row, column, channel) order.

    Agent ``k`` stands at (``rows[k]``, ``cols[k]``); its window is the padded block starting there. With
    ``exact_kin`` the grid's kin channel holds each occupant's lineage id and becomes 1.0 where it equals
    the viewer's ``lineage[k]`` (else 0.0), written in the same pass."""
    channels = padded.shape[2]
    run = size * channels  # a window row: size cells of all channels, contiguous in the padded grid
    grid = padded.reshape(padded.shape[0], padded.shape[1] * channels)
    for k in range(rows.shape[0]):
        target = out[k]
        first = cols[k] * channels
        for i in range(size):
            source = grid[rows[k] + i]
            base = i * run
            for j in range(run):
                target[base + j] = source[first + j]
        if exact_kin:
            own = np.float32(lineage[k])
            for at in range(kin_channel, size * run, channels):
                target[at] = np.float32(1.0) if target[at] == own else np.float32(0.0)


@njit(cache=True)
def accept_free_cells(cdf, draws, flat_food, flat_occupant, chosen, count):  # pragma: no cover - compiled
    """One round of food-cell rejection draws: each draw ``x`` names the cell whose share of ``cdf`` (the
    cumulative density) holds ``x * cdf[-1]``; it is kept, in draw order, if it has no food, no agent and
    is not among ``chosen[:count]``. Appends to ``chosen`` and returns the new count."""
    last = cdf.shape[0] - 1
    total = cdf[last]
    for x in draws:
        cell = min(np.searchsorted(cdf, x * total, side="right"), last)
        if flat_food[cell] != 0 or flat_occupant[cell] >= 0:
            continue
        seen = False
        for k in range(count):
            if chosen[k] == cell:
                seen = True
                break
        if not seen:
            chosen[count] = cell
            count += 1
    return count


@njit(cache=True)
def claim_moves(movers, rank_order, targets, occupant, won):  # pragma: no cover - compiled
    """Moves into empty cells, best rank first: ``movers[i]`` wants cell ``targets[i]`` (row, column);
    ``rank_order`` visits the movers from the best rank. A mover wins its cell if the cell was empty at
    the start of the phase and no better-ranked mover claimed it (``won[i]`` is set). The winners are not
    moved here: a cell left by a mover still counts as taken during the phase."""
    claimed = -2  # marks a claimed empty cell in ``occupant`` until the phase ends
    for i in rank_order:
        row, col = targets[i, 0], targets[i, 1]
        if occupant[row, col] == -1:
            occupant[row, col] = claimed
            won[i] = True
    for i in range(movers.shape[0]):
        if won[i]:
            occupant[targets[i, 0], targets[i, 1]] = -1


@njit(cache=True)
def fill_padded_grid(padded, radius, food, occupant, energy, message, lineage, food_value, initial_energy,
                     lineage_as_kin):  # pragma: no cover - compiled
    """The channel grid of the numeric observation (food, agent, energy, kin, message; the artifact
    channel left at 0) written into ``padded``, a ``(height + 2 radius, width + 2 radius, channels)``
    array, with the torus wrapped around its border. With ``lineage_as_kin`` the kin channel holds the
    occupant's lineage id (-2 where nobody stands), else 0."""
    height, width = food.shape
    padded_height, padded_width = padded.shape[0], padded.shape[1]
    channels = padded.shape[2]
    empty_kin = np.float32(-2.0) if lineage_as_kin else np.float32(0.0)
    for pr in range(padded_height):
        row = (pr - radius) % height
        for pc in range(padded_width):
            col = (pc - radius) % width
            cell = padded[pr, pc]
            cell[0] = food[row, col] / food_value
            who = occupant[row, col]
            if who >= 0:
                cell[1] = 1.0
                cell[2] = energy[who] / initial_energy
                cell[3] = lineage[who] if lineage_as_kin else 0.0
                cell[4] = message[who]
            else:
                cell[1] = 0.0
                cell[2] = 0.0
                cell[3] = empty_kin
                cell[4] = 0.0
            for c in range(5, channels):
                cell[c] = 0.0
