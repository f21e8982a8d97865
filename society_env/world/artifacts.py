"""Artifacts: named text objects that lie on cells or are carried, change hands, get rewritten and
outlive their makers (TerraLingua's carriers of culture).

**State.** ``WorldState.artifacts`` maps an artifact id (never reused within an episode) to an
:class:`~society_env.world.outcome.Artifact`; there are never more than ``config.artifact_max_total`` of them,
no cell holds more than ``artifact_max_per_cell`` and no agent carries more than
``artifact_max_inventory``. Each artifact
keeps its last ``artifact_max_versions`` texts and holders in the state (so memory stays bounded);
the recording's events keep every version, which is enough to rebuild whole lineages.

**Rules.** Functions over the state of one step, called by :func:`society_env.world.rules.advance_world`
in three phases:

* :func:`resolve_artifact_actions` right after give/take, in the step's priority order, with the
  positions of the start of the step: create (on the actor's cell), pick up (from the actor's cell),
  drop, give (to the agent on a view cell), modify (a new version), destroy.
* :func:`drop_inventories` after deaths: what the dead carried falls on their cell.
* :func:`age_artifacts` at the end of the step: finite lifespans count down; at 0 the artifact expires.

No rule draws random numbers, so worlds without artifact actions are unchanged. A rule that cannot be
applied (a cap reached, no such artifact, text too long ...) fails cleanly: the reason goes to
``StepOutcome.artifact_failed`` (``infos[agent]["artifact_failed"]``) and nothing changes.

Events are built here, in the recording's format (docs/recording.md), so the analysis can rebuild
lineages; their names are declared in ``society_env.world.outcome`` (``ARTIFACT_EVENTS``: ``artifact_created``,
``artifact_picked_up``, ``artifact_dropped``, ``artifact_given``, ``artifact_modified``,
``artifact_destroyed``, ``artifact_expired``), as are the data types :class:`Artifact` and
:class:`StepOutcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from society_env.world.config import SocietyConfig
from society_env.world.encodings import view_cell_offsets
from society_env.world.names import agent_name
from society_env.world.outcome import (
    ARTIFACT_CREATED,
    ARTIFACT_DESTROYED,
    ARTIFACT_DROPPED,
    ARTIFACT_EXPIRED,
    ARTIFACT_GIVEN,
    ARTIFACT_MODIFIED,
    ARTIFACT_PICKED_UP,
    FOREVER,
    Artifact,
    StepOutcome,
)
from society_env.world.state import WorldState

# Artifact action kinds (the ``kind`` of an artifact action; 0 = no artifact action this step).
NO_ARTIFACT_ACTION, CREATE, PICK_UP, DROP, GIVE_ARTIFACT, MODIFY, DESTROY = range(7)
NUM_ARTIFACT_KINDS = 7
ARTIFACT_ACTION_NAMES = ("none", "create", "pick_up", "drop", "give", "modify", "destroy")
FORBIDDEN_NAME_CHARACTERS = frozenset('"\\')


@dataclass(frozen=True)
class ArtifactCommand:
    """One agent's artifact action for one step (already checked against the action space)."""

    kind: int
    name: str = ""
    """The artifact's name (create) or the name of the artifact acted on (the first match by id)."""
    text: str = ""
    """Text of a new artifact (create) or of its new version (modify)."""
    lifespan: int = 0
    """Index into ``config.artifact_lifespans`` (create)."""
    target: int = 0
    """View cell of the receiving agent (give), indexed like the numeric give/take target."""


# ---------------------------------------------------------------------------------------------
# Queries (used by the rules, the observations and the text view)
# ---------------------------------------------------------------------------------------------
def on_cell(state: WorldState, row: int, col: int) -> list[Artifact]:
    """Artifacts lying on (row, col), by id."""
    return [a for a in state.artifacts.values() if a.holder < 0 and a.row == row and a.col == col]


def carried_by(state: WorldState, slot: int) -> list[Artifact]:
    """Artifacts in ``slot``'s inventory, by id."""
    return [a for a in state.artifacts.values() if a.holder == slot]


def count_grid(state: WorldState, config: SocietyConfig) -> np.ndarray:
    """(height, width) int64: artifacts lying on each cell plus those carried by the agent standing there
    (the numeric view's artifact channel). All zeros when artifacts are invisible or absent."""
    grid = np.zeros((config.height, config.width), dtype=np.int64)
    if not state.artifacts or not config.artifact_visible:
        return grid
    for artifact in state.artifacts.values():
        if artifact.holder < 0:
            grid[artifact.row, artifact.col] += 1
        else:
            grid[state.position[artifact.holder, 0], state.position[artifact.holder, 1]] += 1
    return grid


