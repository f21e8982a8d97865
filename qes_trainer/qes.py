"""Quantized Evolution Strategies (QES) on integer code vectors, independent of any model.

QES (Xu, Miikkulainen, Qiu 2026) fine-tunes a quantized model by perturbing and updating the *integer
codes* of its weights directly (see :mod:`policies.llm.gguf_codes` for reading/writing them in a GGUF file).
This module holds the algorithm only: it sees one flat integer code array per trainable tensor and the
returns of a mirrored population, and nothing else.

One generation
--------------
1. **Noise.** For pair ``p`` and tensor ``t`` the perturbation is the stochastic rounding of
   ``sigma * eps``, ``eps ~ N(0, 1)`` per element: ``delta = floor(s) + Bernoulli(s - floor(s))`` with
   ``s = sigma * eps``. Its generator is ``np.random.default_rng(SeedSequence([seed, generation, p, t]))``
   (never the global RNG), so any member's noise can be regenerated from four integers. The members of
   pair ``p`` are ``+delta`` and ``-delta`` (mirrored sampling). For small sigma the noise is sparse
   ternary, ``P(+1) = P(-1) ~ sigma / sqrt(2 pi) ~ 0.4 sigma``, so it is drawn as a sparse vector: the
   nonzeros' positions and values are sampled directly from the exact per-element distribution
   (:func:`stochastic_rounding_pmf`, including ``|delta| >= 2`` when sigma makes it possible); above a
   density of 10% (sigma > ~0.13) every ``eps`` is drawn instead. See :func:`sample_noise`.
2. **Evaluation** (by the caller). Each member's delta is applied to the codes and a code that would
   leave ``[code_min, code_max]`` is left unchanged for that member (gated, counted as a boundary hit);
   see :meth:`QESOptimizer.perturb` / :meth:`QESOptimizer.restore`, or
   :meth:`policies.llm.gguf_codes.Codec.apply_delta`, which gates the same way inside a GGUF file.
3. **Fitness shaping.** ``d_p = R(+p) - R(-p)``, z-scored across pairs and clipped to ``[-3, 3]``: the
   coefficients ``c_p`` (:func:`shape_fitness`).
4. **Gradient estimate** per tensor: ``g = (1 / sigma) * sum_p c_p * delta_p`` (no ``1/N``, as in the
   reference code). ``delta_p`` is the *ungated* noise: gating only changes what was evaluated, and
   the update below is gated again against the current codes.
5. **Error-feedback update**: ``u = alpha * g + gamma * e``; ``dW = rint(u)`` (``np.rint``: round half
   to even; exact ties are measure-zero for float updates); a step that would leave the code range is
   not applied; ``e <- clip(u - dW_applied, -1.5, 1.5)`` stored as float16. Without the residual
   (``residual="none"``) ``dW = rint(alpha * g)``, which for small ``alpha`` is almost always 0, so
   nothing is learned (the paper's motivation for error feedback).

Residual storage (``residual=``)
--------------------------------
* ``"full"``: one float16 residual per code (2 bytes per weight).
* ``"replay"`` (seed replay): nothing per weight. The optimizer keeps the last ``window`` generations'
  ``(generation, c_p, sigma, alpha)`` plus the (few) indices whose update was gated at the code range,
  and rebuilds ``e`` before each update by replaying the recursion over that window from ``e = 0``,
  regenerating the noise from the seeds; the replayed steps are gated where the live update was
  (the recorded indices), since past codes are not kept. While the window covers the whole run the
  result is bit-identical to ``"full"`` (same float32 arithmetic, same float16 rounding after every
  step, same gating); afterwards it forgets residual older than ``window`` generations (with
  ``gamma = 0.9``, ``0.9**50 ~ 0.005``), an approximation. Replay costs ``window * pairs`` noise
  regenerations per tensor and update (compute traded for memory).
* ``"none"``: no error feedback (``gamma`` is ignored).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence, Union

import numpy as np

from policies.llm.gguf_codes import DELTA_DTYPE, SparseDelta

__all__ = [
    "TensorSpec", "SparseDelta", "UpdateStats", "PerturbResult", "QESOptimizer",
    "stochastic_rounding_pmf", "sample_noise", "noise_rng", "shape_fitness", "gradient_estimate",
    "error_feedback_step", "apply_gated",
]

TensorKey = Union[int, str]
RESIDUAL_DTYPE = np.float16
RESIDUAL_CLIP = 1.5
COEFFICIENT_CLIP = 3.0
SPARSE_MAX_DENSITY = 0.1  # "auto" noise draws sparse while P(delta != 0) <= this (sigma <~ 0.13)


# ---- data types ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    """A trainable tensor seen as a flat code vector: its length and code range (inclusive)."""

    size: int
    code_min: int
    code_max: int


@dataclass
class PerturbResult:
    """What :meth:`QESOptimizer.perturb` applied (pass it to :meth:`QESOptimizer.restore`)."""

    applied: dict  # tensor key -> SparseDelta actually added to the codes
    boundary_hits: int  # deltas skipped because the code would leave its range


@dataclass
class UpdateStats:
    """Outcome of one :meth:`QESOptimizer.update`."""

    generation: int
    changed: int  # codes that moved
    total: int  # codes in all trainable tensors
    update_ratio: float  # changed / total
    boundary_hits: int  # nonzero rounded steps not applied because the code would leave its range
    coefficients: np.ndarray  # the shaped c_p
    applied: dict = field(repr=False, default_factory=dict)  # tensor key -> SparseDelta applied to the codes


# ---- noise -----------------------------------------------------------------------------------------

def _ramp_expectation(a: float, sigma: float) -> float:
    """``E[max(X - a, 0)]`` for ``X ~ N(0, sigma^2)``, ``a >= 0``: ``sigma*phi(a/sigma) - a*Q(a/sigma)``."""
    z = a / sigma
    phi = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    tail = 0.5 * math.erfc(z / math.sqrt(2.0))
    return max(sigma * phi - a * tail, 0.0)


@functools.lru_cache(maxsize=64)
def stochastic_rounding_pmf(sigma: float) -> np.ndarray:
    """``pmf[k] = P(delta = k) = P(delta = -k)`` for ``k = 0, 1, ..., kmax`` (trailing zeros dropped).

    Stochastic rounding of ``x`` gives ``k`` with probability ``max(0, 1 - |x - k|)`` (a triangle), and the
    triangle is the second difference of the ramp ``max(x, 0)``; so with ``G(a) = E[max(X - a, 0)]``,
    ``P(delta = k) = G(k - 1) - 2 G(k) + G(k + 1)`` and ``P(delta != 0) = 2 (G(0) - G(1))``. For small
    sigma, ``P(+1) = P(-1) ~ sigma / sqrt(2 pi) ~ 0.4 sigma``. Beyond ``kmax = 1 + 38 sigma`` every
    probability underflows double precision (``P(|eps| > 38) < 1e-315``).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (got {sigma})")
    kmax = 1 + int(math.ceil(38.0 * sigma))
    ramp = [_ramp_expectation(a, sigma) for a in range(kmax + 2)]
    pmf = np.zeros(kmax + 1)
    pmf[0] = 1.0 - 2.0 * (ramp[0] - ramp[1])
    for k in range(1, kmax + 1):
        pmf[k] = max(ramp[k - 1] - 2.0 * ramp[k] + ramp[k + 1], 0.0)
    pmf = pmf[: np.flatnonzero(pmf)[-1] + 1]
    pmf.setflags(write=False)  # cached: shared by every caller
    return pmf


