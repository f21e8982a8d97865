"""The forage learning task: its preset and answer format on a real llama.cpp model (the tiny generated
GGUF), the exact action distribution behind the ``expected`` fitness estimator, and the behaviour counts
``qes-eval`` reports."""

import dataclasses
from collections import Counter

import numpy as np
import pytest

import society_env
from policies.llm.engine import LlamaEngine, ModelError
from policies.llm.policy import MOVE_KINDS, LlamaCppPolicy
from policies.llm.answer import Options, action_grammar
from policies.llm.prompt_config import prompt_config_for
from policies.scripted.perception import Perception
from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, _count_behaviour, behaviour_summary
from society_env import EAST, NORTH, STAY
from tests.tiny_gguf import write_tiny_model

FORAGE = society_env.make_config("forage")
FORAGE_FITNESS = FitnessSettings(preset="forage", policy="llm=2", episodes=4, max_steps=8, temperature=1.0,
                                 estimator="expected")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    model = write_tiny_model(tmp_path_factory.mktemp("forage") / "tiny.gguf", "Q8_0", seed=1)
    engine = LlamaEngine(model, n_ctx=2048, max_batch=8, n_threads=1)
    yield engine
    engine.close()


def _grammar_accepts(engine, grammar_text: str, answer: str) -> bool:
    llama_cpp = engine.llama_cpp
    grammar = llama_cpp.llama_sampler_init_grammar(engine.vocab, grammar_text.encode(), b"root")
    try:
        engine.accept_text(grammar, answer)
        return True
    except ModelError:
        return False
    finally:
        llama_cpp.llama_sampler_free(grammar)


def test_move_only_grammar_accepts_exactly_the_five_answers(engine):
    settings = prompt_config_for("forage")
    grammar = action_grammar(Options([], {}, False, 30), FORAGE, settings)
    for answer in ('stay"}', 'move", "direction": "north"}', 'move", "direction": "south"}',
                   'move", "direction": "west"}', 'move", "direction": "east"}'):
        assert _grammar_accepts(engine, grammar, answer), answer
    for answer in ('stay", "message": ""', 'give", "target": ', 'reproduce"', 'move", "direction": "up"'):
        assert not _grammar_accepts(engine, grammar, answer), answer


def test_move_distribution_is_what_the_policy_samples(engine):
    """The exact distribution from the logits against 400 sampled first answers on the same observation."""
    env = society_env.parallel_env("forage")
    observations, infos = env.reset(seed=3)
    agent = env.agents[0]
    policy = LlamaCppPolicy(env.config, engine=engine, temperature=1.0, batch_size=8, prompt="forage")
    policy.reset(0)
    exact = policy.move_distribution([(agent, observations[agent])])[0]
    assert exact.shape == (len(MOVE_KINDS),) and exact.sum() == pytest.approx(1.0)
    assert exact.max() < 0.95  # a random model: every answer has a chance, so the comparison means something
    counts = Counter()
    samples = 400
    for seed in range(samples):
        policy.reset(seed)
        counts[int(policy.act({agent: observations[agent]}, {agent: infos[agent]})[agent]["action"][0])] += 1
    sampled = np.array([counts[kind] for kind in MOVE_KINDS]) / samples
    tolerance = 4 * np.sqrt(exact * (1 - exact) / samples) + 0.01  # 4 binomial standard errors
    assert np.all(np.abs(sampled - exact) <= tolerance), (sampled, exact)
    again = policy.move_distribution([(agent, observations[agent])])[0]
    assert np.array_equal(again, exact)  # deterministic: the same weights give the same fitness


