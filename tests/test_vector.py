"""SocietyVectorEnv: the same worlds as parallel_env, step for step, as arrays; its errors; and the
snippets of docs/world.md ("Many worlds as arrays")."""

import numpy as np
import pytest

import society_env
from society_env.world.vector import SocietyVectorEnv


def stacked(observations: dict, env) -> np.ndarray:
    return np.stack([observations[a] for a in env.possible_agents])


def by_slot(values: dict, env, key=None) -> np.ndarray:
    return np.array([values[a] if key is None else values[a][key] for a in env.possible_agents])


@pytest.mark.parametrize("preset", ["small", "default"])
def test_each_world_is_the_parallel_env_world_of_seed_plus_its_index_step_for_step(preset):
    worlds, seed = 3, 10
    settings = dict(max_steps=60, max_agents=120)
    vector = SocietyVectorEnv(worlds, preset, **settings)
    envs = [society_env.parallel_env(preset, fixed_slots=True, **settings) for _ in range(worlds)]
    observations, infos = vector.reset(seed=seed)
    assert observations.shape == (worlds, 120, vector.single_observation_space.shape[0])
    for e, env in enumerate(envs):
        obs, info = env.reset(seed=seed + e)
        assert np.array_equal(stacked(obs, env), observations[e])
        assert np.array_equal(by_slot(info, env, "alive"), infos["alive"][e])
    rng = np.random.default_rng(0)
    ends = births = deaths = 0
    for step in range(250):
        actions = rng.integers(0, vector.single_action_space.nvec, size=(worlds, 120, 4))
        before = infos["alive"].copy()
        observations, rewards, terminations, truncations, infos = vector.step(actions)
        for e, env in enumerate(envs):
            obs, rew, term, trunc, info = env.step({a: actions[e, k] for k, a in enumerate(env.possible_agents)})
            assert np.array_equal(by_slot(rew, env), rewards[e]), (step, e)
            assert np.array_equal(by_slot(term, env), terminations[e]) and np.array_equal(by_slot(trunc, env), truncations[e])
            if not env.agents:  # the episode ended: the vector env already reset this world
                assert infos["episode_ended"][e]
                ends += 1
                obs, info = env.reset()
            else:
                assert not infos["episode_ended"][e]
                births += int((~before[e] & infos["alive"][e]).sum())
                deaths += int((before[e] & ~infos["alive"][e]).sum())
            assert np.array_equal(stacked(obs, env), observations[e]), (step, e)
            for key in ("alive", "energy", "age"):
                assert np.array_equal(by_slot(info, env, key), infos[key][e]), (step, e, key)
            assert infos["episode_steps"][e] == env.world.step
    assert ends > 0 and births > 0 and deaths > 0  # resets, births and deaths were all exercised


def test_births_and_deaths_show_only_in_the_mask_and_the_dead_see_zeros():
    vector = SocietyVectorEnv(1, "small", max_steps=500)
    _, infos = vector.reset(seed=3)
    rng = np.random.default_rng(1)
    saw_death = saw_birth = False
    for _ in range(200):
        before = infos["alive"][0].copy()
        actions = rng.integers(0, vector.single_action_space.nvec, size=(1, vector.num_slots, 4))
        actions[..., 0] = rng.choice([0, 1, 2, 3, 4, 7], size=actions.shape[:2])  # moves, stays and births
        observations, _, terminations, _, infos = vector.step(actions)
        if infos["episode_ended"][0]:
            break
        alive = infos["alive"][0]
        assert not terminations.any()  # deaths are not terminations: only the end of a world is
        assert np.all(observations[0][~alive] == 0) and np.all(observations[0][alive].any(axis=1))
        saw_death |= bool((before & ~alive).any())
        saw_birth |= bool((~before & alive).any())
    assert saw_death and saw_birth


