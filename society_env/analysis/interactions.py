"""The signed, weighted, directed interaction graph of a run, with TerraLingua's weights.

An edge ``a -> b`` sums what ``a`` did to (or with) ``b``:

| interaction | direction | weight |
|---|---|---|
| message heard | speaker -> each living agent within hearing range (the view radius) after that step | +0.5 |
| sighting | each agent -> each agent within its view in a snapshot (so both directions) | +0.1 |
| energy given | giver -> receiver | +1 per unit |
| energy taken | taker -> victim | -1 per unit |
| birth | parent -> child | +10 |
| artifact handed over (``artifact_given``) | giver -> receiver | +5 |

Distances are Chebyshev on the torus, as the world's view. Interactions are counted per block of
``stride`` steps, so the whole-run graph and every sliding window (a run of consecutive blocks) are sums
of the same blocks; neighbour pairs of a snapshot are found with an occupancy grid (one agent per cell),
which costs ``agents x view cells`` per step instead of ``agents ** 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from society_env.analysis.loading import RunData, slot_of

KINDS = ("message", "sighting", "gave", "took", "parent_child", "artifact")
"""Interaction kinds, in the order of their ``kind`` codes."""

WEIGHTS = {"message": 0.5, "sighting": 0.1, "gave": 1.0, "took": -1.0, "parent_child": 10.0, "artifact": 5.0}
"""Graph weight per unit of each interaction (a heard message, a sighting, an energy unit, a birth, an artifact)."""

MESSAGE, SIGHTING, GAVE, TOOK, PARENT_CHILD, ARTIFACT = range(len(KINDS))
_EVENT_KINDS = {"gave": (GAVE, "to"), "took": (TOOK, "from"), "born": (PARENT_CHILD, None),
                "artifact_given": (ARTIFACT, "to")}


def view_displacements(config) -> np.ndarray:
    """Distinct (row, col) displacements on the torus within the view radius, excluding (0, 0).

    Taken modulo the grid so that a radius wider than a small grid never counts one pair twice.
    """
    radius = config.view_radius
    rows = np.unique(np.arange(-radius, radius + 1) % config.height)
    cols = np.unique(np.arange(-radius, radius + 1) % config.width)
    grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid[(grid[:, 0] != 0) | (grid[:, 1] != 0)]


def neighbour_pairs(row: np.ndarray, col: np.ndarray, config, displacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordered index pairs ``(i, j)`` such that agent ``j`` is within agent ``i``'s view (each pair both ways)."""
    if row.size < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    occupant = np.full((config.height, config.width), -1, dtype=np.int64)
    occupant[row, col] = np.arange(row.size)
    seen = occupant[(row[:, None] + displacements[None, :, 0]) % config.height,
                    (col[:, None] + displacements[None, :, 1]) % config.width]
    viewer, _ = np.nonzero(seen >= 0)
    return viewer, seen[seen >= 0]


@dataclass
class InteractionLog:
    """Interaction amounts aggregated per block of ``stride`` steps: one row per (block, kind, source, target).

    ``amount`` counts the interaction's units: messages heard, sightings, energy units, births, artifacts.
    """

    stride: int
    blocks: int
    block: np.ndarray
    kind: np.ndarray
    source: np.ndarray
    target: np.ndarray
    amount: np.ndarray

    def edges(self, first_block: int = 0, end_block: int | None = None) -> dict[tuple[int, int], dict[str, float]]:
        """Edges summed over blocks ``[first_block, end_block)``: (source, target) -> amounts per kind + weight."""
        end_block = self.blocks if end_block is None else end_block
        keep = (self.block >= first_block) & (self.block < end_block)
        edges: dict[tuple[int, int], dict[str, float]] = {}
        for kind, source, target, amount in zip(self.kind[keep].tolist(), self.source[keep].tolist(),
                                                self.target[keep].tolist(), self.amount[keep].tolist()):
            edge = edges.setdefault((source, target), {"weight": 0.0})
            edge[KINDS[kind]] = edge.get(KINDS[kind], 0) + amount
            edge["weight"] += WEIGHTS[KINDS[kind]] * amount
        return edges


