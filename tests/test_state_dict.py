"""Saving and restoring a world from Python: env.state_dict() / load_state_dict() and pickling, for RL
users who branch or search from saved states (Go-Explore, MCTS)."""

import copy
import pickle

import numpy as np
import pytest

import society_env


def canonical(value):
    """Step outputs as plain comparable data (arrays to lists, tuples to lists)."""
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def play(env, steps, seed):
    """``steps`` steps of sampled actions (seeded per step), returning every step's outputs."""
    outputs = []
    for step in range(steps):
        if not env.agents:
            break
        actions = {}
        for k, agent in enumerate(env.agents):
            space = env.action_space(agent)
            space.seed(seed * 100_003 + step * 1009 + k)
            actions[agent] = space.sample()
        outputs.append(canonical(env.step(actions)))
    return outputs


CASES = [("small", {}), ("core", {"width": 20, "height": 20, "num_founders": 8})]


@pytest.mark.parametrize("preset,overrides", CASES, ids=["numeric", "language+artifacts"])
def test_continuing_from_a_restored_state_equals_continuing_from_the_original(preset, overrides):
    env = society_env.parallel_env(preset, **overrides)
    env.reset(seed=4)
    play(env, 15, seed=1)
    saved = env.state_dict()
    original = play(env, 25, seed=2)

    for restored in (society_env.parallel_env(preset, **overrides), env):  # a fresh env, and the same one
        observations, infos = restored.load_state_dict(saved)
        assert set(observations) == set(infos) == set(saved["agents"])
        assert play(restored, 25, seed=2) == original
    # the saved dict was not changed by playing on after saving or after loading it
    again = society_env.parallel_env(preset, **overrides)
    again.load_state_dict(saved)
    assert play(again, 25, seed=2) == original


@pytest.mark.parametrize("preset,overrides", CASES, ids=["numeric", "language+artifacts"])
def test_a_pickled_env_continues_exactly(preset, overrides):
    env = society_env.parallel_env(preset, **overrides)
    env.reset(seed=9)
    play(env, 10, seed=3)
    clone = pickle.loads(pickle.dumps(env))
    twin = copy.deepcopy(env)
    original = play(env, 20, seed=5)
    assert play(clone, 20, seed=5) == original
    assert play(twin, 20, seed=5) == original
    assert pickle.loads(pickle.dumps(env.state_dict()))["world"]["step"] == env.world.step


def test_a_state_dict_from_another_config_or_not_a_state_dict_is_refused():
    env = society_env.parallel_env("small")
    env.reset(seed=0)
    saved = env.state_dict()
    other = society_env.parallel_env("small", width=17, food_value=7)
    with pytest.raises(ValueError, match="fields differ: food_value, width"):
        other.load_state_dict(saved)
    with pytest.raises(ValueError, match="not a society-env state dict"):
        env.load_state_dict({"world": {}})
    with pytest.raises(ValueError, match="version 99"):
        env.load_state_dict({**saved, "version": 99})
    with pytest.raises(RuntimeError, match="reset"):
        society_env.parallel_env("small").state_dict()
