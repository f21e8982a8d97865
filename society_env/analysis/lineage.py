"""Family trees: who descends from whom, how many generations each founder's family reached, family sizes.

A family is a founder and all its descendants (reproduction is asexual, so every agent has one line back
to one founder). Parents are always born before their children, so one pass in slot order suffices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from society_env.analysis.loading import RunData


@dataclass
class Family:
    """One founder's descendants (the founder included)."""

    founder: int
    policy: str
    members: int
    alive_at_end: int
    generations: int
    """Deepest generation reached (0 = the founder never had children)."""
    peak_alive: int = 0


@dataclass
class Lineage:
    """Family structure of one run."""

    family_of: dict[int, int]
    """slot -> founder slot at the root of its family."""
    generation_of: dict[int, int]
    children_of: dict[int, list[int]]
    families: list[Family] = field(default_factory=list)
    """Largest first (by members, then by founder)."""

    @property
    def generations_reached(self) -> int:
        return max(self.generation_of.values(), default=0)


def lineage(run: RunData) -> Lineage:
    family_of: dict[int, int] = {}
    generation_of: dict[int, int] = {}
    children_of: dict[int, list[int]] = {}
    for slot in sorted(run.agents):
        parent = run.agents[slot].parent
        if parent < 0 or parent not in family_of:  # a founder (or a parent lost from a cut recording)
            family_of[slot], generation_of[slot] = slot, 0
        else:
            family_of[slot], generation_of[slot] = family_of[parent], generation_of[parent] + 1
            children_of.setdefault(parent, []).append(slot)

    alive_per_family = family_population(run, family_of)
    families = []
    for founder in sorted(set(family_of.values())):
        members = [slot for slot, root in family_of.items() if root == founder]
        families.append(Family(
            founder=founder, policy=run.agents[founder].policy, members=len(members),
            alive_at_end=sum(run.agents[slot].death_step is None for slot in members),
            generations=max(generation_of[slot] for slot in members),
            peak_alive=int(alive_per_family[founder].max()) if founder in alive_per_family else 0,
        ))
    families.sort(key=lambda family: (-family.members, family.founder))
    return Lineage(family_of, generation_of, children_of, families)


def family_population(run: RunData, family_of: dict[int, int]) -> dict[int, np.ndarray]:
    """Living members of each family at every snapshot step (for the stacked family plot)."""
    lookup = np.full(max(run.num_slots, 1), -1, dtype=np.int64)
    lookup[list(family_of)] = list(family_of.values())
    family = lookup[run.slot]
    step = np.repeat(np.arange(run.steps), np.diff(run.agent_offsets))
    population: dict[int, np.ndarray] = {}
    for founder in np.unique(family).tolist():
        population[founder] = np.bincount(step[family == founder], minlength=run.steps)
    return population


def family_tree_text(tree: Lineage, founder: int, max_lines: int = 40) -> list[str]:
    """An indented outline of one family (depth first), cut after ``max_lines`` lines."""
    lines: list[str] = []
    stack = [(founder, 0)]
    while stack and len(lines) < max_lines:
        slot, depth = stack.pop()
        children = tree.children_of.get(slot, [])
        lines.append(f"{'  ' * depth}agent_{slot}" + (f" ({len(children)} children)" if children else ""))
        stack.extend((child, depth + 1) for child in reversed(children))
    if stack:
        lines.append("...")
    return lines
