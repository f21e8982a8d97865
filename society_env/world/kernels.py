"""Compiled loops (numba) behind the rules and the numeric observation: each rule phase's per-agent work
(give/take, moves, eat + metabolism + death, food decay and food-cell draws, choosing parents and
placing children, genome mutation, shaped rewards), the padded channel grid and the view gather, and the
action range check of the array API. A phase done as a handful of NumPy calls pays each call's fixed
cost, and some phases are sequential by nature (each birth changes which cells the next parent finds
free; a move claim blocks later movers); one compiled pass does either at the cost of the work itself.

Each function is the body of a rule or of the observation, kept here so that ``rules.py`` and
``observations.py`` read as the rules they implement. The rule phases are composed into two compiled
calls per step (section "one step's rule phases"), which draw their random numbers from the env's
generator themselves: the same numbers NumPy's calls would draw (section "NumPy's draws, compiled"); the
array API's world on one thread steps in one call, rules and observation (the last section). ``cache=True`` keeps the
compiled code on disk next to this file (``__pycache__``), so only the first import on a machine pays the
compile time (docs/performance.md gives it). Compiled functions that call each other stay in this one
file: numba's cache key is the defining file, and a caller compiled against an older callee of another
file would keep running the old code.

The observation loops (the grid fill, the view gather, the features) also come compiled with
``parallel=True`` (``*_parallel``, cached under their own names): their iterations write disjoint memory
and read shared inputs only, so any thread count gives the same bytes. ``society_env.world.observations``
picks them for big worlds (``society_env.world.threads``).
"""

from __future__ import annotations

import ctypes
import types as pytypes
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.random.random_methods import random_interval


