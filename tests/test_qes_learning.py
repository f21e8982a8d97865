"""QES that learns: on the tiny generated GGUF and the forage task, a few dozen generations with error
feedback raise the held-out return over the base; without error feedback, at the paper's learning rate,
no code moves. Plus the options that make small budgets work (--tensors, held-out evaluation in training)."""

import dataclasses
import json

import numpy as np
import pytest

from policies.llm.engine import LlamaEngine
from policies.llm.models import sha256_of
from qes_trainer.fitness import HELDOUT_SEED, FitnessEvaluator, FitnessSettings
from qes_trainer.live_model import LiveModel
from qes_trainer.population import LocalPopulation
from qes_trainer.train import TrainConfig, published_settings, train
from tests.tiny_gguf import write_tiny_model

# Dense food (60 of 81 cells): moving instead of staying pays on almost every held-out episode, an
# improvement a random tiny model can find in a dozen generations of two pairs (measured: +2.9 +- 0.5).
FORAGE_FITNESS = FitnessSettings(preset="forage", policy="llm=2", episodes=8, max_steps=8, temperature=1.0,
                                 estimator="expected", overrides=("initial_food=60",))
LEARN = TrainConfig(generations=12, pairs=2, sigma=2.0, alpha=2.0, threads=1, batch_size=8, fitness=FORAGE_FITNESS)
HELDOUT = list(range(HELDOUT_SEED, HELDOUT_SEED + 32))


pytestmark = pytest.mark.slow  # training runs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("learn") / "tiny.gguf", "Q8_0")


def _heldout_returns(model, settings: FitnessSettings) -> np.ndarray:
    engine = LlamaEngine(model, n_ctx=settings.context_tokens(), max_batch=8, n_threads=1)
    try:
        return np.array([result.fitness for result in FitnessEvaluator(settings, engine).evaluate(HELDOUT)])
    finally:
        engine.close()


def test_qes_learns_to_forage_on_the_tiny_model_and_not_without_error_feedback(tiny_model, tmp_path):
    trained = train(dataclasses.replace(LEARN, model=str(tiny_model)), tmp_path / "qes")
    base = _heldout_returns(tiny_model, FORAGE_FITNESS)
    gain = _heldout_returns(trained, FORAGE_FITNESS) - base  # paired by held-out episode
    standard_error = gain.std(ddof=1) / np.sqrt(gain.size)
    assert gain.mean() > 2 * standard_error, (gain.mean(), standard_error)

    # The paper's ablation: no error feedback at the paper's INT8 settings moves no code at all, so the
    # "trained" model is the base model, byte for byte.
    sigma, alpha = published_settings(["Q8_0"])
    ablation = train(dataclasses.replace(LEARN, model=str(tiny_model), residual="none", sigma=sigma, alpha=alpha),
                     tmp_path / "none")
    rows = [json.loads(line) for line in (tmp_path / "none" / "metrics.jsonl").read_text().splitlines()]
    assert [row["codes_changed"] for row in rows] == [0] * LEARN.generations
    assert sha256_of(ablation) == sha256_of(tiny_model)


def test_heldout_evaluation_during_training_is_logged(tiny_model, tmp_path):
    config = dataclasses.replace(LEARN, model=str(tiny_model), generations=3, eval_every=2, eval_episodes=4)
    train(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "heldout_base_fitness" in rows[0] and "heldout_fitness" not in rows[0]
    assert "heldout_fitness" in rows[1] and "heldout_fitness" in rows[2]  # every 2 generations, and the last
    assert rows[1]["heldout_standard_error"] > 0
    assert rows[1]["heldout_gain"] == pytest.approx(rows[1]["heldout_fitness"] - rows[0]["heldout_base_fitness"])
    assert rows[1]["heldout_gain_standard_error"] >= 0
    # the base evaluation is the untrained model's held-out fitness
    base = _heldout_returns(tiny_model, FORAGE_FITNESS)[:4]
    assert rows[0]["heldout_base_fitness"] == pytest.approx(base.mean())
    # a resumed run still pairs its held-out evaluations with the base model's (kept in the checkpoint)
    train(dataclasses.replace(config, generations=4), tmp_path, resume=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "heldout_base_fitness" not in rows[3]
    assert rows[3]["heldout_gain"] == pytest.approx(rows[3]["heldout_fitness"] - rows[0]["heldout_base_fitness"])


def test_tensors_option_restricts_what_is_trained(tiny_model, tmp_path):
    live = LiveModel.create(tiny_model, tmp_path / "work.gguf", tensors="blk.1.ffn_*")
    assert sorted(live.trainable) == ["blk.1.ffn_down.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight"]
    live.close()
    with pytest.raises(ValueError, match="matches none of the 14 trainable tensors"):
        LiveModel.create(tiny_model, tmp_path / "work2.gguf", tensors="blk.9.*")
    config = dataclasses.replace(LEARN, model=str(tiny_model), generations=2, tensors="blk.1.*")
    train(config, tmp_path / "run")
    from qes_trainer.checkpoint import load_checkpoint

    diff = load_checkpoint(tmp_path / "run")[1]
    assert diff and all(name.startswith("blk.1.") for name in diff)
    assert sum(delta.nnz for delta in diff.values()) > 0


# Several steps and several action kinds (stay, move, give, take: the forage world with every action
# offered), scored by the Rao-Blackwellised episode return; judged on held-out *sampled* episodes. The
# base model stays 84% of the time. Reproduction is out of reach (a well-fed agent that reproduced would
# die of it: a -100 that the sampled held-out returns could only average out over hundreds of episodes).
MULTI_STEP_FITNESS = FitnessSettings(preset="forage", policy="llm=2", episodes=4, max_steps=4, temperature=1.0,
                                     estimator="rao_blackwell", n_ctx=2048,
                                     overrides=("initial_food=60", "prompt_actions=all", "reproduce_min_energy=1000"))


def test_qes_follows_the_rao_blackwellised_episode_return_on_the_tiny_model(tiny_model, tmp_path, monkeypatch):
    # Trained against the base is no test of learning here: ten generations of two pairs move most of the
    # tiny model's codes, so a run drifts towards a typical random model's return wherever the base starts
    # (measured, held-out sampled: base 1.0 -> 7.5 with the older prompt, base 10.8 -> 4.4 with today's).
    # The control arm is the same run (same noise, same episodes) told to *minimise* the return: if the
    # update follows the fitness, maximising ends above minimising on held-out episodes.
    config = dataclasses.replace(LEARN, model=str(tiny_model), fitness=MULTI_STEP_FITNESS, generations=10, alpha=1.0)
    maximised = train(config, tmp_path / "max")
    evaluate = LocalPopulation.evaluate
    monkeypatch.setattr(LocalPopulation, "evaluate", lambda self, *args, **kwargs: [
        dataclasses.replace(outcome, fitness=-outcome.fitness) for outcome in evaluate(self, *args, **kwargs)])
    minimised = train(config, tmp_path / "min")
    monkeypatch.undo()
    sampled = dataclasses.replace(MULTI_STEP_FITNESS, estimator="sampled")
    gap = _heldout_returns(maximised, sampled) - _heldout_returns(minimised, sampled)  # paired by episode
    standard_error = gap.std(ddof=1) / np.sqrt(gap.size)
    assert gap.mean() > 2 * standard_error, (gap.mean(), standard_error)
