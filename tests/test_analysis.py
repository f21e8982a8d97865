"""`society-env report` / `view`: metrics on a hand-written recording, graph weights, real and killed runs."""

import base64
import gzip
import json
import re
import shutil

import networkx as nx
import numpy as np
import pytest

from society_env.analysis import interactions
from society_env.analysis.interactions import (
    WEIGHTS, build_graph, graph_metrics, interaction_log, interaction_totals, neighbour_pairs, positive_ties,
    top_pairs, view_displacements,
)
from society_env.analysis.lineage import lineage
from society_env.analysis.loading import load_run
from society_env.analysis.report import analyse_run, window_layout
from society_env.analysis.series import agent_returns, rebuilt_returns, survival_by_policy, time_series
from society_env.analysis.viewer import replay_data
from society_env.app.cli import main
from tests.analysis_runs import TINY_CONFIG, write_tiny_recording


@pytest.fixture
def tiny(tmp_path):
    return load_run(write_tiny_recording(tmp_path / "tiny"))


def embedded_replay(html: str) -> dict:
    packed = re.search(r'<script id="replay-data" type="application/octet-stream">([^<]*)</script>', html).group(1)
    return json.loads(gzip.decompress(base64.b64decode(packed)))


# ---------------------------------------------------------------------------------------------
# hand-computed numbers on the tiny recording
# ---------------------------------------------------------------------------------------------
def test_time_series_match_the_hand_written_recording(tiny):
    series = time_series(tiny)
    assert tiny.steps == 4 and not tiny.complete
    assert series.population.tolist() == [3, 3, 4, 3]
    assert series.food_tiles.tolist() == [1, 0, 1, 0] and series.food_total.tolist() == [10, 0, 7, 0]
    assert series.births.tolist() == [0, 0, 1, 0]
    assert series.deaths["starvation"].tolist() == [0, 0, 0, 1] and series.deaths["old_age"].sum() == 0
    assert series.energy_taken.tolist() == [0, 5, 0, 0] and series.energy_given.tolist() == [0, 0, 3, 0]
    assert series.messages.tolist() == [0, 1, 1, 0]
    assert series.artifacts_alive.tolist() == [0, 0, 0, 2]
    assert series.mean_energy[1] == pytest.approx((44 + 54 + 49) / 3)


def test_returns_and_lifespans_are_rebuilt_from_the_recording(tiny):
    # agent_0: -2*5 robbed, +1*3 received, -0.5 blocked; agent_1: +5 taken, -100 death, -0.5 blocked (dying);
    # agent_2: -0.5 blocked, +0.5*3 given; agent_3 eats the 7 it stands on (newborns eat from their 2nd step)
    assert agent_returns(tiny).tolist() == [-7.5, -95.5, 1.0, 7.0]
    survival = survival_by_policy(tiny)
    assert survival["forager"].agents == 3 and survival["forager"].births == 1
    assert survival["forager"].mean_lifespan == pytest.approx((3 + 3 + 1) / 3)
    assert survival["forager"].mean_return == pytest.approx((-7.5 + 1.0 + 7.0) / 3)
    assert survival["raider"].mean_lifespan == 3 and survival["raider"].deaths == {"starvation": 1}
    assert survival["raider"].alive_at_end == 0


def test_neighbour_pairs_wrap_around_the_torus_and_never_repeat():
    displacements = view_displacements(TINY_CONFIG)
    assert len(displacements) == 5 * 5 - 1
    rows, cols = np.array([0, 0, 9, 1]), np.array([0, 2, 9, 0])
    viewer, seen = neighbour_pairs(rows, cols, TINY_CONFIG, displacements)
    pairs = sorted(zip(viewer.tolist(), seen.tolist()))
    assert pairs == sorted([(0, 1), (1, 0), (0, 2), (2, 0), (0, 3), (3, 0), (1, 3), (3, 1), (2, 3), (3, 2)])
    # a radius wider than the grid sees everyone exactly once
    wide = TINY_CONFIG.__class__(**{**TINY_CONFIG.to_dict(), "transfer_amounts": (1,), "width": 3, "height": 3,
                                    "num_founders": 2, "initial_food": 1, "view_radius": 6})
    viewer, seen = neighbour_pairs(np.array([0, 2]), np.array([0, 1]), wide, view_displacements(wide))
    assert sorted(zip(viewer.tolist(), seen.tolist())) == [(0, 1), (1, 0)]


