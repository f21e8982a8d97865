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

from society_env.world import outcome
from society_env.analysis.loading import RunData, slot_of

KINDS = ("message", "sighting", "gave", "took", "parent_child", "artifact")
"""Interaction kinds, in the order of their ``kind`` codes."""

WEIGHTS = {"message": 0.5, "sighting": 0.1, "gave": 1.0, "took": -1.0, "parent_child": 10.0, "artifact": 5.0}
"""Graph weight per unit of each interaction (a heard message, a sighting, an energy unit, a birth, an artifact)."""

MESSAGE, SIGHTING, GAVE, TOOK, PARENT_CHILD, ARTIFACT = range(len(KINDS))
_EVENT_KINDS = {outcome.GAVE: (GAVE, "to"), outcome.TOOK: (TOOK, "from"), outcome.BORN: (PARENT_CHILD, None),
                outcome.ARTIFACT_GIVEN: (ARTIFACT, "to")}
"""The recorded events that are interactions: event type -> (interaction kind, the field naming the other)."""


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
class EdgeTable:
    """Directed edges as arrays, one row per (source, target) pair: units of each interaction kind."""

    source: np.ndarray
    target: np.ndarray
    amounts: np.ndarray
    """``[edges, len(KINDS)]``: units per kind (messages heard, sightings, energy units, births, artifacts)."""

    def __len__(self) -> int:
        return self.source.size

    @property
    def weight(self) -> np.ndarray:
        return self.amounts @ np.array([WEIGHTS[kind] for kind in KINDS])

    @property
    def nodes(self) -> np.ndarray:
        return np.union1d(self.source, self.target)

    def as_dict(self) -> dict[tuple[int, int], dict[str, float]]:
        """(source, target) -> {"weight": ..., kind: units} for the kinds that occurred."""
        edges = {}
        for source, target, amounts, weight in zip(self.source.tolist(), self.target.tolist(), self.amounts.tolist(),
                                                   self.weight.tolist()):
            edges[(source, target)] = {"weight": weight, **{KINDS[k]: a for k, a in enumerate(amounts) if a}}
        return edges

    def among(self, nodes: np.ndarray) -> "EdgeTable":
        """The edges whose both ends are in ``nodes``."""
        keep = np.isin(self.source, nodes) & np.isin(self.target, nodes)
        return EdgeTable(self.source[keep], self.target[keep], self.amounts[keep])


