"""What the rules report, as plain data: the types the world state and the rules share, and the names of
the world's events, each declared once.

* :class:`Artifact` (an entry of ``WorldState.artifacts``) and :func:`copy_artifacts`;
* :class:`StepOutcome`: what happened in one step (the rules fill it, the rewards are computed from it,
  the env turns it into infos, the recording into events);
* the event names: the types of the recording's events (``events.jsonl``, docs/recording.md) and the
  facts of an outcome that name a reward (:data:`ATE`, :data:`BLOCKED`, see ``society_env.world.rewards``).

This module imports nothing of the world but ``encodings``, so that ``state`` (which holds artifacts),
``artifacts`` (the artifact phases, which need ``WorldState``) and ``rules`` all import it without a cycle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from society_env.world.encodings import FAILURE_REASONS

# ---------------------------------------------------------------------------------------------
# Event names: the ``type`` of a recorded event, also the key of the same fact in an agent's infos
# ---------------------------------------------------------------------------------------------
ADDED = "added"
"""A founder placed at reset (recorded only)."""
BORN, DIED, GAVE, TOOK, MESSAGE = "born", "died", "gave", "took", "message"
ATE, BLOCKED = "ate", "blocked"
"""Facts of an outcome that are infos and rewards but not recorded events (the recording's snapshots and
actions show them)."""
ARTIFACT_CREATED = "artifact_created"
ARTIFACT_PICKED_UP = "artifact_picked_up"
ARTIFACT_DROPPED = "artifact_dropped"
ARTIFACT_GIVEN = "artifact_given"
ARTIFACT_MODIFIED = "artifact_modified"
ARTIFACT_DESTROYED = "artifact_destroyed"
ARTIFACT_EXPIRED = "artifact_expired"
ARTIFACT_EVENTS = (ARTIFACT_CREATED, ARTIFACT_PICKED_UP, ARTIFACT_DROPPED, ARTIFACT_GIVEN, ARTIFACT_MODIFIED,
                   ARTIFACT_DESTROYED, ARTIFACT_EXPIRED)
"""The artifact events (built by ``society_env.world.artifacts`` into ``StepOutcome.artifact_events``)."""
ARTIFACT_EVENT_PREFIX = "artifact_"
WORLD_EVENTS = (ADDED, BORN, DIED, GAVE, TOOK, MESSAGE) + ARTIFACT_EVENTS
"""Every event type that follows from the world's rules alone (a replay must reproduce them exactly);
other recorded events (an LLM policy's ``llm_call`` ...) come from the policies."""

# ---------------------------------------------------------------------------------------------
# Artifacts (the data; the rules over them are in ``society_env.world.artifacts``)
# ---------------------------------------------------------------------------------------------
FOREVER = -1
"""``Artifact.lifespan_left`` of an artifact that never expires (chosen as lifespan 0)."""


@dataclass
class Artifact:
    """One artifact. It lies on cell (row, col) when ``holder == -1``, else it is carried by ``holder``."""

    id: int
    name: str
    creator: int
    created_step: int
    lifespan_left: int
    """Steps left before it expires; :data:`FOREVER` (-1) for an artifact that never does."""
    row: int
    col: int
    holder: int
    version: int
    """Current version number: 1 as created, +1 per modification."""
    versions: list[tuple[int, int, int, str]]
    """(version, step, author slot, text) of the last ``artifact_max_versions`` versions, newest last."""
    holders: list[tuple[int, int]]
    """(step, slot) of the last ``artifact_max_versions`` agents who took it into their inventory."""

    @property
    def text(self) -> str:
        """The current version's text (what agents read)."""
        return self.versions[-1][3]

    def copy(self) -> "Artifact":
        return dataclasses.replace(self, versions=list(self.versions), holders=list(self.holders))


def copy_artifacts(artifacts: dict[int, Artifact]) -> dict[int, Artifact]:
    return {artifact_id: artifact.copy() for artifact_id, artifact in artifacts.items()}


# ---------------------------------------------------------------------------------------------
# One step's outcome
# ---------------------------------------------------------------------------------------------
_NO_EVENTS = np.empty(0, np.int64)
_NO_EVENTS.flags.writeable = False

@dataclass
class StepOutcome:
    """What happened in one step: rewards and event arrays (slots are agent indices)."""

    rewards: np.ndarray  # float64 [max_agents], the last phase's (kernels.phases.add_rewards)
    ate: np.ndarray  # int64 [max_agents]: food value eaten this step
    blocked: np.ndarray  # bool [max_agents]: a move was blocked
    failed: np.ndarray  # int8 [max_agents]: why the slot's action failed (encodings.FAILURE_REASONS), 0 = it did not
    # the event arrays start as one shared read-only empty array (the rules replace, never edit, them)
    transfer_kind: np.ndarray = field(default_factory=lambda: _NO_EVENTS)
    transfer_source: np.ndarray = field(default_factory=lambda: _NO_EVENTS)  # energy leaves
    transfer_dest: np.ndarray = field(default_factory=lambda: _NO_EVENTS)  # energy arrives
    transfer_amount: np.ndarray = field(default_factory=lambda: _NO_EVENTS)
    birth_parent: np.ndarray = field(default_factory=lambda: _NO_EVENTS)
    birth_child: np.ndarray = field(default_factory=lambda: _NO_EVENTS)
    death_slot: np.ndarray = field(default_factory=lambda: _NO_EVENTS)
    death_cause: np.ndarray = field(default_factory=lambda: _NO_EVENTS)
    artifact_failed: dict[int, str] = field(default_factory=dict)  # slot -> reason an artifact action failed
    artifact_events: list[dict] = field(default_factory=list)  # recording-ready artifact events, in order
    present: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # bool [max_agents]: alive at the start

    def failures(self) -> dict[int, str]:
        """Slot -> reason, for the slots whose action failed this step."""
        slots = np.flatnonzero(self.failed)
        return {slot: FAILURE_REASONS[code] for slot, code in zip(slots.tolist(), self.failed[slots].tolist())}

    def survivors(self) -> np.ndarray:
        """Slots alive at the start of the step and still alive at its end."""
        alive = self.present.copy()
        alive[self.death_slot] = False
        return np.flatnonzero(alive)