def name_problem(name: str, config: SocietyConfig) -> str | None:
    """Why ``name`` cannot name an artifact (a failure reason), or ``None``."""
    if not name:
        return "name_empty"
    if len(name) > config.artifact_name_max_chars:
        return "name_too_long"
    if not (name.isascii() and name.isprintable()) or FORBIDDEN_NAME_CHARACTERS & set(name):
        return "name_invalid"
    return None


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------
def _event(state: WorldState, kind: str, slot: int | None, artifact: Artifact, **fields: Any) -> dict[str, Any]:
    return {"step": state.step + 1, "type": kind, "agent": None if slot is None else agent_name(slot),
            "artifact": artifact.id, **fields}


def _take_into_inventory(state: WorldState, artifact: Artifact, slot: int, config: SocietyConfig) -> None:
    artifact.holder, artifact.row, artifact.col = slot, -1, -1
    artifact.holders.append((state.step + 1, slot))
    del artifact.holders[: -config.artifact_max_versions]


def _put_on_cell(artifact: Artifact, row: int, col: int) -> None:
    artifact.holder, artifact.row, artifact.col = -1, row, col


def _find(candidates: list[Artifact], name: str) -> Artifact | None:
    return next((a for a in candidates if a.name == name), None)


def resolve_artifact_actions(
    state: WorldState, commands: dict[int, ArtifactCommand], config: SocietyConfig, rank: np.ndarray,
    outcome: StepOutcome,
) -> None:
    """Apply the living actors' artifact commands one by one in rank order (each sees the previous ones'
    effects). Positions and partners are those of the start of the step (moves come later)."""
    if not commands:
        return
    failed = outcome.artifact_failed
    for slot in sorted(commands, key=lambda s: rank[s]):
        command = commands[slot]
        row, col = (int(x) for x in state.position[slot])
        if command.kind == CREATE:
            reason = _create(state, slot, row, col, command, config, outcome)
        elif not config.artifact_visible:
            reason = "artifacts_inert"
        elif command.kind == PICK_UP:
            reason = _pick_up(state, slot, row, col, command, config, outcome)
        elif command.kind == DROP:
            reason = _drop(state, slot, row, col, command, config, outcome)
        elif command.kind == GIVE_ARTIFACT:
            reason = _give(state, slot, row, col, command, config, outcome)
        elif command.kind in (MODIFY, DESTROY):
            reason = _modify_or_destroy(state, slot, row, col, command, config, outcome)
        else:
            reason = "unknown_artifact_action"
        if reason is not None:
            failed[slot] = reason


def _create(state: WorldState, slot: int, row: int, col: int, command: ArtifactCommand,
            config: SocietyConfig, outcome: StepOutcome) -> str | None:
    problem = name_problem(command.name, config)
    if problem is not None:
        return problem
    if len(command.text) > config.artifact_text_max_chars:
        return "text_too_long"
    if not 0 <= command.lifespan < len(config.artifact_lifespans):
        return "lifespan_invalid"
    if state.energy[slot] < config.artifact_create_cost:
        return "not_enough_energy"
    if len(state.artifacts) >= config.artifact_max_total:
        return "world_full"
    if len(on_cell(state, row, col)) >= config.artifact_max_per_cell:
        return "cell_full"
    state.energy[slot] -= config.artifact_create_cost
    lifespan = config.artifact_lifespans[command.lifespan]
    artifact = Artifact(
        id=state.next_artifact_id, name=command.name, creator=slot, created_step=state.step + 1,
        lifespan_left=lifespan if lifespan > 0 else FOREVER, row=row, col=col, holder=-1, version=1,
        versions=[(1, state.step + 1, slot, command.text)], holders=[],
    )
    state.next_artifact_id += 1
    state.artifacts[artifact.id] = artifact
    outcome.artifact_events.append(_event(state, ARTIFACT_CREATED, slot, artifact, name=artifact.name,
                                          text=artifact.text, lifespan=lifespan or None, position=[row, col]))
    return None


def _pick_up(state: WorldState, slot: int, row: int, col: int, command: ArtifactCommand,
             config: SocietyConfig, outcome: StepOutcome) -> str | None:
    artifact = _find(on_cell(state, row, col), command.name)
    if artifact is None:
        return "no_such_artifact"
    if len(carried_by(state, slot)) >= config.artifact_max_inventory:
        return "inventory_full"
    _take_into_inventory(state, artifact, slot, config)
    outcome.artifact_events.append(_event(state, ARTIFACT_PICKED_UP, slot, artifact))
    return None


