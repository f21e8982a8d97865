"""Behaviour tags in TerraLingua's vocabulary: the exact ones that the recording determines.

TerraLingua's "AI anthropologist" has an LLM tag each agent's life log and each community with tags of
three families (events, behaviours, emergence), each with a 0-10 confidence. Many of those tags are facts
of the recording (a birth, a theft, a gift to one's own child), and a rule reads them exactly, for free,
with the steps that show them. This module derives those; ``society_env.app.anthropologist`` asks an LLM
for the rest (deception, territory, leadership, norms, planning) with the same vocabulary.

Confidence of a counted tag: ``round(10 * (1 - 2 ** (-n / k)))`` for ``n`` pieces of evidence, where
``k`` (:data:`EVIDENCE_SCALE`) is the count that earns confidence 5: one birth is already sure evidence of
REPRODUCTION (k = 1), one meal is not yet a foraging habit (k = 3). A tag with no evidence is not emitted.

Per agent (rules):

| tag | evidence (steps) |
|---|---|
| REPRODUCTION | a child is born to the agent |
| EXCHANGE | the agent gave energy or an artifact, or received one |
| CONFLICT | the agent took energy from another, or had energy taken |
| PREDATION | the agent took energy from another |
| KILL | the agent took from an agent that starved in that step or the next |
| ARTIFACT_CREATED | the agent created an artifact |
| ARTIFACT_USE | the agent picked up, modified, handed over or dropped an artifact |
| TOOL_USE | the agent picked up or modified an artifact someone else created |
| FORAGING | the agent ate food (the food of the cell it ended the step on) |
| EXPLORATION | the agent stood on a cell it had not stood on before (first cell excluded) |
| NURTURED_OFFSPRING | the agent gave energy to its own child |
| ALTRUISM | the agent gave energy to an agent of another family |
| RECIPROCITY | the agent gave to an agent that also gave to it (evidence: both sides' gifts) |
| COMMUNICATION_PROTOCOL_USE | the agent sent a message (a rule sees use of the channel, not of a protocol) |

Per community (the Louvain communities of the whole-run interaction graph):

| tag | evidence |
|---|---|
| resource_network | energy or artifacts handed between members (steps) |
| COALITION_FORMED | the first window in which at least two members share a window community (its start step) |
| COALITION_BROKEN | a later window in which members together before are in different window communities |
| division_of_labor | members differ in policy or in their main activity; confidence 10 x normalised entropy |
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from society_env.world import outcome
from society_env.analysis.lineage import Lineage
from society_env.analysis.loading import NO_ACTION, RunData, slot_of
from society_env.analysis.series import eaten_food
from society_env.world.encodings import ACTION_NAMES, EAST, NORTH, STAY
from society_env.world.names import agent_name

# ---------------------------------------------------------------------------------------------
# TerraLingua's vocabulary
# ---------------------------------------------------------------------------------------------
EVENT_TAGS = ("REPRODUCTION", "KILL", "CONFLICT", "ARTIFACT_CREATED", "ARTIFACT_USE", "DECEPTION",
              "TERRITORY_CLAIM", "EXCHANGE")
BEHAVIOUR_TAGS = ("FORAGING", "PREDATION", "AGGRESSION", "SUBMISSION", "ALTRUISM", "RECIPROCITY",
                  "NURTURED_OFFSPRING", "EXPLORATION", "JOINT_ACTION", "COMMUNICATION_PROTOCOL_USE", "TOOL_USE")
EMERGENCE_TAGS = ("specialization", "territoriality", "creativity", "strategic_planning", "role_switching")
AGENT_TAGS = EVENT_TAGS + BEHAVIOUR_TAGS + EMERGENCE_TAGS
"""Every tag an agent may get (rules or LLM)."""
COMMUNITY_EVENT_TAGS = ("COALITION_FORMED", "COALITION_BROKEN", "LEADER_DECLARED", "COORDINATED_ATTACK")
COMMUNITY_EMERGENCE_TAGS = ("cultural_norms", "hierarchy", "resource_network", "division_of_labor",
                            "collective_memory")
COMMUNITY_TAGS = COMMUNITY_EVENT_TAGS + COMMUNITY_EMERGENCE_TAGS
"""Every tag a community may get (rules or LLM)."""
MAX_CONFIDENCE = 10

EVIDENCE_SCALE = {"FORAGING": 3, "EXPLORATION": 5, "COMMUNICATION_PROTOCOL_USE": 2, "EXCHANGE": 1,
                  "resource_network": 2}
"""Evidence count that earns confidence 5 (module docstring); tags not listed: 1."""
RULE_AGENT_TAGS = ("REPRODUCTION", "EXCHANGE", "CONFLICT", "PREDATION", "KILL", "ARTIFACT_CREATED", "ARTIFACT_USE",
                   "TOOL_USE", "FORAGING", "EXPLORATION", "NURTURED_OFFSPRING", "ALTRUISM", "RECIPROCITY",
                   "COMMUNICATION_PROTOCOL_USE")
"""The agent tags the rules decide; an LLM is asked only for the others."""
RULE_COMMUNITY_TAGS = ("resource_network", "COALITION_FORMED", "COALITION_BROKEN", "division_of_labor")

RULES, LLM = "rules", "llm"


@dataclass
class Tag:
    """One tag of one subject (an agent ``agent_7`` or a community ``community_0``)."""

    subject: str
    tag: str
    confidence: int
    """0-10."""
    source: str
    """``rules`` or ``llm``."""
    evidence_steps: list[int] = field(default_factory=list)
    count: int = 0
    """Pieces of evidence (rules); for LLM tags, the chunks of the log that gave the tag."""
    note: str = ""

    def record(self) -> dict:
        """The ``report-tags.jsonl`` line of this tag."""
        kind = "community" if self.subject.startswith("community_") else "agent"
        return {kind: self.subject, "tag": self.tag, "confidence": self.confidence, "source": self.source,
                "evidence_steps": self.evidence_steps, "count": self.count, **({"note": self.note} if self.note else {})}


def confidence(count: int, scale: float = 1.0) -> int:
    """0-10 confidence of ``count`` pieces of evidence, ``scale`` of which earn 5 (module docstring)."""
    return int(round(MAX_CONFIDENCE * (1.0 - 2.0 ** (-count / scale)))) if count > 0 else 0


def _counted(subject: str, tag: str, steps: Iterable[int]) -> Tag | None:
    steps = sorted(steps)
    if not steps:
        return None
    return Tag(subject, tag, confidence(len(steps), EVIDENCE_SCALE.get(tag, 1)), RULES,
               sorted(set(steps)), len(steps))


# ---------------------------------------------------------------------------------------------
# per agent
# ---------------------------------------------------------------------------------------------
def agent_evidence(run: RunData, tree: Lineage) -> dict[int, dict[str, list[int]]]:
    """slot -> tag -> the steps that show it (every rule of the module docstring)."""
    evidence: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    creator: dict[str, int] = {}
    gifts: dict[tuple[int, int], list[int]] = defaultdict(list)  # (giver, receiver) -> steps
    starved_at: dict[int, int] = {}
    takes: list[tuple[int, int, int]] = []
    for step in sorted(run.events_by_step):
        for event in run.events_by_step[step]:
            kind, agent = event["type"], slot_of(event.get("agent"))
            if kind == outcome.BORN:
                evidence[slot_of(event["parent"])]["REPRODUCTION"].append(step)
            elif kind == outcome.GAVE:
                receiver = slot_of(event["to"])
                for slot in (agent, receiver):
                    evidence[slot]["EXCHANGE"].append(step)
                gifts[(agent, receiver)].append(step)
                if run.agents.get(receiver) is not None and run.agents[receiver].parent == agent:
                    evidence[agent]["NURTURED_OFFSPRING"].append(step)
                if tree.family_of.get(receiver, receiver) != tree.family_of.get(agent, agent):
                    evidence[agent]["ALTRUISM"].append(step)
            elif kind == outcome.TOOK:
                victim = slot_of(event["from"])
                for slot in (agent, victim):
                    evidence[slot]["CONFLICT"].append(step)
                evidence[agent]["PREDATION"].append(step)
                takes.append((step, agent, victim))
            elif kind == outcome.DIED and event.get("cause") == "starvation":
                starved_at[agent] = step
            elif kind == outcome.MESSAGE:
                evidence[agent]["COMMUNICATION_PROTOCOL_USE"].append(step)
            elif kind == outcome.ARTIFACT_CREATED:
                creator[event["artifact"]] = agent
                evidence[agent]["ARTIFACT_CREATED"].append(step)
            elif kind in (outcome.ARTIFACT_PICKED_UP, outcome.ARTIFACT_MODIFIED, outcome.ARTIFACT_GIVEN,
                          outcome.ARTIFACT_DROPPED) and agent >= 0:
                evidence[agent]["ARTIFACT_USE"].append(step)
                if kind == outcome.ARTIFACT_GIVEN:
                    receiver = slot_of(event["to"])
                    evidence[agent]["EXCHANGE"].append(step)
                    evidence[receiver]["EXCHANGE"].append(step)
                    gifts[(agent, receiver)].append(step)
                if kind in (outcome.ARTIFACT_PICKED_UP, outcome.ARTIFACT_MODIFIED) and creator.get(event["artifact"], agent) != agent:
                    evidence[agent]["TOOL_USE"].append(step)
    for step, taker, victim in takes:
        if starved_at.get(victim, -10) - step in (0, 1):
            evidence[taker]["KILL"].append(step)
    for (giver, receiver), steps in gifts.items():
        if (receiver, giver) in gifts and giver != receiver:
            evidence[giver]["RECIPROCITY"].extend(steps + gifts[(receiver, giver)])
    for step, active, _, _, food in eaten_food(run):
        for slot in active[food > 0].tolist():
            evidence[slot]["FORAGING"].append(step)
    for slot, steps in new_cells(run).items():
        evidence[slot]["EXPLORATION"].extend(steps)
    return evidence


def new_cells(run: RunData) -> dict[int, list[int]]:
    """slot -> the steps at which the agent stood on a cell it had not stood on before (its first excluded)."""
    seen: dict[int, set[int]] = defaultdict(set)
    found: dict[int, list[int]] = defaultdict(list)
    for step in range(run.steps):
        here = run.agents_at(step)
        cells = (run.row[here] * run.config.width + run.col[here]).tolist()
        for slot, cell in zip(run.slot[here].tolist(), cells):
            if cell not in seen[slot]:
                if seen[slot]:
                    found[slot].append(step)
                seen[slot].add(cell)
    return found


def rule_agent_tags(run: RunData, tree: Lineage) -> list[Tag]:
    """Every rule tag of every agent, agents in slot order, tags in :data:`RULE_AGENT_TAGS` order."""
    evidence = agent_evidence(run, tree)
    tags = []
    for slot in sorted(evidence):
        if slot < 0:
            continue
        for tag in RULE_AGENT_TAGS:
            found = _counted(agent_name(slot), tag, evidence[slot].get(tag, ()))
            if found is not None:
                tags.append(found)
    return tags


# ---------------------------------------------------------------------------------------------
# per community
# ---------------------------------------------------------------------------------------------
ACTIVITIES = {**{kind: "move" for kind in range(NORTH, EAST + 1)}, STAY: "stay"}


def main_activity(run: RunData) -> dict[int, str]:
    """slot -> the action it submitted most often (moves count as one activity; ties: the first name)."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for kinds in run.actions_by_step:
        for slot, kind in kinds.items():
            if kind != NO_ACTION and 0 <= kind < len(ACTION_NAMES):
                counts[slot][ACTIVITIES.get(kind, ACTION_NAMES[kind])] += 1
    return {slot: min(c.items(), key=lambda item: (-item[1], item[0]))[0] for slot, c in counts.items()}


