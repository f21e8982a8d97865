"""Artifact metrics (zlib, lineage, reuse, model-based novelty) on a hand-written recording whose artifact events are known."""

import zlib

import numpy as np
import pytest

from society_env.analysis.artifact_metrics import (
    CSV_COLUMNS, add_model_metrics, artifact_reuse, artifact_series, artifact_versions, compression, csv_rows,
)
from society_env.analysis.loading import load_run
from tests.analysis_runs import write_tiny_recording

EXTRA_EVENTS = [  # step 3 of the tiny recording (analysis_runs.py): agent_0 made "map" (a1) and handed it to agent_3
    {"step": 3, "type": "artifact_modified", "agent": "agent_3", "artifact": "a1", "version": 2,
     "text": "food east, water north"},
    {"step": 3, "type": "artifact_created", "agent": "agent_2", "artifact": "a3", "name": "copy",
     "text": "copied: food east, water north!", "lifespan": 50, "position": [9, 9]},
    {"step": 3, "type": "artifact_expired", "agent": None, "artifact": "a2"},
]


@pytest.fixture
def run(tmp_path):
    return load_run(write_tiny_recording(tmp_path / "tiny", EXTRA_EVENTS))


def test_compression_is_zlib_level_9():
    text = "food " * 40
    packed, ratio = compression(text)
    assert packed == len(zlib.compress(text.encode(), 9)) and ratio == pytest.approx(200 / packed)
    assert ratio > 5 > compression("a unique short line")[1]  # repetition compresses, short text does not


def test_every_version_with_its_lineage(run):
    versions = artifact_versions(run)
    assert [(v.key, v.author, v.step, v.text) for v in versions] == [
        ("a1@1", "agent_0", 3, "food east"), ("a2@1", "agent_2", 3, ""),
        ("a1@2", "agent_3", 3, "food east, water north"), ("a3@1", "agent_2", 3, "copied: food east, water north!")]
    extends = {v.key: v.extends for v in versions}
    # a version extends the previous one; a new artifact extends the current text of one it quotes
    assert extends == {"a1@1": [], "a2@1": [], "a1@2": ["a1@1"], "a3@1": ["a1@2"]}


def test_reuse_counts_pickups_hand_overs_and_reads_by_others(run):
    reuse = {r.artifact: r for r in artifact_reuse(run)}
    a1 = reuse["a1"]  # handed to agent_3, who holds it in the snapshot of step 3: one read, one reader
    assert (a1.creator, a1.versions, a1.handed_on, a1.picked_up, a1.reads, a1.readers, a1.ended) == \
        ("agent_0", 2, 1, 0, 1, 1, "")
    assert reuse["a2"].ended == "expired" and reuse["a2"].reads == 0
    assert reuse["a3"].reads == 0  # on (9, 9) where only its creator stands


def test_model_metrics_use_the_given_models(run):
    versions = artifact_versions(run)
    vectors = {"food east": [1, 0], "": [0, 1], "food east, water north": [1, 1], "copied: food east, water north!": [1, 1]}
    add_model_metrics(versions, surprisal=lambda texts: [float(len(t)) for t in texts],
                      embed=lambda texts: np.array([vectors[t] for t in texts], dtype=float))
    assert [v.surprisal for v in versions] == [9.0, 0.0, 22.0, 31.0]
    assert [v.novelty for v in versions] == pytest.approx([1.0, 1.0, 1 - np.sqrt(0.5), 0.0])  # a copy is not novel


def test_series_and_csv(run):
    versions = artifact_versions(run)
    series = artifact_series(versions, run.steps, stride=2)
    assert series["versions"] == [0, 4] and series["novelty"] == [None, None]
    rows = csv_rows(versions, artifact_reuse(run))
    assert len(rows) == 4 and all(len(row) == len(CSV_COLUMNS) for row in rows)
    a3 = dict(zip(CSV_COLUMNS, rows[-1]))
    assert a3["extends"] == "a1@2" and a3["surprisal"] == "" and a3["reads"] == 0
