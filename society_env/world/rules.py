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
10. **rewards**, computed once from what happened, per ``reward_mode`` (the table of which event pays whom
    by which config field is ``society_env.world.rewards``): ``shaped``: the rows of
    ``rewards.SHAPED_REWARDS`` (``reward_eat_per_unit`` per food unit eaten, ``reward_blocked_move`` per
    blocked move, the four transfer rewards per energy unit given or taken, ``reward_death`` on death);
    ``survival``: ``rewards.SURVIVAL_REWARD`` (+1) for every agent alive at the start of the step and still
    alive at its end.

With artifacts (``society_env.world.artifacts``, language option) three phases join: **artifact actions**
right after give/take, **inventories of the dead** fall on their cells (after phase 8: they touch
neither food nor cells' occupants), and **artifact ageing** (expiry) at the very end. They draw no
random numbers.

The order is written once, in the compiled :func:`society_env.world.kernels.advance` (``kernels/step.py``),
which calls one compiled function per phase (``kernels/phases.py``); each draws its random numbers from
``rng`` itself, the same numbers in the same order as NumPy's calls would. :func:`advance_world` makes it
one call per step, or two around the artifact phases; the array API's world steps through it too
(``kernels.step_and_observe``). One call per step instead of a dozen kernels and NumPy calls keeps the fixed
cost per step small. Cost grows with the agents (food decay is one pass over the grid; regrowth draws
O(count) cells by rejection, see ``state.spawn_food_cells``, and only a crowded grid falls back to a draw
over every free cell), with no loop over pairs of agents. Python loops remain only over the survivors'
free-text messages (language option) and in the artifact phases.
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
from society_env.world.kernels import (
    AFTER_ARTIFACTS,
    BEFORE_ARTIFACTS,
    WHOLE_STEP,
    BirthRule,
    FoodRule,
    LifeRule,
    MoveRule,
    RegrowthBuffers,
    RewardRule,
    StepActions,
    StepRecord,
    StepRule,
    TransferRule,
    step_record,
)
from society_env.world.kernels.records import BIRTHS, DEATHS, TRANSFERS
from society_env.world.outcome import StepOutcome
from society_env.world.rewards import SHARING, SURVIVAL_REWARD, shaped_weights
from society_env.world.state import ALIVE, DEAD, NO_BUFFERS, NUM_TRAITS, SPAWN_ROUNDS, WorldState, world_arrays


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


@functools.lru_cache(maxsize=64)
def transfer_amounts(config: SocietyConfig) -> np.ndarray:
    """``config.transfer_amounts`` as a read-only int64 array, built once per config."""
    amounts = np.asarray(config.transfer_amounts, dtype=np.int64)
    amounts.flags.writeable = False
    return amounts


@functools.lru_cache(maxsize=64)
def step_rule(config: SocietyConfig) -> StepRule:
    """The numbers of every phase as one record for :func:`society_env.world.kernels.advance`, from the
    config, ``encodings`` and ``rewards`` (built once per config)."""
    return StepRule(
        alive=ALIVE, dead=DEAD,
        transfer=TransferRule(radius=config.view_radius, amounts=transfer_amounts(config), give=GIVE, take=TAKE,
                              no_agent=NO_AGENT_AT_TARGET, nothing=NOTHING_TO_TRANSFER, give_transfer=GIVE_TRANSFER,
                              take_transfer=TAKE_TRANSFER),
        birth=BirthRule(reproduce=REPRODUCE, min_energy=config.reproduce_min_energy, max_agents=config.max_agents,
                        alive=ALIVE, cost=config.reproduce_cost, child_energy=config.child_energy,
                        mutation_prob=float(config.mutation_prob), mutation_std=float(config.mutation_std),
                        traits=NUM_TRAITS, deltas=NEIGHBOUR_DELTAS, not_enough_energy=NOT_ENOUGH_ENERGY,
                        pool_full=POPULATION_POOL_FULL, no_free_cell=NO_FREE_NEIGHBOUR_CELL),
        move=MoveRule(first=NORTH, last=EAST, deltas=MOVE_DELTAS),
        life=LifeRule(energy_per_step=config.energy_per_step, lifespan=config.lifespan, food_value=config.food_value,
                      dead=DEAD, starvation=STARVATION, old_age=OLD_AGE),
        food=FoodRule(value=config.food_value, decay_prob=float(config.food_decay_prob),
                      regrowth_rate=float(config.food_regrowth_rate), spawn_rounds=SPAWN_ROUNDS,
                      uniform=config.food_distribution == "uniform"),
        reward=RewardRule(survival=config.reward_mode == "survival", survival_reward=SURVIVAL_REWARD,
                          shaped=shaped_weights(config), sharing=SHARING[config.reward_sharing].code,
                          lineage_discount=float(config.lineage_discount),
                          lineage_generations=int(config.lineage_generations)),
    )


def record_outcome(state: WorldState, record: StepRecord, outcome: StepOutcome, actions: Actions,
                   config: SocietyConfig) -> None:
    """What the phases wrote into ``record`` (arrays of this step only) as ``outcome``'s events; the children
    born take the slots from ``state.num_born`` on, which then moves past them. Then the survivors' free-text
    messages (language option)."""
    transfers, births, deaths = (int(record.counts[i]) for i in (TRANSFERS, BIRTHS, DEATHS))
    outcome.transfer_kind, outcome.transfer_source = record.transfer_kind[:transfers], record.transfer_source[:transfers]
    outcome.transfer_dest, outcome.transfer_amount = record.transfer_dest[:transfers], record.transfer_amount[:transfers]
    if births:
        outcome.birth_parent = record.birth_parent[:births]
        outcome.birth_child = np.arange(state.num_born, state.num_born + births)
        state.num_born += births
    if deaths:
        outcome.death_slot, outcome.death_cause = record.death_slot[:deaths], record.death_cause[:deaths]
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
    docstring), are one compiled call (:func:`society_env.world.kernels.advance`); with artifacts, two,
    with the artifact phases of ``artifacts`` around the second. ``buffers``: the grid's
    ``kernels.RegrowthBuffers``, kept by the env across steps (default: none, allocated per step)."""
    world, rule = world_arrays(state), step_rule(config)
    living = state.status == ALIVE  # alive at the start of the step; agents without an action stay
    moves = StepActions(actions.acting & living, actions.kind, actions.target, actions.amount, actions.message)
    record = step_record(config.max_agents)  # fresh arrays: the outcome keeps them
    outcome = StepOutcome(rewards=record.rewards, ate=record.ate, blocked=record.blocked, failed=record.failed,
                          present=record.present)
    if not (config.artifacts or state.artifacts):
        kernels.advance(rng, world, state.num_born, state.step, moves, rule, record, buffers, WHOLE_STEP)
        record_outcome(state, record, outcome, actions, config)
        state.step += 1
        return outcome
    commands = {slot: c for slot, c in (actions.artifact or {}).items() if living[slot]} if config.artifacts else {}
    kernels.advance(rng, world, state.num_born, state.step, moves, rule, record, buffers, BEFORE_ARTIFACTS)
    resolve_artifact_actions(state, commands, config, record.rank, outcome)
    kernels.advance(rng, world, state.num_born, state.step, moves, rule, record, buffers, AFTER_ARTIFACTS)
    record_outcome(state, record, outcome, actions, config)
    drop_inventories(state, outcome.death_slot, config, outcome)
    age_artifacts(state, outcome)
    state.step += 1
    return outcome
