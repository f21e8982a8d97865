"""The rule phases, compiled, one function each (``rules`` gives the rules in words; ``step.advance`` calls
the phases in order): priority, give / take, reproduction, moves, eating with metabolism and death, food
decay and regrowth, messages, rewards.

Each takes the world's arrays (``records.WorldArrays``), the step's actions and record (``StepActions``,
``StepRecord``: what the phase reads of earlier phases and writes for later ones and for the env) and its
own numbers (a rule record), and draws its random numbers, if any, from the env's generator itself: the
numbers NumPy's calls would draw, in the same order (``numpy_algorithms``). A phase done as a handful of NumPy
calls pays each call's fixed cost, and some phases are sequential by nature (each birth changes which cells
the next parent finds free; a move claim blocks later movers); one compiled pass does either at the cost of
the work itself.
"""

from __future__ import annotations

import numpy as np

from society_env.world.kernels.cache import kernel
from society_env.world.kernels.food_cells import draw_free_cells
from society_env.world.kernels.numpy_algorithms import permutation
from society_env.world.kernels.plumbing import wrap
from society_env.world.kernels.records import BIRTHS, DEATHS, LIVING, SHARE_LINEAGE, SHARE_POPULATION, TRANSFERS


@kernel
def start_record(record, status, alive):  # pragma: no cover - compiled
    """A step's record before its first phase: who is alive at its start (``status == alive``), no failure,
    block, food eaten or reward yet, no transfer, birth or death."""
    for slot in range(status.shape[0]):
        record.present[slot] = status[slot] == alive
    record.failed[:] = 0
    record.blocked[:] = False
    record.ate[:] = 0
    record.rewards[:] = 0.0
    record.counts[:] = 0


@kernel
def rank_agents(rng, record):  # pragma: no cover - compiled
    """Phase 1, priority: the living slots (``record.living``, ascending) permuted by ``rng.permutation`` of
    their count (NumPy's shuffle, :func:`~society_env.world.kernels.numpy_algorithms.permutation`) are the
    rank order, ``record.by_rank``; ``record.rank`` is every slot's rank (0 resolves first; the others the
    largest int64)."""
    living = 0
    for slot in range(record.present.shape[0]):
        record.living[living] = slot
        living += record.present[slot]
    order = permutation(rng, living)
    record.rank[:] = np.iinfo(np.int64).max
    for r in range(living):
        slot = record.living[order[r]]
        record.by_rank[r] = slot
        record.rank[slot] = r
    record.counts[LIVING] = living


@kernel
def transfer_energy(world, actions, record, rule):  # pragma: no cover - compiled
    """Phase 2, give / take. Each give/take names view cell ``actions.target`` (``rule.radius``: the view's);
    the agent there is the partner (else ``record.failed`` gets ``rule.no_agent``). Energy flows source ->
    dest (giver -> receiver, victim -> taker); outflows from one source are granted in rank order of the
    actors while its starting energy (if positive) covers everything asked of it before, else the rest, else
    0 (``failed`` gets ``rule.nothing``). All grants use the starting energy; then energy moves. The granted
    transfers go to the record's transfer arrays, ordered by (source, actor rank)."""
    occupant, position, energy = world.occupant, world.position, world.energy
    acting, kind, target, amount = actions.acting, actions.kind, actions.target, actions.amount
    give, take, radius = rule.give, rule.take, rule.radius
    height, width = occupant.shape
    side = 2 * radius + 1
    slots = acting.shape[0]
    actors = np.empty(slots, np.int64)
    sources = np.empty(slots, np.int64)
    dests = np.empty(slots, np.int64)
    keys = np.empty(slots, np.int64)
    count = 0
    for slot in range(slots):
        if not acting[slot] or (kind[slot] != give and kind[slot] != take):
            continue
        d_row, d_col = target[slot] // side - radius, target[slot] % side - radius
        partner = occupant[wrap(position[slot, 0] + d_row, height), wrap(position[slot, 1] + d_col, width)]
        if partner < 0 or (d_row == 0 and d_col == 0):
            record.failed[slot] = rule.no_agent
            continue
        source, dest = (slot, partner) if kind[slot] == give else (partner, slot)
        actors[count], sources[count], dests[count] = slot, source, dest
        keys[count] = source * slots + record.rank[slot]
        count += 1
    order = np.argsort(keys[:count])  # keys are distinct: the order is the same for every sort
    granted = np.zeros(count, np.int64)
    previous, claimed, available = -1, 0, 0
    for i in order:
        source = sources[i]
        if source != previous:
            previous, claimed, available = source, 0, max(energy[source], 0)
        wanted = rule.amounts[amount[actors[i]]]
        granted[i] = min(max(available - claimed, 0), wanted)
        claimed += wanted
    k = 0
    for i in order:
        if granted[i] == 0:
            record.failed[actors[i]] = rule.nothing
            continue
        record.transfer_kind[k] = rule.give_transfer if kind[actors[i]] == give else rule.take_transfer
        record.transfer_source[k], record.transfer_dest[k], record.transfer_amount[k] = sources[i], dests[i], granted[i]
        energy[sources[i]] -= granted[i]
        energy[dests[i]] += granted[i]
        k += 1
    record.counts[TRANSFERS] = k


