"""A slow, obviously-correct reference of one world step: plain Python, one agent at a time.

It follows the rules as docs/world.md states them and draws from the generator with the same calls
in the same order as ``society_env.world.rules``, so the vectorised rules must match it exactly.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from society_env.world.config import SocietyConfig
from society_env.world.state import ALIVE, DEAD, SPAWN_ROUNDS, WorldState

MOVES = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}
NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@dataclass
class Agent:
    status: int
    row: int
    col: int
    energy: int
    age: int
    genome: list[float]
    parent: int
    lineage: int
    generation: int
    birth_step: int
    message: int


@dataclass
class RefWorld:
    step: int
    agents: dict[int, Agent]  # every slot ever used
    food: dict[tuple[int, int], int]  # only cells with food
    density: np.ndarray
    max_agents: int
    events: dict = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: WorldState) -> "RefWorld":
        agents = {}
        for slot in range(state.num_born):
            agents[slot] = Agent(
                int(state.status[slot]), int(state.position[slot, 0]), int(state.position[slot, 1]),
                int(state.energy[slot]), int(state.age[slot]), [float(g) for g in state.genome[slot]],
                int(state.parent[slot]), int(state.lineage[slot]), int(state.generation[slot]),
                int(state.birth_step[slot]), int(state.message[slot]),
            )
        h, w = state.food.shape
        food = {(r, c): int(state.food[r, c]) for r in range(h) for c in range(w) if state.food[r, c] > 0}
        return cls(state.step, agents, food, state.food_density, state.status.shape[0])

    def occupant_map(self) -> dict[tuple[int, int], int]:
        return {(a.row, a.col): slot for slot, a in self.agents.items() if a.status == ALIVE}


def reference_step(world: RefWorld, actions: dict[int, tuple[int, int, int, int]], config: SocietyConfig,
                   rng: np.random.Generator) -> tuple[RefWorld, dict[int, float], dict]:
    """Mutates and returns ``world``; ``actions`` maps slot -> (kind, target, amount, message)."""
    h, w, r = config.height, config.width, config.view_radius
    shaped = config.reward_mode == "shaped"
    rewards: dict[int, float] = {}

    def reward(slot: int, value: float) -> None:
        rewards[slot] = rewards.get(slot, 0.0) + value

    living = [slot for slot in sorted(world.agents) if world.agents[slot].status == ALIVE]
    permutation = rng.permutation(len(living))
    rank = {living[int(permutation[k])]: k for k in range(len(living))}
    acting = [slot for slot in living if slot in actions]
    events = {"failed": {}, "transfers": [], "births": [], "deaths": [], "blocked": set(), "ate": {}}
    occupant = world.occupant_map()

    # give / take: partners are found at the start of the step; outflows capped by starting energy.
    start_energy = {slot: world.agents[slot].energy for slot in living}
    claims = []
    for slot in acting:
        kind, target, amount, _ = actions[slot]
        if kind not in (5, 6):
            continue
        d_row, d_col = target // config.view_size - r, target % config.view_size - r
        me = world.agents[slot]
        partner = occupant.get(((me.row + d_row) % h, (me.col + d_col) % w))
        if partner is None or (d_row == 0 and d_col == 0):
            events["failed"][slot] = "no_agent_at_target"
            continue
        wanted = config.transfer_amounts[amount]
        if kind == 5:
            claims.append((slot, partner, wanted, slot, True))
        else:
            claims.append((partner, slot, wanted, slot, False))
    used: dict[int, int] = {}
    for source, dest, wanted, actor, is_give in sorted(claims, key=lambda c: (c[0], rank[c[3]])):
        left = max(start_energy[source], 0) - used.get(source, 0)
        granted = min(wanted, max(left, 0))
        used[source] = used.get(source, 0) + granted
        if granted == 0:
            events["failed"][actor] = "nothing_to_transfer"
            continue
        world.agents[source].energy -= granted
        world.agents[dest].energy += granted
        events["transfers"].append((0 if is_give else 1, source, dest, granted))
        if shaped:
            if is_give:
                reward(source, config.reward_give_giver * granted)
                reward(dest, config.reward_give_receiver * granted)
            else:
                reward(dest, config.reward_take_taker * granted)
                reward(source, config.reward_take_victim * granted)

    # reproduce, in rank order, onto the most preferred free neighbouring cell
    parents = []
    for slot in acting:
        if actions[slot][0] == 7:
            if world.agents[slot].energy >= config.reproduce_min_energy:
                parents.append(slot)
            else:
                events["failed"][slot] = "not_enough_energy"
    parents.sort(key=lambda s: rank[s])
    born = []
    if parents:
        preferences = np.argsort(rng.random((len(parents), 8)), axis=1)
        for parent, prefs in zip(parents, preferences):
            if len(world.agents) >= config.max_agents:
                events["failed"][parent] = "population_pool_full"
                continue
            me = world.agents[parent]
            spot = None
            for p in prefs:
                cell = ((me.row + NEIGHBOURS[p][0]) % h, (me.col + NEIGHBOURS[p][1]) % w)
                if cell not in occupant:
                    spot = cell
                    break
            if spot is None:
                events["failed"][parent] = "no_free_neighbour_cell"
                continue
            child = len(world.agents)
            me.energy -= config.reproduce_cost
            world.agents[child] = Agent(ALIVE, spot[0], spot[1], config.child_energy, 0, list(me.genome), parent,
                                        me.lineage, me.generation + 1, world.step + 1, 0)
            occupant[spot] = child
            born.append((parent, child))
        if born:
            mutate = rng.random((len(born), len(world.agents[born[0][1]].genome))) < config.mutation_prob
            noise = rng.normal(0.0, config.mutation_std, size=mutate.shape)
            for k, (_, child) in enumerate(born):
                genome = world.agents[child].genome
                for j in range(len(genome)):
                    value = genome[j] + (noise[k, j] if mutate[k, j] else 0.0)
                    low = 0.5 if j == len(genome) - 1 else -1.0
                    genome[j] = min(1.0, max(low, value))
    events["births"] = born

    # move into cells empty after births; the best-ranked claimant of a cell wins
    claimants: dict[tuple[int, int], list[int]] = {}
    for slot in acting:
        kind = actions[slot][0]
        if kind in MOVES:
            me = world.agents[slot]
            cell = ((me.row + MOVES[kind][0]) % h, (me.col + MOVES[kind][1]) % w)
            if cell in occupant:
                events["blocked"].add(slot)
            else:
                claimants.setdefault(cell, []).append(slot)
    for cell, slots in claimants.items():
        slots.sort(key=lambda s: rank[s])
        winner = slots[0]
        world.agents[winner].row, world.agents[winner].col = cell
        for loser in slots[1:]:
            events["blocked"].add(loser)
    if shaped:
        for slot in events["blocked"]:
            reward(slot, config.reward_blocked_move)

    # eat, metabolism, death: everyone alive at the start of the step
    for slot in living:
        me = world.agents[slot]
        value = world.food.pop((me.row, me.col), 0)
        if value:
            me.energy += value
            events["ate"][slot] = value
            if shaped:
                reward(slot, config.reward_eat_per_unit * value)
    for slot in living:
        me = world.agents[slot]
        me.energy -= config.energy_per_step
        me.age += 1
        cause = None
        if me.energy <= 0:
            cause = 1
        elif me.age >= config.lifespan:
            cause = 2
        if cause is not None:
            me.status = DEAD
            world.food[(me.row, me.col)] = world.food.get((me.row, me.col), 0) + max(config.food_value, me.energy)
            events["deaths"].append((slot, cause))
            if shaped:
                reward(slot, config.reward_death)
        elif not shaped:
            reward(slot, 1.0)

    # food decay (tiles in row-major order), then regrowth on empty cells
    tiles = sorted(world.food)
    draws = rng.random(len(tiles))
    for cell, draw in zip(tiles, draws):
        if draw < config.food_decay_prob:
            world.food[cell] -= 1
            if world.food[cell] == 0:
                del world.food[cell]
    count = int(rng.poisson(config.food_regrowth_rate))
    occupied = {(a.row, a.col) for a in world.agents.values() if a.status == ALIVE}
    chosen: list[int] = []

    def free(cell: int) -> bool:
        return divmod(cell, w) not in world.food and divmod(cell, w) not in occupied and cell not in chosen

    # Rounds of rejection draws over the whole grid's density, then an exact draw over the free cells.
    cdf = np.cumsum(world.density)
    for _ in range(SPAWN_ROUNDS):
        missing = count - len(chosen)
        if missing == 0:
            break
        for x in rng.random(missing):
            cell = min(bisect.bisect_right(cdf, x * cdf[-1]), len(cdf) - 1)
            if free(cell):
                chosen.append(cell)
    missing = count - len(chosen)
    if missing > 0:
        candidates = [c for c in range(h * w) if free(c)]
        weights = np.array([world.density[c] for c in candidates])
        missing = min(missing, sum(1 for x in weights if x > 0))
        if missing > 0:
            chosen.extend(int(c) for c in rng.choice(np.array(candidates), size=missing, replace=False, p=weights / weights.sum()))
    for cell in chosen:
        world.food[divmod(cell, w)] = config.food_value

    for slot in world.agents:
        world.agents[slot].message = 0
    for slot in acting:
        if world.agents[slot].status == ALIVE:
            world.agents[slot].message = actions[slot][3]
    world.step += 1
    return world, rewards, events


def assert_matches(world: RefWorld, state: WorldState) -> None:
    """The reference world equals the vectorised state in every field."""
    assert world.step == state.step
    assert len(world.agents) == state.num_born
    for slot, a in world.agents.items():
        assert a.status == state.status[slot], f"status of {slot}"
        if a.status == ALIVE or a.status == DEAD:
            assert (a.row, a.col) == tuple(state.position[slot]), f"position of {slot}"
            assert a.energy == state.energy[slot], f"energy of {slot}"
            assert a.age == state.age[slot], f"age of {slot}"
            assert all(math.isclose(x, y, rel_tol=0, abs_tol=0) for x, y in zip(a.genome, state.genome[slot])), f"genome of {slot}"
            assert (a.parent, a.lineage, a.generation, a.birth_step) == (
                state.parent[slot], state.lineage[slot], state.generation[slot], state.birth_step[slot])
            assert a.message == state.message[slot]
    assert (state.status[state.num_born:] == 0).all()
    h, w = state.food.shape
    food = {(r, c): int(state.food[r, c]) for r in range(h) for c in range(w) if state.food[r, c] > 0}
    assert food == world.food
    occupant = {(r, c): int(state.occupant[r, c]) for r in range(h) for c in range(w) if state.occupant[r, c] >= 0}
    assert occupant == world.occupant_map()
