"""`society-env run` end to end, recordings, replay, killed runs and user errors."""

import base64
import gzip
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from society_env.app.cli import main
from society_env.app.runs import replay_recording
from society_env.recording.format import FORMAT_VERSION, Recording

CLI = [sys.executable, "-m", "society_env"]


def run_cli(*args, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_explains_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0 and "run" in result.stdout and "replay" in result.stdout
    result = run_cli("run", "--help")
    assert result.returncode == 0 and "--policy" in result.stdout and "inherit" in result.stdout


def test_run_writes_a_complete_recording_that_replays_exactly(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", "--preset", "small", "--policy", "scripted:forager=2,cooperator=2,raider=2",
                     "--steps", "40", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "population start / peak / end" in result.stdout
    recording = Recording(out)
    assert recording.meta["version"] == FORMAT_VERSION and recording.meta["seed"] == 3
    assert recording.config.width == 16
    summary = recording.summary
    assert summary["steps"] == 40
    snapshots = list(recording.snapshots())
    actions = list(recording.actions())
    events = list(recording.events())
    assert len(snapshots) == 41 and len(actions) == 40
    assert [s["step"] for s in snapshots] == list(range(41))
    types = {e["type"] for e in events}
    assert {"added", "born", "died", "took", "message"} <= types
    assert sum(e["type"] == "born" for e in events) == summary["births"]
    assert sum(e["type"] == "died" for e in events) == sum(summary["deaths"].values())
    assert set(recording.meta["assignment"].values()) == {"forager", "cooperator", "raider"}
    # newborns inherit their parent's policy
    policy = {e["agent"]: e["policy"] for e in events if e["type"] in ("added", "born")}
    for e in events:
        if e["type"] == "born":
            assert e["policy"] == policy[e["parent"]]

    result = replay_recording(out)
    assert result["identical"] and result["steps"] == 40 and result["complete"]
    assert run_cli("replay", str(out)).returncode == 0

    # a tampered action must be caught by the replay check
    lines = (out / "actions.jsonl").read_text().splitlines()
    record = json.loads(lines[5])
    agent = next(iter(record["actions"]))
    record["actions"][agent] = [1 + (record["actions"][agent][0] % 4), 0, 0, 0]
    lines[5] = json.dumps(record)
    (out / "actions.jsonl").write_text("\n".join(lines) + "\n")
    assert not replay_recording(out)["identical"]
    assert run_cli("replay", str(out)).returncode == 1


FORMER_PROMPT_FIELDS = {"prompt_history": 1, "prompt_motivation": "base", "prompt_personality": True,
                        "prompt_talk": True, "prompt_actions": "all", "prompt_nearest_food": False,
                        "prompt_view": "compact", "prompt_message_chars": 16, "prompt_memory_chars": 16}
"""The prompt fields the world config of recordings before 2026-12-07 held (the small preset's values)."""


def test_a_recording_whose_config_holds_the_former_prompt_fields_loads_and_replays(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--preset", "small", "--policy", "forager=2,raider=2", "--steps", "20", "--seed", "2",
                 "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert not [key for key in meta["config"] if key.startswith("prompt")]  # the world config has none now
    meta["config"] = {**meta["config"], **FORMER_PROMPT_FIELDS}
    (out / "meta.json").write_text(json.dumps(meta))
    recording = Recording(out)
    assert recording.config.width == 16 and not hasattr(recording.config, "prompt_view")
    assert replay_recording(out)["identical"]
    assert main(["report", str(out)]) == 0


def test_replay_refuses_a_recording_of_another_world_version(tmp_path):
    out = tmp_path / "run"
    assert run_cli("run", "--preset", "small", "--steps", "3", "--seed", "1", "--out", str(out)).returncode == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["world"] == "society_v2"
    del meta["world"]  # as recordings made before v2 are
    (out / "meta.json").write_text(json.dumps(meta))
    result = run_cli("replay", str(out))
    assert result.returncode != 0 and "recorded with society_v1" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert run_cli("report", str(out)).returncode == 0  # still readable


def test_language_run_records_text_messages_and_replays(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--preset", "small", "--policy", "cooperator", "--steps", "30", "--quiet",
                 "--set", "language=true", "--out", str(out)]) == 0
    messages = [e for e in Recording(out).events() if e["type"] == "message"]
    assert messages and all(e["text"] for e in messages)
    assert replay_recording(out)["identical"]


def test_killed_run_leaves_a_parseable_partial_recording(tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen([*CLI, "run", "--preset", "default", "--policy", "cooperator", "--quiet",
                                "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        path = out / "snapshots.jsonl"
        if path.exists() and path.read_text().count("\n") > 50:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recording = Recording(out)
    assert recording.summary is None
    snapshots = list(recording.snapshots())
    assert len(snapshots) > 50
    assert len(list(recording.events())) > 0
    result = replay_recording(out)
    assert result["identical"] and not result["complete"]


@pytest.mark.parametrize("args,message", [
    (["run", "--policy", "wizard=3"], "unknown policy 'wizard'"),
    (["run", "--policy", "forager=3,,random"], "malformed policy assignment"),
    (["run", "--policy", "forager=0"], "shares must be positive"),
    (["run", "--set", "widht=3"], "unknown SocietyConfig field"),
    (["run", "--out", "/proc/society-env-cannot-write-here"], "cannot write to output directory"),
])
def test_user_errors_give_one_clear_line_and_nonzero_exit(args, message):
    result = run_cli(*args, "--steps", "1")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["run"], ["experiment", "--presets", "small"]])
def test_a_run_of_no_steps_is_refused_before_anything_is_written(tmp_path, capsys, command):
    assert main([*command, "--steps", "0", "--quiet", "--out", str(tmp_path / "out")]) == 2
    assert "--steps must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_recording_from_another_format_version_is_refused(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--steps", "3", "--quiet", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    meta["version"] = FORMAT_VERSION + 1
    (out / "meta.json").write_text(json.dumps(meta))
    result = run_cli("replay", str(out))
    assert result.returncode == 2 and "format version" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("replay", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "not a run directory" in result.stderr


def test_default_run_directory_is_named_after_the_run(tmp_path):
    result = run_cli("run", "--preset", "small", "--policy", "random", "--seed", "5", "--steps", "2", "--quiet", cwd=tmp_path)
    assert result.returncode == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("small__random__5__")


# ---------------------------------------------------------------------------------------------
# --out is never overwritten; --force replaces it whole
# ---------------------------------------------------------------------------------------------
def _run(out, *extra, steps="5", seed="0"):
    return main(["run", "--preset", "small", "--policy", "forager", "--steps", steps, "--seed", seed,
                 "--out", str(out), "--quiet", *extra])


def test_run_refuses_an_out_that_holds_a_recording_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out, steps="12") == 0
    (out / "report.html").write_text("a report of the 12-step run")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert _run(out, steps="5") == 2
    error = capsys.readouterr().err
    assert "already holds a recording" in error and "--force" in error and len(error.strip().splitlines()) == 1
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_force_replaces_the_whole_directory_and_drops_the_old_reports(tmp_path):
    out = tmp_path / "run"
    assert _run(out, steps="12") == 0
    (out / "report.html").write_text("a report of the 12-step run")
    assert _run(out, "--force", steps="5", seed="3") == 0
    assert Recording(out).meta["seed"] == 3 and Recording(out).summary["steps"] == 5
    assert not (out / "report.html").exists()  # the old run's report went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or retired directory left


def test_a_failed_forced_run_leaves_the_old_recording_in_place(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert _run(out, steps="12") == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    import policies.rollout as rollout

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run dies in the middle
    monkeypatch.setattr(rollout, "run_episode", killed)
    assert _run(out, "--force", steps="5") == 130  # Ctrl-C
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    [staging] = [p for p in tmp_path.iterdir() if p.name.startswith(".run.new-")]
    assert str(staging) in capsys.readouterr().err  # the interrupted new recording is kept beside, and named


def test_run_refuses_a_directory_of_other_files_even_with_force(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _run(out, "--force") == 2
    assert "not a society-env recording" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"


def test_experiment_refuses_an_occupied_out_and_force_replaces_it(tmp_path, capsys):
    out = tmp_path / "exp"
    command = ["experiment", "--presets", "small", "--seeds", "1", "--policy", "forager", "--steps", "4",
               "--out", str(out), "--quiet"]
    assert main(command) == 0
    capsys.readouterr()
    assert main(command) == 2 and "already holds an experiment" in capsys.readouterr().err
    assert main(command + ["--force"]) == 0
    data = json.loads((out / "experiment.json").read_text())
    assert data["runs"][0]["run_dir"] == str(out / "small__seed0") and Recording(out / "small__seed0").summary


def test_reports_and_viewer_pages_name_the_recording_they_describe(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out, steps="8") == 0
    assert main(["report", str(out), "--quiet"]) == 0 and main(["view", str(out)]) == 0
    first = json.loads((out / "report.json").read_text())["recording_sha256"]
    assert first == Recording(out).fingerprint()
    packed = re.search(r'<script id="replay-data" type="application/octet-stream">([^<]*)</script>',
                       (out / "replay.html").read_text()).group(1)
    assert json.loads(gzip.decompress(base64.b64decode(packed)))["recording_sha256"] == first
    assert _run(out, "--force", steps="8", seed="5") == 0 and main(["report", str(out), "--quiet"]) == 0
    second = json.loads((out / "report.json").read_text())["recording_sha256"]
    assert second == Recording(out).fingerprint() != first


# ---------------------------------------------------------------------------------------------
# corrupt input: one-line errors, nothing written over good files
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["replay", "report", "view"])
def test_a_garbage_line_in_a_recording_is_a_one_line_error_naming_file_and_line(tmp_path, capsys, command):
    out = tmp_path / "run"
    assert _run(out, steps="6") == 0
    lines = (out / "events.jsonl").read_text().splitlines(keepends=True)
    (out / "events.jsonl").write_text("".join(lines[:2] + ["{garbage\n"] + lines[2:]))
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert main([command, str(out)] + (["--quiet"] if command == "report" else [])) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("events.jsonl line 3 is not valid JSON (Expecting property name enclosed in double "
                          "quotes): the recording is damaged") and len(error.splitlines()) == 1
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("pair, message", [
    ("width=abc", "width must be an integer, got 'abc'"),
    ("width=3.5", "width must be an integer, got 3.5"),
    ("language=maybe", "language must be true or false, got 'maybe'"),
    ("transfer_amounts=5", "transfer_amounts must be a list of integers, got 5"),
    ("food_zone_sigma=[1]", "food_zone_sigma must be a number, got [1]"),
    ("food_distribution=7", "food_distribution must be a string, got 7"),
])
def test_wrong_types_in_set_are_one_line_errors(tmp_path, capsys, pair, message):
    assert _run(tmp_path / "run", "--set", pair) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"society-env: error: invalid SocietyConfig: {message}"
    assert not (tmp_path / "run").exists()


def test_tables_printed_off_a_terminal_are_not_squeezed_to_80_columns(capsys):
    """A log or CI output of ``qes-eval`` / ``report`` / ``baselines`` shows whole names, not ``mod…``."""
    from rich.table import Table

    from society_env.app.console import table_console

    table = Table(title="wide")
    for k in range(6):
        table.add_column(f"column-number-{k}-with-a-long-name")
    table.add_row(*[f"value-{k}-" + "x" * 20 for k in range(6)])
    table_console().print(table)
    out = capsys.readouterr().out
    assert "…" not in out and all(f"column-number-{k}-with-a-long-name" in out for k in range(6))
    assert max(len(line) for line in out.splitlines()) > 80


def test_the_commands_cut_openmp_spinning_short_unless_the_user_chose(tmp_path):
    """society-env sets GOMP_SPINCOUNT before llama.cpp loads (GNU OpenMP's default spinning made 2 llama.cpp
    threads 1.5-2.4x slower beside two busy loops: docs/llm-agents.md), and leaves a wait policy the user set alone."""
    import os
    import subprocess
    import sys

    from policies.llm.engine import OPENMP_SPIN_COUNT

    probe = ("import os, sys\nfrom society_env.app.cli import main\nmain(['models'])\n"
             "print('SPIN=' + os.environ.get('GOMP_SPINCOUNT', '-'), file=sys.stderr)")
    for given, expected in (({}, OPENMP_SPIN_COUNT), ({"GOMP_SPINCOUNT": "77"}, "77"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "-")):
        environment = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**environment, **given})
        assert f"SPIN={expected}" in result.stderr, result.stderr[-500:]
