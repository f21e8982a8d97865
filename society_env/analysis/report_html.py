"""HTML of ``report.html`` (one run) and ``comparison.html`` (several runs): plain static pages, no scripts.

The PNGs sit next to the page and are linked by relative name, so a run directory can be moved or
zipped as a whole.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

from society_env.world.names import agent_name, agent_slot

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee} .grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.note{color:#666;font-size:.85em} pre{background:#f8f8f8;padding:.5em;font-size:.8em;max-height:20em;overflow:auto}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _table(header: Iterable[str] | None, rows: Iterable[Iterable[Any]]) -> str:
    head = "<tr>" + "".join(f"<th>{escape(str(cell))}</th>" for cell in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td class=\"n\">{_number(cell)}</td>" if isinstance(cell, (int, float)) else f"<td>{escape(str(cell))}</td>"
                         for cell in row) + "</tr>"
        for row in rows)
    return f"<table>{head}{body}</table>"


def _number(value: int | float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def render_report(numbers: dict[str, Any], images: dict[str, str]) -> str:
    totals, graph, lineage = numbers["totals"], numbers["graph"], numbers["lineage"]
    status = "complete run" if numbers["complete"] else "partial recording of a killed run (no summary.json)"
    parts = [
        f"<h1>Society report: {escape(numbers['run'])}</h1>",
        f"<p class=\"note\">preset <b>{escape(str(numbers['preset']))}</b>, policy <b>{escape(str(numbers['policy']))}</b>, "
        f"seed {numbers['seed']}, {numbers['steps']} steps, {status}.</p>",
        "<h2>Population, food, events</h2>",
        f"<img src=\"{images['series']}\" alt=\"time series\">",
        _table(["quantity", "value"], [
            ("population start / peak / end", f"{totals['population_start']} / {totals['population_peak']} / {totals['population_end']}"),
            ("mean population", totals["population_mean"]),
            ("agents that lived", totals["agents"]),
            ("births", totals["births"]),
            *((f"deaths: {cause}", count) for cause, count in totals["deaths"].items()),
            ("energy given", totals["energy_given"]),
            ("energy taken", totals["energy_taken"]),
            ("messages", totals["messages"]),
            ("artifacts created / alive at end", f"{totals['artifacts_created']} / {totals['artifacts_alive_end']}"),
        ]),
        "<h2>Survival per policy</h2>",
        _table(["policy", "agents", "founders", "born", "alive at end", "mean lifespan", "mean return", "deaths"], [
            (policy, p["agents"], p["founders"], p["births"], p["alive_at_end"], p["mean_lifespan"], p["mean_return"],
             ", ".join(f"{cause} {count}" for cause, count in p["deaths"].items()) or "-")
            for policy, p in numbers["per_policy"].items()]),
        "<h2>Interaction graph</h2>",
        "<p class=\"note\">Edge a&rarr;b: +0.5 per message of a heard by b, +0.1 per sighting, +1 per energy unit "
        "a gave b, &minus;1 per unit a took from b, +10 parent&rarr;child, +5 per artifact a handed to b. "
        "Communities: Louvain on the positive ties.</p>",
        "<div class=\"grid\">",
        f"<div><img src=\"{images['graph']}\" alt=\"interaction graph\"></div><div>",
        _table(["metric", "whole run"], [(key, graph[key]) for key in
                                         ("nodes", "edges", "density", "reciprocity", "clustering", "negative_edges",
                                          "communities", "largest_community", "modularity")]),
        _table(["interaction", "units"], list(numbers["interactions"].items())),
        "</div></div>",
        *(f"<p><b>most {escape(kind)}</b>: " + ", ".join(
            f"{escape(pair['from'])}&rarr;{escape(pair['to'])} ({_number(pair['amount'])})" for pair in pairs) + "</p>"
          for kind, pairs in numbers["top_pairs"].items() if pairs),
        "<p class=\"note\">Largest communities: " + "; ".join(
            escape(", ".join(members[:8]) + (f" +{len(members) - 8}" if len(members) > 8 else ""))
            for members in numbers["communities"][:5] if len(members) > 1) + "</p>",
        f"<h3>Sliding windows ({numbers['window']['steps']} steps, every {numbers['window']['stride']})</h3>",
        f"<img src=\"{images['windows']}\" alt=\"graph metrics in windows\">",
        _table(["steps", "nodes", "edges", "density", "reciprocity", "clustering", "communities", "modularity"], [
            (f"{w['start_step']}-{w['end_step']}", w["nodes"], w["edges"], w["density"], w["reciprocity"],
             w["clustering"], w["communities"], w["modularity"]) for w in numbers["windows"]]),
        "<h2>Families</h2>",
        f"<p>{lineage['families']} families, {lineage['generations_reached']} generations reached.</p>",
        f"<img src=\"{images['families']}\" alt=\"family sizes over time\">",
        _table(["founder", "policy", "members", "alive at end", "generations", "peak alive"], [
            (agent_name(f["founder"]), f["policy"], f["members"], f["alive_at_end"], f["generations"], f["peak_alive"])
            for f in lineage["largest_families"]]),
        *(f"<details><summary>family tree of {escape(founder)}</summary><pre>{escape(chr(10).join(lines))}</pre></details>"
          for founder, lines in lineage["trees"].items()),
        *_communication_section(numbers.get("communication")),
        *_culture_sections(numbers, images),
        "<p class=\"note\">Numbers: report.json; series per step: report-series.csv. "
        "Watch the run: <code>society-env view RUN_DIR</code> writes replay.html.</p>",
    ]
    return _page(f"society report {numbers['run']}", "\n".join(parts))


def _communication_section(section: dict[str, Any] | None) -> list[str]:
    """Positive signalling and listening (``society_env.analysis.communication``) with their shuffled nulls."""
    if section is None:  # a report.json written before the section existed
        return []
    parts = ["<h2 id=\"communication\">Communication</h2>"]
    if not section["measured"]:
        return parts + [f"<p>Not measured: {escape(section['reason'])}</p>"]
    signalling, listening = section["signalling"], section["listening"]
    parts += [
        "<p class=\"note\">Mutual information in bits (plug-in) against the null of tokens shuffled across the agents "
        f"of each step ({section['permutations']} shuffles): <i>excess</i> is the MI above the null's mean (the bias "
        f"of a finite sample), <i>p</i> the share of shuffles that reach it; positive at p &le; {section['significance']}. "
        "Signalling: the token an agent sends against what it sees (food in its view, its energy quartile); speaker "
        "consistency: against its own action (Lowe et al. 2019). Listening: the token heard from an agent in view "
        "against the listener's move relative to it (approach, retreat, none), given whether the listener sees food. "
        "Whether tokens cause behaviour: <code>society-env communication</code> (the channel zeroed or shuffled).</p>",
        f"<p>{section['decisions']:,} decisions; positive signalling: <b>{'yes' if section['positive_signalling'] else 'no'}</b>, "
        f"positive listening: <b>{'yes' if section['positive_listening'] else 'no'}</b>.</p>",
        _table(["measure", "bits", "null mean", "null 95%", "excess", "p", "samples"], [
            (label, m["bits"], m["null_mean"], m["null_p95"], m["excess"], m["p_value"], m["samples"]) for label, m in (
                ("I(token; food in view, energy quartile)", signalling["observation"]),
                ("I(token; food in view)", signalling["food"]), ("I(token; energy quartile)", signalling["energy"]),
                ("speaker consistency I(token; own action)", signalling["consistency"]),
                ("I(token heard; move to its sender | listener sees food)", listening))]),
        _table(["token", "times sent", "share with food in view", "heard by a listener without food, then moved",
                "share of those moves towards the sender"], [
            (token, count, section["food_share_by_token"][token],
             section["approach_by_token"].get(token, {}).get("moves", 0),
             section["approach_by_token"].get(token, {}).get("approach_share", "-"))
            for token, count in section["token_counts"].items()]),
    ]
    if section.get("per_policy"):
        def cell(measures: dict[str, Any], measure: str) -> str:
            if not measures["measured"]:
                return "not measured (no tokens)"
            m = measures["signalling"]["observation"] if measure == "signalling" else measures["listening"]
            return f"{m['bits']:.3f} (null {m['null_mean']:.3f}, p {m['p_value']:.3f})" + (" positive" if m["significant"] else "")

        parts += ["<h3>Per policy (its agents as speakers and listeners)</h3>", _table(
            ["policy", "decisions", "I(token; food in view, energy quartile)", "I(token heard; move | sees food)"], [
                (policy, measures.get("decisions", "-"), cell(measures, "signalling"), cell(measures, "listening"))
                for policy, measures in section["per_policy"].items()])]
    return parts


TABLE_ROWS = 200
"""Agents shown in the tag table (those with most tags; every tag is in report-tags.jsonl)."""


def _tag_cells(tags: dict[str, dict[str, Any]]) -> str:
    ordered = sorted(tags.items(), key=lambda item: (-item[1]["confidence"], item[0]))
    return ", ".join(f"{name}{'*' if t['source'] == 'llm' else ''} {t['confidence']}" for name, t in ordered)


def _culture_sections(numbers: dict[str, Any], images: dict[str, str]) -> list[str]:
    """The tag tables (per agent, per community), tag frequencies, and artifact metrics and lineage."""
    tags, artifacts = numbers["tags"], numbers["artifacts"]
    agents = sorted(tags["agents"].items(), key=lambda item: (-len(item[1]), agent_slot(item[0])))
    communities = dict(zip((f"community_{i}" for i in range(len(numbers["communities"]))), numbers["communities"]))
    llm_note = tags.get("llm")
    parts = [
        "<h2 id=\"tags\">Tags</h2>",
        "<p class=\"note\">TerraLingua's anthropologist vocabulary with 0-10 confidence. Without a mark: exact "
        "rules on the recording (every tag with its evidence steps in report-tags.jsonl); marked *: an LLM's, "
        + (escape(f"from {llm_note['backend']} ({llm_note['calls']} calls, {llm_note['failed']} failed)") if llm_note
           else "none yet: <code>society-env report RUN --tags</code> adds them") + ".</p>",
        f"<img src=\"{images['tags']}\" alt=\"tag frequencies over time\">",
        "<h3>Agents</h3>",
        _table(["agent", "tags"], [(agent, _tag_cells(agent_tags)) for agent, agent_tags in agents[:TABLE_ROWS]]),
        *([f"<p class=\"note\">{len(agents) - TABLE_ROWS} more agents in report-tags.jsonl.</p>"] if len(agents) > TABLE_ROWS else []),
        "<h3>Communities</h3>",
        _table(["community", "members", "tags"], [
            (name, ", ".join(communities.get(name, [])[:8]) + (f" +{len(communities[name]) - 8}" if len(communities.get(name, [])) > 8 else ""),
             _tag_cells(community_tags)) for name, community_tags in tags["communities"].items()]),
        *(f"<details><summary>note on {escape(subject)}</summary><p>{escape(note)}</p></details>"
          for subject, note in (llm_note or {}).get("notes", {}).items()),
        "<h2 id=\"artifacts\">Artifacts</h2>",
        _table(["quantity", "value"], [
            ("artifacts / versions", f"{artifacts['artifacts']} / {artifacts['versions']}"),
            *((label, "-" if artifacts.get(key) is None else artifacts[key]) for label, key in (
                ("mean zlib ratio (bytes / compressed)", "mean_zlib_ratio"), ("mean surprisal (nats per token)", "mean_surprisal"),
                ("mean novelty (1 - max similarity to earlier)", "mean_novelty"),
                ("mean LLM novelty (0-5, --llm-novelty)", "mean_llm_novelty"))),
            ("lineage links (version extends version)", len(artifacts["lineage"])),
        ]),
        f"<img src=\"{images['artifacts']}\" alt=\"artifact metrics over time\">",
        "<h3>Most reused</h3>",
        _table(["artifact", "name", "creator", "created", "versions", "picked up", "handed on", "reads", "readers", "ended"], [
            (r["artifact"], r["name"], r["creator"], r["created_step"], r["versions"], r["picked_up"], r["handed_on"],
             r["reads"], r["readers"], r["ended"] or "-") for r in artifacts["most_reused"]]),
        *(["<details><summary>lineage (version &rarr; the version that extends it)</summary><pre>"
           + escape("\n".join(f"{a} -> {b}" for a, b in artifacts["lineage"][:500])) + "</pre></details>"]
          if artifacts["lineage"] else []),
        "<p class=\"note\">Every version with its metrics: report-artifacts.csv.</p>",
    ]
    return parts


def render_comparison(names: list[str], links: list[str], rows: list[tuple[str, list[str]]], image: str) -> str:
    header = ["", *(f"run {index + 1}" for index in range(len(names)))]
    parts = [
        "<h1>Society runs compared</h1>",
        "<ol>" + "".join(f"<li><a href=\"{escape(link)}\">{escape(name)}</a></li>" for name, link in zip(names, links)) + "</ol>",
        _table(header, [(label, *values) for label, values in rows]),
        f"<img src=\"{escape(image)}\" alt=\"overlaid curves\">",
    ]
    return _page("society runs compared", "\n".join(parts))
