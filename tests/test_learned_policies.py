"""Shipped learned policies (policies.learned.trained): run by name with ``--policy learned``, listed by
``society-env models``; a name that is not shipped is a one-line error. The checkpoints here are untrained
networks of the right shape (what is tested is the lookup, not the learning: tests/test_ppo.py trains)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learned policies need the rl extra")

import society_env  # noqa: E402
from policies.learned import trained  # noqa: E402
from policies.learned.ppo import ActorCritic, save_checkpoint  # noqa: E402
from society_env.app.cli import main  # noqa: E402
from society_env.world.observations import numeric_action_space, observation_size  # noqa: E402


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """Every registered learned policy shipped as an untrained network for the small preset, in tmp_path."""
    monkeypatch.setattr(trained, "TRAINED_DIRECTORY", tmp_path)
    config = society_env.make_config("small")
    torch.manual_seed(0)
    for name in trained.TRAINED_POLICIES:
        model = ActorCritic(observation_size(config), numeric_action_space(config).nvec, 16)
        save_checkpoint(tmp_path / f"{name}.pt", model, {"preset": "small", "hidden": 16})
    return tmp_path


def test_learned_runs_the_best_shipped_policy_by_name(shipped, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", "--preset", "small", "--policy", "learned=3", "--steps", "5", "--out", str(run), "--quiet"]) == 0
    meta = json.loads((run / "meta.json").read_text())
    assert set(meta["assignment"].values()) == {"learned"}
    other = tmp_path / "other"
    assert main(["run", "--preset", "small", "--policy", "learned=3", "--ppo-checkpoint", "small-population",
                 "--steps", "5", "--out", str(other), "--quiet"]) == 0


def test_a_name_that_is_not_shipped_is_a_one_line_error(shipped, tmp_path, capsys):
    (shipped / "small-population.pt").unlink()
    assert main(["run", "--preset", "small", "--policy", "learned=2", "--ppo-checkpoint", "small-population",
                 "--steps", "3", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "'small-population' is not shipped" in error and "small-lineage" in error and "\n" not in error


def test_models_lists_the_learned_policies(shipped, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in trained.TRAINED_POLICIES)
    assert f"{trained.BEST_TRAINED}  preset small" in out and "best: --policy learned" in out


def test_reset_none_gives_fresh_sampling_and_a_seed_repeats_it(shipped):
    from policies.learned.ppo import LearnedPolicy

    config = society_env.make_config("small")
    policy = LearnedPolicy(config)
    observations = {f"agent_{k}": np.random.default_rng(k).random(observation_size(config), dtype=np.float32)
                    for k in range(40)}

    def actions(seed):
        policy.reset(seed)
        return np.stack([a for a in policy.act(observations, {}).values()])

    assert np.array_equal(actions(3), actions(3))
    assert not np.array_equal(actions(None), actions(None))  # None: fresh entropy, as scripted policies


def test_the_shipped_policies_load_and_act_in_their_preset(tmp_path):
    """The networks in the package (not the fixture's): each loads for its preset and gives valid actions;
    ``--policy learned`` runs the best one."""
    from policies.learned.ppo import LearnedPolicy

    for name, entry in trained.TRAINED_POLICIES.items():
        assert entry.shipped and entry.path.stat().st_size < 1_000_000, name
        config = society_env.make_config(entry.preset)
        policy = LearnedPolicy(config, name)
        env = society_env.parallel_env(entry.preset)
        observations, infos = env.reset(seed=1)
        policy.reset(1)
        actions = policy.act(observations, infos)
        assert set(actions) == set(env.agents) and all(env.action_space(a).contains(actions[a]) for a in actions)
    assert main(["run", "--preset", "small", "--policy", "learned=6", "--steps", "5", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
