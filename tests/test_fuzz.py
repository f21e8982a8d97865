"""Property-based fuzzing of action sequences: no crash, energy bookkeeping conserved."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import society_env
from society_env.state import ALIVE

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
