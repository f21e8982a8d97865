"""Policies: assignment parsing, inheritance, valid actions on any observation, baselines beat random."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import society_env
from policies import POLICIES, PolicyAssignment, PolicySpecError, make_policy, parse_policy_spec
from policies.assignment import founder_counts
from policies.rollout import run_episode
from society_env.world.observations import NUM_CHANNELS, NUM_FEATURES


def test_policy_spec_parsing_and_founder_shares():
    assert parse_policy_spec("scripted:forager=10,random=10", POLICIES) == [("forager", 10.0), ("random", 10.0)]
    assert parse_policy_spec("raider", POLICIES) == [("raider", 1.0)]
    assert founder_counts([("a", 1), ("b", 1)], 5) == [3, 2]
    assert founder_counts([("a", 10), ("b", 10)], 20) == [10, 10]
    assert founder_counts([("a", 1), ("b", 2), ("c", 1)], 6) == [2, 3, 1]
    for bad in ("", "forager=", "forager=-1", "forager,forager", "llama=2"):
        with pytest.raises(PolicySpecError):
            parse_policy_spec(bad, POLICIES)


def test_assignment_blocks_and_inheritance():
    assignment = PolicyAssignment([("forager", 1), ("raider", 1)], 4)
    assert assignment.policy_of == {"agent_0": "forager", "agent_1": "forager", "agent_2": "raider", "agent_3": "raider"}
    assignment.update({"agent_4": {"born": "agent_2"}, "agent_0": {}})
    assert assignment.policy_of["agent_4"] == "raider"
    assert assignment.groups(["agent_4", "agent_0"]) == {"raider": ["agent_4"], "forager": ["agent_0"]}


CONFIGS = [society_env.make_config("small"), society_env.make_config("small", language=True, view_radius=2)]


def random_observation(config, draw):
    size = config.view_size
    view = np.zeros((size, size, NUM_CHANNELS), dtype=np.float32)
    cells = size * size
    view[..., 0] = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.3, 1.0, 5.0]), min_size=cells, max_size=cells))).reshape(size, size)
    agents = np.array(draw(st.lists(st.booleans(), min_size=cells, max_size=cells))).reshape(size, size)
    view[..., 1] = agents
    view[..., 2] = agents * np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=cells, max_size=cells))).reshape(size, size)
    view[..., 3] = agents * np.array(draw(st.lists(st.booleans(), min_size=cells, max_size=cells))).reshape(size, size)
    view[..., 4] = agents * np.array(draw(st.lists(st.integers(0, config.message_vocab_size - 1), min_size=cells, max_size=cells))).reshape(size, size)
    features = np.array([draw(st.floats(0.0, 6.0))] + [0.5] * (NUM_FEATURES - 1), dtype=np.float32)
    numeric = np.concatenate([view.ravel(), features])
    return {"observation": numeric, "text": ""} if config.language else numeric


@pytest.mark.parametrize("config", CONFIGS, ids=["numeric", "language"])
@pytest.mark.parametrize("name", ["random", "forager", "cooperator", "raider"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_policies_only_emit_valid_actions(config, name, data):
    policy = make_policy(name, config)
    policy.reset(data.draw(st.integers(0, 1000)))
    observations = {f"agent_{i}": random_observation(config, data.draw) for i in range(3)}
    actions = policy.act(observations, {a: {} for a in observations})
    space = society_env.SocietyEnv(config).action_space("agent_0")
    assert actions.keys() == observations.keys()
    for action in actions.values():
        assert space.contains(action)


def mean_return(preset, name, seeds=(0, 1)):
    config = society_env.make_config(preset)
    values = []
    for seed in seeds:
        assignment = PolicyAssignment([(name, 1.0)], config.num_founders)
        stats = run_episode(society_env.SocietyEnv(config), assignment, {name: make_policy(name, config)}, seed)
        values.append(stats.summary(assignment.policy_of)["per_policy"][name]["mean_lifespan"])
    return float(np.mean(values))


def test_scripted_foragers_outlive_random_agents():
    assert mean_return("small", "forager") > 1.2 * mean_return("small", "random")
