"""``society-env report``: analyse recordings and write the numbers, the plots and one HTML page per run.

Writes into each run directory:

    report.json        every number of the page (totals, per-policy survival, graph metrics, windows, families)
    report-series.csv  the time series, one row per step
    report-tags.jsonl  one line per tag of an agent or a community (TerraLingua's vocabulary: rules, or an LLM
                       with ``society-env report --tags``)
    report-artifacts.csv  one row per artifact version: zlib, surprisal, novelty, lineage and reuse
    report-*.png       plots (series, families, interaction graph, windowed graph metrics)
    report.html        one page that shows the plots and the numbers

and, for several runs, ``comparison.html`` + ``comparison.png`` (side-by-side table, overlaid curves)
in a directory of the caller's choice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from society_env.analysis.artifact_metrics import (
    CSV_COLUMNS, ArtifactReuse, ArtifactVersion, artifact_reuse, artifact_series, artifact_versions, csv_rows, mean_of,
)
from society_env.analysis.communication import communication_numbers
from society_env.analysis.interactions import (
    EdgeTable, build_graph, graph_metrics, interaction_log, interaction_totals, strongest_subgraph, top_pairs,
    window_metrics,
)
from society_env.analysis.lineage import Lineage, family_population, family_tree_text, lineage
from society_env.analysis.loading import RunData, load_run
from society_env.analysis.series import TimeSeries, survival_by_policy, time_series
from society_env.analysis.tags import Tag, rule_agent_tags, rule_community_tags, tag_frequencies
from society_env.recording.files import write_bytes_atomic, write_json_atomic
from society_env.recording.format import Recording
from society_env.world.names import agent_name, agent_names

WINDOW_FRACTION = 5
"""Default sliding window: a fifth of the run."""
WINDOW_BLOCKS = 2
"""Windows advance by half their length (a window is two blocks of interactions; odd lengths round down)."""
GRAPH_PLOT_NODES = 150
"""The graph plot shows this many agents, the strongest (largest total |weight|)."""
IMAGES = {"series": "report-series.png", "families": "report-families.png", "graph": "report-graph.png",
          "windows": "report-windows.png", "tags": "report-tags.png", "artifacts": "report-artifacts.png"}


class MissingAnalysisDependencies(ImportError):
    """networkx or matplotlib is not installed."""

    def __init__(self) -> None:
        super().__init__('the report needs networkx and matplotlib: pip install "society-env[analysis]"')


def require_analysis_dependencies() -> None:
    try:
        import matplotlib  # noqa: F401
        import networkx  # noqa: F401
    except ImportError:
        raise MissingAnalysisDependencies() from None


@dataclass
class RunReport:
    """The analysis of one run: the numbers (JSON-ready) and the series behind the plots."""

    run: RunData
    numbers: dict[str, Any]
    series: TimeSeries
    edges: EdgeTable
    """The whole-run interaction edges."""
    communities: list[list[int]]
    family_population: dict[int, Any]
    """Living members per family and step (for the family plot)."""
    lineage: Lineage
    tags: list[Tag]
    """Rule tags (always) and LLM tags (``society_env.app.anthropologist``) of agents and communities."""
    artifact_versions: list[ArtifactVersion]
    artifact_reuse: list[ArtifactReuse]
    stride: int
    """Block length of the interaction log, the windows and the tag and artifact series."""

    def refresh_culture_numbers(self) -> None:
        """Put the tags and artifact metrics into ``numbers`` (again, after an LLM added tags or metrics)."""
        self.numbers["tags"] = tag_numbers(self.tags, self.run.steps, self.stride)
        self.numbers["artifacts"] = artifact_numbers(self.artifact_versions, self.artifact_reuse, self.run.steps, self.stride)

    @property
    def name(self) -> str:
        return self.run.run_dir.name

    def graph(self):
        """The whole-run interaction graph as a ``networkx.DiGraph`` (nodes carry policy and family)."""
        return build_graph(self.edges, self.run, self.family_of)

    @property
    def family_of(self) -> dict[int, int]:
        return self.lineage.family_of


def window_layout(steps: int, window: int | None) -> tuple[int, int]:
    """(stride, blocks per window) for a window of ``window`` steps (default: a fifth of the run)."""
    window = max(1, math.ceil(steps / WINDOW_FRACTION)) if window is None else window
    if window < 1:
        raise ValueError("the window must be at least 1 step")
    if window < WINDOW_BLOCKS:
        return window, 1
    return window // WINDOW_BLOCKS, WINDOW_BLOCKS


def analyse_run(run_dir: str | Path, window: int | None = None) -> RunReport:
    """Compute every number of the report for one run directory (complete or killed)."""
    require_analysis_dependencies()
    run = load_run(run_dir)
    series = time_series(run)
    tree = lineage(run)
    stride, window_blocks = window_layout(run.steps, window)
    log = interaction_log(run, stride)
    edges = log.edges()
    metrics = graph_metrics(edges)
    communities = metrics.pop("community_members")
    windows = window_metrics(log, window_blocks, run.steps)
    window_communities = [(w["start_step"], w.pop("community_members")) for w in windows]
    deaths = {cause: int(counts.sum()) for cause, counts in series.deaths.items()}
    numbers = {
        "run": run.run_dir.name,
        "recording_sha256": Recording(run.run_dir).fingerprint(),
        "complete": run.complete,
        "preset": run.meta.get("preset"),
        "policy": run.meta.get("policy"),
        "seed": run.meta.get("seed"),
        "steps": run.last_step,
        "totals": {
            "population_start": int(series.population[0]),
            "population_peak": int(series.population.max()),
            "population_end": int(series.population[-1]),
            "population_mean": float(series.population[1:].mean()) if run.steps > 1 else 0.0,
            "agents": len(run.agents),
            "births": int(series.births.sum()),
            "deaths": deaths,
            "energy_given": int(series.energy_given.sum()),
            "energy_taken": int(series.energy_taken.sum()),
            "messages": int(series.messages.sum()),
            "artifacts_created": len(run.events("artifact_created")),
            "artifacts_alive_end": int(series.artifacts_alive[-1]),
        },
        "per_policy": {policy: asdict(numbers) for policy, numbers in survival_by_policy(run).items()},
        "interactions": interaction_totals(edges),
        "top_pairs": {kind: [{"from": agent_name(s), "to": agent_name(t), "amount": a} for s, t, a in top_pairs(edges, kind)]
                      for kind in ("gave", "took", "message")},
        "graph": metrics,
        "communities": [agent_names(members) for members in communities[:10]],
        "window": {"steps": stride * window_blocks, "stride": stride},
        "windows": windows,
        "lineage": {
            "families": len(tree.families),
            "generations_reached": tree.generations_reached,
            "largest_families": [asdict(family) for family in tree.families[:10]],
            "trees": {agent_name(family.founder): family_tree_text(tree, family.founder) for family in tree.families[:3]},
        },
        "communication": communication_numbers(run),
    }
    tags = rule_agent_tags(run, tree) + rule_community_tags(run, communities, window_communities)
    report = RunReport(run, numbers, series, edges, communities, family_population(run, tree.family_of), tree,
                       tags, artifact_versions(run), artifact_reuse(run), stride)
    report.refresh_culture_numbers()
    return report


def tag_numbers(tags: list[Tag], steps: int, stride: int) -> dict[str, Any]:
    """The report's tag tables: subject -> tag -> [confidence, source], per-tag subject counts, frequencies."""
    by_subject: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"agents": {}, "communities": {}}
    for tag in tags:
        table = by_subject["communities" if tag.subject.startswith("community_") else "agents"]
        table.setdefault(tag.subject, {})[tag.tag] = {"confidence": tag.confidence, "source": tag.source, "count": tag.count}
    subjects: dict[str, int] = {}
    for tag in tags:
        subjects[tag.tag] = subjects.get(tag.tag, 0) + 1
    return {**by_subject, "subjects_per_tag": dict(sorted(subjects.items())),
            "frequency": {"stride": stride, "start_step": list(range(0, max(steps, 1), stride)),
                          "subjects": tag_frequencies(tags, steps, stride)}}


