"""Fitness of a model: the mean episode return of the LLM-driven agents over a fixed set of episodes.

QES compares the two members of a mirrored pair by their fitness difference, so noise that is not due to
the weights must be the same for both. Common random numbers do that here: every member of a generation
plays the same episode seeds (world layout, food, personalities), the same scripted co-players (their
seeds derive from the episode seed) and the same LLM sampling seeds (from episode seed, step and agent).
Only the weights differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from policies import POLICIES, PolicyAssignment, make_policy, parse_policy_spec
from policies.llm_engine import LlamaEngine
from policies.llm_policy import LlamaCppPolicy, PromptSettings
from policies.runner import run_episode
from society_env.config import make_config
from society_env.env import SocietyEnv

__all__ = ["FitnessSettings", "FitnessEvaluator", "EpisodeResult", "episode_seeds", "mean_and_standard_error"]

TRAINED_POLICY = "llm"


@dataclass(frozen=True)
class FitnessSettings:
    """What one fitness evaluation plays (identical for every member of a run)."""

    preset: str = "small"
    policy: str = "llm=2,forager=4"
    """Founder shares as in ``society-env run --policy``; the ``llm`` agents are the trained ones."""
    overrides: tuple[tuple[str, Any], ...] = ()
    """World config overrides (``--set FIELD=VALUE``), e.g. ``(("reward_mode", "survival"),)``."""
    episodes: int = 2
    max_steps: int = 12
    n_ctx: int = 1280
    temperature: float = 0.7
    max_tokens: int | None = None
    """None: the longest answer the action grammar allows (see :class:`policies.llm_policy.LlamaCppPolicy`)."""
    chat_format: str | None = None
    history: int = 1
    motivation: str = "base"
    personality: bool = True


@dataclass
class EpisodeResult:
    seed: int
    fitness: float  # mean return of the trained (LLM) agents, including their descendants
    steps: int
    failures: int  # LLM answers that fell back to "stay"


def episode_seeds(seed: int, generation: int, episodes: int) -> list[int]:
    """The episode seeds every member of ``generation`` plays (common random numbers)."""
    return [int(s) for s in np.random.SeedSequence([seed, generation]).generate_state(episodes, dtype=np.uint32)]


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    error = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), error


class FitnessEvaluator:
    """Plays ``settings.episodes`` episodes with the model loaded in ``engine`` and returns their fitness.

    The engine must already hold the weights to evaluate; the LLM policy resets its KV cache at every
    episode start, so weight changes between evaluations are picked up (and results depend only on the
    weights and the seeds, not on what was evaluated before).
    """

    def __init__(self, settings: FitnessSettings, engine: LlamaEngine):
        self.settings = settings
        self.entries = parse_policy_spec(settings.policy, POLICIES)
        if not any(name == TRAINED_POLICY for name, _ in self.entries):
            raise ValueError(f"--policy {settings.policy!r} has no {TRAINED_POLICY!r} agents to train")
        self.config = make_config(settings.preset, **{"language": True, **dict(settings.overrides)})
        self.env = SocietyEnv(self.config)
        prompt = PromptSettings(history=settings.history, motivation=settings.motivation,
                                personality=settings.personality)
        self.llm = LlamaCppPolicy(self.config, engine=engine, temperature=settings.temperature,
                                  max_tokens=settings.max_tokens, chat_format=settings.chat_format,
                                  batch_size=engine.max_batch, prompt=prompt)
        self.policies = {name: self.llm if name == TRAINED_POLICY else make_policy(name, self.config)
                         for name, _ in self.entries}

    def play(self, seed: int) -> EpisodeResult:
        assignment = PolicyAssignment(self.entries, self.config.num_founders)
        failures_before = self.llm.failures
        stats = run_episode(self.env, assignment, self.policies, seed, self.settings.max_steps)
        self.llm.drain_events()  # prompts/completions are only kept when recording; don't let them pile up
        summary = stats.summary(assignment.policy_of)
        return EpisodeResult(seed, float(summary["per_policy"][TRAINED_POLICY]["mean_return"]), stats.steps,
                             self.llm.failures - failures_before)

    def evaluate(self, seeds: Sequence[int], on_episode: Callable[[EpisodeResult], None] | None = None) -> list[EpisodeResult]:
        results = []
        for seed in seeds:
            results.append(self.play(seed))
            if on_episode is not None:
                on_episode(results[-1])
        return results

    @staticmethod
    def fitness(results: Sequence[EpisodeResult]) -> float:
        return float(np.mean([r.fitness for r in results]))