def _tensor_word(tensor_id: TensorKey) -> int:
    """A non-negative integer naming the tensor in the seed: the id itself, or a stable hash of a name."""
    if isinstance(tensor_id, (int, np.integer)) and not isinstance(tensor_id, bool):
        if tensor_id < 0:
            raise ValueError(f"integer tensor ids must be non-negative (got {tensor_id})")
        return int(tensor_id)
    if isinstance(tensor_id, str):
        return int.from_bytes(hashlib.blake2b(tensor_id.encode(), digest_size=8).digest(), "little")
    raise TypeError(f"tensor ids are int or str (got {type(tensor_id).__name__})")


def noise_rng(seed: int, generation: int, pair: int, tensor_id: TensorKey) -> np.random.Generator:
    """The generator of one pair's noise for one tensor: ``SeedSequence([seed, generation, pair, tensor])``."""
    return np.random.default_rng(np.random.SeedSequence([seed, generation, pair, _tensor_word(tensor_id)]))


def _sample_dense(rng: np.random.Generator, size: int, sigma: float) -> SparseDelta:
    """Reference draw: stochastic rounding of ``sigma * eps`` element by element."""
    scaled = sigma * rng.standard_normal(size)
    floor = np.floor(scaled)
    delta = floor + (rng.random(size) < scaled - floor)
    return SparseDelta.from_dense(delta.astype(DELTA_DTYPE))


