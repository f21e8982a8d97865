"""A step of the world, composed once: :func:`advance` calls the rule phases in their order (``phases``), and
every caller steps through it: ``rules.advance_world`` (the PettingZoo env), in one call or, with artifacts,
in two around the artifact phases; and :func:`step_and_observe`, the array API's world on one thread, rules
and observation in one call. Also the array API's check of the actions' ranges (:func:`first_bad_action`).
"""

from __future__ import annotations

import numpy as np

from society_env.world.kernels.cache import kernel
from society_env.world.kernels.observe import observe
from society_env.world.kernels.phases import (
    add_rewards,
    decay_and_regrow,
    eat_and_metabolise,
    keep_messages,
    move_agents,
    rank_agents,
    reproduce,
    share_rewards,
    start_record,
    transfer_energy,
)
from society_env.world.kernels.plumbing import generator_at
from society_env.world.kernels.records import BIRTHS, COUNTS, DEATHS, LIVING, StepActions, StepRecord

BEFORE_ARTIFACTS, AFTER_ARTIFACTS = 1, 2
"""The parts of a step :func:`advance` runs: phases 1-2, the phases from 3 on; a world without artifacts runs
both in one call (``WHOLE_STEP``)."""
WHOLE_STEP = BEFORE_ARTIFACTS | AFTER_ARTIFACTS


@kernel(nogil=True)
def advance(rng, world, num_born, step, actions, rule, record, buffers, part):  # pragma: no cover - compiled
    """The rule phases of one step, in order, of ``world`` (``records.WorldArrays``) at ``step`` with
    ``num_born`` slots used, under ``actions`` (``records.StepActions``) and ``rule`` (``records.StepRule``),
    each drawing from ``rng`` itself; what happened goes to ``record`` (``records.StepRecord``, overwritten)
    and the regrowth works in ``buffers`` (``food_cells.RegrowthBuffers``). ``part``: :data:`WHOLE_STEP`, or
    :data:`BEFORE_ARTIFACTS` then :data:`AFTER_ARTIFACTS` with the artifact actions in between
    (``rules.advance_world``: they need the ranks and change no array of ``world``)."""
    if part & BEFORE_ARTIFACTS:
        start_record(record, world.status, rule.alive)
        rank_agents(rng, record)  # 1. priority
        transfer_energy(world, actions, record, rule.transfer)  # 2. give / take
    if part & AFTER_ARTIFACTS:
        present = record.living[: record.counts[LIVING]]
        reproduce(rng, world, num_born, step, actions, record, rule.birth)  # 3. reproduction
        move_agents(world, actions, record, rule.move)  # 4. moves
        eat_and_metabolise(world, present, record, rule.life)  # 5-7. eating, metabolism, death
        decay_and_regrow(rng, world, rule.food, buffers)  # 8. food decay and regrowth
        keep_messages(world, actions, present, rule.dead)  # 9. messages
        add_rewards(record, present, world.status, rule)  # 10. rewards
        share_rewards(record, present, world.parent, rule.reward)  # 11. who is credited with them


@kernel
def new_record(slots, rewards):  # pragma: no cover - compiled
    """``records.step_record(slots, rewards)`` in compiled code (the same types)."""
    def ints():
        return np.empty(slots, np.int64)

    return StepRecord(np.empty(slots, np.bool_), ints(), ints(), ints(), np.empty(slots, np.int8),
                      np.empty(slots, np.bool_), ints(), rewards, ints(), ints(), ints(), ints(), ints(), ints(), ints(),
                      np.zeros(COUNTS, np.int64))


@kernel(nogil=True)  # nogil: SocietyVectorEnv steps its worlds on threads
def step_and_observe(rng_handle, actions, alive, world, num_born, step, rule, rewards, buffers, spec, padded, kin,
                     observations, features, write):  # pragma: no cover - compiled
    """One step of one world without artifacts (``vector.SocietyVectorEnv``), as one call: :func:`advance`
    drawing from the Generator of ``rng_handle`` (``plumbing.generator_at``), then the rows of the agents that
    died zeroed in ``observations`` and ``features`` and, if ``write``, the survivors' observations written on
    this thread (``observe.observe`` with ``spec`` and the grids ``padded`` and ``kin``; else the caller
    writes them, with the parallel loops). ``actions``: int64 [slots, 4] (kind, target, amount, message);
    ``alive``: the living slots (who acts), updated to the survivors; ``rewards`` gets the step's rewards
    (the step's record is allocated here: unboxing its arrays from Python at every call cost more). A step of a few hundred agents costs tens of microseconds of work: one call instead of a dozen
    keeps numba's argument unboxing and the Python between calls from doubling it. Returns (children born,
    living agents after the step)."""
    # contiguous columns (copies), as the phases take them from parallel_env
    step_actions = StepActions(alive.copy(), actions[:, 0].copy(), actions[:, 1].copy(), actions[:, 2].copy(),
                               actions[:, 3].copy())
    record = new_record(alive.shape[0], rewards)
    advance(generator_at(rng_handle), world, num_born, step, step_actions, rule, record, buffers, WHOLE_STEP)
    for slot in record.death_slot[: record.counts[DEATHS]]:  # the dead see nothing from now on
        observations[slot] = 0
        features[slot] = 0
    for slot in range(alive.shape[0]):
        alive[slot] = world.status[slot] == rule.alive
    living = np.flatnonzero(alive)
    if write:
        observe(spec, padded, kin, np.zeros((0, 0), np.int64), world, living, living, observations, features)
    return record.counts[BIRTHS], living.shape[0]


@kernel
def first_bad_action(actions, sizes, alive):  # pragma: no cover - compiled
    """(world, slot) of the first living slot whose action has a component outside [0, size), else
    (-1, -1). ``actions``: [worlds, slots, components]."""
    for e in range(actions.shape[0]):
        for slot in range(actions.shape[1]):
            if alive[e, slot]:
                for c in range(sizes.shape[0]):
                    if actions[e, slot, c] < 0 or actions[e, slot, c] >= sizes[c]:
                        return e, slot
    return -1, -1
