"""The fixed-slot option plugs into SuperSuit's vector env; the language view says what the numbers say."""

import re

import numpy as np
import supersuit as ss

import society_env
from society_env.world.observations import AGENT_CHANNEL, FOOD_CHANNEL


def test_supersuit_vector_env_runs_through_births_and_deaths():
    env = society_env.parallel_env("small", fixed_slots=True, max_agents=32, lifespan=40, max_steps=150)
    vec = ss.pettingzoo_env_to_vec_env_v1(env)
    vec = ss.concat_vec_envs_v1(vec, 2, num_cpus=0, base_class="gymnasium")
    observations, infos = vec.reset(seed=0)
    assert observations.shape == (2 * 32, env.observation_size)
    rng = np.random.default_rng(0)
    nvec = env.action_space("agent_0").nvec
    births = deaths = resets = 0
    alive_before = None
    for _ in range(400):
        actions = np.stack([rng.integers(nvec) for _ in range(observations.shape[0])])
        observations, rewards, terminations, truncations, infos = vec.step(actions)
        alive = np.array([info.get("alive", False) for info in infos])
        if alive_before is not None:
            births += int(np.count_nonzero(alive & ~alive_before))
            deaths += int(np.count_nonzero(~alive & alive_before))
        resets += int((terminations | truncations).reshape(2, 32).all(axis=1).sum())
        # inactive slots are all zeros, live ones are not
        assert not observations[~alive].any()
        alive_before = alive
    assert births > 0 and deaths > 0 and resets > 0


def test_fixed_slot_inactive_slots_get_zero_and_keep_their_place():
    env = society_env.parallel_env("small", fixed_slots=True)
    obs, infos = env.reset(seed=0)
    assert env.agents == env.possible_agents
    unborn = env.possible_agents[-1]
    assert not obs[unborn].any() and infos[unborn]["alive"] is False
    actions = {a: env.action_space(a).sample() for a in env.agents}
    obs, rewards, terminations, truncations, infos = env.step(actions)  # unborn slots' actions are ignored
    assert rewards[unborn] == 0.0 and not terminations[unborn]
    assert env.agents == env.possible_agents


def test_text_view_mentions_what_the_numeric_view_shows():
    env = society_env.parallel_env("small", language=True)
    obs, _ = env.reset(seed=4)
    r = env.config.view_radius
    checked_food = checked_agents = 0
    for agent, o in obs.items():
        text = o["text"]
        assert env.observation_space(agent).contains(o)
        view, features = society_env.split_observation(o, env.config)
        slot = int(agent.split("_")[1])
        assert f"energy {env.world.energy[slot]}" in text
        food_cells = np.argwhere(view[..., FOOD_CHANNEL] > 0)
        listed_food = re.findall(r"\(([+-]?\d+),([+-]?\d+)\)=(\d+)", text)
        for row, col in food_cells[:5]:
            if any(int(dx) == col - r and int(dy) == row - r for dx, dy, _ in listed_food):
                checked_food += 1
        others = np.argwhere(view[..., AGENT_CHANNEL] > 0)
        for row, col in others:
            if (row, col) == (r, r):
                continue
            other = env.world.occupant[(env.world.position[slot, 0] + row - r) % env.config.height,
                                       (env.world.position[slot, 1] + col - r) % env.config.width]
            assert f"agent_{other} ({col - r:+d},{row - r:+d})".replace("+0", "0") in text
            checked_agents += 1
    assert checked_food > 0 and checked_agents > 0


def test_language_messages_are_heard_as_text():
    env = society_env.parallel_env("small", language=True, num_founders=2)
    env.reset(seed=0)
    world = env.world
    world.occupant[tuple(world.position[1])] = -1
    world.position[1] = (world.position[0] + (0, 2)) % 16
    world.occupant[tuple(world.position[1])] = 1
    silent = {"action": np.zeros(4, np.int64), "message": ""}
    obs, *_ = env.step({"agent_0": silent, "agent_1": {"action": np.zeros(4, np.int64), "message": "food is north!"}})
    assert 'agent_1 (+2,0): "food is north!"' in obs["agent_0"]["text"]


def test_language_rejects_bad_messages():
    import pytest

    env = society_env.parallel_env("small", language=True)
    env.reset(seed=0)
    agent = env.agents[0]
    with pytest.raises(ValueError, match="non-printable"):
        env.step({agent: {"action": np.zeros(4, np.int64), "message": "bell\x07"}})
    with pytest.raises(ValueError, match="limit"):
        env.step({agent: {"action": np.zeros(4, np.int64), "message": "x" * 1000}})


def test_vectorised_text_view_matches_the_per_agent_reference():
    from society_env.world.text_view import render_texts
    from tests.conftest import random_actions
    from tests.reference_text import render_text

    for overrides in ({}, {"view_radius": 9, "width": 12, "height": 10}, {"text_max_chars": 150}):
        env = society_env.parallel_env("small", language=True, num_founders=12, **overrides)
        env.reset(seed=1)
        rng = np.random.default_rng(1)
        config = env.config
        compared = 0
        for _ in range(60):
            if not env.agents:
                break
            env.step(random_actions(env, rng))
            world = env.world
            slots = np.flatnonzero(world.status == 1)
            offsets = np.arange(-config.view_radius, config.view_radius + 1)
            rows = (world.position[slots, 0, None] + offsets) % config.height
            cols = (world.position[slots, 1, None] + offsets) % config.width
            occupant = world.occupant[rows[:, :, None], cols[:, None, :]]
            food = world.food[rows[:, :, None], cols[:, None, :]]
            fast = render_texts(world, config, slots)
            for k, slot in enumerate(slots.tolist()):
                assert fast[k] == render_text(world, config, slot, occupant[k], food[k])
                compared += 1
        assert compared > 100
