"""Episode recordings: a run directory with the config, an event log, world snapshots and actions.

Layout (format version 1, documented in docs/recording.md)::

    RUN_DIR/meta.json        format name + version, resolved config, seed, policy assignment (atomic)
    RUN_DIR/events.jsonl     one event per line: added, born, died, gave, took, message, artifact_*
    RUN_DIR/snapshots.jsonl  one line per step: living agents' positions and energy, food tiles
    RUN_DIR/actions.jsonl    one line per step: every agent's action vector (and text message)
    RUN_DIR/summary.json     written at the end of a run (atomic); absent if the run was killed

JSON Lines files are flushed after every step, so a killed run leaves a readable partial record;
readers skip a final line cut off mid-write.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from society_env.recording.files import json_default, write_json_atomic
from society_env.world.names import agent_name, agent_slot
from society_env.world.outcome import ADDED, BORN, DIED, GAVE, MESSAGE, TOOK
from society_env.world.state import ALIVE, WORLD_VERSION, WorldState

FORMAT_NAME = "society-env-recording"
FORMAT_VERSION = 1


class RecordingError(ValueError):
    """A run directory that cannot be written or read (missing, wrong format or version)."""


def snapshot(world: WorldState) -> dict[str, Any]:
    """Compact picture of one step: living agents (slot, row, col, energy) and food tiles."""
    living = np.flatnonzero(world.status == ALIVE)
    tiles = np.flatnonzero(world.food)
    return {
        "step": world.step,
        "agents": living.tolist(),
        "row": world.position[living, 0].tolist(),
        "col": world.position[living, 1].tolist(),
        "energy": world.energy[living].tolist(),
        "food_cells": tiles.tolist(),
        "food_values": world.food.ravel()[tiles].tolist(),
    }


def step_events(world: WorldState, infos: dict[str, dict], policy_of: dict[str, str],
                artifact_events: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Events of the step that produced ``world``, in a fixed order, from the env's infos and the step's
    artifact events (``env.last_outcome.artifact_events``, already in the recording's format)."""
    step = world.step
    events: list[dict[str, Any]] = []
    for agent, info in infos.items():
        slot = agent_slot(agent)
        if BORN in info:
            events.append({"step": step, "type": BORN, "agent": agent, "parent": info[BORN],
                           "policy": policy_of.get(agent), "position": world.position[slot].tolist(),
                           "genome": world.genome[slot].round(6).tolist()})
        for partner, amount in info.get(GAVE, []):
            events.append({"step": step, "type": GAVE, "agent": agent, "to": partner, "amount": amount})
        for partner, amount in info.get(TOOK, []):
            events.append({"step": step, "type": TOOK, "agent": agent, "from": partner, "amount": amount})
        if DIED in info:
            events.append({"step": step, "type": DIED, "agent": agent, "cause": info[DIED],
                           "age": int(world.age[slot]), "energy": int(world.energy[slot]),
                           "position": world.position[slot].tolist()})
    for slot in np.flatnonzero((world.message != 0) | np.fromiter((bool(t) for t in world.text_message), bool, len(world.text_message))).tolist():
        events.append({"step": step, "type": MESSAGE, "agent": agent_name(slot), "token": int(world.message[slot]),
                       "text": world.text_message[slot]})
    events.extend(artifact_events)
    return events


def count_events(events: Sequence[dict[str, Any]]) -> Counter:
    """The run statistics of some events (one step's, or a whole run's): ``born``, ``died`` and
    ``died:<cause>``, ``gave`` / ``took`` (transfers) and ``gave_amount`` / ``took_amount`` (energy),
    ``message``, and one count per artifact event type. The run summary (``policies.rollout``) and
    the report (``society_env.analysis``) both count with this function, live and from the file."""
    counts: Counter = Counter()
    for event in events:
        kind = event["type"]
        counts[kind] += 1
        if kind == DIED:
            counts[f"{DIED}:{event['cause']}"] += 1
        elif kind in (GAVE, TOOK):
            counts[f"{kind}_amount"] += event["amount"]
    return counts