def test_graph_weights_follow_terralingua_rules(tiny):
    assert WEIGHTS == {"message": 0.5, "sighting": 0.1, "gave": 1.0, "took": -1.0, "parent_child": 10.0, "artifact": 5.0}
    edges = interaction_log(tiny, stride=10).edges().as_dict()
    weight = {pair: round(edge["weight"], 6) for pair, edge in edges.items()}
    assert weight == {
        (0, 1): 0.8,    # 3 sightings + "hello" heard
        (1, 0): -4.7,   # 3 sightings - 5 units taken
        (0, 2): 0.2,    # seen at steps 2 and 3 across the wrap
        (2, 0): 3.7,    # 2 sightings + 3 units given + "hi" heard
        (0, 3): 15.2,   # 2 sightings + parent (10) + artifact handed over (5)
        (3, 0): 0.2,
        (1, 3): 0.1, (3, 1): 0.1,
        (2, 3): 0.7,    # 2 sightings + "hi" heard
        (3, 2): 0.2,
    }
    assert edges[(0, 1)]["sighting"] == 3 and edges[(0, 1)]["message"] == 1 and edges[(1, 0)]["took"] == 5
    table = interaction_log(tiny, stride=1).edges()  # blocks of one step sum to the same
    assert {pair: round(edge["weight"], 6) for pair, edge in table.as_dict().items()} == weight
    assert top_pairs(table, "took") == [(1, 0, 5)] and top_pairs(table, "message") == [(0, 1, 1), (2, 0, 1), (2, 3, 1)]
    assert interaction_totals(table) == {"message": 3, "sighting": 20, "gave": 3, "took": 5, "parent_child": 1, "artifact": 1}


def test_graph_metrics_by_hand(tiny):
    edges = interaction_log(tiny, stride=10).edges()
    metrics = graph_metrics(edges)
    assert metrics["nodes"] == 4 and metrics["edges"] == 10
    assert metrics["density"] == pytest.approx(10 / 12)
    # action ties: 0->1 (message), 1->0 (theft), 2->0, 0->3, 2->3: only 0<->1 answer each other
    assert metrics["reciprocity"] == pytest.approx(2 / 5)
    # positive ties 0-2, 0-3, 1-3, 2-3 (0-1 sums to -3.9): clustering (1 + 0 + 1 + 1/3) / 4
    assert metrics["clustering"] == pytest.approx(7 / 12)
    assert metrics["negative_edges"] == 1
    assert metrics["clustering_exact"] and metrics["total_weight"] == pytest.approx(0.8 - 4.7 + 0.2 + 3.7 + 15.2 + 0.2 + 0.1 + 0.1 + 0.7 + 0.2)
    assert sorted(sum(metrics["community_members"], [])) == [0, 1, 2, 3]
    ties = positive_ties(edges)
    assert metrics["modularity"] == pytest.approx(nx.community.modularity(ties, metrics["community_members"]))
    graph = build_graph(edges, tiny)  # the networkx view carries the same weights and units
    assert graph[0][3]["weight"] == pytest.approx(15.2) and graph[0][3]["parent_child"] == 1
    assert graph.nodes[1]["policy"] == "raider"


def test_large_graphs_get_a_seeded_clustering_estimate(tiny, monkeypatch):
    monkeypatch.setattr(interactions, "CLUSTERING_EXACT_MAX_TIES", 0)
    metrics = graph_metrics(interaction_log(tiny, stride=10).edges())
    assert not metrics["clustering_exact"] and metrics["clustering"] == pytest.approx(7 / 12, abs=0.02)
    assert metrics["clustering"] == graph_metrics(interaction_log(tiny, stride=10).edges())["clustering"]


