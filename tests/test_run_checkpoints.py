"""Run checkpoints and --resume (society_env.app.checkpoints): a run killed by SIGKILL at random moments
and resumed ends with the recording an uninterrupted run writes; experiments skip finished runs and
continue the interrupted one; a bad checkpoint is a one-line error that changes nothing."""

import json
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from society_env.app.checkpoints import CHECKPOINT_FILE
from society_env.app.cli import main
from society_env.app.runs import replay_recording

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = ["--preset", "small", "--policy", "forager=3,cooperator=3", "--set", "max_steps=3000",
            "--set", "lifespan=3000", "--steps", "3000", "--checkpoint-every", "100", "--seed", "3"]
NOT_DETERMINISTIC = ("seconds",)
"""Per-call timings in llm_call events: the only recorded values that differ between identical runs."""


def deterministic_files(run_dir: Path) -> dict:
    """The recording's deterministic content: snapshots and actions byte for byte, events without
    timings, and the summary without its speed readouts."""
    events = [{k: v for k, v in json.loads(line).items() if k not in NOT_DETERMINISTIC}
              for line in (run_dir / "events.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("seconds", "agent_steps_per_second", "costs"):
        summary.pop(key)
    return {"events": events, "summary": summary, "meta": (run_dir / "meta.json").read_bytes(),
            **{name: (run_dir / f"{name}.jsonl").read_bytes() for name in ("snapshots", "actions")}}


def kill_at_checkpoint(arguments: list[str], checkpoint: int, steps_after: int) -> None:
    """Run ``society-env arguments`` and SIGKILL it ``steps_after`` steps after its ``checkpoint``-th
    checkpoint, in the middle of recording a step (tests/kill_at_checkpoint.py): the same moment on any
    machine, so the test cannot race the run."""
    process = subprocess.run([sys.executable, "-m", "tests.kill_at_checkpoint", str(checkpoint), str(steps_after),
                              *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize("kill_seed", [0, 1])
def test_a_scripted_run_killed_twice_and_resumed_writes_the_uninterrupted_recording(tmp_path, kill_seed):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["run", *SCRIPTED, "--out", str(whole), "--quiet"]) == 0
    rng = np.random.default_rng(kill_seed)  # where the two kills land: a checkpoint of 29, 0-99 steps after it
    kill_at_checkpoint(["run", *SCRIPTED, "--out", str(killed), "--quiet"], int(rng.integers(1, 15)),
                       int(rng.integers(0, 100)))
    assert not (killed / "summary.json").exists()
    assert replay_recording(killed)["identical"]  # the partial recording is usable as it is
    kill_at_checkpoint(["run", "--resume", str(killed), "--quiet"], int(rng.integers(1, 10)), int(rng.integers(0, 100)))
    assert main(["run", "--resume", str(killed), "--quiet"]) == 0
    assert deterministic_files(killed) == deterministic_files(whole)
    assert not (killed / CHECKPOINT_FILE).exists()  # removed when the run completed
    assert not list(killed.glob(".*.tmp"))
    assert replay_recording(killed)["identical"]


@pytest.mark.slow
def test_an_llm_society_killed_and_resumed_writes_the_uninterrupted_recording(tmp_path):
    """Memory notes, sampling seeds and prompts continue across the resume; the KV cache is dropped at
    every checkpoint of both runs, so the model computes the same numbers (same thread count)."""
    from tests.tiny_gguf import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny.gguf")
    options = ["--preset", "small", "--policy", "llm=2,forager=2", "--steps", "16", "--checkpoint-every", "3",
               "--model", str(model), "--max-tokens", "400", "--threads", "1", "--n-ctx", "4096", "--seed", "5",
               "--history", "3"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["run", *options, "--out", str(whole), "--quiet"]) == 0
    kill_at_checkpoint(["run", *options, "--out", str(killed), "--quiet"], 2, 1)
    assert not (killed / "summary.json").exists()
    assert main(["run", "--resume", str(killed), "--quiet"]) == 0
    assert deterministic_files(killed) == deterministic_files(whole)
    calls = [e for e in deterministic_files(killed)["events"] if e["type"] == "llm_call"]
    assert len(calls) >= 2 * 16 and any("\nMemory: " in call["user"] for call in calls)  # small: the compact view


@pytest.mark.slow
def test_an_experiment_resumes_skipping_finished_runs(tmp_path):
    options = ["--presets", "small,core", "--seeds", "2", "--policy", "forager=1,cooperator=1", "--steps", "400",
               "--checkpoint-every", "25", "--set", "width=24", "--set", "height=24"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["experiment", *options, "--out", str(whole), "--quiet"]) == 0
    # small__seed0's society dies after 3 checkpoints, so the 5th is small__seed1's second (it writes 7)
    kill_at_checkpoint(["experiment", *options, "--out", str(killed), "--quiet"], 5, 10)
    assert (killed / "small__seed1" / CHECKPOINT_FILE).exists()
    finished_before = (killed / "small__seed0" / "summary.json").read_bytes()
    assert main(["experiment", "--resume", str(killed), "--quiet"]) == 0
    assert (killed / "small__seed0" / "summary.json").read_bytes() == finished_before  # not run again
    for run in ("small__seed0", "small__seed1", "core__seed0", "core__seed1"):
        assert deterministic_files(killed / run) == deterministic_files(whole / run), run
    table = json.loads((killed / "experiment.json").read_text())["table"]
    assert table == json.loads((whole / "experiment.json").read_text())["table"]


@pytest.fixture
def checkpointed_run(tmp_path):
    """A run directory holding a partial recording and its checkpoint (as a killed run leaves it)."""
    run_dir = tmp_path / "run"
    kill_at_checkpoint(["run", *SCRIPTED, "--out", str(run_dir), "--quiet"], 1, 0)
    assert (run_dir / CHECKPOINT_FILE).exists() and not (run_dir / "summary.json").exists()
    return run_dir


def _resume_error(run_dir, capsys, *extra) -> str:
    assert main(["run", "--resume", str(run_dir), "--quiet", *extra]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_truncated_checkpoint_is_a_one_line_error_that_changes_nothing(checkpointed_run, capsys):
    path = checkpointed_run / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = {p.name: p.read_bytes() for p in checkpointed_run.iterdir()}
    assert "checkpoint.pkl is damaged" in _resume_error(checkpointed_run, capsys)
    assert {p.name: p.read_bytes() for p in checkpointed_run.iterdir()} == before


def test_a_damaged_meta_json_is_one_line_before_anything_else_is_printed(checkpointed_run, capsys):
    (checkpointed_run / "meta.json").write_text('{"format": "society-env-recording", "vers')
    before = {p.name: p.read_bytes() for p in checkpointed_run.iterdir()}
    assert main(["run", "--resume", str(checkpointed_run)]) == 2  # not --quiet: nothing may come before the error
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured
    assert "meta.json" in captured.err and "Traceback" not in captured.err
    assert {p.name: p.read_bytes() for p in checkpointed_run.iterdir()} == before


def test_a_checkpoint_of_another_version_is_refused(checkpointed_run, capsys):
    path = checkpointed_run / CHECKPOINT_FILE
    saved = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({**saved, "version": 99}))
    assert "version 99 checkpoint" in _resume_error(checkpointed_run, capsys)


def test_a_checkpoint_whose_world_config_holds_the_former_prompt_fields_resumes(checkpointed_run):
    """Checkpoints before 2026-12-07 pickled a world config (the env's state dict, and meta.json) with the
    LLM prompt's prompt_* fields; such a run resumes and its recording replays."""
    former = {"prompt_history": 1, "prompt_motivation": "base", "prompt_personality": True, "prompt_talk": True,
              "prompt_actions": "all", "prompt_nearest_food": False, "prompt_view": "compact",
              "prompt_message_chars": 16, "prompt_memory_chars": 16}
    path = checkpointed_run / CHECKPOINT_FILE
    saved = pickle.loads(path.read_bytes())
    state = saved["checkpoint"].state
    state.env["config"] = {**state.env["config"], **former}
    saved["checkpoint"].options["overrides"] = [*saved["checkpoint"].options["overrides"], "prompt_view=compact"]
    path.write_bytes(pickle.dumps(saved))
    meta = json.loads((checkpointed_run / "meta.json").read_text())
    (checkpointed_run / "meta.json").write_text(json.dumps({**meta, "config": {**meta["config"], **former}}))
    assert main(["run", "--resume", str(checkpointed_run), "--quiet"]) == 0
    assert (checkpointed_run / "summary.json").exists() and replay_recording(checkpointed_run)["identical"]


def test_resume_refuses_options_that_would_not_apply(checkpointed_run, capsys):
    assert "do not give --steps" in _resume_error(checkpointed_run, capsys, "--steps", "5")


def test_resume_of_a_complete_run_or_a_missing_checkpoint_says_why(tmp_path, capsys):
    run_dir = tmp_path / "done"
    assert main(["run", "--preset", "small", "--steps", "5", "--out", str(run_dir), "--quiet"]) == 0
    assert "complete run" in _resume_error(run_dir, capsys)
    (run_dir / "summary.json").unlink()
    assert "no checkpoint.pkl" in _resume_error(run_dir, capsys)
    assert "does not exist" in _resume_error(tmp_path / "nothing", capsys)