@kernel
def choose_parents(actions, energy, by_rank, failed, rule):  # pragma: no cover - compiled
    """The slots that reproduce this step, in rank order (``by_rank``: the living, best first): those
    acting with kind ``rule.reproduce`` and at least ``rule.min_energy``; the others that tried get
    ``rule.not_enough_energy`` in ``failed``."""
    parents = np.empty(by_rank.shape[0], np.int64)
    count = 0
    for slot in by_rank:
        if actions.acting[slot] and actions.kind[slot] == rule.reproduce:
            if energy[slot] >= rule.min_energy:
                parents[count] = slot
                count += 1
            else:
                failed[slot] = rule.not_enough_energy
    return parents[:count]


@kernel
def place_children(parents, preference, world, num_born, step, rule, record):  # pragma: no cover - compiled
    """Give each parent (in rank order) a child on its first free preferred neighbour cell.

    ``preference[k]`` orders the 8 ``rule.deltas`` for ``parents[k]``. The child takes slot ``num_born +
    births`` and its cell at once, so later parents see it: it is born ``rule.alive`` at that cell with
    ``rule.child_energy``, age 0, the parent's lineage and the next generation, at step ``step + 1``; the
    parent pays ``rule.cost``. Parents that find the pool full or no free cell get ``rule.pool_full`` /
    ``rule.no_free_cell`` in ``record.failed``. The parents that had a child, in birth order (their children
    are the slots from ``num_born`` on), go to ``record.birth_parent``."""
    position, occupant = world.position, world.occupant
    height, width = occupant.shape
    births = 0
    for k in range(parents.shape[0]):
        mother = parents[k]
        child = num_born + births
        if child >= rule.max_agents:
            record.failed[mother] = rule.pool_full
            continue
        placed = False
        for j in range(rule.deltas.shape[0]):
            d = preference[k, j]
            row = wrap(position[mother, 0] + rule.deltas[d, 0], height)
            col = wrap(position[mother, 1] + rule.deltas[d, 1], width)
            if occupant[row, col] < 0:
                occupant[row, col] = child
                position[child, 0], position[child, 1] = row, col
                world.status[child] = rule.alive
                world.energy[mother] -= rule.cost
                world.energy[child] = rule.child_energy
                world.age[child] = 0
                world.parent[child] = mother
                world.lineage[child] = world.lineage[mother]
                world.generation[child] = world.generation[mother] + 1
                world.birth_step[child] = step + 1
                record.birth_parent[births] = mother
                births += 1
                placed = True
                break
        if not placed:
            record.failed[mother] = rule.no_free_cell
    record.counts[BIRTHS] = births


@kernel
def mutate_genome_rows(parents, mutate, noise, traits, out):  # pragma: no cover - compiled
    """Children's genomes: each parent entry plus its ``noise`` where ``mutate`` holds, then traits (the
    first ``traits`` columns) clamped to [-1, 1] and fertility (the next) to [0.5, 1]."""
    for i in range(parents.shape[0]):
        for j in range(parents.shape[1]):
            value = parents[i, j] + (noise[i, j] if mutate[i, j] else 0.0)
            if j < traits:
                value = min(max(value, -1.0), 1.0)
            elif j == traits:
                value = min(max(value, 0.5), 1.0)
            out[i, j] = value


