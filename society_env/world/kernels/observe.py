"""The numeric observation, compiled: the wrap-padded channel grid of the whole world (:func:`fill_grid`), the
families for the kin channel (:func:`group_families`), each agent's view window copied out of the grid
(:func:`gather_views`) and its own-state features (:func:`write_features`); :func:`observe` is all of it on
one thread, as one call (``society_env.world.observations`` says what each channel holds).

The grid fill, the view gather and the features also come compiled with ``parallel=True`` (``*_parallel``,
cached under their own names, ``plumbing.renamed``): their iterations write disjoint memory and read shared
inputs only, so any thread count gives the same bytes. ``society_env.world.observations`` picks them for big
worlds (``society_env.world.threads``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from society_env.world.kernels.cache import kernel
from society_env.world.kernels.plumbing import copy_run, renamed, wrap


FAMILY_SCAN_LIMIT = 48
"""A viewer's family (living agents of its lineage) up to this size marks its kin cells member by member;
a bigger one scans the window's lineage ids (169 compares for a 13x13 view)."""


@kernel
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


@kernel
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


@kernel
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

# The serial loops and their parallel=True twins, all cached on disk.
gather_views = kernel(_gather_views)
gather_views_parallel = kernel(renamed(_gather_views, "gather_views_parallel"), parallel=True)
write_features = kernel(_write_features)
write_features_parallel = kernel(renamed(_write_features, "write_features_parallel"), parallel=True)
fill_grid = kernel(_fill_grid)
fill_grid_parallel = kernel(renamed(_fill_grid, "fill_grid_parallel"), parallel=True)


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


@kernel
def observe(spec, padded, kin, artifact_counts, world, slots, rows, out, features):  # pragma: no cover - compiled
    """One observation write of ``world`` (``records.WorldArrays``) on one thread, as one call, with the grids
    ``padded`` and ``kin`` and the artifact counts: :func:`fill_grid`, :func:`group_families`, the
    views of ``slots`` into ``out[rows]`` (:func:`gather_views`) and their features into
    ``features[rows]`` from ``spec.features_at`` on (:func:`write_features`; ``features`` is ``out`` for the
    float32 observation).

    Agents are visited in slot order, so that the rows of ``out`` are written one after the other, unless
    ``spec.by_position``: in a grid bigger than the caches, visiting them in position order
    (:func:`position_order`) keeps the grid rows they read in cache, and that gains more than the
    scattered writes lose (``observations.SLOT_ORDER_MAX_GRID_BYTES``)."""
    position, lineage, status = world.position, world.lineage, world.status
    fill_grid(padded, kin, spec.radius, world.food, world.energy, world.message, lineage, position, status, spec.alive,
              spec.compact, spec.food_value, spec.initial_energy, spec.high, artifact_counts)
    members, first = group_families(lineage, status, spec.alive)
    visited, targets = slots, rows
    if spec.by_position:
        order = position_order(world.occupant, slots, status.shape[0])
        visited, targets = slots[order], rows[order]
    gather_views(padded, kin, spec.size, visited, position, lineage, members, first, targets, spec.kin_channel, out)
    own = OwnState(world.energy, world.age, position, world.genome, spec.initial_energy, spec.lifespan, spec.height,
                   spec.width)
    write_features(own, slots, rows, features, spec.features_at)


@kernel
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

