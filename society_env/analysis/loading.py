"""Read a run directory once into compact arrays that every analysis (series, graph, lineage, viewer) shares.

A recording stores one JSON line per step; the analyses need column access ("every agent's row at every
step"), so the snapshots are flattened into per-step offsets plus flat arrays (the CSR layout), and agents
are indexed by their slot (``agent_7`` -> 7). Partial recordings of killed runs are cut to the steps that
have a snapshot: events or actions written after the last complete snapshot line are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from society_env.world.config import SocietyConfig
from society_env.world.encodings import ACTION_FIELDS
from society_env.world.names import agent_slot
from society_env.recording.format import Recording

MESSAGE_FIELD = ACTION_FIELDS.index("message")
"""Index of the message token in a recorded action vector."""
NO_ACTION = -1
"""Action kind stored for agents without a recorded action in a step (newborns, a killed run's tail)."""


def slot_of(agent: str | None) -> int:
    """``"agent_12"`` -> 12; ``None`` (e.g. an artifact that expired on the ground) -> -1."""
    return -1 if agent is None else agent_slot(agent)


@dataclass
class AgentLife:
    """One agent from birth to death, as far as the recording goes."""

    slot: int
    policy: str
    birth_step: int
    parent: int
    """Parent slot, -1 for founders."""
    genome: list[float]
    death_step: int | None = None
    death_cause: str | None = None
    age_at_death: int | None = None


@dataclass
class RunData:
    """Everything the analyses read from one recording, aligned on snapshot steps ``0 .. steps - 1``."""

    run_dir: Path
    meta: dict[str, Any]
    config: SocietyConfig
    complete: bool
    """Whether the run finished (``summary.json`` exists); False for a killed run."""
    snapshot_steps: np.ndarray
    agent_offsets: np.ndarray
    """Agents alive after step ``t`` are ``slot[agent_offsets[t]:agent_offsets[t + 1]]``."""
    slot: np.ndarray
    row: np.ndarray
    col: np.ndarray
    energy: np.ndarray
    action_kind: np.ndarray
    """Per snapshot agent: the action kind that led to this snapshot (``NO_ACTION`` if none)."""
    actions_by_step: list[dict[int, int]]
    """``actions_by_step[t]``: slot -> action kind submitted in the step that produced snapshot ``t``,
    including agents that died in that step (entry 0 is empty)."""
    tokens_by_step: list[dict[int, int]]
    """``tokens_by_step[t]``: slot -> message token of that same action (the action vector's last field;
    0 is silence), aligned with ``actions_by_step``; empty where a recorded vector has no message field."""
    food_offsets: np.ndarray
    food_cell: np.ndarray
    food_value: np.ndarray
    agents: dict[int, AgentLife]
    events_by_step: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    rewards_by_step: list[dict[int, float]] | None = None
    """``rewards_by_step[t]``: slot -> reward of the step that produced snapshot ``t``, as the env returned
    it; None for recordings made before rewards were recorded (their returns are rebuilt)."""

    @property
    def steps(self) -> int:
        """Number of snapshots (step 0 and every completed step)."""
        return len(self.snapshot_steps)

    @property
    def last_step(self) -> int:
        return self.steps - 1

    def agents_at(self, step: int) -> slice:
        """Slice of the flat agent arrays for the snapshot after ``step``."""
        return slice(self.agent_offsets[step], self.agent_offsets[step + 1])

    def food_at(self, step: int) -> slice:
        return slice(self.food_offsets[step], self.food_offsets[step + 1])

    def events(self, *types: str) -> list[dict[str, Any]]:
        """All events of the given types, in recording order."""
        wanted = set(types)
        return [event for step in sorted(self.events_by_step) for event in self.events_by_step[step]
                if event["type"] in wanted]

    @property
    def num_slots(self) -> int:
        """Slots used by the run (founders + births): agent ids are ``0 .. num_slots - 1``.

        Counts snapshot slots too, so an agent whose birth event was lost from a damaged log still fits.
        """
        return max(max(self.agents, default=-1), int(self.slot.max(initial=-1))) + 1


def _flatten(lines: list[list[Any]], dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(line) for line in lines])
    flat = np.fromiter((value for line in lines for value in line), dtype=dtype, count=int(offsets[-1]))
    return offsets, flat