def test_reset_seeds_and_continues_like_parallel_env():
    a, b = SocietyVectorEnv(2, "small"), SocietyVectorEnv(2, "small")
    first, _ = a.reset(seed=5)
    first = first.copy()
    assert np.array_equal(first, b.reset(seed=5)[0])
    assert not np.array_equal(first[0], first[1])  # seed + e: the worlds differ
    second = a.reset()[0].copy()  # no seed: each world's generator goes on
    assert not np.array_equal(first, second)
    env = society_env.parallel_env("small", fixed_slots=True)
    env.reset(seed=6)
    assert np.array_equal(stacked(env.reset()[0], env), second[1])


def test_a_reseeded_env_steps_like_a_new_one():
    """reset(seed) after steps starts over from that seed: nothing of the old episodes (generators, the
    compiled step's arguments) carries over."""
    used, fresh = SocietyVectorEnv(2, "small", max_steps=4), SocietyVectorEnv(2, "small", max_steps=4)
    rng = np.random.default_rng(0)
    sizes = used.single_action_space.nvec
    used.reset(seed=1)
    for _ in range(6):  # across an automatic reset
        used.step(rng.integers(0, sizes, size=(2, used.num_slots, sizes.size)))
    assert np.array_equal(used.reset(seed=9)[0], fresh.reset(seed=9)[0])
    for _ in range(6):
        actions = rng.integers(0, sizes, size=(2, used.num_slots, sizes.size))
        a, b = used.step(actions), fresh.step(actions)
        assert all(np.array_equal(x, y) for x, y in zip(a[:4], b[:4]))


@pytest.mark.parametrize("copier", ["pickle", "deepcopy"])
def test_a_pickled_or_copied_env_steps_on_like_the_original(copier):
    """A copy (pickle, as multiprocessing and Ray send an env; or deepcopy) goes on with the same worlds and
    generators: the compiled step's generator addresses are rebuilt for the copy's own generators, so
    stepping the copy leaves the original's untouched."""
    import copy
    import pickle

    original = SocietyVectorEnv(2, "small")
    original.reset(seed=2)
    rng = np.random.default_rng(0)
    nvec = original.single_action_space.nvec
    original.step(rng.integers(0, nvec, size=(2, original.num_slots, nvec.size)))
    twin = pickle.loads(pickle.dumps(original)) if copier == "pickle" else copy.deepcopy(original)
    for _ in range(15):
        actions = rng.integers(0, nvec, size=(2, original.num_slots, nvec.size))
        twin_step = [x.copy() for x in twin.step(actions)[:4]]  # the copy first: it must not move the original
        for mine, theirs in zip(original.step(actions)[:4], twin_step):
            np.testing.assert_array_equal(mine, theirs)


def test_bad_actions_name_the_world_and_slot_and_change_nothing():
    vector = SocietyVectorEnv(2, "small")
    _, infos = vector.reset(seed=0)
    snapshot = [(w.energy.copy(), w.position.copy(), w.step) for w in vector.worlds]
    good = np.zeros((2, vector.num_slots, 4), dtype=np.int64)
    living = np.argwhere(infos["alive"])[-1]
    bad = good.copy()
    bad[living[0], living[1], 2] = 99
    with pytest.raises(ValueError, match=rf"world {living[0]}, slot {living[1]} .*amount out of range"):
        vector.step(bad)
    with pytest.raises(ValueError, match="shape"):
        vector.step(good[:, :-1])
    with pytest.raises(ValueError, match="integers"):
        vector.step(good.astype(float))
    for world, (energy, position, step) in zip(vector.worlds, snapshot):
        assert np.array_equal(world.energy, energy) and np.array_equal(world.position, position) and world.step == step
    dead = np.argwhere(~infos["alive"])[0]
    ignored = good.copy()
    ignored[dead[0], dead[1]] = -5  # rows of empty slots are not read
    vector.step(ignored)


def test_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="numeric view only"):
        SocietyVectorEnv(1, "core")
    with pytest.raises(ValueError, match="fixed slots"):
        SocietyVectorEnv(1, "small", fixed_slots=False)
    with pytest.raises(ValueError, match="num_envs"):
        SocietyVectorEnv(0)
    with pytest.raises(ValueError, match="unknown SocietyConfig field"):
        SocietyVectorEnv(1, "small", no_such_field=1)
    with pytest.raises(RuntimeError, match="reset"):
        SocietyVectorEnv(1, "small").step(np.zeros((1, 20, 4), dtype=np.int64))


