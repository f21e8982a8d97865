"""Where population members are evaluated: perturb the codes, play the fitness episodes, restore.

A member is ``(pair, sign)`` of a generation; its noise is regenerated from (seed, generation, pair,
tensor) by :meth:`qes_trainer.qes.QESOptimizer.perturbation`, so evaluating a member needs only those
integers, the generation's episode seeds and the current codes. :class:`LocalPopulation` evaluates them
one after another in this process, on the trainer's own working model file. A distributed backend
offers the same methods (``evaluate``, ``apply_update``, ``generation_stats``, ``close``), with one model
copy per worker (:class:`qes_trainer.distributed.RayPopulation`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from qes_trainer.fitness import FitnessEvaluator, FitnessSettings
from qes_trainer.live_model import LiveModel
from qes_trainer.qes import QESOptimizer, SparseDelta

__all__ = ["Member", "MemberOutcome", "LocalPopulation", "generation_members"]

Member = tuple[int, int]  # (pair, sign)


def generation_members(pairs: int) -> list[Member]:
    """The members of a generation in evaluation order: +0, -0, +1, -1, ..."""
    return [(pair, sign) for pair in range(pairs) for sign in (1, -1)]


@dataclass
class MemberOutcome:
    """One evaluated member (what :func:`qes_trainer.train.train` logs and reports to ``on_member``)."""

    generation: int
    pair: int
    sign: int
    fitness: float
    llm_failures: int
    noise_entries: int  # nonzero noise entries drawn
    noise_gated: int  # of which gated at the code range
    seconds_evaluation: float
    seconds_perturbation: float  # perturb + restore


def evaluate_member(live: LiveModel, noise: QESOptimizer, evaluator: FitnessEvaluator, generation: int,
                    member: Member, seeds: Sequence[int]) -> MemberOutcome:
    """Perturb ``live`` with ``member``'s noise, play ``seeds``, restore the codes exactly."""
    pair, sign = member
    started = time.perf_counter()
    applied, gated = live.perturb(noise, generation, pair, sign)
    perturbed = time.perf_counter()
    try:
        results = evaluator.evaluate(seeds)
    finally:
        evaluated = time.perf_counter()
        live.restore(applied)
    return MemberOutcome(
        generation, pair, sign, evaluator.fitness(results), sum(r.failures for r in results),
        gated + sum(delta.nnz for delta in applied.values()), gated,
        evaluated - perturbed, (perturbed - started) + (time.perf_counter() - evaluated))


class LocalPopulation:
    """Evaluates members in this process with one llama.cpp model loaded from ``live``'s file."""

    def __init__(self, live: LiveModel, noise: QESOptimizer, fitness: FitnessSettings, batch_size: int = 8,
                 threads: int | None = None):
        from policies.llm.engine import LlamaEngine

        self.live, self.noise = live, noise
        # Repacked CPU buffers would copy the weights at load and hide every later edit of the file.
        self.engine = LlamaEngine(live.path, n_ctx=fitness.context_tokens(), max_batch=batch_size, n_threads=threads,
                                  use_extra_bufts=False)
        self.evaluator = FitnessEvaluator(fitness, self.engine)

    def evaluate(self, generation: int, members: Iterable[Member], seeds: Sequence[int],
                 on_member: Callable[[MemberOutcome], None] | None = None) -> list[MemberOutcome]:
        outcomes = []
        for member in members:
            outcomes.append(evaluate_member(self.live, self.noise, self.evaluator, generation, member, seeds))
            if on_member is not None:
                on_member(outcomes[-1])
        return outcomes

    def apply_update(self, applied: Mapping[str, SparseDelta]) -> None:
        """Nothing to do: the trainer's update was written into the same file this population reads."""

    def generation_stats(self) -> dict:
        """Backend figures for the generation's metrics row (a distributed backend reports traffic here)."""
        return {}

    def close(self) -> None:
        self.engine.close()
