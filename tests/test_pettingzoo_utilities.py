"""Every PettingZoo test utility that applies (api, parallel api, seed, parallel seed, max_cycles, render,
state), on every preset, through the versioned module ``society_env.society_v2``."""

import functools
import importlib
import types
import warnings

import pytest
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
    seed_test,
    state_test,
)

import society_env
from society_env import society_v2

# Cycles per utility and preset: enough to see births and deaths in the small worlds, few in the crowded
# one (2000 founders, where AEC cycles cost 2000 agent turns each).
CYCLES = {preset: 30 for preset in society_env.PRESETS}
CYCLES.update(small=100, default=60, forage=8, large=2)
PRESETS = sorted(society_env.PRESETS)


def quiet(test):
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return test(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("preset", PRESETS)
@quiet
def test_api_and_parallel_api(preset):
    parallel_api_test(society_v2.parallel_env(preset), num_cycles=CYCLES[preset])
    if preset != "large":
        api_test(society_v2.env(preset), num_cycles=CYCLES[preset])


@pytest.mark.parametrize("preset", PRESETS)
@quiet
def test_seed_and_parallel_seed(preset):
    cycles = min(CYCLES[preset], 20)
    if preset != "large":
        seed_test(functools.partial(society_v2.env, preset), num_cycles=cycles)
    parallel_seed_test(functools.partial(society_v2.parallel_env, preset), num_cycles=cycles)


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "large"])
@quiet
def test_max_cycles_is_an_alias_of_max_steps(preset):
    # The utility takes the median of the turns of *all possible* agents, so it presumes that most of them
    # live: no room for children here (max_agents = the founders), else the never-born slots count 0.
    founders = society_env.make_config(preset).num_founders
    module = types.SimpleNamespace(
        parallel_env=functools.partial(society_v2.parallel_env, preset, max_agents=founders),
        env=functools.partial(society_v2.env, preset, max_agents=founders))
    max_cycles_test(module)
    assert society_v2.parallel_env(preset, max_cycles=7).config.max_steps == 7
    with pytest.raises(ValueError, match="max_cycles=7 and max_steps=8 disagree"):
        society_env.make_config(preset, max_cycles=7, max_steps=8)


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "large"])
@quiet
def test_render_in_every_mode(preset, capsys):
    render_test(functools.partial(society_v2.env, preset, max_steps=10))
    height = society_env.make_config(preset).height
    # human mode printed a frame after the reset and at each of the test's five render() calls
    assert len(capsys.readouterr().out.splitlines()) >= 6 * height


@pytest.mark.parametrize("preset", PRESETS)
@quiet
def test_state(preset):
    state_test(society_v2.env(preset) if preset != "large" else society_v2.env("small"),
               society_v2.parallel_env(preset), num_cycles=min(CYCLES[preset], 10))


def test_metadata_name_matches_the_documented_version():
    from society_env.world import env as env_module

    assert callable(society_env.env) and env_module is not society_env.env  # the function no longer shadows a module

    env = society_v2.parallel_env()
    assert env.metadata["name"] == "society_v2" and "* v2" in env_module.__doc__
    assert "* v3" not in env_module.__doc__  # bump the module and the name together
    assert set(env.metadata["render_modes"]) == {"human", "ansi", "rgb_array"}
    assert society_v2.parallel_env is society_env.parallel_env


def test_the_superseded_version_names_its_successor():
    with pytest.raises(ImportError, match="society_v2"):
        importlib.import_module("society_env.society_v1")


def test_the_env_docstring_names_every_preset_and_each_version_once():
    """The env's docstring (what ``help(society_env.parallel_env)`` readers see) lists every preset
    ``make_config`` accepts, and its version history has one entry per version."""
    import re

    from society_env.world.config import PRESETS

    from society_env.world import env as env_module

    doc = env_module.__doc__
    arguments = doc.split("## Arguments", 1)[1].split("##", 1)[0]
    assert [p for p in PRESETS if f"``{p}``" not in arguments] == []
    history = doc.split("## Version History", 1)[1]
    versions = re.findall(r"^\* (v\d+)", history, re.M)
    assert len(versions) == len(set(versions)) and versions[-1] == "v" + society_env.SocietyEnv.metadata["name"].rsplit("_v", 1)[1]


def test_pettingzoo_make_builds_the_registered_world():
    """``pettingzoo.make`` after ``import society_env`` gives the world ``society_v2`` gives, with its
    keyword arguments and ``max_cycles``: the same observations for the same seed."""
    import numpy as np
    import pettingzoo

    made = pettingzoo.make("parallel", society_env.ENV_ID, preset="small", max_cycles=7)
    direct = society_v2.parallel_env("small", max_cycles=7)
    assert isinstance(made, society_env.SocietyEnv) and made.config == direct.config
    for (a, _), (b, _) in [(made.reset(seed=3), direct.reset(seed=3))]:
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    aec = pettingzoo.make("aec", society_env.ENV_ID, preset="small")
    aec.reset(seed=3)
    assert aec.agents == direct.agents
    with pytest.raises(Exception, match="society-v1|not found|No registered"):
        pettingzoo.make("parallel", "society/society-v1")