def founder_events(world: WorldState, policy_of: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"step": world.step, "type": ADDED, "agent": agent_name(slot), "policy": policy_of.get(agent_name(slot)),
         "position": world.position[slot].tolist(), "energy": int(world.energy[slot]),
         "genome": world.genome[slot].round(6).tolist()}
        for slot in np.flatnonzero(world.status == ALIVE).tolist()
    ]


def action_record(step: int, actions: dict[str, Any], rewards: dict[str, float] | None = None) -> dict[str, Any]:
    """One line of actions.jsonl: vectors per agent, plus text messages and artifact actions (other than
    "none") when the language option is on, and the step's rewards (every agent alive at its start) as the
    env returned them."""
    vectors, texts, artifacts = {}, {}, {}
    for agent, action in actions.items():
        if isinstance(action, dict):
            if action.get("message"):
                texts[agent] = action["message"]
            artifact = action.get("artifact")
            if artifact and artifact.get("kind"):
                artifacts[agent] = {key: (value.item() if isinstance(value, np.generic) else value)
                                    for key, value in artifact.items()}
            action = action["action"]
        vectors[agent] = np.asarray(action).tolist()
    record: dict[str, Any] = {"step": step, "actions": vectors}
    if texts:
        record["text"] = texts
    if artifacts:
        record["artifact"] = artifacts
    if rewards is not None:
        record["rewards"] = {agent: float(value) for agent, value in rewards.items()}
    return record


