"""num_threads: the observation loops split over threads write the same bytes as one thread, through the
array API and the PettingZoo API, across births, deaths and the torus's wrap."""

import numpy as np
import pytest

import society_env
from society_env.world.threads import PARALLEL_MIN_AGENTS
from society_env.world.vector import SocietyVectorEnv

BIG = dict(width=150, height=150, num_founders=8500, max_agents=10000, initial_food=6000, max_steps=40)
"""A world above PARALLEL_MIN_AGENTS living agents, so that num_threads > 1 takes the parallel loops."""


def _random_actions(rng, envs):
    sizes = envs.single_action_space.nvec
    return rng.integers(0, sizes, size=(envs.num_envs, envs.num_slots, sizes.size))


def test_any_thread_count_gives_the_same_arrays_step_for_step():
    one, two = SocietyVectorEnv(2, "default", num_threads=1, **BIG), SocietyVectorEnv(2, "default", num_threads=2, **BIG)
    first, _ = one.reset(seed=3)
    assert np.array_equal(first, two.reset(seed=3)[0])
    assert one._alive.sum(axis=1).min() >= PARALLEL_MIN_AGENTS
    rng = np.random.default_rng(0)
    for _ in range(12):
        actions = _random_actions(rng, one)
        a, b = one.step(actions), two.step(actions)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[4]["alive"], b[4]["alive"])
        for world_one, world_two in zip(one.worlds, two.worlds):  # one thread runs all in one compiled call
            assert np.array_equal(world_one.food, world_two.food)
        assert [r.bit_generator.state for r in one._rngs] == [r.bit_generator.state for r in two._rngs]
    assert one._alive.sum(axis=1).min() >= PARALLEL_MIN_AGENTS  # the parallel loops ran every step
    from society_env.world import kernels

    # the parallel twins themselves were called (not a serial function under their name: with cache=True,
    # both twins of one Python function shared numba's cache entry, and "parallel" ran serial code)
    parallel_twins = (kernels.gather_views_parallel, kernels.fill_grid_parallel, kernels.write_features_parallel)
    assert all(twin.signatures and twin.targetoptions.get("parallel") for twin in parallel_twins)


def test_parallel_env_observations_do_not_depend_on_threads():
    envs = [society_env.parallel_env("default", num_threads=n, **BIG) for n in (1, 2)]
    observations = [env.reset(seed=5)[0] for env in envs]
    for _ in range(5):
        actions = {agent: envs[0].action_space(agent).sample() for agent in envs[0].agents}
        observations = [env.step(actions)[0] for env in envs]
        assert observations[0].keys() == observations[1].keys()
        assert all(np.array_equal(observations[0][a], observations[1][a]) for a in observations[0])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_thread_count_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        SocietyVectorEnv(1, "small", num_threads=bad)
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        society_env.parallel_env("small", num_threads=bad)


# ---- the compact observation --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: a big world
def test_compact_observations_rebuild_the_float32_ones_exactly(dtype, threads):
    settings = dict(BIG, max_steps=15) if threads == 2 else dict(width=12, height=12, num_founders=30, max_agents=80,
                                                                 max_steps=15)
    exact = SocietyVectorEnv(2, "default", num_threads=1, **settings)
    compact = SocietyVectorEnv(2, "default", num_threads=threads, obs_dtype=dtype, **settings)
    reference, _ = exact.reset(seed=4)
    views, infos = compact.reset(seed=4)
    assert views.dtype == np.dtype(dtype) and views.shape[-1] == exact.single_observation_space.shape[0] - 12
    assert compact.single_observation_space.contains(views[0, 0])
    rng = np.random.default_rng(2)
    for step in range(20):  # across an automatic reset (max_steps 15)
        assert np.array_equal(compact.float_observations(), reference), f"step {step}"
        actions = _random_actions(rng, exact)
        reference, rewards, *_ , info = exact.step(actions)
        views, compact_rewards, *_, infos = compact.step(actions)
        assert np.array_equal(rewards, compact_rewards) and np.array_equal(info["alive"], infos["alive"])
    assert views.nbytes * 4 == exact._observations[..., :-12].nbytes * np.dtype(dtype).itemsize


def test_compact_food_and_energy_are_capped_at_the_dtype_maximum():
    from society_env.world.observations import ENERGY_CHANNEL, NUM_CHANNELS

    compact = SocietyVectorEnv(1, "small", obs_dtype="uint8", initial_energy=400, max_steps=5)
    views, _ = compact.reset(seed=0)
    energies = views[0].reshape(compact.num_slots, -1, NUM_CHANNELS)[..., ENERGY_CHANNEL]
    assert energies.max() == 255  # 400 energy units do not fit a byte: capped, as documented
    with pytest.raises(ValueError, match="obs_dtype must be"):
        SocietyVectorEnv(1, "small", obs_dtype="float16")


@pytest.mark.parametrize("threads, max_agents, loaded", [(2, PARALLEL_MIN_AGENTS, True), (2, PARALLEL_MIN_AGENTS - 1, False),
                                                         (1, 4 * PARALLEL_MIN_AGENTS, False)])
def test_reset_loads_the_parallel_loops_of_worlds_that_may_need_them(monkeypatch, threads, max_agents, loaded):
    """A world that may grow past PARALLEL_MIN_AGENTS runs the parallel loops once at reset (their compile or
    cache load then happens there, not in the step where the population first crosses the threshold)."""
    from society_env.world import observations

    calls = []
    gather = observations.gather_views_parallel
    monkeypatch.setattr(observations, "gather_views_parallel", lambda *args: calls.append(1) or gather(*args))
    settings = dict(width=60, height=60, num_founders=50, max_agents=max_agents)
    SocietyVectorEnv(1, "default", num_threads=threads, **settings).reset(seed=0)
    society_env.parallel_env("default", num_threads=threads, **settings).reset(seed=0)
    assert len(calls) == (2 if loaded else 0)


