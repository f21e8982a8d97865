"""NumPy's algorithms, compiled, so that the rule phases draw from the env's generator the numbers NumPy's
own calls would draw (the world's random stream does not depend on whether a phase runs in NumPy or here;
``tests/test_sampling.py`` checks each against NumPy, draw for draw).

Numba compiles calls to an ``np.random.Generator``'s ``random``, ``normal`` and ``poisson`` into the draws
NumPy makes (same algorithms, same bit generator, whose state they advance). ``permutation`` is NumPy's
shuffle (numba's own is slower), and ``Generator.choice(..., replace=False, p=...)`` is not among numba's:
:func:`choice_without_replacement` is its algorithm, step for step, with NumPy's pairwise summation
(:func:`pairwise_sum`) for the normalising sum.
"""

from __future__ import annotations

import numpy as np
from numba.np.random.random_methods import random_interval

from society_env.world.kernels.cache import kernel
from society_env.world.kernels.plumbing import room_in


@kernel
def permutation(rng, n):  # pragma: no cover - compiled
    """``rng.permutation(n)``: NumPy's shuffle of ``arange(n)`` (from the top, each swap partner drawn by
    ``random_interval``), the same numbers; numba's own ``permutation`` makes them too, 2.5x slower."""
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.int64(random_interval(rng.bit_generator, np.uint64(i)))
        order[i], order[j] = order[j], order[i]
    return order


_PAIRWISE_BLOCK = 128
"""NumPy's ``PW_BLOCKSIZE``: below it a sum runs in 8 interleaved accumulators, above it splits in two."""


@kernel
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


@kernel
def _left_half(count):  # pragma: no cover - compiled
    """Where NumPy's pairwise sum splits ``count`` values: half, rounded down to a multiple of 8."""
    half = count // 2
    return half - half % 8


@kernel
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


@kernel
def choice_without_replacement(rng, weights, size, count, cumulative_buffer, taken_buffer):  # pragma: no cover - compiled
    """``rng.choice(count, size, replace=False, p=weights / weights.sum())``: the same indices from the same
    generator state. An empty ``weights`` means ``count`` equal weights (``p`` all ``1 / count``).
    ``cumulative_buffer`` / ``taken_buffer``: float64 / bool arrays of at least ``count`` entries to work in
    (``food_cells.RegrowthBuffers``); shorter ones (empty) mean: allocate.

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


