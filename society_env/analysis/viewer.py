"""``society-env view``: a self-contained ``replay.html`` that plays a recording back in the browser.

The page is one file (``viewer_template.html`` + the run's data, gzip-compressed JSON in base64), so it
opens from disk with no network and no server. Per-step data are flat arrays with per-step offsets (agents:
slot, row, col, energy, last action; food: cell, value; events: 5 integers each; artifacts on the ground:
cell), which the page draws on a canvas one step at a time: a 3000-step run with hundreds of agents stays
responsive because no step is ever turned into DOM nodes beyond its event list.
"""

from __future__ import annotations

import base64
import gzip
import json
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from society_env.analysis.lineage import lineage
from society_env.analysis.loading import RunData, load_run, slot_of
from society_env.world.config import TRAIT_NAMES
from society_env.recording.files import write_bytes_atomic
from society_env.world.outcome import (
    ARTIFACT_CREATED,
    ARTIFACT_DESTROYED,
    ARTIFACT_DROPPED,
    ARTIFACT_EXPIRED,
    ARTIFACT_GIVEN,
    ARTIFACT_PICKED_UP,
    BORN,
    DIED,
    GAVE,
    MESSAGE,
    TOOK,
)
from society_env.recording.format import Recording

EVENT_FIELDS = 5
"""Integers per event in the page: type, agent slot, other slot, amount, text index (-1 = none)."""
ARTIFACT_LEAVES_GROUND = (ARTIFACT_PICKED_UP, ARTIFACT_GIVEN, ARTIFACT_DESTROYED, ARTIFACT_EXPIRED)
"""Artifact events after which it is not on the ground (unless created or dropped with a position)."""


def _action_names() -> list[str]:
    from society_env.world.encodings import ACTION_NAMES

    return list(ACTION_NAMES)


class _Strings:
    """A table of distinct strings (message texts, causes, artifact names) referenced by index."""

    def __init__(self) -> None:
        self.table: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.table)
            self.table.append(text)
        return self._index[text]


def _event_row(event: dict[str, Any], types: _Strings, texts: _Strings) -> list[int]:
    """One event as ``EVENT_FIELDS`` integers (its words go to the string table)."""
    kind = event["type"]
    other, amount, text = -1, 0, -1
    if kind == MESSAGE:
        text = texts.index(event.get("text") or f"token {event.get('token', 0)}")
    elif kind in (GAVE, TOOK):
        other, amount = slot_of(event["to" if kind == GAVE else "from"]), int(event["amount"])
    elif kind == BORN:
        other = slot_of(event["parent"])
    elif kind == DIED:
        text = texts.index(event["cause"])
    elif kind.startswith("artifact"):
        other = slot_of(event.get("to"))
        name = event.get("name") or event.get("artifact")
        text = texts.index(f"{name}" + (f": {event['text']}" if event.get("text") else ""))
    return [types.index(kind), slot_of(event.get("agent")), other, amount, text]


def _artifacts_on_ground(run: RunData) -> tuple[list[int], list[int]] | None:
    """Per-step cells of artifacts lying on the ground, or None if the run has no artifacts."""
    if not any(event["type"].startswith("artifact") for events in run.events_by_step.values() for event in events):
        return None
    width = run.config.width
    lying: dict[Any, int] = {}
    offsets, cells = [0], []
    for step in range(run.steps):
        for event in run.events_by_step.get(step, []):
            kind, artifact = event["type"], event.get("artifact")
            position = event.get("position")
            if kind in (ARTIFACT_CREATED, ARTIFACT_DROPPED) and position is not None and min(position) >= 0:
                lying[artifact] = position[0] * width + position[1]
            elif kind in ARTIFACT_LEAVES_GROUND:
                lying.pop(artifact, None)
        cells.extend(lying.values())
        offsets.append(len(cells))
    return offsets, cells


def replay_data(run: RunData) -> dict[str, Any]:
    """Everything the page needs, as plain lists (JSON-ready)."""
    tree = lineage(run)
    policies = sorted({life.policy for life in run.agents.values()})
    slots = max(run.num_slots, 1)
    table: dict[str, list] = {"policy": [0] * slots, "family": list(range(slots)), "generation": [0] * slots,
                              "parent": [-1] * slots, "birth": [0] * slots, "death": [-1] * slots,
                              "cause": [""] * slots, "genome": [[]] * slots}
    for slot, life in run.agents.items():
        table["policy"][slot] = policies.index(life.policy)
        table["family"][slot] = tree.family_of[slot]
        table["generation"][slot] = tree.generation_of[slot]
        table["parent"][slot], table["birth"][slot] = life.parent, life.birth_step
        table["death"][slot] = -1 if life.death_step is None else life.death_step
        table["cause"][slot] = life.death_cause or ""
        table["genome"][slot] = [round(value, 2) for value in life.genome]

    types, texts = _Strings(), _Strings()
    event_offsets, events = [0], []
    for step in range(run.steps):
        for event in run.events_by_step.get(step, []):
            events.extend(_event_row(event, types, texts))
        event_offsets.append(len(events) // EVENT_FIELDS)

    data: dict[str, Any] = {
        "title": run.run_dir.name, "complete": run.complete,
        "width": run.config.width, "height": run.config.height, "view_radius": run.config.view_radius,
        "initial_energy": run.config.initial_energy, "food_unit": run.config.food_value,
        "policies": policies, "action_names": _action_names(),
        "traits": [name for name, _, _ in TRAIT_NAMES] + ["fertility"],
        "agents": table,
        "steps_at": run.snapshot_steps.tolist(),
        "agent_offsets": run.agent_offsets.tolist(), "slot": run.slot.tolist(), "row": run.row.tolist(),
        "col": run.col.tolist(), "energy": run.energy.tolist(), "action": run.action_kind.tolist(),
        "food_offsets": run.food_offsets.tolist(), "food_cell": run.food_cell.tolist(),
        "food_value": run.food_value.tolist(),
        "event_types": types.table, "texts": texts.table, "event_offsets": event_offsets, "events": events,
    }
    artifacts = _artifacts_on_ground(run)
    if artifacts is not None:
        data["artifact_offsets"], data["artifact_cell"] = artifacts
    return data


def render_replay(data: dict[str, Any]) -> str:
    """The page: the template with the data embedded (gzip + base64, which never contains ``</script>``)."""
    template = resources.files("society_env.analysis").joinpath("viewer_template.html").read_text()
    packed = base64.b64encode(gzip.compress(json.dumps(data, separators=(",", ":")).encode(), compresslevel=6, mtime=0))
    return template.replace("__DATA__", packed.decode("ascii"), 1).replace("__TITLE__", escape(data["title"]))


def write_replay(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``replay.html`` for a run directory (complete or killed); returns its path."""
    run = load_run(run_dir)
    path = Path(out) if out is not None else run.run_dir / "replay.html"
    data = replay_data(run)
    data["recording_sha256"] = Recording(run.run_dir).fingerprint()  # which recording this page shows
    write_bytes_atomic(path, render_replay(data).encode())
    return path