def artifact_numbers(versions: list[ArtifactVersion], reuse: list[ArtifactReuse], steps: int, stride: int) -> dict[str, Any]:
    most_read = sorted(reuse, key=lambda r: (-(r.reads + r.picked_up + r.handed_on), r.created_step, r.artifact))
    return {
        "artifacts": len(reuse), "versions": len(versions),
        "mean_zlib_ratio": mean_of(versions, "zlib_ratio"), "mean_surprisal": mean_of(versions, "surprisal"),
        "mean_novelty": mean_of(versions, "novelty"), "mean_llm_novelty": mean_of(versions, "llm_novelty"),
        "lineage": [[earlier, version.key] for version in versions for earlier in version.extends],
        "most_reused": [asdict(record) for record in most_read[:10]],
        "series": artifact_series(versions, steps, stride),
    }


def write_series_csv(series: TimeSeries, path: Path) -> None:
    columns = series.as_columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", *columns])
    rounded = [values.round(3) if values.dtype.kind == "f" else values for values in columns.values()]
    for step, values in enumerate(zip(*(values.tolist() for values in rounded))):
        writer.writerow([step, *values])
    write_bytes_atomic(path, buffer.getvalue().encode())


def write_artifacts_csv(report: RunReport, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report.artifact_versions, report.artifact_reuse))
    write_bytes_atomic(path, buffer.getvalue().encode())


def write_report(run_dir: str | Path, window: int | None = None) -> RunReport:
    """Analyse one run and write report.json, report-series.csv, the PNGs and report.html into it."""
    return write_run_report(analyse_run(run_dir, window))