@intrinsic
def copy_items(typingctx, target, target_start, source, source_start, count):
    """``target[target_start:target_start + count] = source[source_start:source_start + count]`` for 1-d
    contiguous arrays of one dtype, as one ``memcpy`` (LLVM's ``llvm.memcpy``; the ranges must not overlap).
    For a run of any length; :func:`copy_run` copies runs of 64 bytes and more inline."""
    if target.dtype != source.dtype or target.layout != "C" or source.layout != "C":
        return None  # no such function: numba's typing error names the arguments
    signature = types.void(target, types.intp, source, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        target_array = context.make_array(sig.args[0])(context, builder, args[0])
        source_array = context.make_array(sig.args[2])(context, builder, args[2])
        itemsize = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        cgutils.raw_memcpy(builder, builder.gep(target_array.data, [args[1]]),
                           builder.gep(source_array.data, [args[3]]), args[4], itemsize)
        return context.get_dummy_value()

    return signature, codegen


VECTOR_BYTES = 64
"""Bytes :func:`copy_block` moves: one AVX-512 register, one cache line."""


@intrinsic
def copy_block(typingctx, target, target_start, source, source_start):
    """Copy the 64 bytes (:data:`VECTOR_BYTES`) of 1-d contiguous ``source`` from item ``source_start`` on
    into ``target`` from item ``target_start`` on: one vector load and one vector store, unaligned."""
    if target.dtype != source.dtype or target.layout != "C" or source.layout != "C":
        return None  # no such function: numba's typing error names the arguments
    signature = types.void(target, types.intp, source, types.intp)

    def codegen(context, builder, sig, args):
        block = ir.VectorType(ir.IntType(8), VECTOR_BYTES).as_pointer()
        target_array = context.make_array(sig.args[0])(context, builder, args[0])
        source_array = context.make_array(sig.args[2])(context, builder, args[2])
        value = builder.load(builder.bitcast(builder.gep(source_array.data, [args[3]]), block), align=1)
        builder.store(value, builder.bitcast(builder.gep(target_array.data, [args[1]]), block), align=1)
        return context.get_dummy_value()

    return signature, codegen


@njit(cache=True, inline="always")
def copy_run(target, target_start, source, source_start, count):  # pragma: no cover - compiled
    """:func:`copy_items` inline, for a run of at least 64 bytes: 64-byte blocks (:func:`copy_block`), the
    last one overlapping the one before instead of a tail item by item. A window row of the gather (312
    bytes in float32) is five blocks, where a call of libc's ``memcpy`` first decides how to copy it: the
    gather 18% faster at 500 agents (0.063 against 0.077 ms, measured 2026-12-06); a compiled loop of
    items copies in vector blocks, then the tail item by item, slower than ``memcpy``."""
    per_block = VECTOR_BYTES // target.itemsize
    if count < per_block:
        copy_items(target, target_start, source, source_start, count)
        return
    x = 0
    while x + per_block < count:
        copy_block(target, target_start + x, source, source_start + x)
        x += per_block
    copy_block(target, target_start + count - per_block, source, source_start + count - per_block)


@njit(cache=True, inline="always")
def wrap(x, n):  # pragma: no cover - compiled
    """``x % n`` (n > 0), without the integer division when ``x`` is within one ``n`` of ``[0, n)`` (a step
    or a view offset on the torus: the usual case); a division costs more than the rest of a move."""
    if x < 0:
        x += n
    elif x >= n:
        x -= n
    return x if 0 <= x < n else x % n


@njit(cache=True)
def choose_parents(acting, kind, reproduce, energy, min_energy, by_rank, failed, not_enough):  # pragma: no cover - compiled
    """The slots that reproduce this step, in rank order (``by_rank``: the living, best first): those
    acting with ``kind == reproduce`` and at least ``min_energy``; the others that tried get
    ``not_enough`` in ``failed``."""
    parents = np.empty(by_rank.shape[0], np.int64)
    count = 0
    for slot in by_rank:
        if acting[slot] and kind[slot] == reproduce:
            if energy[slot] >= min_energy:
                parents[count] = slot
                count += 1
            else:
                failed[slot] = not_enough
    return parents[:count]


class BirthState(NamedTuple):
    """The state arrays a birth writes (``WorldState``'s, by slot; ``position`` is [slots, 2])."""

    position: np.ndarray
    occupant: np.ndarray
    status: np.ndarray
    energy: np.ndarray
    age: np.ndarray
    parent: np.ndarray
    lineage: np.ndarray
    generation: np.ndarray
    birth_step: np.ndarray


class BirthRule(NamedTuple):
    """The numbers of a birth: the slot pool, the status code of the living, what a birth costs the parent
    and gives the child, and the failure codes."""

    max_agents: int
    alive: int
    cost: int
    child_energy: int
    pool_full: int
    no_free_cell: int


@njit(cache=True)
def place_children(parents, preference, deltas, world, num_born, step, rule, failed):  # pragma: no cover - compiled
    """Give each parent (in rank order) a child on its first free preferred neighbour cell.

    ``preference[k]`` orders the 8 ``deltas`` for ``parents[k]``; ``world`` is a :class:`BirthState`,
    ``rule`` a :class:`BirthRule`. The child takes slot ``num_born + births`` and its cell at once, so
    later parents see it: it is born ``rule.alive`` at that cell with ``rule.child_energy``, age 0, the
    parent's lineage and the next generation, at step ``step + 1``; the parent pays ``rule.cost``.
    Parents that find the pool full or no free cell get ``rule.pool_full`` / ``rule.no_free_cell`` in
    ``failed``. Returns the parents that had a child, in birth order (their children are the slots from
    ``num_born`` on)."""
    position, occupant, status, energy, age = world.position, world.occupant, world.status, world.energy, world.age
    parent, lineage, generation, birth_step = world.parent, world.lineage, world.generation, world.birth_step
    max_agents, alive, cost, child_energy = rule.max_agents, rule.alive, rule.cost, rule.child_energy
    pool_full, no_free_cell = rule.pool_full, rule.no_free_cell
    height, width = occupant.shape
    born = np.empty(parents.shape[0], np.int64)
    births = 0
    for k in range(parents.shape[0]):
        mother = parents[k]
        child = num_born + births
        if child >= max_agents:
            failed[mother] = pool_full
            continue
        placed = False
        for j in range(deltas.shape[0]):
            d = preference[k, j]
            row = wrap(position[mother, 0] + deltas[d, 0], height)
            col = wrap(position[mother, 1] + deltas[d, 1], width)
            if occupant[row, col] < 0:
                occupant[row, col] = child
                position[child, 0], position[child, 1] = row, col
                status[child] = alive
                energy[mother] -= cost
                energy[child] = child_energy
                age[child] = 0
                parent[child] = mother
                lineage[child] = lineage[mother]
                generation[child] = generation[mother] + 1
                birth_step[child] = step + 1
                born[births] = mother
                births += 1
                placed = True
                break
        if not placed:
            failed[mother] = no_free_cell
    return born[:births]


FAMILY_SCAN_LIMIT = 48
"""A viewer's family (living agents of its lineage) up to this size marks its kin cells member by member;
a bigger one scans the window's lineage ids (169 compares for a 13x13 view)."""


@njit(cache=True)
def group_families(lineage, status, alive):  # pragma: no cover - compiled
    """The living slots grouped by lineage (a counting sort): ``members[first[f]:first[f + 1]]`` are the
    living agents of lineage ``f`` (lineage ids are slots, below ``len(status)``)."""
    slots = status.shape[0]
    first = np.zeros(slots + 1, np.int64)
    for slot in range(slots):
        if status[slot] == alive:
            first[lineage[slot] + 1] += 1
    for f in range(slots):
        first[f + 1] += first[f]
    filled = first[:slots].copy()
    members = np.empty(first[slots], np.int64)
    for slot in range(slots):
        if status[slot] == alive:
            members[filled[lineage[slot]]] = slot
            filled[lineage[slot]] += 1
    return members, first


def _gather_views(padded, kin, size, visited, position, lineage, members, first, targets, kin_channel,
                  out):  # pragma: no cover - compiled
    """For each k, write into ``out[targets[k]]`` the ``size x size`` window of the wrap-padded channel
    grid around agent ``visited[k]`` (at ``position[visited[k]]``) in (row, column, channel) order.

    The window of an agent at (row, column) is the padded block starting there, copied as it is (the grid
    is already in the output's dtype); the order of the agents is the caller's (:func:`observe` says
    which). The grid's kin channel is 0 and becomes 1 on the cells of the viewer's family (its lineage's
    living agents, ``members[first[f]:first[f + 1]]`` of :func:`group_families`): a small family marks its
    members that fall in the window, one by one (the usual case: a few relatives instead of a compare on
    all 169 cells, which took half the gather); a big one, or a window wider than the torus, compares the
    window's cells in ``kin`` (int32, each cell's occupant's lineage id, -2 where nobody stands) with the
    viewer's lineage, row by row."""
    channels = padded.shape[2]
    run = size * channels  # a window row: size cells of all channels, contiguous in the padded grid
    radius = size // 2
    height, width = padded.shape[0] - 2 * radius, padded.shape[1] - 2 * radius
    window_fits = size <= height and size <= width  # no torus cell appears twice in a window
    grid = padded.reshape(padded.shape[0], padded.shape[1] * channels)
    for k in prange(visited.shape[0]):  # each k writes its own row of out (targets are distinct)
        target = out[targets[k]]
        slot = visited[k]
        row, col, family = position[slot, 0], position[slot, 1], lineage[slot]
        for i in range(size):
            copy_run(target, i * run, grid[row + i], col * channels, run)
        relatives = members[first[family] : first[family + 1]]
        if window_fits and relatives.shape[0] <= FAMILY_SCAN_LIMIT:
            for relative in relatives:  # its window cell, if the torus offset is within the radius
                i = wrap(position[relative, 0] - row + radius, height)
                j = wrap(position[relative, 1] - col + radius, width)
                if i < size and j < size:
                    target[i * run + j * channels + kin_channel] = 1
            continue
        for i in range(size):
            families = kin[row + i, col : col + size]
            for j in range(size):
                if families[j] == family:
                    target[i * run + j * channels + kin_channel] = 1


def _write_features(own, slots, targets, out, at):  # pragma: no cover - compiled
    """The 12 own-state features of each ``slots[k]`` into ``out[targets[k], at:at + 12]`` (float32):
    energy / initial_energy, age / lifespan, row / height, column / width (each divided in float64, as
    NumPy does), then the 8 genome entries. ``own`` is an :class:`OwnState`. A pass of its own, in slot
    order: inside the position-ordered gather, the scattered reads and writes cost 6x more at 100k agents."""
    for k in prange(slots.shape[0]):
        slot, row = slots[k], out[targets[k]]
        row[at] = own.energy[slot] / own.initial_energy
        row[at + 1] = own.age[slot] / own.lifespan
        row[at + 2] = own.position[slot, 0] / own.height
        row[at + 3] = own.position[slot, 1] / own.width
        for g in range(own.genome.shape[1]):
            row[at + 4 + g] = own.genome[slot, g]


class OwnState(NamedTuple):
    """What the 12 own-state features are computed from (the state's arrays by slot, and the divisors)."""

    energy: np.ndarray
    age: np.ndarray
    position: np.ndarray
    genome: np.ndarray
    initial_energy: int
    lifespan: int
    height: int
    width: int


@njit(cache=True)
def _wrap_border(grid, radius, height, width, items):  # pragma: no cover - compiled
    """Fill the ``radius`` border of a padded grid, whose middle (from row and column ``radius`` on) holds
    the ``height x width`` torus, with copies of the opposite edges (the torus' wrap-around): padded cell
    (r, c) is torus cell ((r - radius) % height, (c - radius) % width). ``grid`` is 2-d, ``items`` values
    per cell (the channels, side by side in a row).

    The torus rows' left and right borders are runs of the same row, and the top and bottom border rows
    copies of whole torus rows (copied after their borders); a view wider than the torus (radius above
    its height or width) takes the cell-by-cell form. Loops between slices indexed from 0, which LLVM
    vectorises (slice assignments took seconds to compile)."""
    if radius > height or radius > width:
        _wrap_border_cells(grid, radius, height, width, items)
        return
    run = radius * items
    for r in range(radius, radius + height):
        row = grid[r]
        left, left_source = row[:run], row[width * items : width * items + run]
        right, right_source = row[(radius + width) * items :], row[run : 2 * run]
        for x in range(run):
            left[x] = left_source[x]
            right[x] = right_source[x]
    for r in range(radius):
        top, top_source = grid[r], grid[r + height]
        bottom, bottom_source = grid[radius + height + r], grid[radius + r]
        for x in range(grid.shape[1]):
            top[x] = top_source[x]
            bottom[x] = bottom_source[x]


@njit(cache=True)
def _wrap_border_cells(grid, radius, height, width, items):  # pragma: no cover - compiled
    """:func:`_wrap_border` cell by cell, for any radius (the view may wrap around the torus more than once)."""
    rows = grid.shape[0]
    columns = grid.shape[1] // items
    for r in range(rows):
        source_row = radius + (r - radius) % height
        inside_row = radius <= r < radius + height
        c = 0
        while c < columns:
            if inside_row and c == radius:  # the torus itself: skip to the right border
                c = radius + width
                continue
            source, target = (radius + (c - radius) % width) * items, c * items
            for x in range(items):
                grid[r, target + x] = grid[source_row, source + x]
            c += 1


def _fill_grid(padded, kin, radius, food, energy, message, lineage, position, status, alive, compact, food_value,
               initial_energy, high, artifact_counts):  # pragma: no cover - compiled
    """The channel grid the observation is gathered from, wrap-padded by ``radius``: ``padded``
    (``(height + 2 radius, width + 2 radius, channels)``) and ``kin`` (int32, the same rows and columns).

    float32 (``compact`` False): food / ``food_value``, presence, energy / ``initial_energy`` and the message
    token of the agent standing there; compact (uint8 / uint16): food and energy in energy units capped at
    ``high``, the dtype's maximum (energy below 0 as 0). The artifact channel holds ``artifact_counts``
    ((height, width) ints; an empty array: zeros), the kin channel 0; ``kin`` holds the occupant's lineage
    id, -2 where nobody stands.

    Two passes: every cell gets its food and the empty-cell values (zeros, then the food channel, a table
    lookup for the usual small amounts instead of a division per cell), then each living agent (``status ==
    alive``) writes its own cell; then the border. The per-cell check of the occupant it replaces
    mispredicted and kept the loop scalar."""
    height, width = food.shape
    channels = padded.shape[2]
    grid = padded.reshape(padded.shape[0], padded.shape[1] * channels)
    # food / food_value of the small food values, computed as below (float64 division, rounded to float32)
    small_food = np.arange(256) / food_value
    for parallel_r in prange(height):  # each r writes its own padded row
        r = np.int64(parallel_r)  # prange's index is unsigned when parallel: keep the arithmetic in int64
        target = grid[r + radius, radius * channels : (radius + width) * channels]
        target[:] = 0
        food_row = food[r]
        for c in range(width):
            amount = food_row[c]
            if compact:
                target[c * channels] = min(amount, high)
            elif amount < 256:
                target[c * channels] = small_food[amount]
            else:
                target[c * channels] = amount / food_value
        if artifact_counts.shape[0] > 0:  # channel 5, the artifact channel
            for c in range(width):
                target[c * channels + 5] = min(artifact_counts[r, c], high) if compact else artifact_counts[r, c]
        kin[r + radius, radius : radius + width] = -2
    for slot in range(status.shape[0]):
        if status[slot] != alive:
            continue
        r, c = position[slot, 0] + radius, position[slot, 1] + radius
        cell = padded[r, c]
        cell[1] = 1
        if compact:
            cell[2] = min(max(energy[slot], 0), high)
        else:
            cell[2] = energy[slot] / initial_energy
        cell[4] = message[slot]
        kin[r, c] = lineage[slot]
    _wrap_border(grid, radius, height, width, channels)
    _wrap_border(kin, radius, height, width, 1)


def _renamed(function, name: str):
    """``function`` (the same code and globals) under another name. numba keys its disk cache by a
    function's qualified name and first line: two compiled twins of one Python function share one entry
    and load each other's code (the "parallel" one ran serial code); renamed, each has its own."""
    twin = pytypes.FunctionType(function.__code__, function.__globals__, name, function.__defaults__,
                                function.__closure__)
    twin.__qualname__ = name
    return twin


# The serial loops and their parallel=True twins, all cached on disk.
gather_views = njit(cache=True)(_gather_views)
gather_views_parallel = njit(cache=True, parallel=True)(_renamed(_gather_views, "gather_views_parallel"))
write_features = njit(cache=True)(_write_features)
write_features_parallel = njit(cache=True, parallel=True)(_renamed(_write_features, "write_features_parallel"))
fill_grid = njit(cache=True)(_fill_grid)
fill_grid_parallel = njit(cache=True, parallel=True)(_renamed(_fill_grid, "fill_grid_parallel"))


class ObservationSpec(NamedTuple):
    """The numbers of one observation write, from the config and the grid's dtype (built once per env by
    ``observations.observation_scratch``)."""

    radius: int  # view radius (the padding)
    size: int  # view side
    alive: int  # status code of the living
    compact: bool  # the grid holds compact integers (uint8 / uint16), not float32
    high: int  # compact: the dtype's maximum
    food_value: int
    initial_energy: int
    lifespan: int
    height: int
    width: int
    kin_channel: int
    features_at: int  # where the features start in a row of the features' array
    by_position: bool  # visit agents in position order (:func:`position_order`)


@njit(cache=True)
def observe(spec, padded, kin, artifact_counts, food, occupant, energy, age, message, lineage, position, genome,
            status, slots, rows, out, features):  # pragma: no cover - compiled
    """One observation write on one thread, as one call: :func:`fill_grid`, :func:`group_families`, the
    views of ``slots`` into ``out[rows]`` (:func:`gather_views`) and their features into
    ``features[rows]`` from ``spec.features_at`` on (:func:`write_features`; ``features`` is ``out`` for the
    float32 observation).

    Agents are visited in slot order, so that the rows of ``out`` are written one after the other, unless
    ``spec.by_position``: in a grid bigger than the caches, visiting them in position order
    (:func:`position_order`) keeps the grid rows they read in cache, and that gains more than the
    scattered writes lose (``observations.SLOT_ORDER_MAX_GRID_BYTES``)."""
    fill_grid(padded, kin, spec.radius, food, energy, message, lineage, position, status, spec.alive, spec.compact,
              spec.food_value, spec.initial_energy, spec.high, artifact_counts)
    members, first = group_families(lineage, status, spec.alive)
    visited, targets = slots, rows
    if spec.by_position:
        order = position_order(occupant, slots, status.shape[0])
        visited, targets = slots[order], rows[order]
    gather_views(padded, kin, spec.size, visited, position, lineage, members, first, targets, spec.kin_channel, out)
    own = OwnState(energy, age, position, genome, spec.initial_energy, spec.lifespan, spec.height, spec.width)
    write_features(own, slots, rows, features, spec.features_at)


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
        partner = occupant[wrap(position[slot, 0] + d_row, height), wrap(position[slot, 1] + d_col, width)]
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
def move_agents(acting, kind, position, occupant, by_rank, deltas, first_move, last_move, blocked):  # pragma: no cover - compiled
    """The move phase (``rules.resolve_moves``), movers visited in rank order (``by_rank``: the living
    slots, best rank first): a move succeeds when its target cell is empty at the start of the phase and
    no better-ranked mover claimed it; otherwise ``blocked`` is set. A cell left by a mover still counts
    as taken during the phase."""
    height, width = occupant.shape
    movers = np.empty(by_rank.shape[0], np.int64)
    rows = np.empty(by_rank.shape[0], np.int64)
    cols = np.empty(by_rank.shape[0], np.int64)
    count = 0
    for slot in by_rank:
        if not acting[slot] or not first_move <= kind[slot] <= last_move:
            continue
        row = wrap(position[slot, 0] + deltas[kind[slot], 0], height)
        col = wrap(position[slot, 1] + deltas[kind[slot], 1], width)
        if occupant[row, col] == -1:
            occupant[row, col] = -2  # claimed until the phase ends
            movers[count], rows[count], cols[count] = slot, row, col
            count += 1
        else:
            blocked[slot] = True
    for i in range(count):
        occupant[position[movers[i], 0], position[movers[i], 1]] = -1
    for i in range(count):
        position[movers[i], 0], position[movers[i], 1] = rows[i], cols[i]
        occupant[rows[i], cols[i]] = movers[i]


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


@njit(cache=True)
def add_shaped_rewards(rewards, is_give, source, dest, amount, blocked, present, ate, died,
                       weights):  # pragma: no cover - compiled
    """The ``shaped`` rewards of one step added to ``rewards`` in the order the phases happened (every
    transfer's source, then every transfer's destination, blocked moves, eating, death: the order of
    ``society_env.world.rewards.SHAPED_REWARDS``), so each slot's sum is rounded exactly as when the phases are
    added one after another. ``weights`` is a ``rewards.ShapedWeights`` (config field names)."""
    for i in range(source.shape[0]):
        weight = weights.reward_give_giver if is_give[i] else weights.reward_take_victim
        rewards[source[i]] += weight * np.float64(amount[i])
    for i in range(dest.shape[0]):
        weight = weights.reward_give_receiver if is_give[i] else weights.reward_take_taker
        rewards[dest[i]] += weight * np.float64(amount[i])
    for slot in range(rewards.shape[0]):
        if blocked[slot]:
            rewards[slot] += weights.reward_blocked_move
    for slot in present:
        rewards[slot] += weights.reward_eat_per_unit * ate[slot]
    for slot in died:
        rewards[slot] += weights.reward_death


@njit(cache=True)
def position_order(occupant, slots, num_slots):  # pragma: no cover - compiled
    """Indices into ``slots`` in the row-major order of the cells their agents stand on (one pass over the
    grid instead of a sort), then those not on the grid (the dead) in the order given."""
    index_of = np.full(num_slots, -1, np.int64)
    for k in range(slots.shape[0]):
        index_of[slots[k]] = k
    order = np.empty(slots.shape[0], np.int64)
    placed = 0
    for who in occupant.ravel():
        if who >= 0 and index_of[who] >= 0:
            order[placed] = index_of[who]
            index_of[who] = -1
            placed += 1
    for k in range(slots.shape[0]):
        if index_of[slots[k]] == k:
            order[placed] = k
            placed += 1
    return order


@njit(cache=True)
def first_bad_action(actions, sizes, alive):  # pragma: no cover - compiled
    """(world, slot) of the first living slot whose action has a component outside [0, size), else
    (-1, -1). ``actions``: [worlds, slots, components]."""
    for e in range(actions.shape[0]):
        for slot in range(actions.shape[1]):
            if alive[e, slot]:
                for c in range(sizes.shape[0]):
                    if actions[e, slot, c] < 0 or actions[e, slot, c] >= sizes[c]:
                        return e, slot
    return -1, -1


@njit(cache=True)
def mutate_genome_rows(parents, mutate, noise, traits, out):  # pragma: no cover - compiled
    """Children's genomes: each parent entry plus its ``noise`` where ``mutate`` holds, then traits (the
    first ``traits`` columns) clamped to [-1, 1] and fertility (the next) to [0.5, 1]."""
    for i in range(parents.shape[0]):
        for j in range(parents.shape[1]):
            value = parents[i, j] + (noise[i, j] if mutate[i, j] else 0.0)
            if j < traits:
                value = min(max(value, -1.0), 1.0)
            elif j == traits:
                value = min(max(value, 0.5), 1.0)
            out[i, j] = value


# ---- NumPy's draws, compiled ----------------------------------------------------------------------
# Numba compiles calls to an ``np.random.Generator``'s ``random``, ``permutation``, ``normal`` and
# ``poisson`` into the draws NumPy makes (same algorithms, same bit generator, whose state they
# advance). ``Generator.choice(..., replace=False, p=...)`` is not among them: ``choice_without_replacement``
# is its algorithm, step for step, with NumPy's pairwise summation (``pairwise_sum``) for the normalising
# sum, so the same generator state gives the same cells (``tests/test_sampling.py`` checks both against
# NumPy). They live in this file with their callers: numba's disk cache does not notice that a compiled
# function called from another file has changed.

@njit(cache=True)
def permutation(rng, n):  # pragma: no cover - compiled
    """``rng.permutation(n)``: NumPy's shuffle of ``arange(n)`` (from the top, each swap partner drawn by
    ``random_interval``), the same numbers; numba's own ``permutation`` makes them too, 2.5x slower."""
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.int64(random_interval(rng.bit_generator, np.uint64(i)))
        order[i], order[j] = order[j], order[i]
    return order


GENERATOR_HANDLE_FIELDS = ("state_address", "state", "fnptr_next_uint64", "fnptr_next_uint32", "fnptr_next_double",
                           "bit_generator")
"""What numba's Generator value holds of its bit generator (its ``ctypes`` interface), in the order of
:func:`generator_handle`."""


def generator_handle(rng: np.random.Generator) -> np.ndarray:
    """``rng``'s bit generator as the addresses numba's Generator value holds (uint64, in the order of
    :data:`GENERATOR_HANDLE_FIELDS`), for :func:`generator_at`. Valid while ``rng`` lives."""
    interface = rng.bit_generator.ctypes
    functions = [ctypes.cast(f, ctypes.c_void_p).value
                 for f in (interface.next_uint64, interface.next_uint32, interface.next_double)]
    return np.array([interface.state_address, interface.state.value, *functions, interface.bit_generator.value],
                    dtype=np.uint64)


@intrinsic
def generator_at(typingctx, handle):
    """The Generator of :func:`generator_handle`'s ``handle``, inside compiled code: its draws advance the
    Python Generator's state, as when the Generator itself is passed. Passing it costs 5-10 us a call
    (numba's unboxing looks up five attributes and makes three ``ctypes`` casts in Python), a tenth of a
    step of 500 agents; the handle is an array, read in nanoseconds."""
    if not (isinstance(handle, types.Array) and handle.dtype == types.uint64 and handle.ndim == 1):
        return None
    generator_type = types.NumPyRandomGeneratorType("generator")

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        bit_generator = cgutils.create_struct_proxy(types.NumPyRandomBitGeneratorType("bit_generator"))(context,
                                                                                                      builder)
        for i, field in enumerate(GENERATOR_HANDLE_FIELDS):
            setattr(bit_generator, field, builder.load(builder.gep(array.data, [context.get_constant(types.intp, i)])))
        generator = cgutils.create_struct_proxy(generator_type)(context, builder)
        generator.bit_generator = bit_generator._getvalue()  # no Python parent, no meminfo: never boxed
        return generator._getvalue()

    return generator_type(handle), codegen


_PAIRWISE_BLOCK = 128
"""NumPy's ``PW_BLOCKSIZE``: below it a sum runs in 8 interleaved accumulators, above it splits in two."""


@njit(cache=True)
def _block_sum(values, start, count):  # pragma: no cover - compiled
    """NumPy's sum of at most 128 float64 values: 8 interleaved accumulators, then the tail in order."""
    if count < 8:
        total = 0.0
        for i in range(start, start + count):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    i = 8
    whole = count - count % 8
    while i < whole:
        at = start + i
        r0 += values[at]
        r1 += values[at + 1]
        r2 += values[at + 2]
        r3 += values[at + 3]
        r4 += values[at + 4]
        r5 += values[at + 5]
        r6 += values[at + 6]
        r7 += values[at + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < count:
        total += values[start + i]
        i += 1
    return total


@njit(cache=True)
def _left_half(count):  # pragma: no cover - compiled
    """Where NumPy's pairwise sum splits ``count`` values: half, rounded down to a multiple of 8."""
    half = count // 2
    return half - half % 8


@njit(cache=True)
def pairwise_sum(values, start, count):  # pragma: no cover - compiled
    """``values[start:start + count].sum()`` exactly as NumPy computes it for float64: blocks of up to
    128 values summed by :func:`_block_sum`, larger ranges split at :func:`_left_half` and the two sums
    added, as a binary tree. The tree is walked with an explicit stack (numba's disk cache breaks a
    recursive function called from another cached one: the reloaded code crashes)."""
    starts = np.empty(64, np.int64)
    counts = np.empty(64, np.int64)
    left_sums = np.empty(64, np.float64)
    right_pending = np.zeros(64, np.bool_)  # the frame's left half is summed, its right half is running
    top = 0
    starts[0], counts[0] = start, count
    while True:
        if counts[top] > _PAIRWISE_BLOCK:  # descend into the left half
            right_pending[top] = False
            starts[top + 1], counts[top + 1] = starts[top], _left_half(counts[top])
            top += 1
            continue
        value = _block_sum(values, starts[top], counts[top])
        while True:  # hand the finished sum up until a frame still needs its right half
            if top == 0:
                return value
            top -= 1
            if right_pending[top]:
                value = left_sums[top] + value
                continue
            left_sums[top] = value
            right_pending[top] = True
            half = _left_half(counts[top])
            starts[top + 1], counts[top + 1] = starts[top] + half, counts[top] - half
            top += 1
            break


@njit(cache=True, inline="always")
def room_in(buffer, count):  # pragma: no cover - compiled
    """The first ``count`` entries of ``buffer`` if it has them (a buffer kept across calls,
    :class:`RegrowthBuffers`), else a new array of its dtype."""
    return buffer[:count] if buffer.shape[0] >= count else np.empty(count, buffer.dtype)


@njit(cache=True)
def choice_without_replacement(rng, weights, size, count, cumulative_buffer, taken_buffer):  # pragma: no cover - compiled
    """``rng.choice(count, size, replace=False, p=weights / weights.sum())``: the same indices from the same
    generator state. An empty ``weights`` means ``count`` equal weights (``p`` all ``1 / count``).
    ``cumulative_buffer`` / ``taken_buffer``: float64 / bool arrays of at least ``count`` entries to work in
    (:class:`RegrowthBuffers`); shorter ones (empty) mean: allocate.

    NumPy's algorithm, step for step: draw the missing indices from the cumulative sum of ``p`` with the
    indices already found set to 0, divided by its last entry (``np.searchsorted(cdf, draws, "right")``),
    keep the first new hit of each index in draw order, repeat. Every number is computed as NumPy computes
    it (the pairwise sum, the sequential cumulative sum, one division per entry), but without the arrays
    of ``p`` and of the divided ``cdf``: the binary search divides only the entries it looks at.
    ``size`` must not exceed the number of positive weights."""
    equal = weights.shape[0] == 0
    total = np.float64(count) if equal else pairwise_sum(weights, 0, count)
    equal_p = 1.0 / total
    found = np.empty(size, np.int64)
    taken = room_in(taken_buffer, count)
    taken[:] = False
    cumulative = room_in(cumulative_buffer, count)
    unique = 0
    while unique < size:
        draws = rng.random(size - unique)
        running = 0.0
        for i in range(count):
            if not taken[i]:
                running += equal_p if equal else weights[i] / total
            cumulative[i] = running
        last = running
        for x in draws:
            low, high = 0, count  # the first i with cumulative[i] / last > x
            while low < high:
                middle = (low + high) >> 1
                if cumulative[middle] / last > x:
                    high = middle
                else:
                    low = middle + 1
            if not taken[low]:
                taken[low] = True
                found[unique] = low
                unique += 1
    return found


@njit(cache=True)
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


@njit(cache=True)
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


# ---- one step's rule phases, compiled together ---------------------------------------------------
# The phases before and after the artifact phase, each one compiled call; the second draws its random
# numbers from the env's generator itself (numba's Generator methods make NumPy's draws, the section above
# adds NumPy's ``choice``). Two calls per step instead of a dozen kernels and NumPy calls: at a few
# hundred agents the fixed cost of each call was most of the rules' time.

class StepRule(NamedTuple):
    """The numbers of the phases after the artifact phase (reproduction to rewards), from the config,
    ``encodings`` and ``rewards`` (built once per config by ``rules.step_rule``)."""

    birth: BirthRule
    reproduce: int  # action kind
    reproduce_min_energy: int
    not_enough_energy: int  # failure code
    mutation_prob: float
    mutation_std: float
    traits: int  # genome columns that are traits (then fertility)
    first_move: int  # action kinds of the moves
    last_move: int
    energy_per_step: int
    lifespan: int
    food_value: int
    dead: int  # status code
    starvation: int  # death causes
    old_age: int
    food_decay_prob: float
    food_regrowth_rate: float
    spawn_rounds: int
    uniform_food: bool  # the density is 1 on every cell (``kernels.accept_free_cells``)
    survival_rewards: bool  # reward_mode "survival" (else "shaped")
    survival_reward: float
    shaped: tuple  # ``rewards.ShapedWeights``
    give_transfer: int  # transfer kind of a give


@njit(cache=True)
def rank_living(status, alive, order):  # pragma: no cover - compiled
    """Phase 1: the living slots (ascending) permuted by ``order`` (``rng.permutation`` of their count:
    NumPy's call in ``rules``, :func:`permutation` in :func:`step_and_observe`) are the rank order. Returns
    (rank of every slot, 0 = resolves first, others the largest int64; the living slots in rank order)."""
    by_rank = np.flatnonzero(status == alive)[order]
    rank = np.full(status.shape[0], np.iinfo(np.int64).max, np.int64)
    for r in range(by_rank.shape[0]):
        rank[by_rank[r]] = r
    return rank, by_rank


@njit(cache=True)
def rank_and_transfer(order, status, alive, acting, kind, target, amount, position, occupant, energy, radius, amounts,
                      codes, failed):  # pragma: no cover - compiled
    """Phases 1-2 (``rules.advance_world``): :func:`rank_living`, then :func:`transfer_energy`. ``codes``:
    (give kind, take kind, no-agent failure, nothing-to-transfer failure, give transfer, take transfer).
    Returns (rank, by_rank, transfer kind, source, destination, amount)."""
    give, take, no_agent, nothing, give_transfer, take_transfer = codes
    rank, by_rank = rank_living(status, alive, order)
    is_give, source, dest, granted = transfer_energy(acting, kind, target, amount, position, occupant, energy, rank,
                                                     radius, amounts, give, take, failed, no_agent, nothing)
    transfer_kind = np.empty(is_give.shape[0], np.int64)  # a loop: np.where with scalars takes 1 s to compile
    for i in range(is_give.shape[0]):
        transfer_kind[i] = give_transfer if is_give[i] else take_transfer
    return rank, by_rank, transfer_kind, source, dest, granted


@njit(cache=True)
def reproduce(rng, acting, kind, by_rank, world, genome, num_born, step, rule, deltas, failed):  # pragma: no cover - compiled
    """Phase 3: parents in rank order (:func:`choose_parents`), each with its own preference order of the
    neighbour cells (``argsort`` of ``rng.random((parents, 8))``), place children (:func:`place_children`);
    the children's genomes are the parents' mutated (``rng.random`` < mutation_prob picks the entries,
    ``rng.normal(0, mutation_std)`` the noise, :func:`mutate_genome_rows` clamps). Returns the parents
    that had a child, in birth order (their children are the slots from ``num_born`` on)."""
    parents = choose_parents(acting, kind, rule.reproduce, world.energy, rule.reproduce_min_energy, by_rank, failed,
                             rule.not_enough_energy)
    if parents.shape[0] == 0:
        return parents
    draws = rng.random((parents.shape[0], deltas.shape[0]))
    preference = np.empty(draws.shape, np.int64)
    for k in range(parents.shape[0]):  # np.argsort of each row (the draws are distinct: any sort agrees)
        order = preference[k]
        for j in range(deltas.shape[0]):  # insertion sort of 8 values
            at = j
            while at > 0 and draws[k, order[at - 1]] > draws[k, j]:
                order[at] = order[at - 1]
                at -= 1
            order[at] = j
    born = place_children(parents, preference, deltas, world, num_born, step, rule.birth, failed)
    if born.shape[0] == 0:
        return born
    shape = (born.shape[0], genome.shape[1])
    mutate = rng.random(shape) < rule.mutation_prob
    noise = rng.normal(0.0, rule.mutation_std, size=shape)
    mutate_genome_rows(genome[born], mutate, noise, rule.traits, genome[num_born : num_born + born.shape[0]])
    return born


@njit(cache=True)
def decay_and_regrow(rng, food, occupant, density, cdf, rule, buffers):  # pragma: no cover - compiled
    """Phase 8: every food tile (row-major) loses one unit with ``food_decay_prob``, one ``rng.random()``
    per tile, in row-major order (the numbers ``rng.random(tiles)`` gives); then
    ``rng.poisson(food_regrowth_rate)`` new tiles of ``food_value`` on free cells drawn from the density
    (:func:`draw_free_cells`, working in ``buffers``).

    Each row's tiles are listed first (their columns, written without a branch on the cell's content: a
    grid with food on a third of its cells, at random, mispredicts a branch on every other cell), then
    each tile draws. This one-thread form replaced one that drew all the numbers first and split the rows
    over threads: level with it at 5000 agents (0.26 against 0.22 ms), faster at 100,000 on two threads
    (3.3 against 5.8 ms), the draws being serial and half the time."""
    height, width = food.shape
    columns = np.empty(width, np.int64)
    probability = rule.food_decay_prob
    for r in range(height):
        row = food[r]
        tiles = 0
        for c in range(width):
            columns[tiles] = c
            tiles += row[c] != 0
        for t in range(tiles):
            if rng.random() < probability:
                row[columns[t]] -= 1
    count = rng.poisson(rule.food_regrowth_rate)
    if count > 0:
        flat_food = food.reshape(-1)
        for cell in draw_free_cells(rng, flat_food, occupant.reshape(-1), density, cdf, count, rule.spawn_rounds,
                                    rule.uniform_food, buffers):
            flat_food[cell] = rule.food_value


@njit(cache=True)
def step_after_artifacts(rng, acting, kind, message, by_rank, present, world, genome, food, density, cdf,
                         state_message, num_born, step, rule, neighbour_deltas, move_deltas, transfers, failed,
                         blocked, ate, rewards, buffers):  # pragma: no cover - compiled
    """Phases 3-8 and the numeric part of 9-10 (``rules.advance_world``): :func:`reproduce`,
    :func:`move_agents`, :func:`eat_and_metabolise` (eat, metabolism, death), :func:`decay_and_regrow`;
    then the survivors' message tokens become ``state_message`` (everyone else's 0), and the step's
    rewards are added to ``rewards`` (:func:`add_rewards`; ``transfers``: the (kind, source, dest, amount)
    of phase 2). ``present``: the slots alive at the start of the step. Returns (parents that had a child,
    dead slots, death causes). ``buffers``: the grid's :class:`RegrowthBuffers` (or empty ones)."""
    born = reproduce(rng, acting, kind, by_rank, world, genome, num_born, step, rule, neighbour_deltas, failed)
    move_agents(acting, kind, world.position, world.occupant, by_rank, move_deltas, rule.first_move, rule.last_move,
                blocked)
    dead, causes = eat_and_metabolise(present, world.position, food, world.energy, world.age, world.status,
                                      world.occupant, ate, rule.energy_per_step, rule.lifespan, rule.food_value,
                                      rule.dead, rule.starvation, rule.old_age)
    decay_and_regrow(rng, food, world.occupant, density, cdf, rule, buffers)
    state_message[:] = 0
    for slot in present:
        if world.status[slot] != rule.dead:
            state_message[slot] = message[slot]
    add_rewards(rewards, rule, transfers, blocked, present, ate, dead, world.status)
    return born, dead, causes


@njit(cache=True)
def add_rewards(rewards, rule, transfers, blocked, present, ate, dead, status):  # pragma: no cover - compiled
    """Phase 10, the step's rewards (``rules.advance_world`` says which): ``survival``: the survival reward
    to every slot of ``present`` still alive (its ``status`` not ``rule.dead``); ``shaped``:
    :func:`add_shaped_rewards` of the transfers (kind, source, dest, amount), blocked moves, food eaten
    and deaths."""
    if rule.survival_rewards:
        for slot in present:
            if status[slot] != rule.dead:
                rewards[slot] += rule.survival_reward
        return
    kind, source, dest, amount = transfers
    add_shaped_rewards(rewards, kind == rule.give_transfer, source, dest, amount, blocked, present, ate, dead,
                       rule.shaped)


# ---- one world's step of the array API, compiled whole ---------------------------------------------
def entry_point(dispatcher, *args):
    """``dispatcher``'s compiled function for the types of ``args`` (compiled now, or loaded from the disk
    cache), to call directly: a call through the dispatcher first types every argument, and typing the
    namedtuples of :func:`step_and_observe` costs 5 us, 2% of a step of 500 agents. Every call must pass
    arguments of these types: nothing checks them."""
    return dispatcher.compile(tuple(dispatcher.typeof_pyval(arg) for arg in args))


@njit(cache=True, nogil=True)  # nogil: SocietyVectorEnv steps its worlds on threads
def step_and_observe(rng_handle, actions, alive, world, genome, food, density, cdf, message, num_born, step, amounts,
                     codes, rule, neighbour_deltas, move_deltas, rewards, spec, padded, kin, observations,
                     features, write, buffers):  # pragma: no cover - compiled
    """One step of one world without artifacts (``vector.SocietyVectorEnv``), as one call: the rules of
    ``rules.advance_world`` (the priority permutation, :func:`rank_and_transfer`, then
    :func:`step_after_artifacts`, drawing from the Generator of ``rng_handle``: :func:`generator_at`), then
    the rows of the agents that died zeroed in ``observations`` and ``features`` and, if ``write``, the
    survivors' observations written on this thread (:func:`observe`; else the caller writes them, with the
    parallel loops). ``actions``: int64 [slots, 4] (kind, target, amount, message); ``alive``: the living
    slots (who acts), updated to the survivors; ``rewards``: overwritten with the step's. A step of a few
    hundred agents costs tens of microseconds of work: one call instead of a dozen keeps numba's argument
    unboxing and the Python between calls from doubling it. ``buffers``: the world's
    :class:`RegrowthBuffers`. Returns (children born, living agents after the step)."""
    slots = alive.shape[0]
    # contiguous columns (copies), as the rule kernels take them from parallel_env
    kind, target, amount, said = actions[:, 0].copy(), actions[:, 1].copy(), actions[:, 2].copy(), actions[:, 3].copy()
    present = np.flatnonzero(alive)
    rng = generator_at(rng_handle)
    order = permutation(rng, present.shape[0])
    acting = alive.copy()
    failed = np.zeros(slots, np.int8)
    blocked = np.zeros(slots, np.bool_)
    ate = np.zeros(slots, np.int64)
    rank, by_rank, transfer_kind, source, dest, granted = rank_and_transfer(
        order, world.status, spec.alive, acting, kind, target, amount, world.position, world.occupant, world.energy,
        spec.radius, amounts, codes, failed)
    rewards[:] = 0.0
    born, dead, causes = step_after_artifacts(
        rng, acting, kind, said, by_rank, present, world, genome, food, density, cdf, message, num_born, step, rule,
        neighbour_deltas, move_deltas, (transfer_kind, source, dest, granted), failed, blocked, ate, rewards, buffers)
    for slot in dead:  # the dead see nothing from now on
        observations[slot] = 0
        features[slot] = 0
    for slot in range(slots):
        alive[slot] = world.status[slot] == spec.alive
    living = np.flatnonzero(alive)
    if write:
        observe(spec, padded, kin, np.zeros((0, 0), np.int64), food, world.occupant, world.energy, world.age,
                message, world.lineage, world.position, genome, world.status, living, living, observations, features)
    return born.shape[0], living.shape[0]
