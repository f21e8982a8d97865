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

from society_env.recording.files import write_bytes_atomic  # noqa: E402
from society_env.analysis.series import TimeSeries  # noqa: E402
from society_env.world.names import agent_names

DPI = 80
FAMILY_COLOURS = plt.get_cmap("tab10").colors


def save_figure(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
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
    labels = agent_names(ranked[:shown])
    if len(ranked) > shown:
        layers.append(np.sum([population[founder] for founder in ranked[shown:]], axis=0))
        labels.append("other families")
    if layers:
        axis.stackplot(np.arange(len(layers[0])), *layers, labels=labels, colors=[*FAMILY_COLOURS][: len(layers)])
        axis.legend(fontsize=7, loc="upper right", ncol=2, title="family of", title_fontsize=7)
    axis.set_title("living members per family (founder)", fontsize=10)
    axis.set_xlabel("step")
    return save_figure(figure, path)


def plot_graph(shown, communities: list[list[int]], total_agents: int, path: Path) -> Path:
    """The strongest agents' interaction graph (``strongest_subgraph``): nodes coloured by community and sized
    by strength, edges green (positive) or red (negative)."""
    import networkx as nx

    community_of = {node: index for index, members in enumerate(communities) for node in members}
    figure, axis = plt.subplots(figsize=(7, 7))
    if shown.number_of_nodes():
        # a larger spring length than networkx's 1/sqrt(n) keeps the dense family clusters readable
        layout = nx.spring_layout(shown.to_undirected(), seed=0, weight=None, iterations=80,
                                  k=3 / shown.number_of_nodes() ** 0.5)
        strength = dict(shown.nodes(data="strength"))
        top = max(strength.values()) or 1.0
        weights = [w for _, _, w in shown.edges(data="weight")]
        heaviest = max(map(abs, weights), default=1.0) or 1.0
        nx.draw_networkx_edges(shown, layout, ax=axis, arrows=False, alpha=0.5,
                               edge_color=["tab:green" if w > 0 else "tab:red" for w in weights],
                               width=[0.3 + 2.5 * abs(w) / heaviest for w in weights])
        nx.draw_networkx_nodes(shown, layout, ax=axis, linewidths=0,
                               node_color=[FAMILY_COLOURS[community_of.get(n, 0) % len(FAMILY_COLOURS)] for n in shown.nodes],
                               node_size=[12 + 160 * strength[n] / top for n in shown.nodes])
    title = "interaction graph (colour = community; green +, red -)"
    if total_agents > shown.number_of_nodes():
        title += f"\n{shown.number_of_nodes()} strongest of {total_agents} agents"
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


def plot_tag_frequencies(frequency: dict[str, list[int]], start_steps: list[int], path: Path, shown: int = 10) -> Path:
    """Subjects with evidence for each tag per block: the ``shown`` most frequent tags."""
    figure, axis = plt.subplots(figsize=(10, 4))
    for tag in sorted(frequency, key=lambda t: (-sum(frequency[t]), t))[:shown]:
        axis.plot(start_steps, frequency[tag], label=tag, linewidth=1.2)
    axis.set_xlabel("step (start of block)")
    axis.set_ylabel("agents with evidence")
    axis.set_title("tags over time (rule tags by evidence step, LLM tags by log chunk)", fontsize=10)
    if frequency:
        axis.legend(fontsize=7, ncol=2)
    return save_figure(figure, path)


def plot_artifacts(series: dict[str, list], path: Path) -> Path:
    """Versions written per block, and their mean zlib ratio, surprisal and novelty (where measured)."""
    figure, axes = plt.subplots(1, 4, figsize=(12, 3), sharex=True)
    x = series["start_step"]
    for axis, name in zip(axes, ("versions", "zlib_ratio", "surprisal", "novelty")):
        values = np.array([np.nan if v is None else v for v in series[name]], dtype=float)
        axis.plot(x, values, marker="o", markersize=3, linewidth=1.2)
        axis.set_title(name.replace("_", " ") + (" (needs --tags)" if np.isnan(values).all() and name in ("surprisal", "novelty") else ""),
                       fontsize=9)
        axis.set_xlabel("step")
    return save_figure(figure, path)
