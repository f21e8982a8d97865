"""Replay: feed the actions logged in a recording back into a fresh env."""

from __future__ import annotations

from typing import Any


from policies.base import make_action
from society_env.config import SocietyConfig
from society_env.recording import Recording


class ReplayPolicy:
    """Acts for every agent with the recorded action of the current step; advances one step per call."""

    name = "replay"

    def __init__(self, config: SocietyConfig, recording: Recording):
        self.config = config
        self.recording = recording
        self._steps: list[dict] = []
        self.step = 0

    def reset(self, seed: int | None = None) -> None:
        self._steps = list(self.recording.actions())
        self.step = 0

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
