"""The world's rules as pure, vectorised functions.

``advance_world(state, actions, config, rng)`` advances the state by one step in place (the env owns its
state) and returns a :class:`~society_env.world.outcome.StepOutcome`; it draws all randomness from ``rng``.
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
10. **rewards**: computed once from what happened (:func:`step_after_artifacts`), per ``reward_mode``.

Phases 1-2 are one function (:func:`rank_and_transfer`), phases 3-10 another
(:func:`step_after_artifacts`); each edits the state and records what happened in the
:class:`~society_env.world.outcome.StepOutcome`, and :func:`advance_world` only calls them in order.

With artifacts (``society_env.world.artifacts``, language option) three phases join: **artifact actions**
right after give/take, **inventories of the dead** fall on their cells (after phase 8: they touch
neither food nor cells' occupants), and **artifact ageing** (expiry) at the very end. They draw no
random numbers.

Phases 1-2 and 3-10 are each one compiled call (``society_env.world.kernels``). The second draws its random
numbers from ``rng`` itself, the same numbers in the same order as NumPy's calls would; the priority
permutation is NumPy's own call (numba's makes the same numbers, slower; the array API's one-call step
draws them with ``kernels.permutation``). Two calls per step instead of a dozen kernels and NumPy calls
keep the fixed cost per step small. Cost grows with the agents (food decay is one pass over the grid;
regrowth draws O(count) cells by rejection, see ``state.spawn_food_cells``, and only a crowded grid falls
back to a draw over every free cell), with no loop over pairs of agents. Python loops remain only over
the survivors' free-text messages (language option) and in the artifact phases.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from society_env.world.artifacts import ArtifactCommand, age_artifacts, drop_inventories, resolve_artifact_actions
from society_env.world.config import SocietyConfig
from society_env.world.encodings import (
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
    TAKE,
    TAKE_TRANSFER,
)
from society_env.world import kernels
from society_env.world.kernels import BirthRule, BirthState, RegrowthBuffers, StepRule
from society_env.world.outcome import StepOutcome
from society_env.world.rewards import SURVIVAL_REWARD, shaped_weights
from society_env.world.state import ALIVE, DEAD, NO_BUFFERS, NUM_TRAITS, SPAWN_ROUNDS, WorldState


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


TRANSFER_CODES = (GIVE, TAKE, NO_AGENT_AT_TARGET, NOTHING_TO_TRANSFER, GIVE_TRANSFER, TAKE_TRANSFER)
"""The codes :func:`society_env.world.kernels.rank_and_transfer` needs (action kinds, failures, transfer kinds)."""


def rank_and_transfer(
    state: WorldState, actions: Actions, config: SocietyConfig, rng: np.random.Generator, outcome: StepOutcome
) -> tuple[np.ndarray, np.ndarray]:
    """Phases 1-2, one compiled call (:func:`society_env.world.kernels.rank_and_transfer`).

    **Priority**: a random permutation of the living slots (``rng.permutation``) ranks them.
    **Give/take**: partner = the agent on the named view cell at the start of the step. Outflows from one
    agent (its own give plus every take aimed at it) are granted in rank order of the actors until its
    start-of-step energy is used up. Returns (every slot's rank, 0 = resolves first; the living slots in
    rank order)."""
    order = rng.permutation(np.count_nonzero(outcome.present))
    rank, by_rank, kind, source, dest, granted = kernels.rank_and_transfer(
        order, state.status, ALIVE, actions.acting, actions.kind, actions.target, actions.amount, state.position,
        state.occupant, state.energy, config.view_radius, transfer_amounts(config), TRANSFER_CODES, outcome.failed)
    outcome.transfer_kind, outcome.transfer_source = kind, source
    outcome.transfer_dest, outcome.transfer_amount = dest, granted
    return rank, by_rank


@functools.lru_cache(maxsize=64)
def transfer_amounts(config: SocietyConfig) -> np.ndarray:
    """``config.transfer_amounts`` as a read-only int64 array, built once per config."""
    amounts = np.asarray(config.transfer_amounts, dtype=np.int64)
    amounts.flags.writeable = False
    return amounts


@functools.lru_cache(maxsize=64)
def step_rule(config: SocietyConfig) -> StepRule:
    """The numbers of phases 3-10 as one record for :func:`society_env.world.kernels.step_after_artifacts`."""
    birth = BirthRule(config.max_agents, ALIVE, config.reproduce_cost, config.child_energy, POPULATION_POOL_FULL,
                      NO_FREE_NEIGHBOUR_CELL)
    return StepRule(birth, REPRODUCE, config.reproduce_min_energy, NOT_ENOUGH_ENERGY, float(config.mutation_prob),
                    float(config.mutation_std), NUM_TRAITS, NORTH, EAST, config.energy_per_step, config.lifespan,
                    config.food_value, DEAD, STARVATION, OLD_AGE, float(config.food_decay_prob),
                    float(config.food_regrowth_rate), SPAWN_ROUNDS, config.food_distribution == "uniform",
                    config.reward_mode == "survival", SURVIVAL_REWARD, shaped_weights(config), GIVE_TRANSFER)


def step_after_artifacts(
    state: WorldState, actions: Actions, config: SocietyConfig, by_rank: np.ndarray, rng: np.random.Generator,
    outcome: StepOutcome, buffers: RegrowthBuffers = NO_BUFFERS,
) -> None:
    """Phases 3-10, one compiled call (:func:`society_env.world.kernels.step_after_artifacts`), then the
    survivors' free-text messages (language option).

    **Reproduction**: parents with enough energy (after transfers), in rank order, place a child on their
    most preferred free neighbouring cell (preference drawn per parent); children take the next
    never-used slots, with the parent's genome mutated. **Moves** into empty cells: several movers to one
    cell, the best rank wins, the others are blocked. **Eat, metabolism, death**: agents alive at the start
    of the step eat the whole tile they stand on, pay ``energy_per_step`` and age by one; an agent dies of
    starvation (energy <= 0) or old age (age >= lifespan), leaving food worth ``max(food_value, energy
    left)``. **Food**: each tile loses one unit with ``food_decay_prob``, then Poisson(``food_regrowth_rate``)
    new tiles appear on empty cells, drawn from the spawn density (``state.spawn_food_cells``).
    **Messages**: what survivors broadcast becomes the state's message, heard through the next observation.
    **Rewards** (the only place they are computed; the table of which event pays whom by which config
    field is ``society_env.world.rewards``): ``shaped``: the rows of ``rewards.SHAPED_REWARDS``
    (``reward_eat_per_unit`` per food unit eaten, ``reward_blocked_move`` per blocked move, the four
    transfer rewards per energy unit given or taken, ``reward_death`` on death); ``survival``:
    ``rewards.SURVIVAL_REWARD`` (+1) for every agent alive at the start of the step and still alive at its
    end."""
    present = np.flatnonzero(outcome.present)
    world = BirthState(state.position, state.occupant, state.status, state.energy, state.age, state.parent,
                       state.lineage, state.generation, state.birth_step)
    transfers = (outcome.transfer_kind, outcome.transfer_source, outcome.transfer_dest, outcome.transfer_amount)
    rule = step_rule(config)
    born, dead, causes = kernels.step_after_artifacts(
        rng, actions.acting, actions.kind, actions.message, by_rank, present, world, state.genome, state.food,
        state.food_density, state.food_cdf, state.message, state.num_born, state.step, rule, NEIGHBOUR_DELTAS,
        MOVE_DELTAS, transfers, outcome.failed, outcome.blocked, outcome.ate, outcome.rewards, buffers)
    if born.size:
        outcome.birth_parent, outcome.birth_child = born, np.arange(state.num_born, state.num_born + born.size)
        state.num_born += born.size
    if dead.size:
        outcome.death_slot, outcome.death_cause = dead, causes
    if actions.text is not None or (config.language and any(state.text_message)):
        deliver_text_messages(state, actions, outcome.survivors())


def deliver_text_messages(state: WorldState, actions: Actions, survivors: np.ndarray) -> None:
    """What survivors wrote this step becomes the state's text message (language option); the others' is ""."""
    texts = [""] * state.message.shape[0]
    if actions.text is not None:
        for slot in survivors.tolist():
            texts[slot] = actions.text[slot] or ""
    state.text_message = texts


def episode_end(state: WorldState, config: SocietyConfig, living: int | None = None) -> tuple[bool, bool]:
    """The episode-end rule, ``(ended, out_of_time)``: an episode ends when nobody is alive or after
    ``config.max_steps`` steps; ``out_of_time`` says it is the time limit (a truncation in the env's terms,
    every other end a termination). The env and the vector env both ask here; ``living``: the number of
    living agents, when the caller has it (else counted)."""
    out_of_time = state.step >= config.max_steps
    if living is None:
        living = int(np.count_nonzero(state.status == ALIVE))
    return bool(out_of_time or living == 0), bool(out_of_time)


def step_world(
    state: WorldState, actions: Actions, config: SocietyConfig, rng: np.random.Generator
) -> tuple[WorldState, StepOutcome]:
    """Advance the world by one step. Pure: returns a new state; ``state`` and ``actions`` are untouched."""
    state = state.copy()
    return state, advance_world(state, actions, config, rng)


def advance_world(state: WorldState, actions: Actions, config: SocietyConfig, rng: np.random.Generator,
                  buffers: RegrowthBuffers = NO_BUFFERS) -> StepOutcome:
    """Advance ``state`` by one step in place (what an env that owns its state calls: no copy of the
    world per step) and return what happened. ``actions`` is untouched. The phases, in order (module
    docstring), each a function of this module or of ``artifacts``. ``buffers``: the grid's
    ``kernels.RegrowthBuffers``, kept by the env across steps (default: none, allocated per step)."""
    n = config.max_agents
    living = state.status == ALIVE  # alive at the start of the step; agents without an action stay
    acting = actions.acting & living
    commands = {slot: c for slot, c in (actions.artifact or {}).items() if living[slot]} if config.artifacts else {}
    actions = Actions(acting, actions.kind, actions.target, actions.amount, actions.message, actions.text)
    outcome = StepOutcome(rewards=np.zeros(n), ate=np.zeros(n, dtype=np.int64), blocked=np.zeros(n, dtype=bool),
                          failed=np.zeros(n, dtype=np.int8), present=living)

    rank, by_rank = rank_and_transfer(state, actions, config, rng, outcome)
    resolve_artifact_actions(state, commands, config, rank, outcome)
    step_after_artifacts(state, actions, config, by_rank, rng, outcome, buffers)
    drop_inventories(state, outcome.death_slot, config, outcome)
    age_artifacts(state, outcome)
    state.step += 1
    return outcome
