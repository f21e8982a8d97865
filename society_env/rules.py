"""The world's rules as pure, vectorised functions.

``advance_world(state, actions, config, rng)`` advances the state by one step in place (the env owns its
state) and returns a :class:`~society_env.outcome.StepOutcome`; it draws all randomness from ``rng``.
``step_world`` is the pure form: it copies the state first and returns the new one. Phases, in order:

1. **priority**: a random permutation of the living agents (``rng.permutation``) ranks them; every
   conflict below resolves in favour of the better rank.
2. **give / take**: each transfer names a cell of the actor's view; the agent standing there (at the
   start of the step) is the partner. Outflows from one agent (its own give plus every take aimed at
   it) are granted in rank order until its start-of-step energy is used up.
3. **reproduce**: agents with enough energy (after transfers), in rank order, place a child on their
   most preferred free neighbouring cell (8 neighbours, preference order drawn per parent).
4. **move**: a move succeeds when the target cell is empty after births and the mover has the best
   rank among agents moving there; otherwise it is *blocked* (the agent stays).
5. **eat**: an agent ending its move on food eats the whole tile.
6. **metabolism**: every agent alive at the start of the step loses ``energy_per_step`` and ages by one
   (an agent given no action stays put but still eats, ages and pays).
7. **death**: energy <= 0 (``starvation``) or age >= lifespan (``old_age``); the corpse leaves food
   worth ``max(food_value, energy left)`` on its cell.
8. **food decay** then **regrowth** (Poisson count, drawn from the density on empty cells).
9. **messages**: survivors' broadcasts become the state's ``message`` (heard through the view).
10. **rewards**: computed once from what happened (:func:`compute_rewards`), per ``reward_mode``.

Each phase is one function (``assign_priority``, ``resolve_transfers``, ``resolve_reproduction``,
``resolve_moves``, ``eat_metabolise_and_die`` (phases 5-7), ``decay_and_regrow_food``, ``deliver_messages``,
``compute_rewards``) that edits the state and records what happened in the
:class:`~society_env.outcome.StepOutcome`;
:func:`advance_world` only calls them in order.

With artifacts (``society_env.artifacts``, language option) three phases join: **artifact actions**
right after give/take, **inventories of the dead** fall on their cells right after death, and
**artifact ageing** (expiry) at the very end. They draw no random numbers.

The per-agent work of each phase is a compiled loop (``society_env.kernels``); the random numbers are
drawn here, with NumPy's generator, between them. Cost grows with the agents (food decay is one pass
over the grid; regrowth draws O(count) cells by rejection, see ``state.spawn_food_cells``, and only a
crowded grid falls back to a draw over every free cell), with no loop over pairs of agents. Python loops
remain only over the survivors' free-text messages (language option) and in the artifact phases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from society_env.artifacts import ArtifactCommand, age_artifacts, drop_inventories, resolve_artifact_actions
from society_env.config import SocietyConfig
from society_env.encodings import (
    EAST,
    NO_AGENT_AT_TARGET,
    NO_FREE_NEIGHBOUR_CELL,
    NOT_ENOUGH_ENERGY,
    NOTHING_TO_TRANSFER,
    POPULATION_POOL_FULL,
    GIVE,
    GIVE_TRANSFER,
    MOVE_DELTAS,
    NEIGHBOUR_DELTAS,
    NORTH,
    OLD_AGE,
    REPRODUCE,
    STARVATION,
    STAY,
    TAKE,
    TAKE_TRANSFER,
)
from society_env.kernels import (
    BirthRule,
    BirthState,
    add_shaped_rewards,
    choose_parents,
    decay_food,
    eat_and_metabolise,
    move_agents,
    mutate_genome_rows,
    place_children,
    transfer_energy,
)
from society_env.outcome import StepOutcome
from society_env.rewards import SURVIVAL_REWARD, shaped_weights
from society_env.state import ALIVE, DEAD, NUM_TRAITS, WorldState, spawn_food_cells


@dataclass
class Actions:
    """One step's actions as arrays over all slots (entries of non-acting slots are ignored)."""

    acting: np.ndarray  # bool [max_agents]: slot submitted an action this step
    kind: np.ndarray  # int64 [max_agents]: STAY .. REPRODUCE
    target: np.ndarray  # int64 [max_agents]: index of a view cell (row-major), for give/take
    amount: np.ndarray  # int64 [max_agents]: index into config.transfer_amounts
    message: np.ndarray  # int64 [max_agents]: message token, 0 = silent
    text: list[str] | None = None  # free-text messages (language option)
    artifact: dict[int, ArtifactCommand] | None = None  # slot -> artifact action (language option)

    @classmethod
    def noop(cls, max_agents: int) -> "Actions":
        zeros = np.zeros(max_agents, dtype=np.int64)
        return cls(np.zeros(max_agents, dtype=bool), zeros, zeros.copy(), zeros.copy(), zeros.copy())


