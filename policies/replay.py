"""Replay: feed the actions logged in a recording back into a fresh env."""

from __future__ import annotations

from typing import Any


from policies.assignment import PolicyAssignment
from policies.base import make_action
from policies.rollout import EpisodeHook, Rollout, Step
from society_env.world.config import SocietyConfig
from society_env.recording.format import Recording, founder_events, snapshot


class ReplayPolicy:
    """Acts for every agent with the recorded action of the current step; advances one step per call."""

    name = "replay"

    def __init__(self, config: SocietyConfig, recording: Recording):
        self.config = config
        self.recording = recording
        self._steps: list[dict] = list(recording.actions())
        self.step = 0

    def reset(self, seed: int | None = None) -> None:
        self.step = 0

    @property
    def recorded_steps(self) -> int:
        """How many steps the recording holds actions for."""
        return len(self._steps)

    @property
    def exhausted(self) -> bool:
        return self.step >= len(self._steps)

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        if self.exhausted:
            raise IndexError(f"the recording has actions for {len(self._steps)} steps only")
        logged = self._steps[self.step]
        self.step += 1
        texts = logged.get("text", {})
        artifacts = logged.get("artifact", {})
        actions = {}
        for agent in observations:
            if agent not in logged["actions"]:
                continue  # the agent did not act in the recorded run either
            actions[agent] = make_action(self.config, *logged["actions"][agent], text=texts.get(agent, ""),
                                         artifact=artifacts.get(agent))
        return actions


class ReplayAssignment(PolicyAssignment):
    """The recording's assignment (who played which policy, newborns inheriting it: what the events
    name), but every agent acts through the one :class:`ReplayPolicy`, named ``replay``."""

    def __init__(self, recording: Recording):
        super().__init__([(ReplayPolicy.name, 1.0)], 0)
        self.policy_of = dict(recording.meta.get("assignment", {}))

    def groups(self, agents):
        return {ReplayPolicy.name: list(agents)}


class ReplayedWorld(EpisodeHook):
    """Collects what a replayed episode would write to a recording's events and snapshots files, to
    compare with the recorded ones (``society-env replay``)."""

    def __init__(self):
        self.events: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []

    def on_start(self, rollout: Rollout) -> None:
        self.events = founder_events(rollout.env.world, rollout.assignment.policy_of)
        self.snapshots = [snapshot(rollout.env.world)]

    def after_step(self, rollout: Rollout, step: Step) -> None:
        self.events.extend(step.events)
        self.snapshots.append(snapshot(rollout.env.world))
