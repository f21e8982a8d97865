"""Time series of a run (one value per snapshot step) and per-policy survival.

Everything is read from the recording itself, not from ``summary.json``, so killed runs (which have no
summary) get the same report. Returns are the sums of the rewards recorded per step. Recordings made
before rewards were recorded get them rebuilt from the recorded facts with the run's own reward
settings and the reward table ``society_env.world.rewards.SHAPED_REWARDS`` (:func:`rebuilt_returns`): food
eaten is the food value of the cell an agent ends the step on in the previous snapshot (nothing changes
food between a snapshot and the next step's eating), a blocked move is a move action after which the
agent stands where it stood, transfers and deaths come from the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from society_env.analysis.loading import RunData, slot_of
from society_env.world.encodings import DEATH_CAUSES, EAST, NORTH
from society_env.world.outcome import ARTIFACT_CREATED, ARTIFACT_DESTROYED, ARTIFACT_EXPIRED, ATE, BLOCKED, DIED
from society_env.recording.format import count_events
from society_env.world.rewards import REWARDS_BY_EVENT, SHAPED_REWARDS, SURVIVAL_REWARD

ARTIFACT_ENDINGS = (ARTIFACT_DESTROYED, ARTIFACT_EXPIRED)
MOVE_KINDS = tuple(range(NORTH, EAST + 1))  # north, south, west, east


@dataclass
class TimeSeries:
    """One array per quantity, index = snapshot step (``steps`` entries; step 0 holds the founders)."""

    population: np.ndarray
    food_tiles: np.ndarray
    food_total: np.ndarray
    mean_energy: np.ndarray
    births: np.ndarray
    deaths: dict[str, np.ndarray]
    energy_given: np.ndarray
    energy_taken: np.ndarray
    messages: np.ndarray
    artifacts_alive: np.ndarray

    def as_columns(self) -> dict[str, np.ndarray]:
        """Flat name -> array mapping (deaths split by cause), for tables, CSV and plots."""
        columns = {"population": self.population, "food_tiles": self.food_tiles, "food_total": self.food_total,
                   "mean_energy": self.mean_energy, "births": self.births}
        columns.update({f"deaths_{cause}": counts for cause, counts in self.deaths.items()})
        columns.update({"energy_given": self.energy_given, "energy_taken": self.energy_taken,
                        "messages": self.messages, "artifacts_alive": self.artifacts_alive})
        return columns


def _segment_sums(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sum of each step's segment of a flat per-step array (empty segments sum to 0)."""
    step = np.repeat(np.arange(lengths.size), lengths)
    return np.bincount(step, weights=values, minlength=lengths.size).round().astype(np.int64)


def time_series(run: RunData) -> TimeSeries:
    population = np.diff(run.agent_offsets)
    food_tiles = np.diff(run.food_offsets)
    food_total = _segment_sums(run.food_value, food_tiles)
    mean_energy = _segment_sums(run.energy, population) / np.maximum(population, 1)

    # Counted per step with the function the run summary counts with (society_env.recording.format.count_events).
    counts = [count_events(run.events_by_step.get(step, ())) for step in range(run.steps)]
    known = list(DEATH_CAUSES.values())
    causes = known + sorted({key[5:] for c in counts for key in c if key.startswith("died:")} - set(known))

    def column(key: str) -> np.ndarray:
        return np.array([c[key] for c in counts], dtype=np.int64)

    artifact_change = column(ARTIFACT_CREATED) - sum(column(kind) for kind in ARTIFACT_ENDINGS)
    return TimeSeries(
        population=population, food_tiles=food_tiles, food_total=food_total, mean_energy=mean_energy,
        births=column("born"), deaths={cause: column(f"died:{cause}") for cause in causes},
        energy_given=column("gave_amount"), energy_taken=column("took_amount"),
        messages=column("message"), artifacts_alive=np.cumsum(artifact_change),
    )


def lifespans(run: RunData) -> dict[int, int]:
    """Age at death, or age at the last snapshot for agents still alive (as the run summary counts it)."""
    return {slot: life.age_at_death if life.age_at_death is not None else run.last_step - life.birth_step
            for slot, life in run.agents.items()}


