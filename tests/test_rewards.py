"""The reward table (``society_env.world.rewards``) is what both the compiled rewards and the rebuilt returns of
old recordings read."""

import dataclasses

import numpy as np
import pytest

import society_env
from society_env.world.config import SocietyConfig
from society_env.world.rewards import REWARDS_BY_EVENT, SHAPED_REWARDS, SHARING, ShapedWeights, shaped_weights
from society_env.vector import SocietyVectorEnv


def test_the_table_names_every_reward_field_of_the_config_once():
    reward_fields = {f.name for f in dataclasses.fields(SocietyConfig)} - {"reward_mode", "reward_sharing"}
    reward_fields = {name for name in reward_fields if name.startswith("reward_")}
    assert sorted(row.field for row in SHAPED_REWARDS) == sorted(reward_fields)
    assert ShapedWeights._fields == tuple(row.field for row in SHAPED_REWARDS)
    assert sum(len(rows) for rows in REWARDS_BY_EVENT.values()) == len(SHAPED_REWARDS)


def test_compiled_rewards_follow_the_table_weights():
    """Rewards are linear in the table's weights: doubling every weight doubles every step's reward
    (same seed, same actions, so the same facts), exactly."""
    config = society_env.parallel_env(preset="small").config
    doubled = {row.field: 2 * getattr(config, row.field) for row in SHAPED_REWARDS}
    runs = []
    for overrides in ({}, doubled):
        env = society_env.parallel_env(preset="small", **overrides)
        env.reset(seed=3)
        rng = np.random.default_rng(3)
        rewards = []
        for _ in range(40):
            if not env.agents:
                break
            actions = {a: rng.integers(0, env.action_space(a).nvec) for a in env.agents}
            rewards.append(env.step(actions)[1])
        runs.append(rewards)
    assert len(runs[0]) == len(runs[1]) > 0
    assert any(any(step.values()) for step in runs[0])
    for single, double in zip(*runs):
        assert {a: 2 * r for a, r in single.items()} == double
    assert shaped_weights(config) == tuple(float(getattr(config, row.field)) for row in SHAPED_REWARDS)


# ---- reward sharing (phase 11) -------------------------------------------------------------------------
FAMILY = dict(reward_mode="shaped", initial_energy=120, reproduce_min_energy=50, lifespan=200, max_steps=40)
"""A small world where founders can afford children at once, so three generations live within 40 steps."""


def _family_run(sharing: str, steps: int = 40, **overrides):
    """Rewards per step and the parent links, for seeded actions biased to reproduce (the same facts under
    every sharing mode: sharing changes who is credited, never what happens)."""
    env = society_env.parallel_env("small", reward_sharing=sharing, **{**FAMILY, **overrides})
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    rewards, acting = [], []
    for _ in range(steps):
        if not env.agents:
            break
        actions = {a: rng.integers(0, env.action_space(a).nvec) for a in env.agents}
        for action in actions.values():
            if rng.random() < 0.3:
                action[0] = society_env.REPRODUCE
        acting.append(set(actions))
        rewards.append(env.step(actions)[1])
    return rewards, acting, env.world.parent.copy(), env.world.generation.max()


def test_lineage_credits_each_living_ancestor_its_discounted_share():
    earned, acting, parent, generations = _family_run("individual")
    credited, _, same_parent, _ = _family_run("lineage", lineage_discount=0.5, lineage_generations=2)
    assert np.array_equal(parent, same_parent) and generations >= 2  # grandchildren were born
    slot = lambda agent: int(agent.split("_")[1])  # noqa: E731
    shared = 0
    for own, got, present in zip(earned, credited, acting):
        assert own.keys() == got.keys()  # the same agents, in the same steps
        expected = dict(own)
        for agent, reward in own.items():
            ancestor, share = parent[slot(agent)], 1.0
            for _ in range(2):  # lineage_generations
                if ancestor < 0:
                    break
                share *= 0.5
                if f"agent_{ancestor}" in present:  # alive at the start of this step
                    expected[f"agent_{ancestor}"] += share * reward
                    shared += reward != 0
                ancestor = parent[ancestor]
        assert got == pytest.approx(expected, abs=1e-9)
    assert shared > 0  # credit did flow


def test_population_gives_every_agent_of_the_step_the_mean():
    """Every agent alive at the start of the step (the dying included) gets the mean of what they earned;
    a child born in the step gets nothing yet."""
    earned, acting, _, _ = _family_run("individual")
    mean_of, _, _, _ = _family_run("population")
    assert any(len(set(step.values())) > 1 for step in earned)  # not a trivial case
    for own, got, present in zip(earned, mean_of, acting):
        mean = sum(own[agent] for agent in present) / len(present)
        assert got == pytest.approx({agent: mean if agent in present else 0.0 for agent in own}, abs=1e-9)


@pytest.mark.parametrize("sharing", ["lineage", "population"])
def test_sharing_is_the_same_in_parallel_env_and_the_vector_env(sharing):
    """Step for step, the array API's rewards are parallel_env's (same seed, same actions)."""
    overrides = dict(FAMILY, reward_sharing=sharing, fixed_slots=True)
    env = society_env.parallel_env("small", **overrides)
    vector = SocietyVectorEnv(1, "small", num_threads=1, **overrides)
    env.reset(seed=7)
    vector.reset(seed=7)
    rng = np.random.default_rng(7)
    slots = vector.num_slots
    nvec = vector.single_action_space.nvec
    for _ in range(40):
        actions = rng.integers(0, nvec, size=(1, slots, nvec.size))
        actions[0, rng.random(slots) < 0.3, 0] = society_env.REPRODUCE
        _, rewards, *_ = vector.step(actions)
        step_rewards = env.step({a: actions[0, int(a.split("_")[1])] for a in env.agents})[1]
        expected = np.zeros(slots)
        for agent, reward in step_rewards.items():
            expected[int(agent.split("_")[1])] = reward
        assert np.array_equal(rewards[0], expected)
        if not env.agents:
            break


def test_sharing_modes_are_data_and_bad_values_are_clear_errors():
    assert tuple(SHARING) == ("individual", "lineage", "population")
    assert society_env.parallel_env("small").config.reward_sharing == "individual"  # the default is unchanged
    for bad, message in ((dict(reward_sharing="kin"), "reward_sharing must be one of"),
                         (dict(lineage_discount=1.5), "lineage_discount"),
                         (dict(lineage_generations=0), "lineage_generations")):
        with pytest.raises(ValueError, match=message):
            society_env.parallel_env("small", **bad)
