"""The numeric observation equals its definition, written with plain NumPy: the wrap-padded channel grid's
window around the agent (food / food_value, presence, energy / initial_energy, same family, message
token, artifacts), then the 12 own-state features. Checked for every living agent through both APIs and
both thread counts, on worlds where families, messages and the torus' wrap all show."""

import numpy as np
import pytest

import society_env
from society_env.world.observations import KIN_CHANNEL, channel_grid, split_observation, wrap_pad
from society_env.world.state import ALIVE
from society_env.world.vector import SocietyVectorEnv


def expected_observation(world, config, slot: int) -> np.ndarray:
    r, size = config.view_radius, config.view_size
    padded = wrap_pad(channel_grid(world, config), r)
    row, col = world.position[slot]
    view = padded[row : row + size, col : col + size].copy()
    lineage = np.where(world.occupant >= 0, world.lineage[world.occupant], -2)
    view[..., KIN_CHANNEL] = wrap_pad(lineage, r)[row : row + size, col : col + size] == world.lineage[slot]
    features = np.concatenate([[world.energy[slot] / config.initial_energy, world.age[slot] / config.lifespan,
                                row / config.height, col / config.width], world.genome[slot]])
    return np.concatenate([view.ravel(), features]).astype(np.float32)


def play(env_step, steps, rng, nvec, shape):
    for _ in range(steps):
        env_step(rng.integers(0, nvec, size=shape))


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: a big world
def test_parallel_env_observations_match_their_definition(threads):
    # a 100x100 torus, 8300 founders (more than PARALLEL_MIN_AGENTS: the threaded loops run with 2 threads)
    env = society_env.parallel_env("default", width=100, height=100, num_founders=8300, max_agents=9000,
                                   num_threads=threads, message_vocab_size=4)
    observations, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    kin_seen = 0
    for step in range(4):
        for agent, observation in observations.items():
            expected = expected_observation(env.world, env.config, int(agent.split("_")[1]))
            np.testing.assert_array_equal(observation, expected, err_msg=f"{agent} at step {step}")
            kin_seen += split_observation(observation, env.config)[0][..., KIN_CHANNEL].sum() > 1
        nvec = env.action_space(env.agents[0]).nvec
        actions = dict(zip(env.agents, rng.integers(0, nvec, size=(len(env.agents), nvec.size))))
        observations = env.step(actions)[0]
    assert kin_seen > 0  # children were born beside their parents: agents saw family besides themselves


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("side", [None, 5])  # None: the small preset's grid; 5: the view wraps twice around the torus
def test_vector_env_observations_match_their_definition(dtype, side):
    grid = {} if side is None else {"width": side, "height": side + 2, "num_founders": 8}
    envs = SocietyVectorEnv(2, "small", obs_dtype=dtype, **{"num_founders": 30, "max_agents": 80, **grid})
    envs.reset(seed=3)
    rng = np.random.default_rng(1)
    nvec = envs.single_action_space.nvec
    for _ in range(25):
        observations = envs.float_observations()
        for e, world in enumerate(envs.worlds):
            for slot in np.flatnonzero(world.status == ALIVE):
                np.testing.assert_array_equal(observations[e, slot], expected_observation(world, envs.config, slot))
            assert not observations[e, world.status != ALIVE].any()  # the dead and unborn see nothing
        envs.step(rng.integers(0, nvec, size=(2, envs.num_slots, nvec.size)))


@pytest.mark.parametrize("families", [1, 3, 400])
def test_kin_channel_for_families_of_any_size(families):
    """Small families mark their members' cells one by one, big ones (more than FAMILY_SCAN_LIMIT living
    agents) compare the window's cells: both give the definition's kin channel."""
    from society_env.world.kernels import FAMILY_SCAN_LIMIT
    from society_env.world.observations import observation_scratch, observation_size, write_observations

    env = society_env.parallel_env("default", width=40, height=40, num_founders=500, max_agents=600)
    env.reset(seed=2)
    world, config = env.world, env.config
    living = np.flatnonzero(world.status == ALIVE)
    world.lineage[living] = living % families  # lineages are founder slots: here 1, 3 or 400 families
    assert (np.bincount(world.lineage[living]).max() > FAMILY_SCAN_LIMIT) == (families < 400)
    out = np.zeros((living.size, observation_size(config)), dtype=np.float32)
    write_observations(world, config, living, out, np.arange(living.size), observation_scratch(config))
    for k, slot in enumerate(living):
        np.testing.assert_array_equal(out[k], expected_observation(world, config, slot), err_msg=f"agent_{slot}")


@pytest.mark.parametrize("by_position", [False, True])
def test_either_visiting_order_writes_the_definition(by_position):
    """Agents' views are gathered in slot order on small grids and in position order on grids bigger than
    the caches (``observations.SLOT_ORDER_MAX_GRID_BYTES``): both orders write the definition, into the
    rows asked for (here reversed), with artifacts lying on the grid."""
    from society_env.world.observations import observation_scratch, observation_size, write_observations

    from society_env.world.artifacts import artifact_action

    env = society_env.parallel_env("core", width=12, height=12, num_founders=20, max_steps=1000, view_radius=3)
    env.reset(seed=4)
    rng = np.random.default_rng(2)
    for step in range(3):  # every agent creates an artifact on its cell, and some walk on
        env.step({agent: {"action": np.array([rng.integers(0, 5), 0, 0, 0]), "message": "",
                          "artifact": artifact_action("create", name=f"{agent}-{step}", text="x", lifespan=3)}
                  for agent in env.agents})
    world, config = env.world, env.config
    assert len(world.artifacts) > 10
    scratch = observation_scratch(config)
    scratch = scratch._replace(spec=scratch.spec._replace(by_position=by_position))
    living = np.flatnonzero(world.status == ALIVE)
    rng.shuffle(living)  # not in slot order, nor in position order
    rows = np.arange(living.size)[::-1].copy()
    out = np.zeros((living.size, observation_size(config)), dtype=np.float32)
    write_observations(world, config, living, out, rows, scratch)
    for k, slot in enumerate(living):
        np.testing.assert_array_equal(out[rows[k]], expected_observation(world, config, slot), err_msg=f"agent_{slot}")


def test_torus_wrap_is_the_modulo():
    """``kernels.wrap``, the division-free modulo of moves, births, give/take and kin marks."""
    from society_env.world.kernels import wrap

    for n in (1, 2, 7, 50):
        for x in range(-3 * n - 2, 3 * n + 3):
            assert wrap(x, n) == x % n, (x, n)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
def test_copy_run_copies_exactly_the_run(dtype):
    """``kernels.copy_run``, the view gather's copy of a window row (64-byte blocks, the last overlapping):
    every length and offset copies the run and touches nothing around it."""
    from numba import njit

    from society_env.world.kernels import copy_run

    @njit
    def copy(target, target_start, source, source_start, count):
        copy_run(target, target_start, source, source_start, count)

    rng = np.random.default_rng(0)
    source = rng.integers(1, 200, 400).astype(dtype)
    for count in range(0, 140):
        for source_start, target_start in ((0, 0), (3, 7), (61, 1)):
            target = np.zeros(400, dtype=dtype)
            copy(target, target_start, source, source_start, count)
            expected = np.zeros(400, dtype=dtype)
            expected[target_start : target_start + count] = source[source_start : source_start + count]
            np.testing.assert_array_equal(target, expected, err_msg=f"count {count}, at {source_start} -> {target_start}")
