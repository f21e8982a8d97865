"""Behaviour of the env shell and of individual rules on small hand-built situations."""

import weakref

import numpy as np
import pytest

import society_env
from society_env import GIVE, NORTH, REPRODUCE, STAY, TAKE, view_cell_index
from society_env.world.state import DEAD
from tests.conftest import random_actions


def stay(env):
    return {a: np.zeros(4, dtype=np.int64) for a in env.agents}


def place(env, slot: int, row: int, col: int) -> None:
    """Move agent ``slot`` to (row, col) in the env's state (test set-up only)."""
    world = env.world
    world.occupant[tuple(world.position[slot])] = -1
    world.position[slot] = (row, col)
    world.occupant[row, col] = slot


def test_unknown_config_field_and_preset_are_rejected_with_a_clear_error():
    with pytest.raises(ValueError, match="unknown SocietyConfig field.*widht"):
        society_env.parallel_env(widht=10)
    with pytest.raises(ValueError, match="unknown preset 'tiny'"):
        society_env.parallel_env("tiny")
    with pytest.raises(ValueError, match="num_founders"):
        society_env.parallel_env("small", num_founders=10_000)


def test_spaces_are_cached_and_shared():
    env = society_env.parallel_env("small")
    a, b = env.possible_agents[:2]
    assert env.observation_space(a) is env.observation_space(a)
    assert env.action_space(a) is env.action_space(b)


def test_births_take_fresh_ids_and_the_dead_leave_agents():
    env = society_env.parallel_env("small", lifespan=30)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ever = set(env.agents)
    founders = env.config.num_founders
    assert env.agents == [f"agent_{i}" for i in range(founders)]
    next_id = founders
    births = deaths = 0
    while env.agents:
        before = set(env.agents)
        _, _, terminations, truncations, infos = env.step(random_actions(env, rng))
        for agent, info in infos.items():
            if "born" in info:
                assert agent not in ever, "ids are never reused"
                assert agent == f"agent_{next_id}", "births take the next id"
                next_id += 1
                births += 1
                ever.add(agent)
            if terminations[agent]:
                assert agent in before and agent not in env.agents
                assert "died" in info
                deaths += 1
    assert births > 0 and deaths > 0


def test_rejected_action_leaves_state_untouched():
    env = society_env.parallel_env("small")
    env.reset(seed=1)
    snapshot = env.world.copy()
    rng_state = env._rng.bit_generator.state
    agent = env.agents[0]
    bad_actions = [
        {agent: np.array([9, 0, 0, 0])},  # kind out of range
        {agent: np.array([0, 0, 0])},  # wrong shape
        {agent: np.array([0.5, 0, 0, 0])},  # wrong type
        {agent: "north"},
        {"agent_999": np.zeros(4, dtype=np.int64)},  # unknown
        {env.possible_agents[-1]: np.zeros(4, dtype=np.int64)},  # not born yet
    ]
    for actions in bad_actions:
        with pytest.raises(ValueError, match="agent"):
            env.step({**stay(env), **actions})
    assert env._rng.bit_generator.state == rng_state
    for field in ("energy", "position", "status", "food", "occupant", "age"):
        assert np.array_equal(getattr(env.world, field), getattr(snapshot, field))
    assert env.world.step == snapshot.step


def test_dead_agent_cannot_act():
    env = society_env.parallel_env("small", initial_energy=1, num_founders=2)
    env.reset(seed=0)
    _, _, terminations, *_ = env.step(stay(env))
    assert all(terminations.values()) and env.agents == []
    env2 = society_env.parallel_env("small", num_founders=2)
    env2.reset(seed=0)
    env2.world.energy[0] = 1
    env2.step(stay(env2))
    with pytest.raises(ValueError, match="agent_0.*dead"):
        env2.step({"agent_0": np.zeros(4, dtype=np.int64)})


