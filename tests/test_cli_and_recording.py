"""`society-env run` end to end, recordings, replay, killed runs and user errors."""

import json
import signal
import subprocess
import sys
import time

import pytest

from society_env.app.cli import main
from society_env.app.runs import replay_recording
from society_env.recording import FORMAT_VERSION, Recording

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