def test_sliding_windows_are_sums_of_blocks(tiny):
    stride, blocks = window_layout(tiny.steps, 2)
    assert (stride, blocks) == (1, 2)
    log = interaction_log(tiny, stride)
    first = log.edges(0, 2).as_dict()  # steps 0-1: agents 0 and 1 see each other twice; the theft and "hello"
    assert {pair: round(edge["weight"], 6) for pair, edge in first.items()} == {(0, 1): 0.7, (1, 0): -4.8}
    whole = log.edges().as_dict()
    by_block = [log.edges(block, block + 1).as_dict() for block in range(log.blocks)]
    assert whole[(0, 3)]["weight"] == pytest.approx(sum(b.get((0, 3), {"weight": 0})["weight"] for b in by_block))
    windows = analyse_run(tiny.run_dir, window=2).numbers["windows"]
    assert [(w["start_step"], w["end_step"], w["nodes"], w["edges"]) for w in windows] == \
        [(0, 1, 2, 2), (1, 2, 4, 10), (2, 3, 4, 10)]


def test_lineage_of_the_tiny_run(tiny):
    tree = lineage(tiny)
    assert tree.family_of == {0: 0, 1: 1, 2: 2, 3: 0} and tree.generation_of[3] == 1
    assert tree.generations_reached == 1
    largest = tree.families[0]
    assert (largest.founder, largest.members, largest.alive_at_end, largest.generations, largest.peak_alive) == (0, 2, 2, 1, 2)


def test_an_agent_without_its_birth_event_is_still_analysed(tmp_path):
    run_dir = write_tiny_recording(tmp_path / "damaged")
    events = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_text("".join(line for line in events if '"born"' not in line))
    run = load_run(run_dir)
    assert run.num_slots == 4 and 3 not in run.agents
    assert agent_returns(run).tolist() == [-7.5, -95.5, 1.0, 7.0]
    assert analyse_run(run_dir).numbers["totals"]["births"] == 0
    assert replay_data(run)["agents"]["family"][3] == 3


def test_replay_data_is_compact_and_complete(tiny):
    data = replay_data(tiny)
    assert data["steps_at"] == [0, 1, 2, 3] and data["agent_offsets"] == [0, 3, 6, 10, 13]
    assert data["agents"]["family"][:4] == [0, 1, 2, 0] and data["agents"]["death"][1] == 3
    assert data["artifact_offsets"] == [0, 0, 0, 0, 1] and data["artifact_cell"] == [55]  # "map" is held, "sign" lies
    events = np.array(data["events"]).reshape(-1, 5)
    message = events[events[:, 0] == data["event_types"].index("message")]
    assert [data["texts"][i] for i in message[:, 4]] == ["hello", "hi"]
    assert data["action"][3:6] == [0, 6, 4]  # what agents 0, 1, 2 did to reach snapshot 1


