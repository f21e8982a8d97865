"""The reward table (``society_env.world.rewards``) is what both the compiled rewards and the rebuilt returns of
old recordings read."""

import dataclasses

import numpy as np

import society_env
from society_env.world.config import SocietyConfig
from society_env.world.rewards import REWARDS_BY_EVENT, SHAPED_REWARDS, ShapedWeights, shaped_weights


def test_the_table_names_every_reward_field_of_the_config_once():
    reward_fields = {f.name for f in dataclasses.fields(SocietyConfig)} - {"reward_mode"}
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
