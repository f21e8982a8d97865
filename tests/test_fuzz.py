"""Property-based fuzzing of action sequences: no crash, energy bookkeeping conserved, bad actions refused."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import society_env
from society_env.world.artifacts import NUM_ARTIFACT_KINDS, artifact_action
from society_env.world.state import ALIVE

CONFIG = society_env.make_config("small", num_founders=8, view_radius=2, transfer_amounts=(1, 5, 30))
NVEC = (8, CONFIG.view_size**2, len(CONFIG.transfer_amounts), CONFIG.message_vocab_size)
action_vector = st.tuples(*(st.integers(0, n - 1) for n in NVEC))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), plan=st.lists(st.lists(action_vector, min_size=1, max_size=64), min_size=1, max_size=40))
def test_random_action_sequences_conserve_energy(seed, plan):
    env = society_env.SocietyEnv(CONFIG)
    env.reset(seed=seed)
    for step_actions in plan:
        if not env.agents:
            break
        actions = {agent: np.array(step_actions[i % len(step_actions)], dtype=np.int64) for i, agent in enumerate(env.agents)}
        before = env.world
        alive_before = before.status == ALIVE
        total_before = int(before.energy[alive_before].sum())
        _, rewards, terminations, truncations, infos = env.step(actions)
        after, outcome = env.world, env.last_outcome

        gave = sum(a for info in infos.values() for _, a in info.get("gave", []))
        received = sum(a for info in infos.values() for _, a in info.get("received", []))
        took = sum(a for info in infos.values() for _, a in info.get("took", []))
        lost = sum(a for info in infos.values() for _, a in info.get("lost", []))
        assert gave == received and took == lost

        births = outcome.birth_child.size
        dead_energy = int(after.energy[outcome.death_slot].sum())
        alive_after = after.status == ALIVE
        expected = (total_before + int(outcome.ate.sum()) - CONFIG.energy_per_step * int(alive_before.sum())
                    - CONFIG.reproduce_cost * births + CONFIG.child_energy * births - dead_energy)
        assert int(after.energy[alive_after].sum()) == expected
        assert (after.energy[alive_after] > 0).all()
        assert (after.food >= 0).all()
        # one agent per cell, and the occupancy grid agrees with the positions
        cells = after.position[alive_after]
        assert len({tuple(c) for c in cells}) == len(cells)
        assert (after.occupant[cells[:, 0], cells[:, 1]] == np.flatnonzero(alive_after)).all()
        assert np.count_nonzero(after.occupant >= 0) == np.count_nonzero(alive_after)
        assert set(rewards) == set(terminations) == set(truncations) == set(infos)


ARTIFACT_CONFIG = society_env.make_config(
    "core", width=8, height=8, num_founders=10, initial_food=10, view_radius=2, artifact_max_total=6,
    artifact_max_per_cell=2, artifact_max_inventory=2, artifact_text_max_chars=8, artifact_name_max_chars=3,
    artifact_max_versions=3, artifact_lifespans=(2, 5, 0), artifact_create_cost=3,
)
artifact_entry = st.builds(
    artifact_action,
    kind=st.integers(0, NUM_ARTIFACT_KINDS - 1),
    name=st.sampled_from(["a", "b", "abcd", "", 'q"']),
    text=st.text(st.sampled_from("xy \n"), max_size=12),
    lifespan=st.integers(0, len(ARTIFACT_CONFIG.artifact_lifespans) - 1),
    target=st.integers(0, ARTIFACT_CONFIG.view_size**2 - 1),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1),
       plan=st.lists(st.lists(st.tuples(st.integers(0, 4), artifact_entry), min_size=1, max_size=16), min_size=1, max_size=40))
def test_random_artifact_actions_keep_every_cap(seed, plan):
    config = ARTIFACT_CONFIG
    env = society_env.SocietyEnv(config)
    env.reset(seed=seed)
    seen_ids: set[int] = set()
    for step_actions in plan:
        if not env.agents:
            break
        actions = {}
        for i, agent in enumerate(env.agents):
            move, artifact = step_actions[i % len(step_actions)]
            actions[agent] = {"action": np.array([move, 0, 0, 0]), "message": "", "artifact": artifact}
        alive_before = env.world.status == ALIVE
        total_before = int(env.world.energy[alive_before].sum())
        env.step(actions)
        world, outcome = env.world, env.last_outcome
        artifacts = list(world.artifacts.values())
        assert len(artifacts) <= config.artifact_max_total
        cells, inventories = {}, {}
        for a in artifacts:
            if a.holder >= 0:
                assert world.status[a.holder] == ALIVE and a.row == a.col == -1
                inventories[a.holder] = inventories.get(a.holder, 0) + 1
            else:
                cells[(a.row, a.col)] = cells.get((a.row, a.col), 0) + 1
            assert len(a.versions) <= config.artifact_max_versions and len(a.holders) <= config.artifact_max_versions
            assert all(len(text) <= config.artifact_text_max_chars for *_, text in a.versions)
            assert len(a.name) <= config.artifact_name_max_chars and '"' not in a.name
            assert a.versions[-1][0] == a.version and a.lifespan_left != 0
        assert max(cells.values(), default=0) <= config.artifact_max_per_cell
        assert max(inventories.values(), default=0) <= config.artifact_max_inventory
        created = [e["artifact"] for e in outcome.artifact_events if e["type"] == "artifact_created"]
        assert not seen_ids & set(created) and all(i < world.next_artifact_id for i in world.artifacts)
        seen_ids.update(created)
        # energy: creation costs are the only new flow
        births = outcome.birth_child.size
        expected = (total_before + int(outcome.ate.sum()) - config.energy_per_step * int(alive_before.sum())
                    - config.reproduce_cost * births + config.child_energy * births
                    - int(world.energy[outcome.death_slot].sum()) - config.artifact_create_cost * len(created))
        assert int(world.energy[world.status == ALIVE].sum()) == expected


# ---------------------------------------------------------------------------------------------
# endurance: >= 100k random actions, language and artifacts included, bad ones mixed in
# ---------------------------------------------------------------------------------------------
SOAK_CONFIG = society_env.make_config(
    "core", width=14, height=14, num_founders=24, max_agents=400, initial_food=40, view_radius=2,
    artifact_max_total=20, artifact_lifespans=(3, 20, 0), max_steps=5000)


def _random_action(rng, config):
    kind = int(rng.integers(0, 8))
    vector = np.array([kind, rng.integers(0, config.view_size**2), rng.integers(0, len(config.transfer_amounts)),
                       rng.integers(0, config.message_vocab_size)], dtype=np.int64)
    action = {"action": vector, "message": "".join(rng.choice(list("ab z!?"), size=int(rng.integers(0, 12))))}
    if rng.random() < 0.3:
        action["artifact"] = artifact_action(int(rng.integers(0, NUM_ARTIFACT_KINDS)), name=str(rng.choice(["a", "map", ""])),
                                             text="note " * int(rng.integers(0, 4)),
                                             lifespan=int(rng.integers(0, len(config.artifact_lifespans))),
                                             target=int(rng.integers(0, config.view_size**2)))
    return action


def _bad_action(rng, config):
    """An action the env must refuse: out-of-range entries, wrong shapes, types and texts."""
    choices = [
        {"action": np.array([8, 0, 0, 0]), "message": ""},                      # unknown kind
        {"action": np.array([0, config.view_size**2, 0, 0]), "message": ""},    # target outside the view
        {"action": np.array([1, 0, 0]), "message": ""},                         # wrong length
        {"action": np.array([1, 0, 0, 0]), "message": "\x07bell"},             # not printable
        {"action": np.array([1, 0, 0, 0]), "message": "x" * (config.message_max_chars + 1)},
        {"action": np.array([1, 0, 0, 0])},                                      # no message
        {"action": np.array([1, 0, 0, 0]), "message": "", "artifact": {"kind": 99}},
        "north",
    ]
    return choices[int(rng.integers(0, len(choices)))]


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_soak_100k_random_actions_no_crash_energy_conserved_bad_actions_refused_unchanged(seed):
    config = SOAK_CONFIG
    rng = np.random.default_rng(seed)
    env = society_env.SocietyEnv(config)
    env.reset(seed=seed)
    actions_driven = refused = 0
    while actions_driven < 100_000 // 8:
        if not env.agents:
            env.reset(seed=int(rng.integers(2**31)))
        actions = {agent: _random_action(rng, config) for agent in env.agents}
        if rng.random() < 0.1:  # slip one bad action in: refused, naming the agent, and nothing changes
            victim = env.agents[int(rng.integers(len(env.agents)))]
            before = env.state_dict()
            with pytest.raises(ValueError, match=victim):
                env.step({**actions, victim: _bad_action(rng, config)})
            assert _same(env.state_dict(), before)
            refused += 1
        alive_before = env.world.status == ALIVE
        total_before = int(env.world.energy[alive_before].sum())
        env.step(actions)
        actions_driven += len(actions)
        world, outcome = env.world, env.last_outcome
        births = outcome.birth_child.size
        created = sum(e["type"] == "artifact_created" for e in outcome.artifact_events)
        expected = (total_before + int(outcome.ate.sum()) - config.energy_per_step * int(alive_before.sum())
                    - config.reproduce_cost * births + config.child_energy * births
                    - int(world.energy[outcome.death_slot].sum()) - config.artifact_create_cost * created)
        assert int(world.energy[world.status == ALIVE].sum()) == expected
    assert refused > 0
