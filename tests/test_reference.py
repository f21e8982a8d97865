"""The vectorised rules equal the slow per-agent reference, step by step, over long seeded runs."""

import copy

import numpy as np
import pytest

import society_env
from tests.conftest import random_actions
from tests.reference_world import RefWorld, assert_matches, reference_step


def run_against_reference(env, seed: int, steps: int) -> dict:
    env.reset(seed=seed)
    action_rng = np.random.default_rng(seed + 1000)
    seen = {"births": 0, "deaths": 0, "transfers": 0, "blocked": 0}
    for _ in range(steps):
        if not env.agents:
            break
        actions = random_actions(env, action_rng)
        before = RefWorld.from_state(env.world)
        rng_copy = copy.deepcopy(env._rng)
        _, rewards, *_ = env.step(actions)
        slot_actions = {int(a.split("_")[1]): tuple(int(x) for x in v) for a, v in actions.items()}
        world, ref_rewards, events = reference_step(before, slot_actions, env.config, rng_copy)
        assert_matches(world, env.world)
        outcome = env.last_outcome
        for agent, value in rewards.items():
            assert value == pytest.approx(ref_rewards.get(int(agent.split("_")[1]), 0.0), abs=1e-12), agent
        assert sorted(events["births"]) == sorted(zip(outcome.birth_parent.tolist(), outcome.birth_child.tolist()))
        assert sorted(events["deaths"]) == sorted(zip(outcome.death_slot.tolist(), outcome.death_cause.tolist()))
        assert sorted(events["transfers"]) == sorted(zip(outcome.transfer_kind.tolist(), outcome.transfer_source.tolist(),
                                                         outcome.transfer_dest.tolist(), outcome.transfer_amount.tolist()))
        assert events["failed"] == outcome.failures()
        assert events["blocked"] == set(np.flatnonzero(outcome.blocked).tolist())
        seen["births"] += len(events["births"])
        seen["deaths"] += len(events["deaths"])
        seen["transfers"] += len(events["transfers"])
        seen["blocked"] += len(events["blocked"])
        assert (rng_copy.bit_generator.state == env._rng.bit_generator.state)
    return seen


@pytest.mark.parametrize("preset,seed", [("small", 7), ("default", 5)])
def test_vectorised_rules_match_reference(preset, seed):
    env = society_env.parallel_env(preset)
    seen = run_against_reference(env, seed, steps=400)
    # the run exercised every rule
    assert seen["births"] > 0 and seen["deaths"] > 0 and seen["transfers"] > 0 and seen["blocked"] > 0


def test_reference_match_survival_rewards_and_uniform_food():
    # the abundant condition's world (uniform food) with numeric actions: the reference has no text actions
    env = society_env.parallel_env("abundant", language=False, reward_mode="survival", num_founders=40)
    assert env.config.food_distribution == "uniform"
    seen = run_against_reference(env, 11, steps=200)
    assert seen["deaths"] > 0


@pytest.mark.slow
def test_vectorised_rules_match_reference_long_run():
    env = society_env.parallel_env("default", num_founders=60)
    seen = run_against_reference(env, 21, steps=1500)
    assert seen["births"] > 10 and seen["deaths"] > 10
