"""PettingZoo's own API tests, on every preset and on the language and fixed-slot options."""

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test

import society_env

CASES = [
    ("small", {}, 1000),
    ("default", {}, 300),
    ("abundant", {}, 200),
    ("small", {"language": True}, 300),
    ("small", {"fixed_slots": True}, 200),
    ("small", {"language": True, "fixed_slots": True}, 100),
    ("large", {}, 3),
]


@pytest.mark.parametrize("preset,overrides,cycles", CASES)
def test_parallel_api(preset, overrides, cycles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(society_env.parallel_env(preset, **overrides), num_cycles=cycles)


@pytest.mark.parametrize("preset,overrides,cycles", [c for c in CASES if c[0] != "large"])
def test_aec_api(preset, overrides, cycles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(society_env.env(preset, **overrides), num_cycles=min(cycles, 200))


def test_raw_env_is_unwrapped_aec():
    aec = society_env.raw_env("small")
    aec.reset(seed=0)
    assert isinstance(aec.unwrapped, society_env.SocietyEnv)
    assert aec.agents == aec.unwrapped.agents


def test_aec_view_survives_a_child_born_in_the_last_step():
    # The child is reported truncated without ever having acted; PettingZoo's own wrapper raised KeyError.
    aec = society_env.env("small", max_steps=1, initial_energy=200, reproduce_min_energy=50)
    aec.reset(seed=0)
    reproduce = np.array([society_env.REPRODUCE, 0, 0, 0])
    founders = list(aec.agents)
    for agent in aec.agent_iter():
        done = aec.terminations[agent] or aec.truncations[agent]
        aec.step(None if done else reproduce)
    born = set(aec.unwrapped.possible_agents[:aec.unwrapped.world.num_born]) - set(founders)
    assert born and aec.agents == []
