"""Agent names and slots: the one place that spells ``agent_<slot>``.

A *slot* is an index into the world's arrays; the PettingZoo agent id of slot ``s`` is ``agent_s``
(docs/architecture.md, glossary). Recordings, infos, the text view and the policies all use these.
"""

from __future__ import annotations

from typing import Iterable

AGENT_PREFIX = "agent_"


def agent_name(slot: int) -> str:
    """``3`` -> ``"agent_3"``."""
    return f"{AGENT_PREFIX}{int(slot)}"


def agent_slot(name: str) -> int:
    """``"agent_3"`` -> ``3``; ``ValueError`` for anything else."""
    if not isinstance(name, str) or not name.startswith(AGENT_PREFIX) or not name[len(AGENT_PREFIX):].isdigit():
        raise ValueError(f"not an agent name: {name!r} (expected {AGENT_PREFIX}<slot>)")
    return int(name[len(AGENT_PREFIX):])


def agent_names(slots: Iterable[int]) -> list[str]:
    return [agent_name(slot) for slot in slots]