def assign_priority(state: WorldState, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random permutation of the living slots ranks them: returns (rank of every slot, 0 = resolves
    first, dead and unborn slots a large rank; the living slots in rank order)."""
    alive_slots = np.flatnonzero(state.status == ALIVE)
    by_rank = alive_slots[rng.permutation(alive_slots.size)]
    rank = np.full(state.status.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    rank[by_rank] = np.arange(by_rank.size)
    return rank, by_rank


def resolve_transfers(
    state: WorldState, actions: Actions, config: SocietyConfig, rank: np.ndarray, outcome: StepOutcome
) -> None:
    """Give/take between agents: partner = the agent on the named view cell at the start of the step.
    Outflows from one agent (its own give plus every take aimed at it) are granted in rank order of the
    actors until its start-of-step energy is used up (:func:`society_env.kernels.transfer_energy`)."""
    is_give, source, dest, granted = transfer_energy(
        actions.acting, actions.kind, actions.target, actions.amount, state.position, state.occupant, state.energy,
        rank, config.view_radius, np.asarray(config.transfer_amounts, dtype=np.int64), GIVE, TAKE, outcome.failed,
        NO_AGENT_AT_TARGET, NOTHING_TO_TRANSFER)
    outcome.transfer_kind = np.where(is_give, GIVE_TRANSFER, TAKE_TRANSFER).astype(np.int64)
    outcome.transfer_source, outcome.transfer_dest, outcome.transfer_amount = source, dest, granted


def mutate_genomes(parent_genomes: np.ndarray, config: SocietyConfig, rng: np.random.Generator) -> np.ndarray:
    """Each genome entry gets N(0, mutation_std) noise with probability mutation_prob, then is clamped."""
    mutate = rng.random(parent_genomes.shape) < config.mutation_prob
    noise = rng.normal(0.0, config.mutation_std, size=parent_genomes.shape)
    child = np.empty_like(parent_genomes)
    mutate_genome_rows(parent_genomes, mutate, noise, NUM_TRAITS, child)  # traits, then fertility
    return child


def resolve_reproduction(
    state: WorldState, actions: Actions, config: SocietyConfig, by_rank: np.ndarray, rng: np.random.Generator,
    outcome: StepOutcome,
) -> None:
    """Asexual reproduction onto a free neighbouring cell, parents in rank order (``by_rank``: the living
    slots, best rank first); children take the next never-used slots."""
    parents = choose_parents(actions.acting, actions.kind, REPRODUCE, state.energy, config.reproduce_min_energy,
                             by_rank, outcome.failed, NOT_ENOUGH_ENERGY)
    if parents.size == 0:
        return
    preference = np.argsort(rng.random((parents.size, NEIGHBOUR_DELTAS.shape[0])), axis=1)
    world = BirthState(state.position, state.occupant, state.status, state.energy, state.age, state.parent,
                       state.lineage, state.generation, state.birth_step)
    rule = BirthRule(config.max_agents, ALIVE, config.reproduce_cost, config.child_energy, POPULATION_POOL_FULL,
                     NO_FREE_NEIGHBOUR_CELL)
    born = place_children(parents, preference, NEIGHBOUR_DELTAS, world, state.num_born, state.step, rule,
                          outcome.failed)
    if born.size == 0:
        return
    children = np.arange(state.num_born, state.num_born + born.size)
    state.num_born += born.size
    state.genome[children] = mutate_genomes(state.genome[born], config, rng)
    outcome.birth_parent, outcome.birth_child = born, children


def resolve_moves(state: WorldState, actions: Actions, by_rank: np.ndarray, outcome: StepOutcome) -> None:
    """Moves into empty cells; several movers to one cell: the best rank wins, the others are blocked
    (:func:`society_env.kernels.move_agents`, visiting the living in rank order ``by_rank``)."""
    move_agents(actions.acting, actions.kind, state.position, state.occupant, by_rank, MOVE_DELTAS, NORTH, EAST,
                outcome.blocked)


def eat_metabolise_and_die(state: WorldState, present: np.ndarray, config: SocietyConfig, outcome: StepOutcome) -> None:
    """Agents alive at the start of the step eat the whole tile they stand on (newborns from next step),
    then pay ``energy_per_step`` and age by one; an agent dies of starvation (energy <= 0) or old age (age
    >= lifespan), leaving food worth ``max(food_value, energy left)`` and its artifacts on its cell
    (:func:`society_env.kernels.eat_and_metabolise`)."""
    dead, causes = eat_and_metabolise(present, state.position, state.food, state.energy, state.age, state.status,
                                      state.occupant, outcome.ate, config.energy_per_step, config.lifespan,
                                      config.food_value, DEAD, STARVATION, OLD_AGE)
    if dead.size:
        outcome.death_slot, outcome.death_cause = dead, causes
        drop_inventories(state, dead, config, outcome)


def decay_and_regrow_food(state: WorldState, config: SocietyConfig, rng: np.random.Generator) -> None:
    """Each food tile loses one unit with ``food_decay_prob``; then a Poisson(``food_regrowth_rate``)
    number of new tiles appears on empty cells, drawn from the spawn density."""
    flat_food = state.food.ravel()
    decay_food(flat_food, rng.random(np.count_nonzero(flat_food)), config.food_decay_prob)
    count = int(rng.poisson(config.food_regrowth_rate))
    new_tiles = spawn_food_cells(state.food, state.occupant, state.food_density, state.food_cdf, count, rng)
    flat_food[new_tiles] = config.food_value


def deliver_messages(state: WorldState, actions: Actions, survivors: np.ndarray, language: bool = True) -> None:
    """What survivors broadcast this step becomes the state's message, heard through the next observation."""
    state.message[:] = 0
    state.message[survivors] = actions.message[survivors]
    if actions.text is None and (not language or not any(state.text_message)):
        return  # silent before and after (always so without the language option): nothing to rebuild
    texts = [""] * state.message.shape[0]
    if actions.text is not None:
        for slot in survivors.tolist():
            texts[slot] = actions.text[slot] or ""
    state.text_message = texts


def compute_rewards(outcome: StepOutcome, config: SocietyConfig) -> np.ndarray:
    """Every slot's reward for the step, from what happened (the only place rewards are computed; the
    table of which event pays whom by which config field is ``society_env.rewards``).

    ``shaped``: the rows of ``rewards.SHAPED_REWARDS``: ``reward_eat_per_unit`` per food unit eaten,
    ``reward_blocked_move`` per blocked move, the four transfer rewards per energy unit given or taken,
    ``reward_death`` on death. ``survival``: ``rewards.SURVIVAL_REWARD`` (+1) for every agent alive at the
    start of the step that is still alive at its end."""
    rewards = np.zeros(outcome.present.shape[0])
    if config.reward_mode == "survival":
        rewards[outcome.survivors()] += SURVIVAL_REWARD
        return rewards
    add_shaped_rewards(rewards, outcome.transfer_kind == GIVE_TRANSFER, outcome.transfer_source, outcome.transfer_dest,
                       outcome.transfer_amount, outcome.blocked, np.flatnonzero(outcome.present), outcome.ate,
                       outcome.death_slot, shaped_weights(config))
    return rewards


def episode_end(state: WorldState, config: SocietyConfig) -> tuple[bool, bool]:
    """The episode-end rule, ``(ended, out_of_time)``: an episode ends when nobody is alive or after
    ``config.max_steps`` steps; ``out_of_time`` says it is the time limit (a truncation in the env's terms,
    every other end a termination). The env and the vector env both ask here."""
    out_of_time = state.step >= config.max_steps
    return out_of_time or not (state.status == ALIVE).any(), out_of_time


def step_world(
    state: WorldState, actions: Actions, config: SocietyConfig, rng: np.random.Generator
) -> tuple[WorldState, StepOutcome]:
    """Advance the world by one step. Pure: returns a new state; ``state`` and ``actions`` are untouched."""
    state = state.copy()
    return state, advance_world(state, actions, config, rng)


def advance_world(state: WorldState, actions: Actions, config: SocietyConfig, rng: np.random.Generator) -> StepOutcome:
    """Advance ``state`` by one step in place (what an env that owns its state calls: no copy of the
    world per step) and return what happened. ``actions`` is untouched. The phases, in order (module
    docstring), each a function of this module or of ``artifacts``."""
    n = config.max_agents
    living = state.status == ALIVE  # alive at the start of the step; agents without an action stay
    acting = actions.acting & living
    commands = {slot: c for slot, c in (actions.artifact or {}).items() if living[slot]} if config.artifacts else {}
    actions = Actions(acting, actions.kind, actions.target, actions.amount, actions.message, actions.text)
    outcome = StepOutcome(rewards=np.zeros(n), ate=np.zeros(n, dtype=np.int64), blocked=np.zeros(n, dtype=bool),
                          failed=np.zeros(n, dtype=np.int8), present=living)
    present = np.flatnonzero(living)

    rank, by_rank = assign_priority(state, rng)
    resolve_transfers(state, actions, config, rank, outcome)
    resolve_artifact_actions(state, commands, config, rank, outcome)
    resolve_reproduction(state, actions, config, by_rank, rng, outcome)
    resolve_moves(state, actions, by_rank, outcome)
    eat_metabolise_and_die(state, present, config, outcome)
    decay_and_regrow_food(state, config, rng)
    deliver_messages(state, actions, outcome.survivors(), config.language)
    age_artifacts(state, outcome)
    outcome.rewards = compute_rewards(outcome, config)
    state.step += 1
    return outcome