# ---- worlds side by side ------------------------------------------------------------------------
MID = dict(width=175, height=175, num_founders=1300, max_agents=2000, initial_food=5000, max_steps=6)
"""Worlds of more than WORLD_THREAD_MIN_AGENTS living agents and fewer than PARALLEL_MIN_AGENTS: two threads
step two of them side by side."""


def _run(envs, steps, seed=7):
    """Every step's observations, rewards, alive mask and episode ends, copied."""
    first, _ = envs.reset(seed=seed)
    rng, record = np.random.default_rng(seed), [first.copy()]
    for _ in range(steps):
        observations, rewards, terminations, truncations, infos = envs.step(_random_actions(rng, envs))
        record += [observations.copy(), rewards.copy(), infos["alive"].copy(), terminations | truncations]
    return record


def test_worlds_stepped_side_by_side_give_the_arrays_of_one_thread():
    from society_env.world.threads import WORLD_THREAD_MIN_AGENTS, world_threads

    one, two = SocietyVectorEnv(3, "default", num_threads=1, **MID), SocietyVectorEnv(3, "default", num_threads=2, **MID)
    steps = 9  # across the automatic reset after max_steps 6
    expected, got = _run(one, steps), _run(two, steps)
    assert two._pool is not None  # the worker thread stepped worlds
    assert world_threads(2, two._living) == 2 and min(two._living) > WORLD_THREAD_MIN_AGENTS
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert [r.bit_generator.state for r in one._rngs] == [r.bit_generator.state for r in two._rngs]


def test_small_worlds_and_big_ones_are_not_handed_to_worker_threads():
    from society_env.world.threads import PARALLEL_MIN_AGENTS, WORLD_THREAD_MIN_AGENTS, world_threads

    assert world_threads(2, [400, 400]) == 1  # a worker's wake-up costs more than half such a step
    assert world_threads(2, [WORLD_THREAD_MIN_AGENTS] * 2) == 2
    assert world_threads(4, [WORLD_THREAD_MIN_AGENTS] * 3) == 3  # no more threads than worlds
    assert world_threads(2, [PARALLEL_MIN_AGENTS, 10]) == 1  # a big world takes the parallel loops instead
    assert world_threads(1, [5000, 5000]) == 1 and world_threads(2, [5000]) == 1
    envs = SocietyVectorEnv(4, "small", num_threads=2)
    _run(envs, 3)
    assert envs._pool is None


def test_a_forked_child_steps_its_worlds_with_its_own_threads():
    """The worker threads do not survive a fork: the child starts its own, and steps as the parent does."""
    import multiprocessing

    envs = SocietyVectorEnv(2, "default", num_threads=2, **MID)
    _run(envs, 2)
    assert envs._pool is not None
    actions = _random_actions(np.random.default_rng(1), envs)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_step_and_send, args=(envs, actions, results), daemon=True)  # inherited
    child.start()
    observations = results.get(timeout=60)  # (a child waiting on threads it does not have would hang)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.array_equal(observations, envs.step(actions)[0])


def _step_and_send(envs, actions, results):
    inherited = envs._pool
    results.put(envs.step(actions)[0].copy())
    assert envs._pool is not inherited


def test_a_child_forked_after_the_parallel_loops_ran_steps_on_one_thread():
    """numba ends a forked child with SIGTERM at its first GNU OpenMP loop if the parent ran one: the child
    steps its big worlds on one thread instead (a warning says so), with the same arrays."""
    import multiprocessing

    import numba

    envs = SocietyVectorEnv(1, "default", num_threads=2, **BIG)
    envs.reset(seed=4)
    envs.step(_random_actions(np.random.default_rng(2), envs))  # the parallel loops run in this process
    actions = _random_actions(np.random.default_rng(3), envs)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_step_big_world_and_send, args=(actions, results), daemon=True)
    child.start()
    observations, warned = results.get(timeout=60)  # (a child killed by numba sends nothing)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert warned == (numba.threading_layer() == "omp")
    one = SocietyVectorEnv(1, "default", num_threads=1, **BIG)
    one.reset(seed=4)
    one.step(_random_actions(np.random.default_rng(2), one))
    assert np.array_equal(observations, one.step(actions)[0])


def _step_big_world_and_send(actions, results):
    import warnings

    envs = SocietyVectorEnv(1, "default", num_threads=2, **BIG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        envs.reset(seed=4)
        envs.step(_random_actions(np.random.default_rng(2), envs))
        observations = envs.step(actions)[0].copy()
    results.put((observations, any("forked" in str(w.message) for w in caught)))


def test_a_pickled_or_copied_env_steps_on_as_the_original():
    """What belongs to the process (generator addresses, the compiled entry, the worker threads) is rebuilt
    on the other side: the copies step on side by side, as the original does."""
    import copy
    import pickle

    envs = SocietyVectorEnv(2, "default", num_threads=2, **MID)
    _run(envs, 2)
    assert envs._pool is not None
    copies = [pickle.loads(pickle.dumps(envs)), copy.deepcopy(envs)]
    rng = np.random.default_rng(5)
    for _ in range(5):  # across the automatic reset after max_steps 6
        actions = _random_actions(rng, envs)
        expected = envs.step(actions)
        for other in copies:
            got = other.step(actions)
            assert all(np.array_equal(a, b) for a, b in zip(expected[:4], got[:4]))
            assert np.array_equal(expected[4]["alive"], got[4]["alive"])
    assert all(other._pool is not None and other._pool is not envs._pool for other in copies)
    assert all(np.array_equal(envs.worlds[e].food, other.worlds[e].food) for other in copies for e in range(2))
