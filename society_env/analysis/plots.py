"""Matplotlib figures of a run (and of several runs overlaid), written as PNG files.

Counts per step are noisy (0 or 1 most steps), so events are drawn as cumulative totals; levels
(population, food, artifacts alive) are drawn as they are.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from society_env.analysis.files import write_atomic  # noqa: E402
from society_env.analysis.series import TimeSeries  # noqa: E402

DPI = 80
FAMILY_COLOURS = plt.get_cmap("tab10").colors


def save_figure(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    write_atomic(path, buffer.getvalue())
    return path


def _series_panels(series: TimeSeries) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(title, {label: curve}) per panel, shared by the single-run and the overlay figures."""
    return [
        ("population", {"alive": series.population}),
        ("food", {"tiles": series.food_tiles, "total value / 10": series.food_total / 10}),
        ("births and deaths (cumulative)", {"births": np.cumsum(series.births),
                                            **{f"deaths: {cause}": np.cumsum(counts) for cause, counts in series.deaths.items()}}),
        ("energy moved (cumulative units)", {"given": np.cumsum(series.energy_given), "taken": np.cumsum(series.energy_taken)}),
        ("messages (cumulative)", {"messages": np.cumsum(series.messages)}),
        ("artifacts alive", {"artifacts": series.artifacts_alive}),
    ]


def plot_series(series: TimeSeries, path: Path, title: str) -> Path:
    figure, axes = plt.subplots(3, 2, figsize=(10, 8), sharex=True)
    for axis, (panel, curves) in zip(axes.flat, _series_panels(series)):
        for label, values in curves.items():
            axis.plot(values, label=label, linewidth=1.2)
        axis.set_title(panel, fontsize=10)
        if len(curves) > 1:
            axis.legend(fontsize=8)
    for axis in axes[-1]:
        axis.set_xlabel("step")
    figure.suptitle(title, fontsize=11)
    return save_figure(figure, path)


def plot_overlay(series_by_run: dict[str, TimeSeries], path: Path) -> Path:
    """The same panels with one curve per run (each panel's first quantity, plus deaths summed)."""
    figure, axes = plt.subplots(3, 2, figsize=(10, 8), sharex=True)
    for name, series in series_by_run.items():
        for axis, (panel, curves) in zip(axes.flat, _series_panels(series)):
            label, values = next(iter(curves.items()))
            axis.plot(values, label=name, linewidth=1.2)
            axis.set_title(f"{panel}: {label}", fontsize=10)
    axes.flat[0].legend(fontsize=7)
    for axis in axes[-1]:
        axis.set_xlabel("step")
    return save_figure(figure, path)


def plot_families(population: dict[int, np.ndarray], path: Path, shown: int = 9) -> Path:
    """Living members per family over time, the largest families stacked, the rest as 'other'."""
    ranked = sorted(population, key=lambda founder: (-int(population[founder].sum()), founder))
    figure, axis = plt.subplots(figsize=(10, 3.5))
    layers = [population[founder] for founder in ranked[:shown]]
    labels = [f"agent_{founder}" for founder in ranked[:shown]]
    if len(ranked) > shown:
        layers.append(np.sum([population[founder] for founder in ranked[shown:]], axis=0))
        labels.append("other families")
    if layers:
        axis.stackplot(np.arange(len(layers[0])), *layers, labels=labels, colors=[*FAMILY_COLOURS][: len(layers)])
        axis.legend(fontsize=7, loc="upper right", ncol=2, title="family of", title_fontsize=7)
    axis.set_title("living members per family (founder)", fontsize=10)
    axis.set_xlabel("step")
    return save_figure(figure, path)


def plot_graph(graph, communities: list[list[int]], path: Path, max_nodes: int = 150) -> Path:
    """The interaction graph: nodes coloured by community, edges green (positive) or red (negative)."""
    import networkx as nx

    strength = {node: sum(abs(w) for _, _, w in graph.edges(node, data="weight")) +
                sum(abs(w) for _, _, w in graph.in_edges(node, data="weight")) for node in graph.nodes}
    kept = sorted(strength, key=lambda node: (-strength[node], node))[:max_nodes]
    shown = graph.subgraph(kept)
    community_of = {node: index for index, members in enumerate(communities) for node in members}
    figure, axis = plt.subplots(figsize=(7, 7))
    if shown.number_of_nodes():
        layout = nx.spring_layout(shown.to_undirected(), seed=0, weight=None, iterations=60)
        top = max(strength[node] for node in kept) or 1.0
        colours = [FAMILY_COLOURS[community_of.get(node, 0) % len(FAMILY_COLOURS)] for node in shown.nodes]
        sizes = [30 + 300 * strength[node] / top for node in shown.nodes]
        weights = [abs(w) for _, _, w in shown.edges(data="weight")]
        heaviest = max(weights, default=1.0) or 1.0
        nx.draw_networkx_edges(shown, layout, ax=axis, arrows=False,
                               edge_color=["tab:green" if w > 0 else "tab:red" for _, _, w in shown.edges(data="weight")],
                               width=[0.3 + 2.5 * abs(w) / heaviest for _, _, w in shown.edges(data="weight")], alpha=0.5)
        nx.draw_networkx_nodes(shown, layout, ax=axis, node_color=colours, node_size=sizes, linewidths=0)
    title = "interaction graph (colour = community; green +, red -)"
    if graph.number_of_nodes() > max_nodes:
        title += f"\n{max_nodes} strongest of {graph.number_of_nodes()} agents"
    axis.set_title(title, fontsize=10)
    axis.axis("off")
    return save_figure(figure, path)


def plot_windows(windows: list[dict[str, Any]], path: Path) -> Path:
    """Graph metrics in sliding windows (x = window centre)."""
    figure, axes = plt.subplots(1, 4, figsize=(12, 2.8))
    centres = [(w["start_step"] + w["end_step"]) / 2 for w in windows]
    for axis, metric in zip(axes, ("density", "reciprocity", "clustering", "communities")):
        axis.plot(centres, [w[metric] for w in windows], marker=".", linewidth=1.2)
        axis.set_title(metric, fontsize=10)
        axis.set_xlabel("step")
    return save_figure(figure, path)
