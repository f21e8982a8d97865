"""Bad input to any command is one line on stderr naming the file and what is wrong, exit status 2, and
nothing written (issue 29, point 5).

One table of cases, each run through a real entry point (``society-env``, ``qes-train``, ``qes-eval``)
on a copy of a real fixture damaged one way: cut-off or wrong-shaped ``summary.json`` / ``meta.json`` /
``experiment.json``, JSON Lines records of the wrong shape, damaged run and QES checkpoints, a model patch
for another base, and an ``--out`` that cannot be a directory. Every file under the test's directory keeps
its bytes and modification time, and no file appears.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from qes_trainer import evaluate as qes_evaluate
from qes_trainer import train as qes_train
from policies.llm import models as tuned
from qes_trainer.fitness import FitnessSettings
from society_env.app import cli

SCRIPTED = ["--preset", "small", "--policy", "random", "--steps", "5", "--seed", "0", "--checkpoint-every", "2"]
TINY_TRAIN = qes_train.TrainConfig(generations=1, pairs=2, sigma=0.5, alpha=0.5, threads=1, batch_size=4,
                                   fitness=FitnessSettings(preset="forage", policy="llm=2", episodes=1, max_steps=1,
                                                           n_ctx=2048, temperature=1.0))
PROGRAMS = {"society-env": cli.main, "qes-train": qes_train.main, "qes-eval": qes_evaluate.main}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    """Real outputs to damage: a complete recording, a killed one with its checkpoint, a killed experiment,
    and a one-generation QES run (checkpoint.npz, model.qespatch) of a tiny model, plus another tiny model."""
    from society_env.app import checkpoints
    from tests.tiny_gguf import write_tiny_model

    root = tmp_path_factory.mktemp("bad-input")
    assert cli.main(["run", *SCRIPTED, "--out", str(root / "complete"), "--quiet"]) == 0
    with pytest.MonkeyPatch.context() as patch:  # keep the last checkpoint, as a run killed after it does
        patch.setattr(checkpoints, "remove_checkpoint", lambda run_dir: None)
        assert cli.main(["run", *SCRIPTED, "--out", str(root / "killed"), "--quiet"]) == 0
        assert cli.main(["experiment", "--presets", "small", "--seeds", "2", *SCRIPTED[2:6], "--checkpoint-every", "2",
                         "--out", str(root / "experiment"), "--quiet"]) == 0
    (root / "killed" / "summary.json").unlink()
    (root / "experiment" / "small__seed1" / "summary.json").unlink()
    (root / "experiment" / "small__seed0" / "checkpoint.pkl").unlink()
    base = write_tiny_model(root / "tiny.gguf", "Q8_0")
    write_tiny_model(root / "other.gguf", "Q8_0", seed=1)
    qes_train.train(dataclasses.replace(TINY_TRAIN, model=str(base)), root / "qes")
    return root


# ---------------------------------------------------------------------------------------------
# ways to damage a file
# ---------------------------------------------------------------------------------------------


def cut(name: str) -> Callable[[Path], None]:
    """Cut the file off in the middle, as a full disk or a copy interrupted would."""
    def damage(work: Path) -> None:
        path = work / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def overwrite(name: str, content: str | bytes) -> Callable[[Path], None]:
    def damage(work: Path) -> None:
        (work / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(work: Path) -> None:
        path = work / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return damage


def line(name: str, record: object, number: int = 2) -> Callable[[Path], None]:
    """Replace line ``number`` of a JSON Lines file by ``record`` (a whole line: not a killed run's tail)."""
    def damage(work: Path) -> None:
        path = work / name
        lines = path.read_text().splitlines(keepends=True)
        lines[number - 1] = json.dumps(record) + "\n"
        path.write_text("".join(lines))
    return damage


def qes_meta(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    """Rewrite the QES checkpoint with its meta record changed (a readable file of the wrong shape)."""
    def damage(work: Path) -> None:
        path = work / "qes" / "checkpoint.npz"
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        meta = change(json.loads(arrays["meta"].tobytes().decode()))
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as file:
            np.savez(file, **arrays)
    return damage


def a_file_at(name: str) -> Callable[[Path], None]:
    def damage(work: Path) -> None:
        (work / name).write_text("a file, not a directory\n")
    return damage


def without(*keys: str) -> Callable[[dict], dict]:
    return lambda data: {key: value for key, value in data.items() if key not in keys}


def tuned_model(patch: str, base: str):
    """Register ``patch`` (relative to the work directory) as tuned model "model" whose base is ``base``."""
    def setup(monkeypatch, work: Path) -> None:
        monkeypatch.setenv("SOCIETY_ENV_CACHE", str(work / "cache"))
        monkeypatch.setattr(tuned, "PATCH_DIRECTORY", (work / patch).parent)
        monkeypatch.setitem(tuned.TUNED_MODELS, "model", tuned.TunedModel("model", "forage", "the test run"))
        monkeypatch.setattr(tuned, "pull_default_model", lambda quiet=False: work / base)
        if (work / patch).name != "model.qespatch":
            (work / patch).rename((work / patch).with_name("model.qespatch"))
    return setup


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    program: str
    argv: list[str]
    """Arguments; ``{w}`` stands for the work directory."""
    damage: Callable[[Path], None] | None
    file: str
    """What the error line must name."""
    copy: tuple[str, ...] = ("complete",)
    """Fixture directories copied into the work directory."""
    setup: Callable | None = field(default=None, repr=False)


RUN_LLM = ["run", "--preset", "forage", "--policy", "llm=2", "--steps", "1", "--model", "model", "--n-ctx", "2048",
           "--out", "{w}/llm-run", "--quiet"]
CASES = [
    # recordings: replay, report, view
    Case("replay: summary.json cut off", "society-env", ["replay", "{w}/complete"], cut("complete/summary.json"),
         "summary.json"),
    Case("replay: summary.json not an object", "society-env", ["replay", "{w}/complete"],
         overwrite("complete/summary.json", "[1, 2]"), "summary.json"),
    Case("replay: meta.json cut off", "society-env", ["replay", "{w}/complete"], cut("complete/meta.json"), "meta.json"),
    Case("replay: meta.json not an object", "society-env", ["replay", "{w}/complete"],
         overwrite("complete/meta.json", "[]"), "meta.json"),
    Case("replay: meta.json without config", "society-env", ["replay", "{w}/complete"],
         edit_json("complete/meta.json", without("config")), "meta.json"),
    Case("replay: meta.json config of the wrong shape", "society-env", ["replay", "{w}/complete"],
         edit_json("complete/meta.json", lambda meta: {**meta, "config": {"no_such_field": 1}}), "meta.json"),
    Case("replay: meta.json without seed", "society-env", ["replay", "{w}/complete"],
         edit_json("complete/meta.json", without("seed")), "meta.json"),
    Case("replay: events.jsonl line {}", "society-env", ["replay", "{w}/complete"], line("complete/events.jsonl", {}),
         "events.jsonl"),
    Case("replay: actions.jsonl line {}", "society-env", ["replay", "{w}/complete"], line("complete/actions.jsonl", {}),
         "actions.jsonl"),
    Case("replay: actions.jsonl action not a vector", "society-env", ["replay", "{w}/complete"],
         line("complete/actions.jsonl", {"step": 1, "actions": {"agent_0": "up"}}), "actions.jsonl"),
    Case("replay: actions.jsonl action out of range", "society-env", ["replay", "{w}/complete"],
         line("complete/actions.jsonl", {"step": 1, "actions": {"agent_0": [99, 0, 0, 0]}}), "actions.jsonl"),
    Case("replay: snapshots.jsonl line without agents", "society-env", ["replay", "{w}/complete"],
         line("complete/snapshots.jsonl", {"step": 1}), "snapshots.jsonl"),
    Case("report: summary.json cut off", "society-env", ["report", "{w}/complete", "--quiet"],
         cut("complete/summary.json"), "summary.json"),
    Case("report: meta.json cut off", "society-env", ["report", "{w}/complete", "--quiet"], cut("complete/meta.json"),
         "meta.json"),
    Case("report: events.jsonl line without type", "society-env", ["report", "{w}/complete", "--quiet"],
         line("complete/events.jsonl", {"step": 0}), "events.jsonl"),
    Case("report: died event without cause", "society-env", ["report", "{w}/complete", "--quiet"],
         line("complete/events.jsonl", {"step": 0, "type": "died", "agent": "agent_0"}), "events.jsonl"),
    Case("report: event of a bad agent name", "society-env", ["report", "{w}/complete", "--quiet"],
         line("complete/events.jsonl", {"step": 0, "type": "added", "agent": "nobody", "position": [0, 0]}),
         "events.jsonl"),
    Case("report: actions.jsonl actions not an object", "society-env", ["report", "{w}/complete", "--quiet"],
         line("complete/actions.jsonl", {"step": 0, "actions": []}), "actions.jsonl"),
    Case("report: snapshot rows not numbers", "society-env", ["report", "{w}/complete", "--quiet"],
         line("complete/snapshots.jsonl", {"step": 1, "agents": [0], "row": ["a"], "col": [0], "energy": [1],
                                           "food_cells": [], "food_values": []}), "snapshots.jsonl"),
    Case("report: --compare-dir not a directory", "society-env",
         ["report", "{w}/complete", "{w}/killed", "--compare-dir", "{w}/file/compare", "--quiet"], a_file_at("file"),
         "file/compare", copy=("complete", "killed")),
    Case("view: summary.json cut off", "society-env", ["view", "{w}/complete"], cut("complete/summary.json"),
         "summary.json"),
    Case("view: events.jsonl line {}", "society-env", ["view", "{w}/complete"], line("complete/events.jsonl", {}),
         "events.jsonl"),
    Case("view: --out not in a directory", "society-env", ["view", "{w}/complete", "--out", "{w}/file/replay.html"],
         a_file_at("file"), "file/replay.html"),
    # run --resume and experiment --resume
    Case("run --resume: checkpoint.pkl cut off", "society-env", ["run", "--resume", "{w}/killed", "--quiet"],
         cut("killed/checkpoint.pkl"), "checkpoint.pkl", copy=("killed",)),
    Case("run --resume: checkpoint.pkl not a pickle", "society-env", ["run", "--resume", "{w}/killed", "--quiet"],
         overwrite("killed/checkpoint.pkl", "not a checkpoint\n"), "checkpoint.pkl", copy=("killed",)),
    Case("run --resume: meta.json cut off", "society-env", ["run", "--resume", "{w}/killed", "--quiet"],
         cut("killed/meta.json"), "meta.json", copy=("killed",)),
    Case("experiment --resume: finished run's summary.json cut off", "society-env",
         ["experiment", "--resume", "{w}/experiment", "--quiet"], cut("experiment/small__seed0/summary.json"),
         "summary.json", copy=("experiment",)),
    Case("experiment --resume: summary.json not a run summary", "society-env",
         ["experiment", "--resume", "{w}/experiment", "--quiet"],
         overwrite("experiment/small__seed0/summary.json", '{"steps": 3}'), "summary.json", copy=("experiment",)),
    Case("experiment --resume: interrupted run's checkpoint.pkl cut off", "society-env",
         ["experiment", "--resume", "{w}/experiment", "--quiet"], cut("experiment/small__seed1/checkpoint.pkl"),
         "checkpoint.pkl", copy=("experiment",)),
    Case("experiment --resume: interrupted run's meta.json cut off", "society-env",
         ["experiment", "--resume", "{w}/experiment", "--quiet"], cut("experiment/small__seed1/meta.json"),
         "meta.json", copy=("experiment",)),
    Case("experiment --resume: experiment.json cut off", "society-env",
         ["experiment", "--resume", "{w}/experiment", "--quiet"], cut("experiment/experiment.json"),
         "experiment.json", copy=("experiment",)),
    Case("experiment --resume: experiment.json of the wrong shape", "society-env",
         ["experiment", "--resume", "{w}/experiment", "--quiet"],
         edit_json("experiment/experiment.json", lambda saved: {**saved, "options": [], "seeds": "0"}),
         "experiment.json", copy=("experiment",)),
    # --out that cannot be written
    Case("run: --out inside a file", "society-env", ["run", *SCRIPTED, "--out", "{w}/file/run", "--quiet"],
         a_file_at("file"), "file/run", copy=()),
    Case("run: --out is a file", "society-env", ["run", *SCRIPTED, "--out", "{w}/file", "--quiet"],
         a_file_at("file"), "file", copy=()),
    Case("experiment: --out inside a file", "society-env",
         ["experiment", "--presets", "small", *SCRIPTED[2:6], "--out", "{w}/file/exp", "--quiet"], a_file_at("file"),
         "file/exp", copy=()),
    Case("qes-train: --out inside a file", "qes-train",
         ["--model", "{w}/tiny.gguf", "--pairs", "2", "--out", "{w}/file/qes", "--quiet"], a_file_at("file"),
         "file/qes", copy=("tiny.gguf",)),
    Case("qes-eval: --out inside a file", "qes-eval",
         ["--trained", "{w}/tiny.gguf", "--base", "{w}/tiny.gguf", "--episodes", "2", "--preset", "forage", "--policy",
          "llm=2", "--max-steps", "1", "--n-ctx", "2048", "--out", "{w}/file/eval.json"],
         a_file_at("file"), "file/eval.json", copy=("tiny.gguf",)),
    # QES checkpoints through qes-train --resume
    Case("qes-train --resume: checkpoint.npz cut off", "qes-train", ["--resume", "{w}/qes", "--quiet"],
         cut("qes/checkpoint.npz"), "checkpoint.npz", copy=("qes", "tiny.gguf")),
    Case("qes-train --resume: checkpoint.npz not a zip", "qes-train", ["--resume", "{w}/qes", "--quiet"],
         overwrite("qes/checkpoint.npz", b"PK\x03\x04 not really a zip" * 20), "checkpoint.npz", copy=("qes", "tiny.gguf")),
    Case("qes-train --resume: checkpoint.npz meta without its tensors", "qes-train", ["--resume", "{w}/qes", "--quiet"],
         qes_meta(without("tensors", "sizes")), "checkpoint.npz", copy=("qes", "tiny.gguf")),
    Case("qes-train --resume: checkpoint.npz meta without config", "qes-train", ["--resume", "{w}/qes", "--quiet"],
         qes_meta(without("config")), "checkpoint.npz", copy=("qes", "tiny.gguf")),
    Case("qes-train --resume: checkpoint.npz config of the wrong shape", "qes-train", ["--resume", "{w}/qes", "--quiet"],
         qes_meta(lambda meta: {**meta, "config": {**meta["config"], "no_such_option": 1}}), "checkpoint.npz",
         copy=("qes", "tiny.gguf")),
    # model patches: for another base, or damaged
    Case("run --model: patch for another base", "society-env", RUN_LLM, None, "model.qespatch",
         copy=("qes", "tiny.gguf", "other.gguf"), setup=tuned_model("qes/model.qespatch", "other.gguf")),
    Case("run --model: patch cut off", "society-env", RUN_LLM, cut("qes/model.qespatch"), "model.qespatch",
         copy=("qes", "tiny.gguf"), setup=tuned_model("qes/model.qespatch", "tiny.gguf")),
    Case("qes-eval --trained: patch for another base", "qes-eval", ["--trained", "model", "--episodes", "2"], None,
         "model.qespatch", copy=("qes", "tiny.gguf", "other.gguf"), setup=tuned_model("qes/model.qespatch", "other.gguf")),
]


def _state(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file (bytes, mtime) and directory under ``root``."""
    return {str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None
            for path in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, fixtures, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    for name in case.copy:
        source = fixtures / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, work / name)
    if case.setup is not None:
        case.setup(monkeypatch, work)
    if case.damage is not None:
        case.damage(work)
    before = _state(work)
    capsys.readouterr()

    status = PROGRAMS[case.program]([part.replace("{w}", str(work)) for part in case.argv])

    captured = capsys.readouterr()
    error = captured.err.strip()
    assert status == 2, (status, captured.err, captured.out)
    assert len(error.splitlines()) == 1, error
    assert error.startswith(f"{case.program}: error: ") and "Traceback" not in error, error
    assert case.file in error, error
    assert _state(work) == before, "the command changed or wrote files"


def test_the_fixtures_are_usable_undamaged(fixtures, tmp_path, capsys):
    """The damage is what fails the cases: the same commands on undamaged copies succeed."""
    for name in ("complete", "killed", "experiment"):
        shutil.copytree(fixtures / name, tmp_path / name)
    assert cli.main(["replay", str(tmp_path / "complete")]) == 0
    assert cli.main(["view", str(tmp_path / "complete")]) == 0
    assert cli.main(["run", "--resume", str(tmp_path / "killed"), "--quiet"]) == 0
    assert cli.main(["experiment", "--resume", str(tmp_path / "experiment"), "--quiet"]) == 0