@dataclass
class InteractionLog:
    """Interaction amounts aggregated per block of ``stride`` steps: one row per (block, kind, source, target).

    ``amount`` counts the interaction's units: messages heard, sightings, energy units, births, artifacts.
    """

    stride: int
    blocks: int
    slots: int
    """Agent slots of the run; ``source * slots + target`` is a pair's key."""
    block: np.ndarray
    kind: np.ndarray
    source: np.ndarray
    target: np.ndarray
    amount: np.ndarray

    def edges(self, first_block: int = 0, end_block: int | None = None) -> EdgeTable:
        """Edges summed over blocks ``[first_block, end_block)``."""
        end_block = self.blocks if end_block is None else end_block
        keep = (self.block >= first_block) & (self.block < end_block)
        keys, row = np.unique(self.source[keep] * self.slots + self.target[keep], return_inverse=True)
        amounts = np.zeros((keys.size, len(KINDS)), dtype=np.int64)
        np.add.at(amounts, (row, self.kind[keep]), self.amount[keep])
        return EdgeTable(keys // self.slots, keys % self.slots, amounts)


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
    return InteractionLog(stride, blocks, slots, *[column.astype(np.int64) for column in columns])


# ---------------------------------------------------------------------------------------------
# graphs and their metrics
# ---------------------------------------------------------------------------------------------
CLUSTERING_EXACT_MAX_TIES = 20_000
"""Above this many positive ties, clustering is networkx's sampled estimate (20,000 seeded trials, standard
error under 0.004) instead of the exact average: exact triangle counting in pure Python takes minutes on
the graphs of long runs with thousands of agents."""
CLUSTERING_TRIALS = 20_000


def build_graph(edges: EdgeTable, run: RunData, families: dict[int, int] | None = None):
    """A ``networkx.DiGraph`` of agents (slot nodes with policy and family) with the edges' weights and units."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_edges_from((source, target, attributes) for (source, target), attributes in edges.as_dict().items())
    for node in graph.nodes:
        life = run.agents.get(node)
        graph.nodes[node]["policy"] = life.policy if life else "unknown"
        if families is not None:
            graph.nodes[node]["family"] = families.get(node, node)
    return graph


def strongest_subgraph(edges: EdgeTable, run: RunData, max_nodes: int):
    """The graph of the ``max_nodes`` agents with the largest total |weight| (for drawing), and their strengths."""
    nodes = edges.nodes
    strength = np.zeros(int(nodes.max()) + 1 if nodes.size else 0)
    np.add.at(strength, edges.source, np.abs(edges.weight))
    np.add.at(strength, edges.target, np.abs(edges.weight))
    kept = nodes[np.lexsort((nodes, -strength[nodes]))][:max_nodes]
    graph = build_graph(edges.among(kept), run)
    graph.add_nodes_from(kept.tolist())
    for node in graph.nodes:
        graph.nodes[node]["strength"] = float(strength[node])
    return graph


def positive_ties(edges: EdgeTable):
    """Undirected graph of pairs whose weights both ways sum to more than 0 (what community detection needs).

    Every agent of the edge table is a node, so isolated agents count in averages and as singletons.
    """
    import networkx as nx

    low, high = np.minimum(edges.source, edges.target), np.maximum(edges.source, edges.target)
    span = int(high.max()) + 1 if high.size else 1
    keys, row = np.unique(low * span + high, return_inverse=True)
    weight = np.bincount(row, weights=edges.weight, minlength=keys.size)
    positive = weight > 0
    ties = nx.Graph()
    ties.add_nodes_from(edges.nodes.tolist())
    ties.add_weighted_edges_from(zip((keys[positive] // span).tolist(), (keys[positive] % span).tolist(),
                                     weight[positive].tolist()))
    return ties


def action_reciprocity(edges: EdgeTable) -> float:
    """Share of directed ties made by an action (everything but sightings) that are answered the other way.

    Sightings are mutual by construction (views are symmetric), so counting them would make every graph
    fully reciprocal; a message, a gift, a theft, a birth or a handed artifact is one agent's choice.
    """
    acted = np.delete(edges.amounts, SIGHTING, axis=1).sum(axis=1) > 0
    if not acted.any():
        return 0.0
    span = int(edges.nodes.max()) + 1
    keys = edges.source[acted] * span + edges.target[acted]
    return float(np.isin(edges.target[acted] * span + edges.source[acted], keys).mean())


def modularity(ties, communities: list[list[int]]) -> float:
    """Weighted modularity of a partition (the same number as ``networkx.community.modularity``, in numpy)."""
    if not ties.number_of_edges():
        return 0.0
    community_of = {node: index for index, members in enumerate(communities) for node in members}
    u, v, w = (np.array(column) for column in zip(*ties.edges(data="weight")))
    cu, cv = np.array([community_of[n] for n in u.tolist()]), np.array([community_of[n] for n in v.tolist()])
    total = w.sum()
    inside = np.bincount(cu[cu == cv], weights=w[cu == cv], minlength=len(communities))
    degree = np.bincount(cu, weights=w, minlength=len(communities)) + np.bincount(cv, weights=w, minlength=len(communities))
    return float((inside / total - (degree / (2 * total)) ** 2).sum())


def graph_metrics(edges: EdgeTable, seed: int = 0) -> dict[str, Any]:
    """Density and (action) reciprocity of the directed graph, clustering and Louvain communities of the positive ties."""
    import networkx as nx

    nodes = edges.nodes.size
    ties = positive_ties(edges)
    communities = nx.community.louvain_communities(ties, weight="weight", seed=seed) if ties.number_of_edges() else \
        [{node} for node in ties.nodes]
    communities = sorted((sorted(c) for c in communities), key=lambda c: (-len(c), c))
    exact = ties.number_of_edges() <= CLUSTERING_EXACT_MAX_TIES
    if not nodes:
        clustering = 0.0
    elif exact:
        clustering = nx.average_clustering(ties)
    else:
        clustering = nx.approximation.average_clustering(ties, trials=CLUSTERING_TRIALS, seed=seed)
    return {
        "nodes": nodes,
        "edges": len(edges),
        "density": len(edges) / (nodes * (nodes - 1)) if nodes > 1 else 0.0,
        "reciprocity": action_reciprocity(edges),
        "clustering": clustering,
        "clustering_exact": exact,
        "negative_edges": int((edges.weight < 0).sum()),
        "total_weight": float(edges.weight.sum()),
        "communities": len([c for c in communities if len(c) > 1]),
        "largest_community": len(communities[0]) if communities else 0,
        "modularity": modularity(ties, communities),
        "community_members": communities,
    }


def window_metrics(log: InteractionLog, window_blocks: int, steps: int) -> list[dict[str, Any]]:
    """Graph metrics over sliding windows of ``window_blocks`` blocks, moving one block (``stride`` steps) at
    a time; each window's communities are under ``community_members`` (as in :func:`graph_metrics`)."""
    windows = []
    for first in range(max(log.blocks - window_blocks, 0) + 1):
        end = min(first + window_blocks, log.blocks)
        metrics = graph_metrics(log.edges(first, end))
        windows.append({"start_step": first * log.stride, "end_step": min(end * log.stride, steps) - 1, **metrics})
    return windows


def interaction_totals(edges: EdgeTable) -> dict[str, int]:
    """Units of each interaction kind over the given edges."""
    return dict(zip(KINDS, edges.amounts.sum(axis=0).tolist())) if len(edges) else dict.fromkeys(KINDS, 0)


def top_pairs(edges: EdgeTable, kind: str, count: int = 5) -> list[tuple[int, int, int]]:
    """The ``count`` pairs with the most units of one interaction kind (e.g. who stole most from whom)."""
    units = edges.amounts[:, KINDS.index(kind)] if len(edges) else np.empty(0, np.int64)
    order = np.lexsort((edges.target, edges.source, -units))[:count]
    return [(int(edges.source[i]), int(edges.target[i]), int(units[i])) for i in order if units[i] > 0]
