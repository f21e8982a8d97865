"""The policy protocol: one object acts for many agents at once, so LLM policies can batch."""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

import numpy as np

from society_env.world.artifacts import artifact_action
from society_env.world.config import SocietyConfig


@runtime_checkable
class Policy(Protocol):
    """Anything with ``reset`` and a batched ``act`` drives agents of the society world.

    ``act`` receives the observations (and infos) of the agents this policy controls this step and
    returns one action per agent: a ``MultiDiscrete`` vector ``(kind, target, amount, message)``,
    or with ``language=True`` a dict ``{"action": vector, "message": str}``.
    """

    name: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]: ...


class SavedState:
    """``state_dict()`` / ``load_state_dict()`` of a policy from the attributes named in ``state_fields``:
    what changes while it acts (random generators, per-agent memory), so that a run checkpoint can
    restore it and the resumed run acts exactly as the uninterrupted one would. Copies both ways."""

    state_fields: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in self.state_fields}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = sorted(set(self.state_fields) - set(state))
        if missing:
            raise ValueError(f"{type(self).__name__} state lacks {', '.join(missing)}")
        for name in self.state_fields:
            setattr(self, name, copy.deepcopy(state[name]))


def make_action(config: SocietyConfig, kind: int, target: int = 0, amount: int = 0, message: int = 0,
                text: str = "", artifact: dict[str, Any] | None = None) -> Any:
    """An action in the format the env expects for ``config`` (vector, or dict with the language option).

    ``artifact`` (``society_env.world.artifacts.artifact_action(...)``) is passed on when the world has
    artifacts and the language option; otherwise it must be ``None``.
    """
    vector = np.array([kind, target, amount, message], dtype=np.int64)
    if config.language:
        action = {"action": vector, "message": text}
        if config.artifacts:
            action["artifact"] = artifact if artifact is not None else artifact_action()
        return action
    return vector