def test_rl_loop_with_the_alive_mask():
    # --- docs/world.md: an RL loop over the alive mask ---
    from society_env.world.vector import SocietyVectorEnv

    envs = SocietyVectorEnv(num_envs=4, preset="small")
    observations, infos = envs.reset(seed=0)
    alive = infos["alive"].copy()                     # who acts in the next step
    rng = np.random.default_rng(0)
    returns, lives = 0.0, 0
    for _ in range(100):
        actions = rng.integers(0, envs.single_action_space.nvec, size=alive.shape + (4,))  # your policy here
        observations, rewards, terminations, truncations, infos = envs.step(actions)
        # A transition counts for the slots that were alive (``alive``). A life ended in it where the slot is
        # no longer alive, or where its world ended (and was reset: infos["alive"] is then the new episode's).
        ended = alive & (~infos["alive"] | infos["episode_ended"][:, None])
        returns += float(rewards[alive].sum())
        lives += int(ended.sum())
        alive = infos["alive"].copy()                 # copy: the env reuses its buffers
    # --- end of snippet ---
    assert lives > 0 and returns != 0.0


def test_gymnasium_vector_env_wrapper():
    # --- docs/world.md: as a Gymnasium vector env ---
    import gymnasium as gym
    from gymnasium.vector.utils import batch_space

    from society_env.world.vector import SocietyVectorEnv

    class SocietyGymVectorEnv(gym.vector.VectorEnv):
        """Every slot of every world is one Gymnasium sub-environment: num_envs = worlds x slots."""

        metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

        def __init__(self, worlds: int = 2, preset: str = "small", **overrides):
            self.society = SocietyVectorEnv(worlds, preset, **overrides)
            self.num_envs = worlds * self.society.num_slots
            self.single_observation_space = self.society.single_observation_space
            self.single_action_space = self.society.single_action_space
            self.observation_space = batch_space(self.single_observation_space, self.num_envs)
            self.action_space = batch_space(self.single_action_space, self.num_envs)

        def reset(self, *, seed=None, options=None):
            observations, infos = self.society.reset(seed=seed)
            return observations.reshape(self.num_envs, -1), {"alive": infos["alive"].reshape(-1)}

        def step(self, actions):
            shape = (self.society.num_envs, self.society.num_slots, -1)
            observations, rewards, terminations, truncations, infos = self.society.step(np.asarray(actions).reshape(shape))
            return (observations.reshape(self.num_envs, -1), rewards.reshape(-1), terminations.reshape(-1),
                    truncations.reshape(-1), {"alive": infos["alive"].reshape(-1)})

    envs = SocietyGymVectorEnv(worlds=2, preset="small")
    observations, infos = envs.reset(seed=0)
    observations, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    # --- end of snippet ---
    assert observations.shape == (envs.num_envs,) + envs.single_observation_space.shape
    assert envs.observation_space.contains(observations)
    assert rewards.shape == terminations.shape == infos["alive"].shape == (envs.num_envs,)
    assert infos["alive"].sum() > 0


def test_it_declares_and_does_same_step_autoreset():
    """Gymnasium's convention: ``metadata["autoreset_mode"]`` is SAME_STEP, and the step that ends a world
    returns that world's new episode (its founders alive, step 0) with the old episode's rewards."""
    from gymnasium.vector import AutoresetMode

    envs = SocietyVectorEnv(2, "small", max_steps=3)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=0)
    actions = np.zeros((2, envs.num_slots, 4), dtype=np.int64)
    for _ in range(3):
        observations, rewards, terminations, truncations, infos = envs.step(actions)
    assert infos["episode_ended"].all() and truncations.any(axis=1).all()
    assert (infos["alive"].sum(axis=1) == envs.config.num_founders).all()
    fresh = SocietyVectorEnv(2, "small", max_steps=3)
    first, _ = fresh.reset(seed=0)
    assert not np.array_equal(observations, first)  # a new episode from each world's generator, not a replay
    assert not observations[:, envs.config.num_founders:].any()  # only the founders are born yet
