"""One run specification (society_env.app.spec.RunSpec): the commands' flags come from it, a script runs
it without a command line, checkpoints keep it (older ones still load), and what a resume may be given
is declared once, in the help and the docs alike."""

import re
from pathlib import Path

import pytest

from society_env.app.llm_options import LLMOptions
from qes_trainer.fitness import FitnessSettings
from qes_trainer.train import RESUMABLE, TrainConfig
from qes_trainer.train import build_parser as train_parser
from qes_trainer.train import config_from_args
from society_env.app import RunSpec, run
from society_env.app.cli import build_parser, main
from society_env.app.options import resumable_flags

ROOT = Path(__file__).resolve().parents[1]


def test_a_script_and_the_command_line_record_the_same_run(tmp_path):
    flags = ["--preset", "small", "--policy", "forager=2,raider=2", "--steps", "12", "--seed", "3",
             "--set", "initial_food=40", "--quiet"]
    assert main(["run", *flags, "--out", str(tmp_path / "cli")]) == 0
    spec = RunSpec(preset="small", policy="forager=2,raider=2", steps=12, seed=3, overrides=("initial_food=40",),
                   quiet=True, out=str(tmp_path / "script"))
    result = run(spec)
    assert result.run_dir == tmp_path / "script" and result.summary["steps"] == 12
    for name in ("actions.jsonl", "snapshots.jsonl", "events.jsonl"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "script" / name).read_bytes(), name


def test_the_parsed_command_line_is_the_spec():
    args = build_parser().parse_args(["run", "--preset", "core", "--set", "width=20", "--set", "height=20",
                                      "--steps", "7", "--model", "m.gguf", "--temperature", "0.3", "--quiet"])
    assert RunSpec.from_args(args) == RunSpec(preset="core", overrides=("width=20", "height=20"), steps=7, quiet=True,
                                              llm=LLMOptions(model="m.gguf", temperature=0.3))
    assert RunSpec.from_args(build_parser().parse_args(["run"])) == RunSpec()  # every default is the dataclass's


def test_a_checkpoint_keeps_what_the_run_computes_and_older_checkpoints_still_load():
    spec = RunSpec(preset="core", policy="llm=2", overrides=("width=20",), seed=5, steps=9, checkpoint_every=3,
                   out="somewhere", quiet=True, render="ansi", llm=LLMOptions(temperature=0.2, history=3))
    saved = spec.saved()
    assert not {"out", "quiet", "render", "resume", "force"} & set(saved)  # how it is shown is not part of it
    assert RunSpec.from_saved(saved, quiet=True) == RunSpec(**{**spec.__dict__, "out": None, "render": "none"})
    # what the argparse-Namespace code saved before (one flat dict of destinations, plus the subcommand's)
    older = {"command": "run", "preset": "core", "policy": "llm=2", "seed": 5, "steps": 9, "set": ["width=20"],
             "checkpoint_every": 3, "ppo_checkpoint": None, **{k: v for k, v in saved["llm"].items()}}
    assert RunSpec.from_saved(older) == RunSpec.from_saved(saved)
    with pytest.raises(ValueError, match="colour"):
        RunSpec.from_saved({**saved, "colour": "red"})


@pytest.mark.parametrize("flags", [["--steps", "5"], ["--seed", "1"], ["--temperature", "0.1"], ["--set", "width=9"]])
def test_resume_refuses_options_that_would_change_the_run(tmp_path, capsys, flags):
    assert main(["run", "--resume", str(tmp_path / "nothing"), *flags]) == 2
    assert flags[0] in capsys.readouterr().err


def test_the_trainer_takes_the_runs_name_for_episode_steps_and_keeps_the_old_one():
    by_new = config_from_args(train_parser().parse_args(["--steps", "3"]))
    by_old = config_from_args(train_parser().parse_args(["--max-steps", "3"]))
    assert by_new == by_old == TrainConfig(fitness=FitnessSettings(max_steps=3))


def test_what_a_resume_may_be_given_is_declared_once_and_the_docs_say_the_same():
    assert resumable_flags(RunSpec) == ["--render", "--quiet"]
    assert set(RESUMABLE) == {"--generations", "--workers", "--ray-address", "--member-timeout", "--quiet"}
    recording = (ROOT / "docs" / "recording.md").read_text()
    said = re.search(r"`--resume` takes no other options but (.+?); a", recording, re.S).group(1)
    assert sorted(re.findall(r"`(--[a-z-]+)`", said)) == sorted(resumable_flags(RunSpec))
    training = (ROOT / "docs" / "training.md").read_text()
    row = next(line for line in training.splitlines() if line.startswith("| `--resume DIR`"))
    assert sorted(re.findall(r"`(--[a-z-]+)`", row.split("only", 1)[1])) == sorted(RESUMABLE)