def write_run_report(report: RunReport) -> RunReport:
    """Write the files of :func:`write_report` for a run analysed already (:func:`analyse_run`)."""
    from society_env.analysis import plots
    from society_env.analysis.report_html import render_report

    out = report.run.run_dir
    write_json_atomic(out / "report.json", report.numbers)
    write_series_csv(report.series, out / "report-series.csv")
    write_bytes_atomic(out / "report-tags.jsonl", "".join(json.dumps(tag.record()) + "\n" for tag in report.tags).encode())
    write_artifacts_csv(report, out / "report-artifacts.csv")
    title = f"{report.name} ({'complete' if report.run.complete else 'partial: killed run'})"
    plots.plot_series(report.series, out / IMAGES["series"], title)
    plots.plot_families(report.family_population, out / IMAGES["families"])
    shown = strongest_subgraph(report.edges, report.run, GRAPH_PLOT_NODES)
    plots.plot_graph(shown, report.communities, report.numbers["graph"]["nodes"], out / IMAGES["graph"])
    plots.plot_windows(report.numbers["windows"], out / IMAGES["windows"])
    frequency = report.numbers["tags"]["frequency"]
    plots.plot_tag_frequencies(frequency["subjects"], frequency["start_step"], out / IMAGES["tags"])
    plots.plot_artifacts(report.numbers["artifacts"]["series"], out / IMAGES["artifacts"])
    write_bytes_atomic(out / "report.html", render_report(report.numbers, IMAGES).encode())
    return report


def comparison_rows(reports: list[RunReport]) -> list[tuple[str, list[str]]]:
    """(label, one value per run) rows of the side-by-side table, shared by the terminal and the HTML page."""
    def row(label: str, value) -> tuple[str, list[str]]:
        return label, [str(value(report.numbers)) for report in reports]

    rows = [
        row("steps", lambda n: n["steps"] if n["complete"] else f"{n['steps']} (killed)"),
        row("policy", lambda n: n["policy"]),
        row("population start / peak / end", lambda n: "{population_start} / {population_peak} / {population_end}".format(**n["totals"])),
        row("births", lambda n: n["totals"]["births"]),
        row("deaths (starvation / old age)", lambda n: f"{n['totals']['deaths'].get('starvation', 0)} / {n['totals']['deaths'].get('old_age', 0)}"),
        row("energy given / taken", lambda n: f"{n['totals']['energy_given']} / {n['totals']['energy_taken']}"),
        row("messages", lambda n: n["totals"]["messages"]),
        row("artifacts created / alive at end", lambda n: f"{n['totals']['artifacts_created']} / {n['totals']['artifacts_alive_end']}"),
        row("generations reached", lambda n: n["lineage"]["generations_reached"]),
        row("graph density / reciprocity / clustering", lambda n: "{density:.3f} / {reciprocity:.3f} / {clustering:.3f}".format(**n["graph"])),
        row("communities (largest)", lambda n: f"{n['graph']['communities']} ({n['graph']['largest_community']})"),
        row("signalling: I(token; seen) bits (null, p)", lambda n: communication_cell(n["communication"], "signalling")),
        row("listening: I(token heard; move) bits (null, p)", lambda n: communication_cell(n["communication"], "listening")),
    ]
    policies = sorted({policy for report in reports for policy in report.numbers["per_policy"]})
    for policy in policies:
        rows.append(row(f"{policy}: agents / mean lifespan / mean return", lambda n, p=policy: (
            "{agents} / {mean_lifespan:.1f} / {mean_return:.1f}".format(**n["per_policy"][p]) if p in n["per_policy"] else "-")))
    return rows


def communication_cell(section: dict[str, Any], measure: str) -> str:
    """One measure of the communication section in a table cell: MI, its shuffled null's mean, p, and a verdict."""
    if not section.get("measured"):
        return "not measured (no tokens)"
    dependence = section["signalling"]["observation"] if measure == "signalling" else section["listening"]
    verdict = "positive" if section[f"positive_{measure}"] else "not above the null"
    return f"{dependence['bits']:.4f} ({dependence['null_mean']:.4f}, p {dependence['p_value']:.3f}): {verdict}"


def write_comparison(reports: list[RunReport], out_dir: str | Path) -> Path:
    """Side-by-side table and overlaid curves of several runs: ``comparison.html`` and ``comparison.png``."""
    from society_env.analysis import plots
    from society_env.analysis.report_html import render_comparison

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_overlay({report.name: report.series for report in reports}, out_dir / "comparison.png")
    names = [report.name for report in reports]
    links = [str(Path(report.run.run_dir.resolve(), "report.html").relative_to(out_dir.resolve()))
             if report.run.run_dir.resolve().is_relative_to(out_dir.resolve()) else str(report.run.run_dir.resolve() / "report.html")
             for report in reports]
    path = out_dir / "comparison.html"
    write_bytes_atomic(path, render_comparison(names, links, comparison_rows(reports), "comparison.png").encode())
    return path