@kernel
def reproduce(rng, world, num_born, step, actions, record, rule):  # pragma: no cover - compiled
    """Phase 3, reproduction: parents in rank order (:func:`choose_parents`), each with its own preference
    order of the neighbour cells (``argsort`` of ``rng.random((parents, 8))``), place children
    (:func:`place_children`); the children's genomes are the parents' mutated (``rng.random`` <
    ``rule.mutation_prob`` picks the entries, ``rng.normal(0, rule.mutation_std)`` the noise,
    :func:`mutate_genome_rows` clamps)."""
    by_rank = record.by_rank[: record.counts[LIVING]]
    parents = choose_parents(actions, world.energy, by_rank, record.failed, rule)
    if parents.shape[0] == 0:
        return
    neighbours = rule.deltas.shape[0]
    draws = rng.random((parents.shape[0], neighbours))
    preference = np.empty(draws.shape, np.int64)
    for k in range(parents.shape[0]):  # np.argsort of each row (the draws are distinct: any sort agrees)
        order = preference[k]
        for j in range(neighbours):  # insertion sort of 8 values
            at = j
            while at > 0 and draws[k, order[at - 1]] > draws[k, j]:
                order[at] = order[at - 1]
                at -= 1
            order[at] = j
    place_children(parents, preference, world, num_born, step, rule, record)
    births = record.counts[BIRTHS]
    if births == 0:
        return
    genome = world.genome
    shape = (births, genome.shape[1])
    mutate = rng.random(shape) < rule.mutation_prob
    noise = rng.normal(0.0, rule.mutation_std, size=shape)
    mutate_genome_rows(genome[record.birth_parent[:births]], mutate, noise, rule.traits,
                       genome[num_born : num_born + births])


@kernel
def move_agents(world, actions, record, rule):  # pragma: no cover - compiled
    """Phase 4, moves, movers visited in rank order: a move succeeds when its target cell is empty at the
    start of the phase and no better-ranked mover claimed it; otherwise ``record.blocked`` is set. A cell
    left by a mover still counts as taken during the phase."""
    position, occupant = world.position, world.occupant
    height, width = occupant.shape
    by_rank = record.by_rank[: record.counts[LIVING]]
    movers = np.empty(by_rank.shape[0], np.int64)
    rows = np.empty(by_rank.shape[0], np.int64)
    cols = np.empty(by_rank.shape[0], np.int64)
    count = 0
    for slot in by_rank:
        kind = actions.kind[slot]
        if not actions.acting[slot] or not rule.first <= kind <= rule.last:
            continue
        row = wrap(position[slot, 0] + rule.deltas[kind, 0], height)
        col = wrap(position[slot, 1] + rule.deltas[kind, 1], width)
        if occupant[row, col] == -1:
            occupant[row, col] = -2  # claimed until the phase ends
            movers[count], rows[count], cols[count] = slot, row, col
            count += 1
        else:
            record.blocked[slot] = True
    for i in range(count):
        occupant[position[movers[i], 0], position[movers[i], 1]] = -1
    for i in range(count):
        position[movers[i], 0], position[movers[i], 1] = rows[i], cols[i]
        occupant[rows[i], cols[i]] = movers[i]


@kernel
def eat_and_metabolise(world, present, record, rule):  # pragma: no cover - compiled
    """Phases 5-7, eating, metabolism and death, for the agents alive at the start of the step
    (``present``), in slot order: each eats its cell's whole tile, pays ``rule.energy_per_step`` and ages by
    one; it dies of starvation (energy <= 0) or old age (age >= ``rule.lifespan``), leaving food worth
    ``max(rule.food_value, energy left)`` on its cell. The dead and their causes go to the record."""
    position, food, energy = world.position, world.food, world.energy
    for slot in present:
        row, col = position[slot, 0], position[slot, 1]
        record.ate[slot] = food[row, col]
        energy[slot] += food[row, col]
        food[row, col] = 0
    deaths = 0
    for slot in present:
        energy[slot] -= rule.energy_per_step
        world.age[slot] += 1
        if energy[slot] <= 0:
            record.death_cause[deaths] = rule.starvation
        elif world.age[slot] >= rule.lifespan:
            record.death_cause[deaths] = rule.old_age
        else:
            continue
        record.death_slot[deaths] = slot
        deaths += 1
        world.status[slot] = rule.dead
        row, col = position[slot, 0], position[slot, 1]
        world.occupant[row, col] = -1
        food[row, col] += max(rule.food_value, energy[slot])
    record.counts[DEATHS] = deaths


