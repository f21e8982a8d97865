"""The named records the kernels take instead of long lists of positional arguments: the world's arrays, one
step's actions, what a step did, and the numbers of each rule phase. All are ``NamedTuple``s: numba types one
as a tuple whose fields compile to plain loads, so a record costs nothing in compiled code (an array's field
is the same pointer as the array passed alone); from Python, ``kernels.plumbing.entry_point`` skips the
typing of the arguments of the array API's step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class WorldArrays(NamedTuple):
    """The arrays of a ``WorldState`` that the kernels read and write, by slot (``position`` is [slots, 2])
    and by cell (``food``, ``occupant``: [height, width]; ``food_density``, ``food_cdf``: flat)."""

    position: np.ndarray
    occupant: np.ndarray
    status: np.ndarray
    energy: np.ndarray
    age: np.ndarray
    parent: np.ndarray
    lineage: np.ndarray
    generation: np.ndarray
    birth_step: np.ndarray
    genome: np.ndarray
    message: np.ndarray
    food: np.ndarray
    food_density: np.ndarray
    food_cdf: np.ndarray


class StepActions(NamedTuple):
    """One step's actions as contiguous int64 columns over all slots, and who acts (bool: submitted an
    action and is alive)."""

    acting: np.ndarray
    kind: np.ndarray
    target: np.ndarray
    amount: np.ndarray
    message: np.ndarray


COUNTS = 4
"""Entries of :attr:`StepRecord.counts`: living at the start, transfers, births, deaths."""
LIVING, TRANSFERS, BIRTHS, DEATHS = range(COUNTS)


class StepRecord(NamedTuple):
    """What one step did, in arrays of one entry per slot that the caller owns (``step_record``): the rules
    fill them, phase by phase, and the env reads them. A list (``by_rank``, the transfers, births and deaths)
    is the first ``counts[...]`` entries of its arrays."""

    present: np.ndarray  # bool: alive at the start of the step
    living: np.ndarray  # int64: the same slots, ascending (counts[LIVING])
    rank: np.ndarray  # int64: 0 resolves first; the largest int64 for slots not alive
    by_rank: np.ndarray  # int64: the living slots, best rank first (counts[LIVING])
    failed: np.ndarray  # int8: why the slot's action failed (encodings.FAILURE_REASONS), 0 = it did not
    blocked: np.ndarray  # bool: a move was blocked
    ate: np.ndarray  # int64: food eaten
    rewards: np.ndarray  # float64: the step's
    transfer_kind: np.ndarray  # int64 (counts[TRANSFERS]): encodings.GIVE_TRANSFER or TAKE_TRANSFER ...
    transfer_source: np.ndarray  # ... energy leaves ...
    transfer_dest: np.ndarray  # ... energy arrives ...
    transfer_amount: np.ndarray  # ... how much
    birth_parent: np.ndarray  # int64 (counts[BIRTHS]): parents that had a child, in birth order
    death_slot: np.ndarray  # int64 (counts[DEATHS])
    death_cause: np.ndarray  # int64: encodings' death causes
    counts: np.ndarray  # int64 [COUNTS]


def step_record(slots: int, rewards: np.ndarray | None = None) -> StepRecord:
    """A :class:`StepRecord` for a world of ``slots`` slots (its contents are written by the step); ``rewards``:
    the float64 array of ``slots`` entries it writes the rewards into (default: its own)."""
    def ints() -> np.ndarray:
        return np.empty(slots, np.int64)

    return StepRecord(np.empty(slots, np.bool_), ints(), ints(), ints(), np.empty(slots, np.int8), np.empty(slots, np.bool_),
                      ints(), np.empty(slots) if rewards is None else rewards, ints(), ints(), ints(), ints(), ints(),
                      ints(), ints(), np.zeros(COUNTS, np.int64))


class TransferRule(NamedTuple):
    """The numbers of give / take (phase 2): the view radius (a target names a view cell), the amounts an
    amount index names, and the codes (action kinds, failures, transfer kinds)."""

    radius: int
    amounts: np.ndarray  # int64, read-only
    give: int
    take: int
    no_agent: int  # failure: nobody on the target cell
    nothing: int  # failure: nothing left to transfer
    give_transfer: int
    take_transfer: int


class BirthRule(NamedTuple):
    """The numbers of reproduction (phase 3): who may reproduce, the slot pool, what a birth costs the parent
    and gives the child, the mutation of the child's genome, the neighbour cells, and the failure codes."""

    reproduce: int  # action kind
    min_energy: int
    max_agents: int
    alive: int  # status code of the child
    cost: int
    child_energy: int
    mutation_prob: float
    mutation_std: float
    traits: int  # genome columns that are traits (then fertility)
    deltas: np.ndarray  # int64 [8, 2]: the neighbour cells
    not_enough_energy: int  # failures
    pool_full: int
    no_free_cell: int


class MoveRule(NamedTuple):
    """The numbers of the moves (phase 4): the action kinds that move, and their (row, column) steps."""

    first: int
    last: int
    deltas: np.ndarray  # int64 [action kinds, 2]


class LifeRule(NamedTuple):
    """The numbers of eating, metabolism and death (phases 5-7)."""

    energy_per_step: int
    lifespan: int
    food_value: int  # the least a corpse leaves
    dead: int  # status code
    starvation: int  # death causes
    old_age: int


class FoodRule(NamedTuple):
    """The numbers of food decay and regrowth (phase 8)."""

    value: int
    decay_prob: float
    regrowth_rate: float
    spawn_rounds: int  # rounds of rejection draws before the exact one (``state.SPAWN_ROUNDS``)
    uniform: bool  # the density is 1 on every cell (``phases.accept_free_cells``)


SHARE_INDIVIDUAL, SHARE_LINEAGE, SHARE_POPULATION = 0, 1, 2
"""``reward_sharing`` codes (phase 11; ``society_env.world.rewards.SHARING`` names them)."""


class RewardRule(NamedTuple):
    """The numbers of the rewards (phases 10-11): ``reward_mode`` "survival" (else "shaped"), the survival
    reward, the shaped weights (a ``rewards.ShapedWeights``), and who is credited: ``sharing`` (a ``SHARE_*``
    code), with the lineage sharing's discount per generation and its depth in generations."""

    survival: bool
    survival_reward: float
    shaped: tuple
    sharing: int
    lineage_discount: float
    lineage_generations: int


class StepRule(NamedTuple):
    """The numbers of every phase of a step (built once per config by ``rules.step_rule``)."""

    alive: int  # status codes
    dead: int
    transfer: TransferRule
    birth: BirthRule
    move: MoveRule
    life: LifeRule
    food: FoodRule
    reward: RewardRule