def test_give_and_take_between_neighbours_and_rewards():
    env = society_env.parallel_env("small", num_founders=2, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=0)
    place(env, 0, 5, 5)
    place(env, 1, 5, 6)  # east of agent_0
    east = view_cell_index(env.config, 0, 1)
    amount_10 = env.config.transfer_amounts.index(10)
    _, rewards, _, _, infos = env.step({"agent_0": np.array([GIVE, east, amount_10, 0]), "agent_1": np.zeros(4, np.int64)})
    assert env.world.energy[0] == 50 - 10 - 1 and env.world.energy[1] == 50 + 10 - 1
    assert rewards == {"agent_0": 5.0, "agent_1": 10.0}
    assert infos["agent_0"]["gave"] == [("agent_1", 10)] and infos["agent_1"]["received"] == [("agent_0", 10)]
    west = view_cell_index(env.config, 0, -1)
    amount_5 = env.config.transfer_amounts.index(5)
    _, rewards, _, _, infos = env.step({"agent_0": np.zeros(4, np.int64), "agent_1": np.array([TAKE, west, amount_5, 0])})
    assert rewards == {"agent_0": -10.0, "agent_1": 5.0}
    assert infos["agent_1"]["took"] == [("agent_0", 5)]


def test_take_is_capped_by_what_exists_and_two_takers_share_in_rank_order():
    env = society_env.parallel_env("small", num_founders=3, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=4)
    place(env, 0, 5, 5)
    place(env, 1, 5, 6)
    place(env, 2, 5, 4)
    env.world.energy[0] = 25
    amount_20 = env.config.transfer_amounts.index(20)
    env.step({
        "agent_0": np.zeros(4, np.int64),
        "agent_1": np.array([TAKE, view_cell_index(env.config, 0, -1), amount_20, 0]),
        "agent_2": np.array([TAKE, view_cell_index(env.config, 0, 1), amount_20, 0]),
    })
    taken = sorted([env.world.energy[1] - 49, env.world.energy[2] - 49])
    assert taken == [5, 20]  # 25 available: the first in rank order gets 20, the other the rest
    assert env.world.status[0] == DEAD  # 0 energy left, minus the step cost


def test_blocked_move_and_conflict():
    env = society_env.parallel_env("small", num_founders=3, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=2)
    place(env, 0, 5, 5)
    place(env, 1, 4, 5)  # north of agent_0
    place(env, 2, 3, 4)
    north = np.array([NORTH, 0, 0, 0])
    east = np.array([4, 0, 0, 0])
    # agent_0 moves into agent_1's cell: blocked (cells must be empty at the start of the move phase)
    # agent_1 and agent_2 both claim (3, 5): exactly one wins
    _, rewards, _, _, infos = env.step({"agent_0": north, "agent_1": north, "agent_2": east})
    assert infos["agent_0"].get("blocked") and tuple(env.world.position[0]) == (5, 5)
    winners = [s for s in (1, 2) if tuple(env.world.position[s]) == (3, 5)]
    assert len(winners) == 1
    assert rewards["agent_0"] == -0.5


def test_movement_wraps_on_the_torus():
    env = society_env.parallel_env("small", num_founders=1, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=0)
    place(env, 0, 0, 0)
    env.step({"agent_0": np.array([NORTH, 0, 0, 0])})
    assert tuple(env.world.position[0]) == (env.config.height - 1, 0)


def test_eating_starvation_old_age_and_corpse_food():
    env = society_env.parallel_env("small", num_founders=2, initial_food=0, food_regrowth_rate=0.0, food_decay_prob=0.0)
    env.reset(seed=0)
    place(env, 0, 2, 2)
    place(env, 1, 8, 8)
    env.world.food[1, 2] = 10
    _, rewards, _, _, infos = env.step({"agent_0": np.array([NORTH, 0, 0, 0]), "agent_1": np.zeros(4, np.int64)})
    assert infos["agent_0"]["ate"] == 10 and rewards["agent_0"] == 10.0
    assert env.world.energy[0] == 59 and env.world.food[1, 2] == 0
    env.world.energy[1] = 1
    env.world.age[0] = env.config.lifespan - 1
    _, rewards, terminations, _, infos = env.step(stay(env))
    assert infos["agent_1"]["died"] == "starvation" and infos["agent_0"]["died"] == "old_age"
    assert terminations == {"agent_0": True, "agent_1": True}
    assert rewards["agent_1"] == -100.0
    assert env.world.food[1, 2] == 58  # corpse with 58 energy left
    assert env.world.food[8, 8] == 10  # starved corpse: food_value
    assert env.agents == []