def interaction_log(run: RunData, stride: int) -> InteractionLog:
    """Count every interaction of the run into blocks of ``stride`` snapshot steps."""
    if stride < 1:
        raise ValueError("stride must be at least 1 step")
    slots = max(run.num_slots, 1)
    displacements = view_displacements(run.config)
    blocks = (run.steps + stride - 1) // stride
    rows: list[tuple[np.ndarray, ...]] = []
    pending: dict[int, list[np.ndarray]] = {SIGHTING: [], MESSAGE: []}

    def flush(block: int) -> None:
        for kind, keys in pending.items():
            if keys:
                unique, counts = np.unique(np.concatenate(keys), return_counts=True)
                rows.append((np.full(unique.size, block), np.full(unique.size, kind), unique // slots,
                             unique % slots, counts))
                keys.clear()

    for step in range(run.steps):
        if step and step % stride == 0:
            flush(step // stride - 1)
        here = run.agents_at(step)
        slot = run.slot[here]
        viewer, seen = neighbour_pairs(run.row[here], run.col[here], run.config, displacements)
        pending[SIGHTING].append(slot[viewer] * slots + slot[seen])
        events = run.events_by_step.get(step, [])
        speakers = {slot_of(event["agent"]) for event in events if event["type"] == "message"}
        if speakers:
            heard = np.isin(slot[seen], list(speakers))  # the viewer hears the seen agent
            pending[MESSAGE].append(slot[seen][heard] * slots + slot[viewer][heard])
        discrete = []
        for event in events:
            kind, partner_field = _EVENT_KINDS.get(event["type"], (None, None))
            if kind is None:
                continue
            if kind == PARENT_CHILD:
                source, target, amount = slot_of(event["parent"]), slot_of(event["agent"]), 1
            else:
                source, target = slot_of(event["agent"]), slot_of(event[partner_field])
                amount = event.get("amount", 1)
            if source >= 0 and target >= 0:
                discrete.append((kind, source, target, amount))
        if discrete:
            kind, source, target, amount = (np.asarray(column) for column in zip(*discrete))
            rows.append((np.full(kind.size, step // stride), kind, source, target, amount))
    flush((run.steps - 1) // stride)

    columns = [np.concatenate(parts) if parts else np.empty(0, np.int64) for parts in zip(*rows)] if rows \
        else [np.empty(0, np.int64)] * 5
    return InteractionLog(stride, blocks, *[column.astype(np.int64) for column in columns])


# ---------------------------------------------------------------------------------------------
# networkx graphs and their metrics
# ---------------------------------------------------------------------------------------------
def build_graph(edges: dict[tuple[int, int], dict[str, float]], run: RunData, families: dict[int, int] | None = None):
    """A ``networkx.DiGraph`` of agents (slot nodes with policy and family) and the given edges."""
    import networkx as nx

    graph = nx.DiGraph()
    for (source, target), attributes in edges.items():
        graph.add_edge(source, target, **attributes)
    for node in graph.nodes:
        life = run.agents.get(node)
        graph.nodes[node]["policy"] = life.policy if life else "unknown"
        if families is not None:
            graph.nodes[node]["family"] = families.get(node, node)
    return graph


def positive_ties(graph):
    """Undirected graph of pairs whose summed weight both ways is positive (what community detection needs)."""
    import networkx as nx

    ties = nx.Graph()
    ties.add_nodes_from(graph.nodes)
    for source, target, weight in graph.edges(data="weight"):
        if ties.has_edge(source, target):
            ties[source][target]["weight"] += weight
        else:
            ties.add_edge(source, target, weight=weight)
    ties.remove_edges_from([(u, v) for u, v, w in ties.edges(data="weight") if w <= 0])
    return ties


def graph_metrics(graph, seed: int = 0) -> dict[str, Any]:
    """Density and (action) reciprocity of the directed graph, clustering and Louvain communities of the positive ties."""
    import networkx as nx

    ties = positive_ties(graph)
    edges = graph.number_of_edges()
    communities = nx.community.louvain_communities(ties, weight="weight", seed=seed) if ties.number_of_edges() else \
        [{node} for node in ties.nodes]
    communities = sorted((sorted(c) for c in communities), key=lambda c: (-len(c), c))
    negative = sum(1 for _, _, w in graph.edges(data="weight") if w < 0)
    return {
        "nodes": graph.number_of_nodes(),
        "edges": edges,
        "density": nx.density(graph) if graph.number_of_nodes() > 1 else 0.0,
        "reciprocity": action_reciprocity(graph),
        "clustering": nx.average_clustering(ties) if ties.number_of_nodes() else 0.0,
        "negative_edges": negative,
        "total_weight": float(sum(w for _, _, w in graph.edges(data="weight"))),
        "communities": len([c for c in communities if len(c) > 1]),
        "largest_community": len(communities[0]) if communities else 0,
        "modularity": nx.community.modularity(ties, communities, weight="weight") if ties.number_of_edges() else 0.0,
        "community_members": communities,
    }


def action_reciprocity(graph) -> float:
    """Share of directed ties made by an action (everything but sightings) that are answered the other way.

    Sightings are mutual by construction (views are symmetric), so counting them would make every graph
    fully reciprocal; a message, a gift, a theft, a birth or a handed artifact is one agent's choice.
    """
    acted = {(source, target) for source, target, amounts in graph.edges(data=True)
             if any(amounts.get(kind) for kind in KINDS if kind != "sighting")}
    return sum((target, source) in acted for source, target in acted) / len(acted) if acted else 0.0


def window_metrics(log: InteractionLog, run: RunData, window_blocks: int) -> list[dict[str, Any]]:
    """Graph metrics over sliding windows of ``window_blocks`` blocks, moving one block (``stride`` steps) at a time."""
    windows = []
    last_start = max(log.blocks - window_blocks, 0)
    for first in range(last_start + 1):
        end = min(first + window_blocks, log.blocks)
        metrics = graph_metrics(build_graph(log.edges(first, end), run))
        metrics.pop("community_members")
        windows.append({"start_step": first * log.stride,
                        "end_step": min(end * log.stride, run.steps) - 1, **metrics})
    return windows


def interaction_totals(edges: dict[tuple[int, int], dict[str, float]]) -> dict[str, float]:
    """Sum of each interaction kind over the given edges (units, not weights)."""
    return {kind: sum(edge.get(kind, 0) for edge in edges.values()) for kind in KINDS}


def top_pairs(edges: dict[tuple[int, int], dict[str, float]], kind: str, count: int = 5) -> list[tuple[int, int, float]]:
    """The ``count`` pairs with the most units of one interaction kind (e.g. who stole most from whom)."""
    ranked = sorted(((amounts.get(kind, 0), pair) for pair, amounts in edges.items() if amounts.get(kind, 0)),
                    key=lambda item: (-item[0], item[1]))
    return [(source, target, amount) for amount, (source, target) in ranked[:count]]