def _drop(state: WorldState, slot: int, row: int, col: int, command: ArtifactCommand,
          config: SocietyConfig, outcome: StepOutcome) -> str | None:
    artifact = _find(carried_by(state, slot), command.name)
    if artifact is None:
        return "no_such_artifact"
    if len(on_cell(state, row, col)) >= config.artifact_max_per_cell:
        return "cell_full"
    _put_on_cell(artifact, row, col)
    outcome.artifact_events.append(_event(state, ARTIFACT_DROPPED, slot, artifact, position=[row, col]))
    return None


def _give(state: WorldState, slot: int, row: int, col: int, command: ArtifactCommand,
          config: SocietyConfig, outcome: StepOutcome) -> str | None:
    artifact = _find(carried_by(state, slot), command.name)
    if artifact is None:
        return "no_such_artifact"
    d_row, d_col = (int(d) for d in view_cell_offsets(config.view_radius, command.target))  # as give/take
    receiver = int(state.occupant[(row + d_row) % config.height, (col + d_col) % config.width])
    if receiver < 0 or (d_row == 0 and d_col == 0):
        return "no_agent_at_target"
    if len(carried_by(state, receiver)) >= config.artifact_max_inventory:
        return "inventory_full"
    _take_into_inventory(state, artifact, receiver, config)
    outcome.artifact_events.append(_event(state, ARTIFACT_GIVEN, slot, artifact, to=agent_name(receiver)))
    return None


def _modify_or_destroy(state: WorldState, slot: int, row: int, col: int, command: ArtifactCommand,
                       config: SocietyConfig, outcome: StepOutcome) -> str | None:
    artifact = _find(carried_by(state, slot) + on_cell(state, row, col), command.name)
    if artifact is None:
        return "no_such_artifact"
    if command.kind == DESTROY:
        del state.artifacts[artifact.id]
        outcome.artifact_events.append(_event(state, ARTIFACT_DESTROYED, slot, artifact))
        return None
    if len(command.text) > config.artifact_text_max_chars:
        return "text_too_long"
    artifact.version += 1
    artifact.versions.append((artifact.version, state.step + 1, slot, command.text))
    del artifact.versions[: -config.artifact_max_versions]
    outcome.artifact_events.append(_event(state, ARTIFACT_MODIFIED, slot, artifact, version=artifact.version,
                                          text=command.text))
    return None


def drop_inventories(state: WorldState, dead: np.ndarray, config: SocietyConfig, outcome: StepOutcome) -> None:
    """What the dead carried falls on the cell where they died (in id order) while the cell has room;
    what does not fit is destroyed (``artifact_destroyed`` with ``reason`` ``cell_full``)."""
    if not state.artifacts or dead.size == 0:
        return
    for slot in sorted(dead.tolist()):
        row, col = (int(x) for x in state.position[slot])
        room = config.artifact_max_per_cell - len(on_cell(state, row, col))
        for artifact in carried_by(state, slot):
            if room > 0:
                _put_on_cell(artifact, row, col)
                room -= 1
                outcome.artifact_events.append(_event(state, ARTIFACT_DROPPED, slot, artifact, position=[row, col]))
            else:
                del state.artifacts[artifact.id]
                outcome.artifact_events.append(_event(state, ARTIFACT_DESTROYED, slot, artifact, reason="cell_full"))


def age_artifacts(state: WorldState, outcome: StepOutcome) -> None:
    """Finite lifespans count down by one; an artifact reaching 0 expires (wherever it is)."""
    for artifact in list(state.artifacts.values()):
        if artifact.lifespan_left == FOREVER:
            continue
        artifact.lifespan_left -= 1
        if artifact.lifespan_left <= 0:
            del state.artifacts[artifact.id]
            holder = artifact.holder if artifact.holder >= 0 else None
            outcome.artifact_events.append(_event(state, ARTIFACT_EXPIRED, holder, artifact))


# ---------------------------------------------------------------------------------------------
# The artifact action in the language option's action dict
# ---------------------------------------------------------------------------------------------
def artifact_action(kind: int | str = NO_ARTIFACT_ACTION, name: str = "", text: str = "", lifespan: int = 0,
                    target: int = 0) -> dict[str, Any]:
    """The ``artifact`` entry of a language action; ``kind`` is an index or a name of
    :data:`ARTIFACT_ACTION_NAMES`. ``artifact_action()`` means "no artifact action"."""
    if isinstance(kind, str):
        kind = ARTIFACT_ACTION_NAMES.index(kind)
    return {"kind": int(kind), "name": name, "text": text, "lifespan": int(lifespan), "target": int(target)}


ARTIFACT_ACTION_KEYS = frozenset(artifact_action())
