"""The PPO baseline (policies/learned/train_ppo.py) and its trained policy as a policy (policies.learned.ppo.PPOPolicy): a
short training run learns to do better than random on held-out seeds; the saved policy records,
replays and resumes like any policy; a checkpoint for another world is refused with a clear error."""

import numpy as np
import pytest

from society_env.app.cli import main

from policies.learned import train_ppo as ppo
from society_env.app.baselines import run_society


pytestmark = pytest.mark.slow  # training runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    args = ppo.Args(total_steps=4 * 64 * 12, threads=1, seed=0)
    last = ppo.train(args, out)
    return out, last


def test_ppo_writes_its_curve_and_policy(trained):
    out, last = trained
    lines = (out / "curve.csv").read_text().splitlines()
    assert lines[0].startswith("iteration,env_steps,lives_ended,mean_life_return")
    assert len(lines) == 1 + 12 and last["env_steps"] == 4 * 64 * 12 and last["lives_ended"] > 0
    assert (out / "curve.png").stat().st_size > 0 and (out / "policy.pt").exists()


def _lifespan(checkpoint, seeds) -> float:
    options = {"ppo": {"checkpoint": str(checkpoint)}}
    return float(np.mean([run_society("small", [("ppo", 1.0)], s, None, options)["lifespan"] for s in seeds]))


def test_a_short_ppo_run_learns_to_live_longer_on_held_out_seeds(trained, tmp_path):
    """Trained on the survival reward, the policy's agents live longer than those of the same network
    untrained (its initial weights, seed 0) and than random agents, on seeds training never plays."""
    import torch

    from policies.learned.ppo import ActorCritic, save_checkpoint

    out, _ = trained
    envs = ppo.make_envs(ppo.Args(num_envs=1))
    torch.manual_seed(0)
    untrained = ActorCritic(envs.single_observation_space.shape[0], envs.single_action_space.nvec)
    save_checkpoint(tmp_path / "untrained.pt", untrained, {"preset": "small", "hidden": 128})
    seeds = range(4)  # training seeds its worlds from a 31-bit draw: these are never played in training
    random = float(np.mean([run_society("small", [("random", 1.0)], s, None)["lifespan"] for s in seeds]))
    before, after = _lifespan(tmp_path / "untrained.pt", seeds), _lifespan(out / "policy.pt", seeds)
    assert after > before + 3 and after > random + 5, (after, before, random)


def test_the_trained_policy_records_replays_and_continues_from_its_state(trained, tmp_path):
    import society_env
    from policies.learned.ppo import PPOPolicy
    from society_env.app.runs import replay_recording

    policy = str(trained[0] / "policy.pt")
    run_dir = tmp_path / "run"
    assert main(["run", "--preset", "small", "--policy", "ppo=1,forager=1", "--ppo-checkpoint", policy,
                 "--steps", "40", "--quiet", "--out", str(run_dir)]) == 0
    assert replay_recording(run_dir)["identical"]
    # what a run checkpoint keeps (state_dict) makes a fresh policy sample what the original samples next
    config = society_env.make_config("small")
    env = society_env.SocietyEnv(config)
    observations, infos = env.reset(seed=3)
    first, second = PPOPolicy(config, policy), PPOPolicy(config, policy)
    first.reset(11)
    first.act(observations, infos)
    second.reset(99)
    second.load_state_dict(first.state_dict())
    a, b = first.act(observations, infos), second.act(observations, infos)
    assert all(np.array_equal(a[agent], b[agent]) for agent in a)


def test_a_checkpoint_for_another_world_is_refused(trained, tmp_path, capsys):
    policy = str(trained[0] / "policy.pt")
    assert main(["run", "--preset", "core", "--policy", "ppo", "--ppo-checkpoint", policy, "--steps", "2",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "was trained for observations of 498 numbers" in capsys.readouterr().err
    assert main(["run", "--policy", "ppo", "--steps", "2", "--out", str(tmp_path / "y"), "--quiet"]) == 2
    assert "needs a checkpoint: --ppo-checkpoint" in capsys.readouterr().err
