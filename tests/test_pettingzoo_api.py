"""PettingZoo's own API tests, on every preset and on the language and fixed-slot options."""

import warnings

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
