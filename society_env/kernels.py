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
def gather_observations(padded, size, slots, order, position, lineage, energy, age, genome, scales, kin_channel,
                        exact_kin, out):  # pragma: no cover - compiled
    """Write the numeric observation of ``slots[k]`` into ``out[k]``: its ``size x size`` window of the
    wrap-padded channel grid in (row, column, channel) order, then its own features (energy / initial
    energy, age / lifespan, row / height, column / width, genome), ``scales`` holding those four divisors.

    The window of an agent at (row, column) is the padded block starting there. Agents are visited in
    ``order`` (by position: neighbours' windows overlap, so the grid rows they read are still in cache).
    With ``exact_kin`` the grid's kin channel holds each occupant's lineage id and becomes 1.0 where it
    equals the viewer's lineage (else 0.0), written in the same pass."""
    channels = padded.shape[2]
    run = size * channels  # a window row: size cells of all channels, contiguous in the padded grid
    view = size * run
    grid = padded.reshape(padded.shape[0], padded.shape[1] * channels)
    for k in order:
        slot = slots[k]
        target = out[k]
        row, first = position[slot, 0], position[slot, 1] * channels
        own = np.float32(lineage[slot])
        for i in range(size):
            source = grid[row + i]
            base = i * run
            for j in range(run):
                target[base + j] = source[first + j]
            if exact_kin:
                for at in range(base + kin_channel, base + run, channels):
                    target[at] = np.float32(1.0) if target[at] == own else np.float32(0.0)
        target[view] = energy[slot] / scales[0]
        target[view + 1] = age[slot] / scales[1]
        target[view + 2] = position[slot, 0] / scales[2]
        target[view + 3] = position[slot, 1] / scales[3]
        for g in range(genome.shape[1]):
            target[view + 4 + g] = genome[slot, g]


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
    columns = np.empty(padded_width, np.int64)  # the wrap-around, computed once instead of per cell
    for pc in range(padded_width):
        columns[pc] = (pc - radius) % width
    for pr in range(padded_height):
        row = (pr - radius) % height
        for pc in range(padded_width):
            col = columns[pc]
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


@njit(cache=True)
def decay_food(flat_food, draws, probability):  # pragma: no cover - compiled
    """Food tiles in row-major order, the k-th with ``draws[k]``: a tile loses one unit when its draw is
    below ``probability``."""
    k = 0
    for cell in range(flat_food.shape[0]):
        if flat_food[cell] != 0:
            if draws[k] < probability:
                flat_food[cell] -= 1
            k += 1


@njit(cache=True)
def transfer_energy(acting, kind, target, amount, position, occupant, energy, rank, radius, amounts, give, take,
                    failed, no_agent, nothing):  # pragma: no cover - compiled
    """The give/take phase (``rules.resolve_transfers``). Each give/take names view cell ``target``; the
    agent there is the partner (else ``failed`` gets ``no_agent``). Energy flows source -> dest (giver ->
    receiver, victim -> taker); outflows from one source are granted in rank order of the actors while
    its starting energy (if positive) covers everything asked of it before, else the rest, else 0
    (``failed`` gets ``nothing``). All grants use the starting energy; then energy moves. Returns the
    granted transfers (is_give, source, dest, amount) ordered by (source, actor rank)."""
    height, width = occupant.shape
    side = 2 * radius + 1
    slots = acting.shape[0]
    actors = np.empty(slots, np.int64)
    sources = np.empty(slots, np.int64)
    dests = np.empty(slots, np.int64)
    keys = np.empty(slots, np.int64)
    count = 0
    for slot in range(slots):
        if not acting[slot] or (kind[slot] != give and kind[slot] != take):
            continue
        d_row, d_col = target[slot] // side - radius, target[slot] % side - radius
        partner = occupant[(position[slot, 0] + d_row) % height, (position[slot, 1] + d_col) % width]
        if partner < 0 or (d_row == 0 and d_col == 0):
            failed[slot] = no_agent
            continue
        source, dest = (slot, partner) if kind[slot] == give else (partner, slot)
        actors[count], sources[count], dests[count] = slot, source, dest
        keys[count] = source * slots + rank[slot]
        count += 1
    order = np.argsort(keys[:count])  # keys are distinct: the order is the same for every sort
    granted = np.zeros(count, np.int64)
    previous, claimed, available = -1, 0, 0
    for i in order:
        source = sources[i]
        if source != previous:
            previous, claimed, available = source, 0, max(energy[source], 0)
        wanted = amounts[amount[actors[i]]]
        granted[i] = min(max(available - claimed, 0), wanted)
        claimed += wanted
    kept = 0
    for i in order:
        if granted[i] == 0:
            failed[actors[i]] = nothing
        else:
            kept += 1
    is_give = np.empty(kept, np.bool_)
    out_source = np.empty(kept, np.int64)
    out_dest = np.empty(kept, np.int64)
    out_amount = np.empty(kept, np.int64)
    k = 0
    for i in order:
        if granted[i] > 0:
            is_give[k] = kind[actors[i]] == give
            out_source[k], out_dest[k], out_amount[k] = sources[i], dests[i], granted[i]
            energy[sources[i]] -= granted[i]
            energy[dests[i]] += granted[i]
            k += 1
    return is_give, out_source, out_dest, out_amount