def test_expected_estimator_is_exact_and_deterministic(engine):
    evaluator = FitnessEvaluator(FORAGE_FITNESS, engine)
    seeds = [5, 6, 7]
    first = [r.fitness for r in evaluator.evaluate(seeds)]
    assert first == [r.fitness for r in evaluator.evaluate(seeds)]
    # by hand for the first episode: sum over agents and answers of probability x the world's reward.
    # (The same decisions in one batch, as the evaluator: llama.cpp's last bits depend on the batch.)
    env = society_env.parallel_env("forage")
    decisions = []
    for seed in seeds:
        observations, _ = env.reset(seed=seed)
        decisions += list(observations.items())
    evaluator.llm.reset(0)
    probabilities = evaluator.llm.move_distribution(decisions)
    stay = {"action": np.array([STAY, 0, 0, 0]), "message": ""}
    values = []
    env.reset(seed=5)
    for row, agent in enumerate(list(env.agents)):
        value = 0.0
        for column, kind in enumerate(MOVE_KINDS):
            world = society_env.parallel_env("forage")
            world.reset(seed=5)
            actions = {other: stay for other in world.agents}
            actions[agent] = {"action": np.array([kind, 0, 0, 0]), "message": ""}
            value += probabilities[row, column] * world.step(actions)[1][agent]
        values.append(value)
    assert first[0] == pytest.approx(np.mean(values))


def test_expected_estimator_needs_a_move_only_world(engine):
    with pytest.raises(ValueError, match="move-only"):
        FitnessEvaluator(dataclasses.replace(FORAGE_FITNESS, preset="small"), engine)


def test_qes_fitness_takes_the_prompt_and_context_from_the_preset(engine):
    """qes-train / qes-eval play with the prompt society-env run would use for the preset."""
    settings = FitnessSettings(preset="long_memory", policy="llm=2")
    assert settings.prompt().history == 20 and settings.context_tokens() == 2048
    assert FitnessSettings(preset="small").context_tokens() == 1280
    evaluator = FitnessEvaluator(dataclasses.replace(FORAGE_FITNESS, estimator="sampled"), engine)
    assert evaluator.llm.settings == prompt_config_for("forage")
    # --set prompt_* reaches the trained agents' prompt, as in society-env run
    assert FitnessSettings(preset="forage", overrides=("prompt_nearest_food=true",)).prompt().nearest_food
    # settings saved by older checkpoints (with their own prompt fields) still load
    old = {**dataclasses.asdict(FitnessSettings()), "history": 1, "motivation": "base", "personality": True}
    assert FitnessSettings.from_dict(old) == FitnessSettings()
    # and so do their overrides, saved as parsed [field, value] pairs
    pairs = {**old, "overrides": [["initial_food", 60], ["prompt_actions", "all"]]}
    assert FitnessSettings.from_dict(pairs).overrides == ("initial_food=60", 'prompt_actions="all"')
    assert FitnessSettings.from_dict(pairs).prompt().actions == "all"


def test_behaviour_counts_moves_towards_the_nearest_food():
    env = society_env.parallel_env("forage", num_founders=1, initial_food=0, food_regrowth_rate=0.0)
    observations, _ = env.reset(seed=0)
    row, col = env.world.position[0]
    env.world.food[row, (col + 1) % FORAGE.width] = 10  # food right east, nothing else
    perception = Perception.read(env._observations(np.array([0]))["agent_0"], env.config)
    counts = Counter()
    for kind in (EAST, NORTH, STAY):
        _count_behaviour(counts, perception, kind)
    assert counts == Counter(agent_steps=3, moves=2, stays=1, food_in_view=3, towards_food=1)
    summary = behaviour_summary([type("R", (), {"behaviour": counts})()])
    assert summary["towards_food_share"] == pytest.approx(1 / 3) and summary["stay_share"] == pytest.approx(1 / 3)


def test_sampled_evaluation_reports_what_the_agents_did(engine, tmp_path):
    """qes-eval's behaviour columns count every LLM agent-step of the held-out episodes."""
    from qes_trainer.evaluate import evaluate_models

    settings = dataclasses.replace(FORAGE_FITNESS, estimator="sampled")
    report = evaluate_models({"base": engine.model_path, "again": engine.model_path}, settings, [10_000, 10_001],
                             threads=1)
    behaviour = report["models"]["base"]["behaviour"]
    assert behaviour["agent_steps"] == 2 * 8 * 2  # 2 episodes x 8 steps x 2 agents (nobody starves in 8 steps)
    assert 0 <= behaviour["towards_food_share"] <= 1 and 0 <= behaviour["stay_share"] <= 1
    assert report["models"]["again"]["behaviour"] == behaviour  # same model, same seeds
    assert report["models"]["again"]["difference_vs_base"]["mean"] == 0.0
