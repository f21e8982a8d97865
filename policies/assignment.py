"""Which policy drives which agent: fixed shares of the founders; newborns inherit their parent's policy."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

from society_env.world.names import agent_name

SPEC_ENTRY = re.compile(r"^\s*(?:scripted:)?([a-z_][a-z0-9_]*)\s*(?:=\s*([0-9]*\.?[0-9]+)\s*)?$")


class PolicySpecError(ValueError):
    """A malformed ``--policy`` assignment."""


def parse_policy_spec(spec: str, known: Iterable[str]) -> list[tuple[str, float]]:
    """``"forager=10,random=10"`` -> ``[("forager", 10.0), ("random", 10.0)]``.

    Numbers are shares of the founders (``forager=1,raider=1`` splits them in half); a bare name gets
    share 1. A ``scripted:`` prefix is accepted and dropped. Unknown names raise ``PolicySpecError``.
    """
    known = list(known)
    entries: list[tuple[str, float]] = []
    for part in spec.split(","):
        match = SPEC_ENTRY.match(part)
        if not match:
            raise PolicySpecError(f"malformed policy assignment {part.strip()!r} in {spec!r}: expected NAME or NAME=SHARE")
        name, share = match.group(1), float(match.group(2)) if match.group(2) else 1.0
        if name not in known:
            raise PolicySpecError(f"unknown policy {name!r}; known policies: {', '.join(known)}")
        if share <= 0:
            raise PolicySpecError(f"policy {name!r} has share {share:g}; shares must be positive")
        if any(name == other for other, _ in entries):
            raise PolicySpecError(f"policy {name!r} appears twice in {spec!r}")
        entries.append((name, share))
    return entries


def founder_counts(entries: list[tuple[str, float]], num_founders: int) -> list[int]:
    """Split ``num_founders`` by the shares (largest remainder, ties to the earlier entry)."""
    total = sum(share for _, share in entries)
    exact = [share / total * num_founders for _, share in entries]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(entries)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: num_founders - sum(counts)]:
        counts[i] += 1
    return counts


class PolicyAssignment:
    """Maps agent ids to policy names. Founders get consecutive id blocks in the order of the spec."""

    def __init__(self, entries: list[tuple[str, float]], num_founders: int):
        self.entries = entries
        self.policy_of: dict[str, str] = {}
        slot = 0
        for (name, _), count in zip(entries, founder_counts(entries, num_founders)):
            for _ in range(count):
                self.policy_of[agent_name(slot)] = name
                slot += 1

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.entries]

    def update(self, infos: dict[str, dict]) -> None:
        """Newborns (``infos[child]["born"] == parent``) inherit the parent's policy."""
        for agent, info in infos.items():
            parent = info.get("born")
            if parent is not None:
                self.policy_of[agent] = self.policy_of[parent]

    def groups(self, agents: Iterable[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for agent in agents:
            grouped[self.policy_of[agent]].append(agent)
        return grouped