class RecordingWriter:
    """Writes one run directory incrementally. Use as a context manager or call :meth:`close`."""

    def __init__(self, run_dir: str | Path, meta: dict[str, Any]):
        self.run_dir = Path(run_dir)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise RecordingError(f"cannot write to output directory {self.run_dir}: {error.strerror or error}") from None
        write_json_atomic(self.run_dir / "meta.json",
                          {"format": FORMAT_NAME, "version": FORMAT_VERSION, "world": WORLD_VERSION, **meta})
        self._files = {name: open(self.run_dir / f"{name}.jsonl", "wb") for name in self.STREAMS}

    STREAMS = ("events", "snapshots", "actions")

    @classmethod
    def reopen(cls, run_dir: str | Path, lengths: dict[str, int]) -> "RecordingWriter":
        """Continue writing the recording in ``run_dir`` from a checkpoint: each JSONL file is cut back to
        the byte length :meth:`sync` returned then (what a killed run wrote after it is dropped), and
        appended to from there. ``RecordingError`` when a file is shorter than that: it was not written
        by the run the checkpoint belongs to, or when its meta.json is damaged (checked before any file is cut)."""
        Recording(run_dir)
        writer = cls.__new__(cls)
        writer.run_dir = Path(run_dir)
        writer._files = {}
        for name in cls.STREAMS:  # every file is checked before the first one is cut
            path = writer.run_dir / f"{name}.jsonl"
            size = path.stat().st_size if path.exists() else -1
            if size < lengths[name]:
                raise RecordingError(f"{path} is shorter ({max(size, 0)} bytes) than at the checkpoint "
                                     f"({lengths[name]} bytes): it is not this run's recording")
        for name in cls.STREAMS:
            path = writer.run_dir / f"{name}.jsonl"
            file = open(path, "r+b")
            file.truncate(lengths[name])
            file.seek(lengths[name])
            writer._files[name] = file
        return writer

    def sync(self) -> dict[str, int]:
        """Flush and fsync the JSONL files and return their byte lengths (what a checkpoint stores)."""
        lengths = {}
        for name, file in self._files.items():
            file.flush()
            os.fsync(file.fileno())
            lengths[name] = file.tell()
        return lengths

    def _write(self, name: str, records: list[dict[str, Any]]) -> None:
        file = self._files[name]
        for record in records:
            file.write((json.dumps(record, separators=(",", ":"), default=json_default) + "\n").encode())

    def record_reset(self, world: WorldState, policy_of: dict[str, str]) -> None:
        self._write("events", founder_events(world, policy_of))
        self._write("snapshots", [snapshot(world)])
        self.flush()

    def record_step(self, actions: dict[str, Any], world: WorldState, infos: dict[str, dict],
                    policy_of: dict[str, str], extra_events: list[dict[str, Any]] | None = None,
                    artifact_events: Sequence[dict[str, Any]] = (), rewards: dict[str, float] | None = None,
                    world_events: list[dict[str, Any]] | None = None) -> None:
        """Log the actions taken at step ``world.step - 1``, their rewards and what they led to
        (``world_events``: the step's :func:`step_events`, when the caller has them already)."""
        self._write("actions", [action_record(world.step - 1, actions, rewards)])
        if world_events is None:
            world_events = step_events(world, infos, policy_of, artifact_events)
        self._write("events", world_events + list(extra_events or []))
        self._write("snapshots", [snapshot(world)])
        self.flush()

    def flush(self) -> None:
        for file in self._files.values():
            file.flush()

    def close(self, summary: dict[str, Any] | None = None) -> None:
        for file in self._files.values():
            file.close()
        if summary is not None:
            write_json_atomic(self.run_dir / "summary.json", summary)

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not all(f.closed for f in self._files.values()):
            self.close()


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; ``RecordingError`` naming the file when it cannot be read or is not
    JSON (cut off, overwritten)."""
    try:
        return json.loads(path.read_bytes())
    except OSError as error:
        raise RecordingError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        detail = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 text"
        raise RecordingError(f"{path} is not valid JSON ({detail}): the file is cut off or damaged") from None


def _is_agent(value: Any) -> bool:
    try:
        agent_slot(value)
    except ValueError:
        return False
    return True


_NUMBER = (int, float)
META_FIELDS: dict[str, Any] = {"seed": int, "config": dict}
"""What every reader of ``meta.json`` uses (besides ``format`` and ``version``): field -> type or check."""
EVENT_FIELDS: dict[str, Any] = {"step": int, "type": str}
EVENT_TYPE_FIELDS: dict[str, dict[str, Any]] = {
    ADDED: {"agent": _is_agent, "position": list},
    BORN: {"agent": _is_agent, "parent": _is_agent, "position": list},
    DIED: {"agent": _is_agent, "cause": str, "age": int, "position": list},
    GAVE: {"agent": _is_agent, "to": _is_agent, "amount": _NUMBER},
    TOOK: {"agent": _is_agent, "from": _is_agent, "amount": _NUMBER},
    MESSAGE: {"agent": _is_agent},
}
"""The fields that readers (replay, report, viewer) use of each world event; other event types (e.g. an
LLM policy's ``llm_call``) need only ``step`` and ``type``."""
SNAPSHOT_FIELDS: dict[str, Any] = {"step": int, "agents": list, "row": list, "col": list, "energy": list,
                                   "food_cells": list, "food_values": list}
ACTION_FIELDS: dict[str, Any] = {"step": int, "actions": dict}


def shape_problem(record: dict[str, Any], fields: dict[str, Any]) -> str | None:
    """What is wrong with ``record`` against ``fields`` (name -> type, tuple of types, or a check), or None."""
    for name, kind in fields.items():
        if name not in record:
            return f"has no {name!r}"
        value = record[name]
        if not (isinstance(value, kind) if isinstance(kind, (type, tuple)) else kind(value)):
            return f"has a wrong {name!r} ({json.dumps(value, default=str)[:40]})"
    return None


def _event_problem(event: dict[str, Any]) -> str | None:
    return shape_problem(event, EVENT_FIELDS) or shape_problem(event, EVENT_TYPE_FIELDS.get(event["type"], {}))


def _snapshot_problem(snapshot: dict[str, Any]) -> str | None:
    problem = shape_problem(snapshot, SNAPSHOT_FIELDS)
    if problem is None and not (len(snapshot["agents"]) == len(snapshot["row"]) == len(snapshot["col"])
                                == len(snapshot["energy"]) and len(snapshot["food_cells"]) == len(snapshot["food_values"])):
        problem = "has lists of different lengths"
    return problem


def _action_problem(record: dict[str, Any]) -> str | None:
    problem = shape_problem(record, ACTION_FIELDS)
    if problem is not None:
        return problem
    for agent, vector in record["actions"].items():
        if not (isinstance(vector, list) and vector and all(type(value) is int for value in vector)):
            return f"has an action of {agent} that is not a vector of integers"
    for optional in ("text", "artifact", "rewards"):
        if not isinstance(record.get(optional, {}), dict):
            return f"has a {optional!r} that is not an object"
    return None


def read_jsonl(path: Path, problem: Callable[[dict[str, Any]], str | None] | None = None) -> Iterator[dict[str, Any]]:
    """Records of a JSON Lines file; a final line cut off by a killed run is skipped, any other line that
    is not a JSON object (or, with ``problem``, whose shape it objects to) is a ``RecordingError`` naming
    the file and line."""
    if not path.exists():
        return
    try:
        file = open(path, encoding="utf-8", errors="replace")
    except OSError as error:
        raise RecordingError(f"cannot read {path}: {error.strerror or error}") from None
    with file:
        for number, line in enumerate(file, start=1):
            if not line.endswith("\n"):
                return  # partial last line of a killed run
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecordingError(f"{path} line {number} is not valid JSON ({error.msg}): the recording is "
                                     "damaged") from None
            if not isinstance(record, dict):
                raise RecordingError(f"{path} line {number} is not a JSON object: the recording is damaged")
            wrong = None if problem is None else problem(record)
            if wrong is not None:
                raise RecordingError(f"{path} line {number} {wrong}: the recording is damaged")
            yield record


class Recording:
    """Read access to a run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        meta_path = self.run_dir / "meta.json"
        if not meta_path.exists():
            raise RecordingError(f"{self.run_dir} is not a run directory (no meta.json)")
        self.meta = read_json(meta_path)
        if not isinstance(self.meta, dict):
            raise RecordingError(f"{meta_path} is not a JSON object: the recording is damaged")
        if self.meta.get("format") != FORMAT_NAME:
            raise RecordingError(f"{self.run_dir} is not a society-env recording (format {self.meta.get('format')!r})")
        if self.meta.get("version") != FORMAT_VERSION:
            raise RecordingError(
                f"{self.run_dir} has recording format version {self.meta.get('version')!r}; "
                f"this society-env reads version {FORMAT_VERSION}"
            )
        problem = shape_problem(self.meta, META_FIELDS)
        if problem is not None:
            raise RecordingError(f"{meta_path} {problem}: the recording is damaged")

    @property
    def config(self):
        from society_env.world.config import SocietyConfig

        try:
            return SocietyConfig.from_dict(self.meta["config"])
        except (TypeError, ValueError) as error:
            raise RecordingError(f"{self.run_dir / 'meta.json'} holds a config this society-env cannot use "
                                 f"({error})") from None

    def events(self) -> Iterator[dict[str, Any]]:
        return read_jsonl(self.run_dir / "events.jsonl", _event_problem)

    def snapshots(self) -> Iterator[dict[str, Any]]:
        return read_jsonl(self.run_dir / "snapshots.jsonl", _snapshot_problem)

    def actions(self) -> Iterator[dict[str, Any]]:
        return read_jsonl(self.run_dir / "actions.jsonl", _action_problem)

    def fingerprint(self) -> str:
        """SHA-256 over the recording's files (meta, events, snapshots, actions, summary): what a report or a
        viewer page records as the recording it describes, so a page left beside another recording shows."""
        import hashlib

        digest = hashlib.sha256()
        for name in ("meta.json", "events.jsonl", "snapshots.jsonl", "actions.jsonl", "summary.json"):
            path = self.run_dir / name
            digest.update(name.encode() + b"\0")
            if path.exists():
                with open(path, "rb") as file:
                    for block in iter(lambda: file.read(1 << 20), b""):
                        digest.update(block)
            digest.update(b"\0")
        return digest.hexdigest()

    @property
    def summary(self) -> dict[str, Any] | None:
        """The run's summary.json (None for a killed run); ``RecordingError`` if it is damaged."""
        path = self.run_dir / "summary.json"
        if not path.exists():
            return None
        summary = read_json(path)
        if not isinstance(summary, dict):
            raise RecordingError(f"{path} is not a JSON object: the recording is damaged")
        return summary