@njit(cache=True)
def move_agents(acting, kind, position, occupant, rank, deltas, first_move, last_move, blocked):  # pragma: no cover - compiled
    """The move phase (``rules.resolve_moves``): a move succeeds when its target cell is empty at the start
    of the phase and no better-ranked mover wants it; otherwise ``blocked`` is set. A cell left by a mover
    still counts as taken during the phase."""
    height, width = occupant.shape
    slots = acting.shape[0]
    movers = np.empty(slots, np.int64)
    count = 0
    for slot in range(slots):
        if acting[slot] and first_move <= kind[slot] <= last_move:
            movers[count] = slot
            count += 1
    movers = movers[:count]
    rows = np.empty(count, np.int64)
    cols = np.empty(count, np.int64)
    ranks = np.empty(count, np.int64)
    for i in range(count):
        slot = movers[i]
        rows[i] = (position[slot, 0] + deltas[kind[slot], 0]) % height
        cols[i] = (position[slot, 1] + deltas[kind[slot], 1]) % width
        ranks[i] = rank[slot]
    won = np.zeros(count, np.bool_)
    for i in np.argsort(ranks):  # ranks of living agents are distinct
        if occupant[rows[i], cols[i]] == -1:
            occupant[rows[i], cols[i]] = -2  # claimed until the phase ends
            won[i] = True
    for i in range(count):
        slot = movers[i]
        if won[i]:
            occupant[position[slot, 0], position[slot, 1]] = -1
    for i in range(count):
        slot = movers[i]
        if won[i]:
            position[slot, 0], position[slot, 1] = rows[i], cols[i]
            occupant[rows[i], cols[i]] = slot
        else:
            blocked[slot] = True


@njit(cache=True)
def eat_and_metabolise(present, position, food, energy, age, status, occupant, ate, energy_per_step, lifespan,
                       food_value, dead, starvation, old_age):  # pragma: no cover - compiled
    """The eat, metabolism and death phases (``rules.eat``, ``rules.metabolise_and_die``) for the agents
    alive at the start of the step, in slot order: each eats its cell's whole tile, pays
    ``energy_per_step`` and ages by one; it dies of starvation (energy <= 0) or old age (age >=
    lifespan), leaving food worth ``max(food_value, energy left)`` on its cell. Returns (dead slots,
    causes)."""
    count = present.shape[0]
    for slot in present:
        row, col = position[slot, 0], position[slot, 1]
        ate[slot] = food[row, col]
        energy[slot] += food[row, col]
        food[row, col] = 0
    died = np.empty(count, np.int64)
    causes = np.empty(count, np.int64)
    deaths = 0
    for slot in present:
        energy[slot] -= energy_per_step
        age[slot] += 1
        if energy[slot] <= 0:
            causes[deaths] = starvation
        elif age[slot] >= lifespan:
            causes[deaths] = old_age
        else:
            continue
        died[deaths] = slot
        deaths += 1
        status[slot] = dead
        row, col = position[slot, 0], position[slot, 1]
        occupant[row, col] = -1
        food[row, col] += max(food_value, energy[slot])
    return died[:deaths], causes[:deaths]