def _sample_sparse(rng: np.random.Generator, size: int, pmf: np.ndarray) -> SparseDelta:
    """Same distribution as :func:`_sample_dense`, drawing only the nonzeros.

    The elements are i.i.d. with ``P(k) = P(-k) = pmf[k]``, so: an element is nonzero with probability
    ``q = 1 - pmf[0]`` independently of the others, i.e. the gaps between consecutive nonzeros are i.i.d.
    ``Geometric(q)``; each nonzero is an independent ``sign * k`` with a fair sign and
    ``P(k) proportional to pmf[k]``, ``k >= 1`` (always 1 unless sigma is large enough for |delta| >= 2).
    """
    q = 1.0 - pmf[0]
    expected = size * q
    batch = int(expected + 6.0 * math.sqrt(expected) + 16)  # enough gaps to pass the end almost always
    chunks, last = [], -1
    while last < size:
        positions = last + np.cumsum(rng.geometric(q, size=batch))
        chunks.append(positions)
        last = int(positions[-1])
    indices = np.concatenate(chunks)
    indices = indices[indices < size].astype(np.int64)
    values = np.where(rng.random(indices.size) < 0.5, 1, -1).astype(DELTA_DTYPE)
    if pmf.size > 2:
        tail = np.cumsum(pmf[1:]) / pmf[1:].sum()
        magnitudes = 1 + np.searchsorted(tail[:-1], rng.random(indices.size), side="right")
        values *= magnitudes.astype(DELTA_DTYPE)
    return SparseDelta(indices, values, size)


def sample_noise(rng: np.random.Generator, size: int, sigma: float, method: str = "auto") -> SparseDelta:
    """Stochastically rounded ``sigma * N(0, 1)`` noise on ``size`` elements, as a :class:`SparseDelta`.

    ``method="dense"`` draws ``eps`` for every element; ``"sparse"`` draws the nonzeros directly with the
    exact same distribution (:func:`stochastic_rounding_pmf`, for any sigma; equal up to the floating
    point evaluation of the pmf), in time proportional to their number; ``"auto"`` takes ``"sparse"``
    while the density ``P(delta != 0) <= SPARSE_MAX_DENSITY`` (sigma up to ~0.13), ``"dense"`` above.
    The two methods consume the generator differently, so one (seed, sigma) always uses the same method.
    """
    pmf = stochastic_rounding_pmf(sigma)
    if method == "auto":
        method = "sparse" if 1.0 - pmf[0] <= SPARSE_MAX_DENSITY else "dense"
    if method == "sparse":
        return _sample_sparse(rng, size, pmf)
    if method == "dense":
        return _sample_dense(rng, size, sigma)
    raise ValueError(f"unknown noise method {method!r} (auto, sparse, dense)")


# ---- the algorithm's pure pieces -------------------------------------------------------------------

