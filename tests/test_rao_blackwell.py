"""The Rao-Blackwellised episode return (qes_trainer.fitness, estimator "rao_blackwell") on the tiny GGUF.

Two properties a trainer relies on: the decision probabilities read from the logits are the ones the
engine samples from (else the estimate is biased), and over many sampled episodes the estimate has the
mean of the sampled return with a smaller variance. A world with the full action set and several steps.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from society_env.world.env import SocietyEnv
from policies.llm.engine import LlamaEngine
from policies.llm.policy import SAMPLED_DECISION, LlamaCppPolicy
from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, TrainedAgents
from society_env.world.encodings import REPRODUCE, STAY
from tests.tiny_gguf import write_tiny_model

# 4 agents on an 8x8 torus, two of them LLM-driven, every action offered (give, take, reproduce too):
# the random tiny model spreads its answers over all of them.
WORLD = ("width=8", "height=8", "num_founders=4", "initial_food=12", "prompt_talk=false", "prompt_personality=false")
SETTINGS = FitnessSettings(preset="small", policy="llm=2,cooperator=2", episodes=1, max_steps=6, temperature=1.0,
                           estimator="rao_blackwell", n_ctx=2048, overrides=WORLD)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    model = write_tiny_model(tmp_path_factory.mktemp("rb") / "tiny.gguf", "Q8_0")
    engine = LlamaEngine(model, n_ctx=SETTINGS.context_tokens(), max_batch=8, n_threads=1)
    yield engine
    engine.close()


def test_decision_probabilities_are_what_the_engine_samples(engine):
    config = SETTINGS.world_config()
    env = SocietyEnv(config)
    observations, infos = env.reset(seed=3)
    agent = env.agents[0]
    policy = TrainedAgents(LlamaCppPolicy(config, engine=engine, temperature=1.0, prompt=SETTINGS.prompt()), config,
                           read_decisions=True)
    policy.reset(0)
    counts, draws, distribution = Counter(), 600, None
    for _ in range(draws):  # the same prompt, a new sampling seed each call (the step is part of it)
        action = policy.act({agent: observations[agent]}, {agent: infos[agent]})[agent]
        if distribution is None:
            distribution = policy.decisions[agent]
        assert policy.decisions[agent] == pytest.approx(distribution)
        kind = int(action["action"][0])
        if not policy.decided[agent]:
            counts[SAMPLED_DECISION] += 1
        else:
            counts[("stay",) if kind == STAY else ("reproduce",) if kind == REPRODUCE else ("move", kind)] += 1
    assert sum(distribution.values()) == pytest.approx(1.0)
    assert len([p for p in distribution.values() if p > 0.02]) >= 3  # a real spread, not one sure answer
    for option, probability in distribution.items():
        error = np.sqrt(probability * (1 - probability) / draws)
        assert abs(counts[option] / draws - probability) < 4.5 * error + 1e-3, (option, counts[option], probability)


@pytest.mark.slow
def test_rao_blackwell_return_is_unbiased_and_less_noisy_than_the_sampled_return(engine):
    evaluator = FitnessEvaluator(SETTINGS, engine)
    results = [evaluator.play(seed, rao_blackwell=True) for seed in range(200)]
    estimate = np.array([r.fitness for r in results])
    sampled = np.array([r.sampled_fitness for r in results])
    difference = estimate - sampled  # the same episodes: the paired test of equal means
    standard_error = difference.std(ddof=1) / np.sqrt(difference.size)
    assert abs(difference.mean()) < 2 * standard_error, (difference.mean(), standard_error)
    sampled_mean_error = sampled.std(ddof=1) / np.sqrt(sampled.size)
    assert abs(estimate.mean() - sampled.mean()) < 2 * sampled_mean_error
    assert estimate.var(ddof=1) < 0.8 * sampled.var(ddof=1), (estimate.var(ddof=1), sampled.var(ddof=1))