def _column(recording: Recording, snapshots: list[dict[str, Any]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """One field of every snapshot, flattened; ``RecordingError`` when a value is not an integer."""
    try:
        return _flatten([s[name] for s in snapshots])
    except (TypeError, ValueError, OverflowError):
        from society_env.recording.format import RecordingError

        raise RecordingError(f"{recording.run_dir / 'snapshots.jsonl'} holds a snapshot whose {name!r} is not a "
                             "list of integers: the recording is damaged") from None


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory (complete or killed) into :class:`RunData`. Raises ``RecordingError``."""
    recording = Recording(run_dir)
    snapshots = list(recording.snapshots())
    if not snapshots:
        from society_env.recording.format import RecordingError

        raise RecordingError(f"{recording.run_dir} has no snapshots yet: nothing to analyse")
    last_step = len(snapshots) - 1
    agent_offsets, slots = _column(recording, snapshots, "agents")
    _, rows = _column(recording, snapshots, "row")
    _, cols = _column(recording, snapshots, "col")
    _, energy = _column(recording, snapshots, "energy")
    food_offsets, food_cells = _column(recording, snapshots, "food_cells")
    _, food_values = _column(recording, snapshots, "food_values")

    action_kind = np.full(slots.size, NO_ACTION, dtype=np.int64)
    actions_by_step: list[dict[int, int]] = [{} for _ in snapshots]
    tokens_by_step: list[dict[int, int]] = [{} for _ in snapshots]
    rewards_by_step: list[dict[int, float]] | None = [{} for _ in snapshots]
    for line in recording.actions():
        step = line["step"] + 1  # actions at step t produce snapshot t + 1
        if step > last_step:
            break
        kinds = actions_by_step[step] = {slot_of(agent): int(vector[0]) for agent, vector in line["actions"].items()}
        tokens_by_step[step] = {slot_of(agent): int(vector[MESSAGE_FIELD]) for agent, vector in line["actions"].items()
                                if len(vector) > MESSAGE_FIELD}
        if "rewards" not in line:
            rewards_by_step = None
        elif rewards_by_step is not None:
            rewards_by_step[step] = {slot_of(agent): value for agent, value in line["rewards"].items()}
        start, end = agent_offsets[step], agent_offsets[step + 1]
        action_kind[start:end] = [kinds.get(slot, NO_ACTION) for slot in slots[start:end].tolist()]

    agents: dict[int, AgentLife] = {}
    events_by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in recording.events():
        if event["step"] > last_step:
            continue  # written after the last complete snapshot of a killed run
        events_by_step[event["step"]].append(event)
        kind = event["type"]
        if kind in ("added", "born"):
            slot = slot_of(event["agent"])
            agents[slot] = AgentLife(slot=slot, policy=event.get("policy") or "unknown", birth_step=event["step"],
                                     parent=slot_of(event.get("parent")), genome=list(event.get("genome", [])))
        elif kind == "died":
            life = agents.get(slot_of(event["agent"]))
            if life is not None:
                life.death_step, life.death_cause, life.age_at_death = event["step"], event["cause"], event["age"]

    return RunData(
        run_dir=recording.run_dir, meta=recording.meta, config=recording.config,
        complete=recording.summary is not None,
        snapshot_steps=np.asarray([s["step"] for s in snapshots], dtype=np.int64),
        agent_offsets=agent_offsets, slot=slots, row=rows, col=cols, energy=energy, action_kind=action_kind,
        actions_by_step=actions_by_step, tokens_by_step=tokens_by_step,
        food_offsets=food_offsets, food_cell=food_cells, food_value=food_values,
        agents=agents, events_by_step=dict(events_by_step), rewards_by_step=rewards_by_step,
    )