def shape_fitness(pair_returns: Sequence[tuple[float, float]]) -> np.ndarray:
    """Coefficients ``c_p``: ``d_p = R(+p) - R(-p)`` z-scored across pairs (population std), clipped to +-3.

    All ``d_p`` equal (including a single pair) gives all zeros.
    """
    returns = np.asarray(pair_returns, dtype=np.float64)
    if returns.ndim != 2 or returns.shape[1] != 2 or returns.shape[0] == 0:
        raise ValueError(f"pair_returns must be a non-empty list of (R(+p), R(-p)) (got shape {returns.shape})")
    if not np.all(np.isfinite(returns)):
        raise ValueError("pair_returns must be finite")
    diffs = returns[:, 0] - returns[:, 1]
    std = diffs.std()
    if np.ptp(diffs) == 0 or std == 0:
        return np.zeros_like(diffs)
    return np.clip((diffs - diffs.mean()) / std, -COEFFICIENT_CLIP, COEFFICIENT_CLIP)


def gradient_estimate(deltas: Sequence[SparseDelta], coefficients: np.ndarray, sigma: float) -> np.ndarray:
    """``g = (1 / sigma) * sum_p c_p * delta_p`` as a dense float32 vector."""
    grad = np.zeros(deltas[0].size, dtype=np.float32)
    for delta, coefficient in zip(deltas, coefficients, strict=True):
        if coefficient != 0:
            grad[delta.indices] += np.float32(coefficient / sigma) * delta.values.astype(np.float32)
    return grad


def apply_gated(codes: np.ndarray, delta: SparseDelta, code_min: int, code_max: int) -> SparseDelta:
    """Add ``delta`` to ``codes`` in place, skipping entries that would leave ``[code_min, code_max]``.

    Returns the part that was applied.
    """
    new = codes[delta.indices].astype(np.int32) + delta.values
    ok = (new >= code_min) & (new <= code_max)
    indices = delta.indices[ok]
    codes[indices] = new[ok].astype(codes.dtype)
    return SparseDelta(indices, delta.values[ok], delta.size)


