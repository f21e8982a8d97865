"""The rewards as data: which event pays whom, by which config field.

``reward_mode="shaped"`` (TerraLingua's shaping) pays the rows of :data:`SHAPED_REWARDS`: each names an
event (a fact of the step's ``StepOutcome``, with the recording's event names from
``society_env.world.outcome``), the receiver (the field of the recorded event that names the agent paid:
``agent`` for the actor, ``to`` / ``from`` for a transfer's partner), the ``SocietyConfig`` field of the
weight, and what the weight is per (``amount``: per energy unit transferred, ``value``: per food unit
eaten, ``None``: once).

Both readers take the rows from here:

* the compiled rewards (``kernels.advance`` -> ``kernels.phases.add_rewards``) get the weights as
  a :class:`ShapedWeights` record, built in table order: the order of the rows is the order in which the
  kernel adds them (a transfer's source, then its destination, blocked moves, eating, death), which fixes
  how each slot's sum is rounded;
* ``analysis.series.rebuilt_returns``, which rebuilds the returns of recordings made before rewards were
  recorded, applies the rows of each recorded event by looking up the receiver in it.

``reward_mode="survival"`` pays :data:`SURVIVAL_REWARD` for every step an agent ends alive.
"""

from __future__ import annotations

from typing import NamedTuple

from society_env.world.config import SocietyConfig
from society_env.world.outcome import ATE, BLOCKED, DIED, GAVE, TOOK


class Reward(NamedTuple):
    """One row of the reward table."""

    event: str
    """The event that pays (``society_env.world.outcome`` names)."""
    receiver: str
    """The field of the recorded event naming the agent paid (``agent``: the actor)."""
    field: str
    """The ``SocietyConfig`` field holding the weight."""
    per: str | None
    """What the weight is per: ``amount`` (energy units transferred), ``value`` (food units eaten), or
    ``None`` (once per event)."""


SHAPED_REWARDS: tuple[Reward, ...] = (
    Reward(GAVE, "agent", "reward_give_giver", "amount"),  # a transfer's source: the giver ...
    Reward(TOOK, "from", "reward_take_victim", "amount"),  # ... or the victim of a take
    Reward(GAVE, "to", "reward_give_receiver", "amount"),  # a transfer's destination: the receiver ...
    Reward(TOOK, "agent", "reward_take_taker", "amount"),  # ... or the taker
    Reward(BLOCKED, "agent", "reward_blocked_move", None),
    Reward(ATE, "agent", "reward_eat_per_unit", "value"),
    Reward(DIED, "agent", "reward_death", None),
)
"""The ``shaped`` rewards, in the order the kernel adds them (module docstring)."""

SURVIVAL_REWARD = 1.0
"""The ``survival`` reward of every agent alive at the start of a step and still alive at its end."""

ShapedWeights = NamedTuple("ShapedWeights", [(row.field, float) for row in SHAPED_REWARDS])
"""The weights of :data:`SHAPED_REWARDS` as one record (fields named by their config fields, in table
order): the argument ``kernels.phases.add_shaped_rewards`` reads them from (numba types it as a tuple of
float64)."""


def shaped_weights(config: SocietyConfig) -> ShapedWeights:
    """The config's weights of the shaped rewards, in table order, as float64."""
    return ShapedWeights(*(float(getattr(config, row.field)) for row in SHAPED_REWARDS))


REWARDS_BY_EVENT: dict[str, tuple[Reward, ...]] = {
    event: tuple(row for row in SHAPED_REWARDS if row.event == event)
    for event in dict.fromkeys(row.event for row in SHAPED_REWARDS)
}
"""The rows of :data:`SHAPED_REWARDS` by event, each in table order."""