@kernel
def decay_and_regrow(rng, world, rule, buffers):  # pragma: no cover - compiled
    """Phase 8, food: every food tile (row-major) loses one unit with ``rule.decay_prob``, one
    ``rng.random()`` per tile, in row-major order (the numbers ``rng.random(tiles)`` gives); then
    ``rng.poisson(rule.regrowth_rate)`` new tiles of ``rule.value`` on free cells drawn from the density
    (``food_cells.draw_free_cells``, working in ``buffers``).

    Each row's tiles are listed first (their columns, written without a branch on the cell's content: a
    grid with food on a third of its cells, at random, mispredicts a branch on every other cell), then
    each tile draws. This one-thread form replaced one that drew all the numbers first and split the rows
    over threads: level with it at 5000 agents (0.26 against 0.22 ms), faster at 100,000 on two threads
    (3.3 against 5.8 ms), the draws being serial and half the time."""
    food = world.food
    height, width = food.shape
    columns = np.empty(width, np.int64)
    probability = rule.decay_prob
    for r in range(height):
        row = food[r]
        tiles = 0
        for c in range(width):
            columns[tiles] = c
            tiles += row[c] != 0
        for t in range(tiles):
            if rng.random() < probability:
                row[columns[t]] -= 1
    count = rng.poisson(rule.regrowth_rate)
    if count > 0:
        flat_food = food.reshape(-1)
        for cell in draw_free_cells(rng, flat_food, world.occupant.reshape(-1), world.food_density, world.food_cdf,
                                    count, rule.spawn_rounds, rule.uniform, buffers):
            flat_food[cell] = rule.value


@kernel
def keep_messages(world, actions, present, dead):  # pragma: no cover - compiled
    """Phase 9, messages: the survivors' tokens become the world's ``message`` (heard through the next
    observation); everyone else's is 0."""
    world.message[:] = 0
    for slot in present:
        if world.status[slot] != dead:
            world.message[slot] = actions.message[slot]


@kernel
def add_rewards(record, present, status, rule):  # pragma: no cover - compiled
    """Phase 10, the step's rewards (``rules`` says which; ``rule`` is the ``StepRule``): ``survival``: the
    survival reward to every slot of ``present`` still alive; ``shaped``: :func:`add_shaped_rewards` of the
    step's transfers, blocked moves, food eaten and deaths."""
    if rule.reward.survival:
        for slot in present:
            if status[slot] != rule.dead:
                record.rewards[slot] += rule.reward.survival_reward
        return
    add_shaped_rewards(record, present, rule.reward.shaped, rule.transfer.give_transfer)


@kernel
def share_rewards(record, present, parent, rule):  # pragma: no cover - compiled
    """Phase 11, who is credited with the step's rewards (``rule`` is the ``RewardRule``; the codes and their
    definitions are ``rewards.SHARING``). ``lineage``: each reward of phase 10 also goes, times
    ``lineage_discount`` ** g, to the ancestor g generations up (g = 1 .. ``lineage_generations``, along
    ``parent``) if that ancestor is in the step (``record.present``); a dead ancestor gets nothing, and the
    credit still reaches the living ones above it. ``population``: every agent of the step gets the mean of
    their phase-10 rewards. The sums run in slot order, so they round the same way everywhere."""
    rewards = record.rewards
    if rule.sharing == SHARE_LINEAGE:
        earned = rewards.copy()  # phase 10's rewards: credit is passed on from these, never from credit
        for slot in present:
            if earned[slot] == 0.0:
                continue
            ancestor, share = parent[slot], 1.0
            for _ in range(rule.lineage_generations):
                if ancestor < 0:
                    break
                share *= rule.lineage_discount
                if record.present[ancestor]:
                    rewards[ancestor] += share * earned[slot]
                ancestor = parent[ancestor]
    elif rule.sharing == SHARE_POPULATION and present.shape[0] > 0:
        total = 0.0
        for slot in present:
            total += rewards[slot]
        mean = total / present.shape[0]
        for slot in present:
            rewards[slot] = mean


@kernel
def add_shaped_rewards(record, present, weights, give_transfer):  # pragma: no cover - compiled
    """The ``shaped`` rewards of one step added to ``record.rewards`` in the order the phases happened
    (every transfer's source, then every transfer's destination, blocked moves, eating, death: the order of
    ``society_env.world.rewards.SHAPED_REWARDS``), so each slot's sum is rounded exactly as when the phases
    are added one after another. ``weights`` is a ``rewards.ShapedWeights`` (config field names)."""
    rewards, transfers = record.rewards, record.counts[TRANSFERS]
    for i in range(transfers):
        weight = weights.reward_give_giver if record.transfer_kind[i] == give_transfer else weights.reward_take_victim
        rewards[record.transfer_source[i]] += weight * np.float64(record.transfer_amount[i])
    for i in range(transfers):
        is_give = record.transfer_kind[i] == give_transfer
        weight = weights.reward_give_receiver if is_give else weights.reward_take_taker
        rewards[record.transfer_dest[i]] += weight * np.float64(record.transfer_amount[i])
    for slot in range(rewards.shape[0]):
        if record.blocked[slot]:
            rewards[slot] += weights.reward_blocked_move
    for slot in present:
        rewards[slot] += weights.reward_eat_per_unit * record.ate[slot]
    for slot in record.death_slot[: record.counts[DEATHS]]:
        rewards[slot] += weights.reward_death