def error_feedback_step(grad: np.ndarray, residual: np.ndarray | None, alpha: float, gamma: float,
                        blocked: np.ndarray | None = None, codes: np.ndarray | None = None,
                        code_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One error-feedback step on one tensor: ``u = alpha*g + gamma*e``, ``dW = rint(u)`` gated, new ``e``.

    The gate is either computed from ``codes`` and ``code_range`` (a live update) or given as the
    ``blocked`` indices recorded by the live update (seed replay), so both share this arithmetic.
    ``residual=None`` means no error feedback. Returns ``(step int16, new residual float16, blocked
    indices)``; the step is not applied here.
    """
    update = np.float32(alpha) * grad
    if residual is not None:
        update += np.float32(gamma) * residual.astype(np.float32)
    step = np.rint(update)
    if blocked is None:
        low, high = code_range
        moved = np.flatnonzero(step)
        target = codes[moved].astype(np.float32) + step[moved]
        blocked = moved[(target < low) | (target > high)]
    step[blocked] = 0
    new_residual = np.clip(update - step, -RESIDUAL_CLIP, RESIDUAL_CLIP).astype(RESIDUAL_DTYPE)
    limit = np.iinfo(DELTA_DTYPE).max  # |step| beyond any code range was gated anyway
    return np.clip(step, -limit, limit).astype(DELTA_DTYPE), new_residual, blocked.astype(np.int64)


# ---- the optimizer ---------------------------------------------------------------------------------

@dataclass
class _Record:
    """What seed replay keeps of one generation."""

    generation: int
    coefficients: np.ndarray
    sigma: float
    alpha: float
    blocked: dict  # tensor key -> int64 indices whose rounded step was gated


class QESOptimizer:
    """QES with mirrored sparse integer noise, shaped fitness and error feedback.

    ``tensors`` maps a tensor id (int >= 0 or name) to a :class:`TensorSpec` or ``(size, code_min,
    code_max)``; the id is part of the noise seed (a name through a stable hash). ``sigma`` and ``alpha``
    are plain attributes (change them only between an update and the next generation's perturbations,
    e.g. for a schedule; replay records the values used). ``residual`` is ``"full"``, ``"replay"`` or ``"none"``
    (module docstring); ``window`` is the replay window ``K``. Typical loop::

        for generation in range(n):
            returns = []
            for pair in range(n_pairs):
                pair_returns = []
                for sign in (+1, -1):
                    result = opt.perturb(codes, generation, pair, sign)
                    pair_returns.append(evaluate(codes))
                    opt.restore(codes, result)
                returns.append(tuple(pair_returns))
            stats = opt.update(codes, generation, returns)
    """

    def __init__(self, tensors: Mapping[TensorKey, TensorSpec | tuple[int, int, int]], sigma: float, alpha: float,
                 gamma: float = 0.9, residual: str = "full", window: int = 50, seed: int = 0,
                 noise_method: str = "auto"):
        if residual not in ("full", "replay", "none"):
            raise ValueError(f"residual must be 'full', 'replay' or 'none' (got {residual!r})")
        if window < 1:
            raise ValueError("window must be >= 1")
        self.specs: dict[TensorKey, TensorSpec] = {key: spec if isinstance(spec, TensorSpec) else TensorSpec(*spec)
                                                   for key, spec in tensors.items()}
        for key in self.specs:
            _tensor_word(key)  # validate ids early
        self.sigma, self.alpha, self.gamma = float(sigma), float(alpha), float(gamma)
        self.residual_mode, self.window, self.seed, self.noise_method = residual, int(window), int(seed), noise_method
        self.generation = 0  # the next generation update() accepts (generations only move forward)
        self.residuals: dict[TensorKey, np.ndarray] = (
            {key: np.zeros(spec.size, dtype=RESIDUAL_DTYPE) for key, spec in self.specs.items()}
            if residual == "full" else {})
        self.records: list[_Record] = []

    # -- noise and evaluation --
    @property
    def total_codes(self) -> int:
        return sum(spec.size for spec in self.specs.values())

    def perturbation(self, generation: int, pair: int, tensor_id: TensorKey, sign: int = 1,
                     sigma: float | None = None) -> SparseDelta:
        """The (ungated) delta of member ``sign * pair`` on one tensor; ``sign=-1`` is the exact negation."""
        if sign not in (1, -1):
            raise ValueError("sign must be +1 or -1")
        sigma = self.sigma if sigma is None else sigma
        delta = sample_noise(noise_rng(self.seed, generation, pair, tensor_id), self.specs[tensor_id].size,
                             sigma, self.noise_method)
        return delta if sign == 1 else -delta

    def perturb(self, codes: Mapping[TensorKey, np.ndarray], generation: int, pair: int, sign: int) -> PerturbResult:
        """Apply member ``sign * pair``'s perturbation to ``codes`` in place, gated at the code range."""
        applied, hits = {}, 0
        for key, spec in self.specs.items():
            delta = self.perturbation(generation, pair, key, sign)
            applied[key] = apply_gated(codes[key], delta, spec.code_min, spec.code_max)
            hits += delta.nnz - applied[key].nnz
        return PerturbResult(applied, hits)

    @staticmethod
    def restore(codes: Mapping[TensorKey, np.ndarray], result: PerturbResult) -> None:
        """Undo :meth:`perturb` exactly."""
        for key, delta in result.applied.items():
            codes[key][delta.indices] -= delta.values.astype(codes[key].dtype)

    # -- update --
    def _gradient(self, key: TensorKey, generation: int, coefficients: np.ndarray, sigma: float) -> np.ndarray:
        deltas = [self.perturbation(generation, pair, key, sigma=sigma) for pair in range(len(coefficients))]
        return gradient_estimate(deltas, coefficients, sigma)

    def residual(self, key: TensorKey) -> np.ndarray | None:
        """The float16 residual the next update starts from (rebuilt from the window in replay mode)."""
        if self.residual_mode == "full":
            return self.residuals[key]
        if self.residual_mode == "none":
            return None
        residual = np.zeros(self.specs[key].size, dtype=RESIDUAL_DTYPE)
        for record in self.records[-self.window:]:
            grad = self._gradient(key, record.generation, record.coefficients, record.sigma)
            _, residual, _ = error_feedback_step(grad, residual, record.alpha, self.gamma,
                                                 blocked=record.blocked[key])
        return residual

    def update(self, codes: Mapping[TensorKey, np.ndarray], generation: int,
               pair_returns: Sequence[tuple[float, float]]) -> UpdateStats:
        """One QES update of ``codes`` (modified in place) from the returns ``[(R(+p), R(-p)), ...]``.

        ``generation`` must be the one the perturbations were drawn with, and at least every earlier one.
        ``codes`` is read one key at a time (``codes[key]`` once per tensor), so it may be a mapping that
        decodes each tensor on access; the applied steps are also returned in ``UpdateStats.applied``.
        """
        if generation < self.generation:
            raise ValueError(f"generation {generation} was already used (next is {self.generation})")
        coefficients = shape_fitness(pair_returns)
        changed = hits = 0
        applied, blocked_record = {}, {}
        for key, spec in self.specs.items():
            array = codes[key]  # read once: ``codes`` may decode tensors lazily, one at a time
            self._check_codes(key, array)
            grad = self._gradient(key, generation, coefficients, self.sigma)
            step, new_residual, blocked = error_feedback_step(
                grad, self.residual(key), self.alpha, self.gamma, codes=array,
                code_range=(spec.code_min, spec.code_max))
            delta = SparseDelta.from_dense(step)
            array[delta.indices] += delta.values.astype(array.dtype)
            applied[key], blocked_record[key] = delta, blocked
            changed += delta.nnz
            hits += blocked.size
            if self.residual_mode == "full":
                self.residuals[key] = new_residual
        if self.residual_mode == "replay":
            self.records.append(_Record(generation, coefficients, self.sigma, self.alpha, blocked_record))
            del self.records[:-self.window]
        self.generation = generation + 1
        total = self.total_codes
        return UpdateStats(generation, changed, total, changed / total, hits, coefficients, applied)

    def _check_codes(self, key: TensorKey, array: np.ndarray) -> None:
        size = self.specs[key].size
        if array.shape != (size,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"codes[{key!r}] must be a flat integer array of {size} codes "
                             f"(got {array.dtype} {array.shape})")

    # -- memory and checkpoints --
    @property
    def state_nbytes(self) -> int:
        """Bytes of optimizer state: the residual arrays, or the replay window."""
        residual = sum(array.nbytes for array in self.residuals.values())
        window = sum(r.coefficients.nbytes + 24 + sum(b.nbytes for b in r.blocked.values()) for r in self.records)
        return residual + window

    def _config(self) -> dict:
        return {"tensors": {key: (s.size, s.code_min, s.code_max) for key, s in self.specs.items()},
                "gamma": self.gamma, "residual": self.residual_mode, "window": self.window, "seed": self.seed,
                "noise_method": self.noise_method}

    def state_dict(self, copy: bool = True) -> dict:
        """Everything a resumed run needs to continue bit-exactly (numpy arrays and Python scalars).

        ``copy=False`` returns the live arrays (for writing a checkpoint right away without doubling the
        residual's memory); don't keep that dict across updates.
        """
        duplicate = np.copy if copy else (lambda array: array)
        return {
            "config": self._config(), "sigma": self.sigma, "alpha": self.alpha, "generation": self.generation,
            "residuals": {key: duplicate(array) for key, array in self.residuals.items()},
            "records": [{"generation": r.generation, "coefficients": duplicate(r.coefficients), "sigma": r.sigma,
                         "alpha": r.alpha, "blocked": {k: duplicate(b) for k, b in r.blocked.items()}}
                        for r in self.records],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; the optimizer must have been built with the same configuration."""
        config = {**state["config"], "tensors": {key: tuple(spec) for key, spec in state["config"]["tensors"].items()}}
        if config != self._config():
            raise ValueError(f"checkpoint configuration {state['config']} differs from this optimizer's "
                             f"{self._config()}")
        self.sigma, self.alpha, self.generation = float(state["sigma"]), float(state["alpha"]), int(state["generation"])
        self.residuals = {key: np.asarray(array, dtype=RESIDUAL_DTYPE).copy()
                          for key, array in state["residuals"].items()}
        self.records = [_Record(int(r["generation"]), np.asarray(r["coefficients"], dtype=np.float64).copy(),
                                float(r["sigma"]), float(r["alpha"]),
                                {k: np.asarray(b, dtype=np.int64).copy() for k, b in r["blocked"].items()})
                        for r in state["records"]]
