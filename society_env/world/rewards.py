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

``reward_sharing`` then says who is credited with those rewards (:data:`SHARING`, the compiled phase 11
``kernels.phases.share_rewards``): the agent alone (the default), its living ancestors too (``lineage``, a
discounted share per generation: Hamilton's inclusive fitness), or everyone equally (``population``). Under
the individual rewards a child costs its parent energy and pays it nothing, so a selfish learner is right
to stay childless and never give; the two sharing modes make a family or a society pay.
"""

from __future__ import annotations

from typing import NamedTuple

from society_env.world.config import REWARD_SHARING, SocietyConfig
from society_env.world.kernels.records import SHARE_INDIVIDUAL, SHARE_LINEAGE, SHARE_POPULATION
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


class Sharing(NamedTuple):
    """One ``reward_sharing`` mode: who is credited with the rewards an agent earns in a step."""

    name: str
    code: int
    """What the compiled phase 11 reads (``kernels.records.SHARE_*``)."""
    credits: str


SHARING: dict[str, Sharing] = {row.name: row for row in (
    Sharing("individual", SHARE_INDIVIDUAL, "each agent gets what it earned (the rows above, or survival)"),
    Sharing("lineage", SHARE_LINEAGE,
            "each agent gets what it earned, plus lineage_discount ** g times what each descendant g generations "
            "down earned (g = 1 .. lineage_generations, along the parent links), if the agent is alive in the step; "
            "a dead ancestor gets nothing and the credit still reaches the living ones above it; credit is passed "
            "on from what was earned, never from credit"),
    Sharing("population", SHARE_POPULATION,
            "every agent of the step (alive at its start, dying in it included) gets the mean of what they "
            "earned: the fully cooperative bound (Melting Pot's collective return, per agent)"),
)}
"""The ``reward_sharing`` modes, by name (``config.REWARD_SHARING`` lists the same names)."""
assert tuple(SHARING) == REWARD_SHARING
