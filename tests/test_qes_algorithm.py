"""QES algorithm core (qes_trainer.qes) on plain integer code vectors: noise, fitness shaping, gating,
error feedback, seed replay and checkpoints, and a synthetic task where error feedback makes it learn."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from qes_trainer.qes import (
    QESOptimizer, SparseDelta, error_feedback_step, gradient_estimate, noise_rng, sample_noise, shape_fitness,
    stochastic_rounding_pmf,
)

Q4_0_RANGE = (-8, 7)

# ---- noise -----------------------------------------------------------------------------------------


def counts(delta: SparseDelta, values: tuple[int, ...]) -> dict[int, int]:
    return {k: int(np.count_nonzero(delta.values == k)) for k in values}


def within(observed: int, n: int, p: float, n_std: float = 5.0) -> bool:
    """``observed`` is within ``n_std`` binomial standard deviations of ``n * p``."""
    return abs(observed - n * p) <= n_std * math.sqrt(n * p * (1 - p))


def test_pmf_small_sigma_is_sparse_ternary():
    sigma = 0.01
    pmf = stochastic_rounding_pmf(sigma)
    assert pmf.size == 2  # only 0 and +-1 have representable probability
    assert pmf[1] == pytest.approx(sigma / math.sqrt(2 * math.pi), rel=1e-12)  # ~0.4 sigma
    assert pmf[0] + 2 * pmf[1] == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_pmf_matches_numerical_integration(sigma):
    """P(delta = k) = integral of the rounding triangle max(0, 1 - |x - k|) against N(0, sigma^2)."""
    pmf = stochastic_rounding_pmf(sigma)
    x = np.linspace(-12 * sigma - 2, 12 * sigma + 2, 400_001)
    density = np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    for k in range(min(pmf.size, 6)):
        triangle = np.maximum(0.0, 1.0 - np.abs(x - k))
        assert pmf[k] == pytest.approx(np.trapezoid(triangle * density, x), abs=1e-9)
    assert pmf[0] + 2 * pmf[1:].sum() == pytest.approx(1.0, abs=1e-12)


def test_noise_frequencies_at_small_sigma():
    sigma, size = 0.01, 2_000_000
    delta = sample_noise(noise_rng(0, 0, 0, 0), size, sigma)  # "auto" draws the sparse way here
    p = stochastic_rounding_pmf(sigma)[1]
    hits = counts(delta, (1, -1))
    assert delta.nnz == hits[1] + hits[-1]  # ternary
    for k in (1, -1):
        assert within(hits[k], size, p), (k, hits[k], size * p)
        assert hits[k] / size == pytest.approx(0.4 * sigma, rel=0.05)


@pytest.mark.parametrize("method", ["sparse", "dense"])
def test_sparse_and_dense_draws_have_the_exact_distribution(method):
    """Both samplers match the exact pmf, including |delta| = 2 at a sigma where it is common."""
    sigma, size = 0.5, 400_000
    pmf = stochastic_rounding_pmf(sigma)
    delta = sample_noise(noise_rng(1, 2, 3, 4), size, sigma, method=method)
    observed = counts(delta, (1, -1, 2, -2, 3, -3))
    for k, n in observed.items():
        assert within(n, size, pmf[abs(k)]), (method, k, n, size * pmf[abs(k)])
    assert within(size - delta.nnz, size, pmf[0])
    assert np.all(delta.values != 0) and np.all(np.diff(delta.indices) > 0)


def make_optimizer(**kwargs) -> QESOptimizer:
    tensors = {0: (5000, *Q4_0_RANGE), 1: (5000, *Q4_0_RANGE), "blk.0.ffn_up.weight": (3000, *Q4_0_RANGE)}
    return QESOptimizer(tensors, **{"sigma": 0.1, "alpha": 0.01, "seed": 7, **kwargs})


def same(a: SparseDelta, b: SparseDelta) -> bool:
    return np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)


def test_noise_is_mirrored_reproducible_and_independent():
    opt = make_optimizer()
    plus = opt.perturbation(3, 5, 0, sign=+1)
    minus = opt.perturbation(3, 5, 0, sign=-1)
    assert plus.nnz > 0
    assert np.array_equal(minus.indices, plus.indices) and np.array_equal(minus.values, -plus.values)
    assert np.array_equal(minus.to_dense(), -plus.to_dense())
    assert same(plus, make_optimizer().perturbation(3, 5, 0))  # a fresh optimizer regenerates it
    for other in [(3, 5, 1), (3, 5, "blk.0.ffn_up.weight"), (3, 6, 0), (4, 5, 0)]:
        assert not same(plus, make_optimizer().perturbation(*other)), other
    assert not same(plus, make_optimizer(seed=8).perturbation(3, 5, 0))
    # different tensors of equal size share almost no nonzero positions (independent draws)
    overlap = np.intersect1d(plus.indices, opt.perturbation(3, 5, 1).indices).size
    assert overlap < 0.3 * plus.nnz


# ---- fitness shaping and the gradient --------------------------------------------------------------


def test_shape_fitness_hand_example():
    # d = [2, -2, 0]: mean 0, population std sqrt(8/3)
    c = shape_fitness([(3.0, 1.0), (0.0, 2.0), (5.0, 5.0)])
    np.testing.assert_allclose(c, [2 / math.sqrt(8 / 3), -2 / math.sqrt(8 / 3), 0.0])


def test_shape_fitness_clips_at_three():
    # d = [10, 0 x 15]: mean 0.625, std sqrt(6.25 - 0.390625); the outlier's z = 3.87 -> 3
    c = shape_fitness([(10.0, 0.0)] + [(1.0, 1.0)] * 15)
    std = math.sqrt(100 / 16 - (10 / 16) ** 2)
    assert (10 - 0.625) / std > 3
    assert c[0] == 3.0
    np.testing.assert_allclose(c[1:], -0.625 / std)


def test_shape_fitness_zero_variance():
    assert np.array_equal(shape_fitness([(1.0, 0.5)] * 4), np.zeros(4))
    assert np.array_equal(shape_fitness([(0.1, 0.0)] * 3), np.zeros(3))  # equal d_p despite float rounding
    assert np.array_equal(shape_fitness([(2.0, -1.0)]), np.zeros(1))
    with pytest.raises(ValueError):
        shape_fitness([(1.0, float("nan"))])


def test_gradient_estimate_hand_example():
    deltas = [SparseDelta(np.array([0, 2]), np.array([1, -1], dtype=np.int16), 4),
              SparseDelta(np.array([2, 3]), np.array([1, 1], dtype=np.int16), 4)]
    g = gradient_estimate(deltas, np.array([1.5, -0.5]), sigma=0.5)
    np.testing.assert_allclose(g, [3.0, 0.0, -4.0, -1.0])  # (1/0.5) * (1.5 d_0 - 0.5 d_1)


# ---- error feedback and gating ---------------------------------------------------------------------


def test_error_feedback_step_rounds_gates_and_clips():
    grad = np.array([30.0, 60.0, -140.0, 260.0, 260.0], dtype=np.float32)
    residual = np.zeros(5, dtype=np.float16)
    codes = np.array([0, 0, 0, 0, 6], dtype=np.int16)
    step, new_residual, blocked = error_feedback_step(grad, residual, alpha=0.01, gamma=0.9, codes=codes,
                                                      code_range=Q4_0_RANGE)
    np.testing.assert_array_equal(step, [0, 1, -1, 3, 0])  # u = [0.3, 0.6, -1.4, 2.6, 2.6]; 6 + 3 > 7
    np.testing.assert_array_equal(blocked, [4])
    np.testing.assert_allclose(new_residual, [0.3, -0.4, -0.4, -0.4, 1.5], atol=1e-3)  # gated: clip(u)
    assert new_residual.dtype == np.float16
    # the residual feeds back with weight gamma: u = 0.9 * e = [0.27, -0.36, -0.36, -0.36, 1.35]
    step2, residual2, blocked2 = error_feedback_step(np.zeros(5, np.float32), new_residual, 0.01, 0.9,
                                                     codes=codes + step, code_range=Q4_0_RANGE)
    np.testing.assert_array_equal(step2, [0, 0, 0, 0, 1])  # 6 + 1 = 7 is in range
    assert blocked2.size == 0
    np.testing.assert_allclose(residual2, [0.27, -0.36, -0.36, -0.36, 0.35], atol=2e-3)
    # without error feedback the same small gradient never moves a code
    step3, _, _ = error_feedback_step(grad * 0.1, None, 0.01, 0.9, codes=codes, code_range=Q4_0_RANGE)
    np.testing.assert_array_equal(step3, [0, 0, 0, 0, 0])


def test_codes_at_the_range_ends_never_leave_it():
    opt = make_optimizer(sigma=0.3, alpha=0.5)
    rng = np.random.default_rng(0)
    codes = {key: rng.choice(Q4_0_RANGE, size=spec.size).astype(np.int16) for key, spec in opt.specs.items()}
    original = {key: array.copy() for key, array in codes.items()}
    for sign in (1, -1):
        result = opt.perturb(codes, 0, 0, sign)
        expected_hits = 0
        for key, array in codes.items():
            assert array.min() >= -8 and array.max() <= 7
            delta = opt.perturbation(0, 0, key, sign)
            wanted = original[key][delta.indices] + delta.values
            leaves = (wanted < -8) | (wanted > 7)
            expected_hits += int(leaves.sum())
            np.testing.assert_array_equal(array[delta.indices[leaves]], original[key][delta.indices[leaves]])
            np.testing.assert_array_equal(array[delta.indices[~leaves]], wanted[~leaves])
        assert result.boundary_hits == expected_hits > 0
        opt.restore(codes, result)
        for key in codes:
            np.testing.assert_array_equal(codes[key], original[key])
    # every code at the top: an update's upward steps are gated (counted), its downward steps applied
    at_max = {key: np.full(spec.size, 7, dtype=np.int16) for key, spec in opt.specs.items()}
    stats = opt.update(at_max, 0, [(float(p), 0.0) for p in range(8)])
    assert stats.boundary_hits > 0 and stats.changed > 0
    for key, array in at_max.items():
        assert array.max() <= 7 and array.min() >= -8
        np.testing.assert_array_equal(np.flatnonzero(array != 7), stats.applied[key].indices)
        assert np.all(stats.applied[key].values < 0)
    assert stats.update_ratio == stats.changed / sum(spec.size for spec in opt.specs.values())


# ---- synthetic task --------------------------------------------------------------------------------

SIZES = (2048, 2560, 3072)
SIGMA, ALPHA, GAMMA, PAIRS, GENERATIONS = 0.1, 0.0045, 0.9, 24, 40
SCALE = 0.02  # like a Q4_0 block scale: weight = SCALE * code


def synthetic_task(seed: int = 0, changed_fraction: float = 0.005) -> tuple[dict, dict]:
    """Random Q4_0-range codes and a hidden target that differs from them on a sparse random subset.

    Isotropic ES learns about ``pairs * generations / n_codes`` directions' worth of information, so a
    dense random target over ~7700 codes is out of reach in 40 x 24 evaluations (~10% improvement at
    best); a sparse one (~40 codes to fix, as in fine-tuning) is learnable.
    """
    rng = np.random.default_rng(seed)
    codes = {i: rng.integers(-8, 8, size=n).astype(np.int16) for i, n in enumerate(SIZES)}
    target = {}
    for key, array in codes.items():
        target_codes = array.copy()
        chosen = rng.random(array.size) < changed_fraction
        target_codes[chosen] = rng.integers(-8, 8, size=int(chosen.sum()))
        target[key] = SCALE * target_codes.astype(np.float64)
    return codes, target


def squared_distance(codes: dict, target: dict) -> float:
    """``||codes * scale - target||^2`` over all tensors (the negated fitness)."""
    return float(sum(np.sum((SCALE * codes[k] - target[k]) ** 2) for k in codes))


def run_qes(opt: QESOptimizer, codes: dict, target: dict, generations: range) -> int:
    """Mirrored evaluation and update for each generation; returns the number of code changes."""
    changed = 0
    for generation in generations:
        returns = []
        for pair in range(PAIRS):
            pair_returns = []
            for sign in (1, -1):
                result = opt.perturb(codes, generation, pair, sign)
                pair_returns.append(-squared_distance(codes, target))
                opt.restore(codes, result)
            returns.append(tuple(pair_returns))
        changed += opt.update(codes, generation, returns).changed
    return changed


def synthetic_optimizer(residual: str, **kwargs) -> QESOptimizer:
    tensors = {key: (n, *Q4_0_RANGE) for key, n in enumerate(SIZES)}
    return QESOptimizer(tensors, SIGMA, ALPHA, gamma=GAMMA, residual=residual, seed=100, **kwargs)


@pytest.fixture(scope="module")
def synthetic_runs() -> dict:
    """The same task and seeds under each residual mode: initial distance, final codes, changes."""
    runs = {}
    for residual in ("full", "replay", "none"):
        codes, target = synthetic_task()
        start = squared_distance(codes, target)
        opt = synthetic_optimizer(residual, window=GENERATIONS)
        changed = run_qes(opt, codes, target, range(GENERATIONS))
        runs[residual] = {"start": start, "end": squared_distance(codes, target), "changed": changed,
                          "codes": codes, "opt": opt}
    return runs


def test_error_feedback_learns_the_synthetic_task(synthetic_runs):
    run = synthetic_runs["full"]
    improvement = 1 - run["end"] / run["start"]
    assert improvement >= 0.25, improvement  # ~0.34 with these seeds (0.28-0.37 over 8 task/noise seeds)
    assert 0 < run["changed"] < 0.05 * sum(SIZES)


def test_without_error_feedback_nothing_moves(synthetic_runs):
    run = synthetic_runs["none"]
    assert run["changed"] == 0  # |rint(alpha * g)| needs |sum_p c_p delta_p| >= 11 in one generation
    assert run["end"] == run["start"]


def test_seed_replay_equals_full_residual_while_the_window_covers_the_run(synthetic_runs):
    full, replay = synthetic_runs["full"], synthetic_runs["replay"]
    for key in full["codes"]:
        np.testing.assert_array_equal(replay["codes"][key], full["codes"][key])
        np.testing.assert_array_equal(replay["opt"].residual(key), full["opt"].residual(key))
    assert replay["end"] == full["end"]
    assert replay["opt"].residuals == {}  # no per-code state: the window holds O(window * pairs) numbers


def test_seed_replay_with_a_short_window_still_learns():
    codes, target = synthetic_task()
    start = squared_distance(codes, target)
    run_qes(synthetic_optimizer("replay", window=10), codes, target, range(GENERATIONS))
    assert 1 - squared_distance(codes, target) / start >= 0.2


# ---- checkpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize("residual", ["full", "replay", "none"])
def test_checkpoint_resume_is_bit_exact(residual):
    codes, target = synthetic_task(seed=1, changed_fraction=0.01)
    straight = synthetic_optimizer(residual, window=6)
    straight_codes = {k: v.copy() for k, v in codes.items()}
    assert run_qes(straight, straight_codes, target, range(20)) > 0 or residual == "none"

    first = synthetic_optimizer(residual, window=6)
    run_qes(first, codes, target, range(10))
    state = pickle.loads(pickle.dumps(first.state_dict()))
    resumed = synthetic_optimizer(residual, window=6)
    resumed.load_state_dict(state)
    run_qes(resumed, codes, target, range(10, 20))

    for key in codes:
        np.testing.assert_array_equal(codes[key], straight_codes[key])
        if residual != "none":
            np.testing.assert_array_equal(resumed.residual(key), straight.residual(key))
    assert resumed.generation == straight.generation == 20
    if residual == "replay":
        assert [r.generation for r in resumed.records] == list(range(14, 20))


def test_checkpoint_rejects_another_configuration_and_reused_generations():
    opt = synthetic_optimizer("full")
    with pytest.raises(ValueError):
        synthetic_optimizer("replay").load_state_dict(opt.state_dict())
    codes, _ = synthetic_task()
    opt.update(codes, 0, [(1.0, 0.0), (0.0, 1.0)])
    with pytest.raises(ValueError):
        opt.update(codes, 0, [(1.0, 0.0), (0.0, 1.0)])