# ---------------------------------------------------------------------------------------------
# the commands on real recordings
# ---------------------------------------------------------------------------------------------
def test_report_on_a_real_run_matches_its_summary(recorded_run, capsys):
    assert main(["report", str(recorded_run)]) == 0
    printed = capsys.readouterr().out
    assert "report.html written" in printed and "population start / peak / end" in printed
    numbers = json.loads((recorded_run / "report.json").read_text())
    summary = json.loads((recorded_run / "summary.json").read_text())
    assert numbers["complete"] and numbers["steps"] == summary["steps"] == 60
    assert numbers["totals"]["births"] == summary["births"]
    assert numbers["totals"]["deaths"] == {"old_age": 0, **summary["deaths"]}
    assert numbers["totals"]["energy_taken"] == summary["energy_taken"]
    assert numbers["totals"]["messages"] == summary["messages"]
    assert numbers["totals"]["population_peak"] == summary["population_peak"]
    for policy, expected in summary["per_policy"].items():
        assert numbers["per_policy"][policy]["agents"] == expected["agents"]
        assert numbers["per_policy"][policy]["mean_return"] == pytest.approx(expected["mean_return"])
        assert numbers["per_policy"][policy]["mean_lifespan"] == pytest.approx(expected["mean_lifespan"])
    assert numbers["interactions"]["took"] == summary["energy_taken"]
    assert numbers["interactions"]["parent_child"] == summary["births"]
    html = (recorded_run / "report.html").read_text()
    for image in ("report-series.png", "report-graph.png", "report-families.png", "report-windows.png"):
        assert f'src="{image}"' in html
        assert (recorded_run / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv_lines = (recorded_run / "report-series.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,population,") and len(csv_lines) == 62
    assert not list(recorded_run.glob(".*.tmp"))


def test_recorded_rewards_are_the_returns_and_agree_with_the_rebuild(recorded_run, tmp_path):
    # The report sums the rewards the recording holds; recordings made before rewards were recorded get
    # them rebuilt from the facts, and the two must agree on a real run.
    run = load_run(recorded_run)
    assert run.rewards_by_step is not None and any(run.rewards_by_step)
    assert agent_returns(run) == pytest.approx(rebuilt_returns(run), abs=1e-9)
    older = tmp_path / "older"
    shutil.copytree(recorded_run, older)
    lines = [json.loads(line) for line in (older / "actions.jsonl").read_text().splitlines()]
    (older / "actions.jsonl").write_text("".join(json.dumps({k: v for k, v in line.items() if k != "rewards"}) + "\n"
                                                 for line in lines))
    old_run = load_run(older)
    assert old_run.rewards_by_step is None
    assert agent_returns(old_run) == pytest.approx(agent_returns(run), abs=1e-9)


def test_view_writes_a_self_contained_page(recorded_run, capsys):
    assert main(["view", str(recorded_run)]) == 0
    assert "replay.html" in capsys.readouterr().out
    html = (recorded_run / "replay.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    data = embedded_replay(html)
    assert len(data["steps_at"]) == 61 and data["width"] == 16
    assert sum(np.diff(data["agent_offsets"])) == len(data["slot"]) == len(data["energy"])


def test_both_commands_work_on_a_killed_run(recorded_run, tmp_path, capsys):
    killed = tmp_path / "killed"
    shutil.copytree(recorded_run, killed, ignore=shutil.ignore_patterns("summary.json", "report*", "replay.html"))
    for name in ("snapshots", "events", "actions"):  # the last line of each file cut off mid-write
        text = (killed / f"{name}.jsonl").read_text()
        (killed / f"{name}.jsonl").write_text(text[: len(text) - 7])
    assert main(["report", str(killed)]) == 0 and main(["view", str(killed)]) == 0
    numbers = json.loads((killed / "report.json").read_text())
    assert not numbers["complete"] and numbers["steps"] == 59
    assert "killed" in (killed / "report.html").read_text()
    assert len(embedded_replay((killed / "replay.html").read_text())["steps_at"]) == 60


def test_several_runs_get_a_comparison(recorded_run, tmp_path, capsys):
    second = write_tiny_recording(tmp_path / "runs" / "tiny")
    first = shutil.copytree(recorded_run, tmp_path / "runs" / "real", ignore=shutil.ignore_patterns("report*"))
    assert main(["report", str(first), str(second)]) == 0
    page = (tmp_path / "runs" / "comparison.html").read_text()
    assert "real" in page and "tiny" in page and 'href="real/report.html"' in page
    assert "3 (killed)" in page  # the tiny recording has no summary.json
    assert (tmp_path / "runs" / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["report", str(tmp_path)]) == 2
    assert "no meta.json" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run_dir = write_tiny_recording(tmp_path / "tiny")
    assert main(["report", str(run_dir), "--window", "0"]) == 2
    assert "--window must be at least 1 step" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "networkx", None)  # as if the analysis extra were missing
    assert main(["report", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert 'pip install "society-env[analysis]"' in error and error.count("\n") == 1
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert main(["view", str(run_dir)]) == 0  # the viewer needs neither


def test_help_explains_report_and_view(capsys):
    for command, words in (("report", ("+0.5 per message", "--window", "killed")), ("view", ("slider", "no network"))):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(word in text for word in words), command