def agent_returns(run: RunData) -> np.ndarray:
    """Episode return per slot: the sum of the rewards the recording holds (the env's own numbers)."""
    if run.rewards_by_step is None:
        return rebuilt_returns(run)
    returns = np.zeros(max(run.num_slots, 1), dtype=np.float64)
    for rewards in run.rewards_by_step:
        for slot, reward in rewards.items():
            returns[slot] += reward
    return returns


def eaten_food(run: RunData):
    """Per step ``t >= 1``: ``(t, active, start_position, end_position, food)`` with ``active`` the slots
    alive at the start of the step (they eat, pay and may die), their positions before and after it (the
    death position for the dead), and the food value of the cell each ended on, which it ate (module
    docstring)."""
    config = run.config
    position = np.zeros((max(run.num_slots, 1), 2), dtype=np.int64)
    food = np.zeros(config.height * config.width, dtype=np.int64)
    for step in range(1, run.steps):
        before, after = run.agents_at(step - 1), run.agents_at(step)
        active = run.slot[before]
        start_position = np.stack([run.row[before], run.col[before]], axis=1)
        position[run.slot[after], 0], position[run.slot[after], 1] = run.row[after], run.col[after]
        for event in run.events_by_step.get(step, []):
            if event["type"] == DIED:
                position[slot_of(event["agent"])] = event["position"]
        end_position = position[active]
        food[:] = 0
        food[run.food_cell[run.food_at(step - 1)]] = run.food_value[run.food_at(step - 1)]
        yield step, active, start_position, end_position, food[end_position[:, 0] * config.width + end_position[:, 1]]


def rebuilt_returns(run: RunData) -> np.ndarray:
    """Episode return per slot for recordings made before rewards were recorded: rebuilt from the
    recorded facts with the run's reward settings (module docstring)."""
    config = run.config
    shaped = config.reward_mode == "shaped"
    weight = {row.event: getattr(config, row.field) for row in SHAPED_REWARDS if row.event in (ATE, BLOCKED)}
    returns = np.zeros(max(run.num_slots, 1), dtype=np.float64)
    for step, active, start_position, end_position, eaten in eaten_food(run):
        events = run.events_by_step.get(step, [])
        died = [event for event in events if event["type"] == DIED]
        if shaped:
            returns[active] += weight[ATE] * eaten
            kinds = run.actions_by_step[step]
            moved_kind = np.array([kinds.get(slot, -1) for slot in active.tolist()], dtype=np.int64)
            blocked = np.isin(moved_kind, MOVE_KINDS) & np.all(end_position == start_position, axis=1)
            returns[active[blocked]] += weight[BLOCKED]
            # The recorded events' rows: transfers in event order, then deaths (as the rewards were added).
            paying = [event for event in events if event["type"] in REWARDS_BY_EVENT and event["type"] != DIED]
            for event in paying + died:
                for row in REWARDS_BY_EVENT[event["type"]]:
                    paid = getattr(config, row.field)
                    returns[slot_of(event[row.receiver])] += paid if row.per is None else paid * event[row.per]
        else:
            survivors = np.setdiff1d(active, [slot_of(event["agent"]) for event in died])
            returns[survivors] += SURVIVAL_REWARD
    return returns


@dataclass
class PolicySurvival:
    """How one policy's agents fared."""

    agents: int
    founders: int
    births: int
    alive_at_end: int
    mean_lifespan: float
    mean_return: float
    deaths: dict[str, int] = field(default_factory=dict)


def survival_by_policy(run: RunData) -> dict[str, PolicySurvival]:
    ages = lifespans(run)
    returns = agent_returns(run)
    result: dict[str, PolicySurvival] = {}
    for policy in sorted({life.policy for life in run.agents.values()}):
        members = [life for life in run.agents.values() if life.policy == policy]
        deaths: dict[str, int] = {}
        for life in members:
            if life.death_cause:
                deaths[life.death_cause] = deaths.get(life.death_cause, 0) + 1
        result[policy] = PolicySurvival(
            agents=len(members),
            founders=sum(life.parent < 0 for life in members),
            births=sum(life.parent >= 0 for life in members),
            alive_at_end=sum(life.death_step is None for life in members),
            mean_lifespan=float(np.mean([ages[life.slot] for life in members])),
            mean_return=float(np.mean([returns[life.slot] for life in members])),
            deaths=deaths,
        )
    return result