def test_reproduction_creates_a_mutated_child_next_to_the_parent():
    env = society_env.parallel_env("small", num_founders=1, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=3)
    env.world.energy[0] = 100
    _, rewards, _, _, infos = env.step({"agent_0": np.array([REPRODUCE, 0, 0, 0])})
    assert infos["agent_0"]["children"] == ["agent_1"] and infos["agent_1"]["born"] == "agent_0"
    assert env.agents == ["agent_0", "agent_1"]
    world = env.world
    assert world.energy[0] == 100 - 50 - 1 and world.energy[1] == 50
    gap = np.abs(world.position[0] - world.position[1])
    gap = np.minimum(gap, (env.config.height, env.config.width) - gap)
    assert gap.max() == 1
    assert world.lineage[1] == 0 and world.parent[1] == 0 and world.generation[1] == 1
    assert not np.array_equal(world.genome[0], world.genome[1])
    assert (world.genome[1, :7] >= -1).all() and (world.genome[1, :7] <= 1).all() and 0.5 <= world.genome[1, 7] <= 1
    _, _, _, _, infos = env.step({"agent_0": np.array([REPRODUCE, 0, 0, 0]), "agent_1": np.zeros(4, np.int64)})
    assert infos["agent_0"]["failed"] == "not_enough_energy"


def test_population_pool_full_blocks_births():
    env = society_env.parallel_env("small", num_founders=2, max_agents=2)
    env.reset(seed=0)
    env.world.energy[0] = 200
    _, _, _, _, infos = env.step({"agent_0": np.array([REPRODUCE, 0, 0, 0]), "agent_1": np.zeros(4, np.int64)})
    assert infos["agent_0"]["failed"] == "population_pool_full"


def test_messages_are_heard_through_the_view():
    env = society_env.parallel_env("small", num_founders=3, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=0)
    place(env, 0, 5, 5)
    place(env, 1, 5, 7)
    place(env, 2, 12, 12)  # far away: outside agent_0's view (radius 4)
    obs, *_ = env.step({"agent_0": np.zeros(4, np.int64), "agent_1": np.array([STAY, 0, 0, 3]), "agent_2": np.array([STAY, 0, 0, 5])})
    view, _ = society_env.split_observation(obs["agent_0"], env.config)
    r = env.config.view_radius
    assert view[r, r + 2, 4] == 3  # message channel at agent_1's cell
    assert set(np.unique(view[..., 4])) == {0, 3}  # agent_2 is not heard


def test_step_limit_truncates_everyone():
    env = society_env.parallel_env("small", max_steps=5)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminations, truncations, _ = env.step(stay(env))
    assert all(truncations[a] for a, t in terminations.items() if not t)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_state_and_renders():
    env = society_env.parallel_env("small", render_mode="rgb_array")
    env.reset(seed=0)
    state = env.state()
    assert state.shape == (16, 16, 4) and state[..., 1].sum() == len(env.agents)
    assert state[..., 0].sum() == env.world.food.sum()
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 3  # background, food and agents are visible
    text_env = society_env.parallel_env("small", render_mode="ansi")
    text_env.reset(seed=0)
    grid = text_env.render().splitlines()
    assert len(grid) == 17 and all(len(line) == 16 for line in grid[1:])
    assert sum(ch.isalpha() for line in grid[1:] for ch in line) == len(text_env.agents)


def test_agents_without_an_action_stay_but_still_age_and_pay():
    env = society_env.parallel_env("small", num_founders=2, initial_food=0, food_regrowth_rate=0.0)
    env.reset(seed=0)
    position = tuple(env.world.position[1])
    env.step({"agent_0": np.array([NORTH, 0, 0, 0])})
    assert env.world.age[1] == 1 and env.world.energy[1] == 49
    assert tuple(env.world.position[1]) == position


def test_observations_the_caller_holds_are_never_overwritten_and_released_memory_is_reused():
    env = society_env.parallel_env("small")
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    held, copies, reused = [], [], 0
    for step in range(40):
        earlier = [weakref.ref(b) for b in env._scratch.get("observations", [])]  # weak: no reference kept
        observations = env.step({a: rng.integers(0, env.action_space(a).nvec) for a in env.agents})[0]
        reused += any(ref() is env._scratch["observations"][0] for ref in earlier)
        if step % 4 == 0:  # keep one observation of this step (a view keeps the whole array alive)
            agent = next(iter(observations))
            held.append(observations[agent])
            copies.append(observations[agent].copy())
    assert all(np.array_equal(a, b) for a, b in zip(held, copies))
    assert reused >= 10  # steps whose observations nobody kept gave their memory to later steps