def _normalised_entropy(labels: list[str]) -> float:
    counts = np.array(list(Counter(labels).values()), dtype=np.float64)
    if counts.size < 2:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(labels))) if len(labels) > 1 else 0.0


def rule_community_tags(run: RunData, communities: list[list[int]],
                        window_communities: list[tuple[int, list[list[int]]]]) -> list[Tag]:
    """Rule tags of every community of two or more members (``community_<index>`` in the order given).

    ``window_communities``: (start step, communities) of each sliding window, in order.
    """
    activity = main_activity(run)
    handed = defaultdict(list)  # (giver, receiver) -> steps
    for step, events in run.events_by_step.items():
        for event in events:
            if event["type"] in (outcome.GAVE, outcome.ARTIFACT_GIVEN):
                handed[(slot_of(event["agent"]), slot_of(event["to"]))].append(step)
    tags = []
    for index, members in enumerate(communities):
        if len(members) < 2:
            continue
        subject, inside = f"community_{index}", set(members)
        found = _counted(subject, "resource_network", [s for (a, b), steps in handed.items()
                                                       if a in inside and b in inside for s in steps])
        if found is not None:
            tags.append(found)
        together = []  # per window: are two or more members in one window community?
        for start, window in window_communities:
            groups = [inside.intersection(group) for group in window]
            together.append((start, max((len(g) for g in groups), default=0) >= 2, groups))
        formed = [start for start, joined, _ in together if joined]
        if formed:
            tags.append(Tag(subject, "COALITION_FORMED", confidence(len(formed), 1), RULES, formed[:1], len(formed)))
            broken = []
            pairs_before: set[tuple[int, int]] = set()
            for start, _, groups in together:
                pairs_now = {(a, b) for g in groups for a in g for b in g if a < b}
                living = {slot for g in groups for slot in g}
                if any(a in living and b in living and (a, b) not in pairs_now for a, b in pairs_before):
                    broken.append(start)
                pairs_before |= pairs_now
            found = _counted(subject, "COALITION_BROKEN", broken)
            if found is not None:
                tags.append(found)
        roles = [f"{run.agents[m].policy if m in run.agents else 'unknown'}/{activity.get(m, 'none')}" for m in members]
        mix = _normalised_entropy(roles)
        if mix > 0:
            tags.append(Tag(subject, "division_of_labor", int(round(MAX_CONFIDENCE * mix)), RULES, [],
                            len(set(roles)), note="roles (policy/main activity): " + ", ".join(
                                f"{role} x{n}" for role, n in sorted(Counter(roles).items()))))
    return tags


# ---------------------------------------------------------------------------------------------
# frequencies over time
# ---------------------------------------------------------------------------------------------
def tag_frequencies(tags: list[Tag], steps: int, stride: int) -> dict[str, list[int]]:
    """tag -> per block of ``stride`` steps, the number of subjects with evidence for it in that block."""
    blocks = max(1, (steps + stride - 1) // stride)
    frequency: dict[str, list[set[str]]] = {}
    for tag in tags:
        row = frequency.setdefault(tag.tag, [set() for _ in range(blocks)])
        for step in tag.evidence_steps:
            row[min(step // stride, blocks - 1)].add(tag.subject)
    return {tag: [len(subjects) for subjects in row] for tag, row in sorted(frequency.items())}
