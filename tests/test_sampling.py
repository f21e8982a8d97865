"""The compiled draws (``society_env.world.kernels``) equal NumPy's, draw for draw: the world's random stream
does not depend on whether a phase runs in NumPy or in a compiled kernel."""

import numpy as np
import pytest

from society_env.world.kernels import choice_without_replacement, draw_free_cells, pairwise_sum, regrowth_buffers
from society_env.world.state import SPAWN_ROUNDS, spawn_food_cells


def numpy_spawn_food_cells(food, occupant, density, cdf, count, rng):
    """The regrowth draw written with NumPy calls only (world v2's definition): (cells, whether the exact
    draw over the free cells ran)."""
    flat_food, flat_occupant = food.ravel().copy(), occupant.ravel()
    chosen = []
    for _ in range(SPAWN_ROUNDS):
        if len(chosen) == count:
            break
        for x in rng.random(count - len(chosen)):
            cell = min(int(np.searchsorted(cdf, x * cdf[-1], side="right")), cdf.size - 1)
            if flat_food[cell] == 0 and flat_occupant[cell] < 0:
                flat_food[cell] = -1
                chosen.append(cell)
    exact = len(chosen) < count
    if exact:
        candidates = np.flatnonzero((flat_food == 0) & (flat_occupant < 0))
        weights = density[candidates]
        missing = min(count - len(chosen), int(np.count_nonzero(weights > 0)))
        if missing > 0:
            chosen += rng.choice(candidates, size=missing, replace=False, p=weights / weights.sum()).tolist()
    return np.array(chosen, dtype=np.int64), exact


@pytest.mark.parametrize("size", [1, 7, 8, 9, 127, 128, 129, 1000, 4097, 250_001])
def test_pairwise_sum_is_numpys_sum_bit_for_bit(size):
    rng = np.random.default_rng(size)
    values = np.exp(-rng.random(size) * 40) * (rng.random(size) < 0.7)
    assert pairwise_sum(values, 0, size) == values.sum()


@pytest.mark.parametrize("seed", range(6))
def test_choice_without_replacement_is_numpys(seed):
    rng = np.random.default_rng(seed)
    weights = np.exp(-rng.random(3000) * 20) * (rng.random(3000) < 0.5)
    size = int(rng.integers(1, 200))
    ours, numpys = np.random.default_rng(seed + 100), np.random.default_rng(seed + 100)
    expected = numpys.choice(weights.size, size=size, replace=False, p=weights / weights.sum())
    no_buffers = np.empty(0), np.empty(0, bool)
    assert choice_without_replacement(ours, weights, size, weights.size, *no_buffers).tolist() == expected.tolist()
    assert ours.bit_generator.state == numpys.bit_generator.state
    # in buffers left over from an earlier call (what an env keeps across steps): the same draw
    again = np.random.default_rng(seed + 100)
    buffers = np.random.default_rng(seed).random(weights.size + 7), np.ones(weights.size + 7, bool)
    assert choice_without_replacement(again, weights, size, weights.size, *buffers).tolist() == expected.tolist()


@pytest.mark.parametrize("density_kind", ["gaussian", "uniform"])
@pytest.mark.parametrize("fill", [0.0, 0.5, 0.9, 0.995])
def test_food_cell_draws_equal_numpy_calls_on_crowded_grids(density_kind, fill):
    """The rejection rounds and, on crowded grids, the exact fallback give NumPy's cells and leave the
    generator where NumPy's calls leave it."""
    h, w = 40, 30
    rng = np.random.default_rng(3)
    if density_kind == "gaussian":
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        density = np.exp(-((rows - 20) ** 2 + (cols - 10) ** 2) / 50.0).ravel()
    else:
        density = np.ones(h * w)
    cdf = np.cumsum(density)
    fallbacks = 0
    buffers = regrowth_buffers(h * w)  # kept across trials, as an env keeps them across steps
    for trial in range(40):
        food = np.where(rng.random((h, w)) < fill, 10, 0).astype(np.int64)
        occupant = np.where(rng.random((h, w)) < 0.05, 1, -1).astype(np.int64)
        before = food.copy()
        count = int(rng.integers(0, 60))
        ours, numpys = np.random.default_rng(trial), np.random.default_rng(trial)
        cells = spawn_food_cells(food, occupant, density, cdf, count, ours)
        expected, exact = numpy_spawn_food_cells(food, occupant, density, cdf, count, numpys)
        assert cells.tolist() == expected.tolist()
        assert ours.bit_generator.state == numpys.bit_generator.state
        assert (food == before).all()  # the marks are undone
        reused = np.random.default_rng(trial)
        assert draw_free_cells(reused, food.reshape(-1), occupant.reshape(-1), density, cdf, count, SPAWN_ROUNDS,
                               density_kind == "uniform", buffers).tolist() == expected.tolist()
        assert reused.bit_generator.state == numpys.bit_generator.state
        fallbacks += exact
    if fill >= 0.9:
        assert fallbacks > 0  # crowded grids reached the exact draw


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_permutation_is_numpys(seed):
    """The priority order of the array API's compiled step (``kernels.permutation``) is NumPy's
    ``rng.permutation``, and leaves the generator where NumPy's leaves it."""
    from society_env.world.kernels import permutation

    for n in (0, 1, 2, 3, 17, 450, 5000):
        ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        np.testing.assert_array_equal(permutation(ours, n), numpys.permutation(n), err_msg=f"n={n}")
        assert ours.random() == numpys.random()


def test_generator_handle_draws_from_the_generator_itself():
    """A compiled function given ``kernels.generator_handle(rng)`` instead of ``rng`` draws ``rng``'s numbers
    and advances ``rng``'s own state."""
    from numba import njit

    from society_env.world.kernels import generator_at, generator_handle

    @njit
    def draws(handle):
        rng = generator_at(handle)
        return rng.random(3), rng.normal(0.0, 2.0), rng.poisson(4.0), rng.integers(0, 10)

    rng, twin = np.random.default_rng(7), np.random.default_rng(7)
    uniform, normal, poisson, integer = draws(generator_handle(rng))
    np.testing.assert_array_equal(uniform, twin.random(3))
    assert (normal, poisson, integer) == (twin.normal(0.0, 2.0), twin.poisson(4.0), twin.integers(0, 10))
    assert rng.random() == twin.random()  # the Python generator moved on by the same draws
