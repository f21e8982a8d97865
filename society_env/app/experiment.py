"""``society-env experiment``: run a list of presets x seeds into one directory and compare them.

This is application layer, like ``society_env.app.cli`` (it reuses the run/recording machinery of ``society_env.app.runs``): one
recording per run, then a side-by-side table of the runs' summaries, one column per preset (means over
the seeds, with the standard deviation when there are several). Layout::

    OUT/PRESET__seedS/   one recording per run (docs/recording.md); `society-env replay` works on each
    OUT/experiment.json  the command, every run's summary, and the table (rewritten after every run)
    OUT/table.md         the table in Markdown (at the end)

Typical use is comparing the eight TerraLingua conditions (docs/conditions.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from society_env.app.spec import RunSpec
from society_env.world.config import PRESETS
from society_env.app.options import given_options, option, same_option

METRICS: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
    ("run length (steps)", lambda s: s["steps"]),
    ("mean population", lambda s: s["population_mean"]),
    ("peak population", lambda s: s["population_peak"]),
    ("births", lambda s: s["births"]),
    ("deaths: starvation", lambda s: s["deaths"].get("starvation", 0)),
    ("deaths: old age", lambda s: s["deaths"].get("old_age", 0)),
    ("artifacts created", lambda s: s.get("artifacts", {}).get("created", 0)),
    ("artifacts modified", lambda s: s.get("artifacts", {}).get("modified", 0)),
    ("artifacts alive at end", lambda s: s.get("artifacts", {}).get("alive_end", 0)),
    ("messages", lambda s: s["messages"]),
    ("gives / takes", lambda s: (s["gives"], s["takes"])),
]
"""(row label, value of one run's summary) of the comparison table."""


@dataclass(frozen=True)
class ExperimentSpec:
    """What ``experiment`` takes besides the :class:`RunSpec` of its runs (whose preset and seed it sets)."""

    presets: str | None = option(None, "comma-separated presets, e.g. the eight conditions: core,long_memory,abundant,"
                                 "artifact_cost,creative,inert,no_motivation,no_personality", group="run", type=str,
                                 default_text="none; required")
    seeds: int = option(1, "seeds per preset", group="run", minimum=1)
    first_seed: int = option(0, "the first seed; runs use first..first+seeds-1", group="run")
    policy: str = same_option(RunSpec, "policy", default="cooperator=1,forager=1",
                              help="policy assignment for every run, as in 'run'")

    def run_spec(self, args: argparse.Namespace) -> RunSpec:
        """The runs' common spec: the run options given, with this experiment's policy."""
        return dataclasses.replace(RunSpec.from_args(args), policy=self.policy)


def _format(values: list[Any]) -> str:
    if isinstance(values[0], tuple):
        return " / ".join(_format([v[k] for v in values]) for k in range(len(values[0])))
    mean = float(np.mean(values))
    text = f"{mean:.0f}" if mean == round(mean) else f"{mean:.1f}"
    if len(values) > 1:
        text += f" ± {float(np.std(values)):.1f}"
    return text


def experiment_table(runs: list[dict[str, Any]], presets: list[str]) -> list[tuple[str, list[str]]]:
    """Rows (label, one cell per preset) from the runs' summaries; presets without runs get "-"."""
    rows = []
    for label, value in METRICS:
        cells = []
        for preset in presets:
            summaries = [run["summary"] for run in runs if run["preset"] == preset]
            cells.append(_format([value(s) for s in summaries]) if summaries else "-")
        rows.append((label, cells))
    return rows


def markdown_table(rows: list[tuple[str, list[str]]], presets: list[str]) -> str:
    lines = ["| | " + " | ".join(f"`{p}`" for p in presets) + " |", "|---|" + "---|" * len(presets)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines) + "\n"


def parse_presets(text: str) -> list[str]:
    from society_env.app.runs import UserError

    presets = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if not presets or unknown:
        raise UserError(f"unknown preset(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(PRESETS)}")
    if len(set(presets)) != len(presets):
        raise UserError(f"a preset is listed twice in {text!r}")
    return presets


def command_experiment(args: argparse.Namespace) -> int:
    from society_env.app.llm_options import LLMOptions
    from society_env.app.outputs import fresh_output
    from society_env.app.runs import UserError, print_columns, refuse_options_with_resume, run_config
    from society_env.app.options import check_bounds

    experiment = ExperimentSpec(**given_options(args, ExperimentSpec))
    spec = experiment.run_spec(args)
    if spec.resume:
        refuse_options_with_resume(args, RunSpec, LLMOptions, ExperimentSpec)
        out = Path(spec.resume)
        spec, presets, seeds = _saved_experiment(out, spec.quiet)
        rows, title = _run_experiment(spec, presets, seeds, out, out, resume=True)
    else:
        if not experiment.presets:
            raise UserError("--presets is required (or --resume OUT to continue an experiment)")
        presets = parse_presets(experiment.presets)
        try:
            check_bounds(experiment)
        except ValueError as error:
            raise UserError(str(error)) from None
        for preset in presets:  # every configuration is checked before the first run starts
            run_config(dataclasses.replace(spec, preset=preset))
        seeds = list(range(experiment.first_seed, experiment.first_seed + experiment.seeds))
        out = Path(spec.out) if spec.out else Path("runs") / f"experiment__{'+'.join(presets)}__{time.strftime('%Y%m%d-%H%M%S')}"
        with fresh_output(out, spec.force) as writing_dir:
            rows, title = _run_experiment(spec, presets, seeds, writing_dir, out)
    print_columns(title, presets, rows, justify="right")
    print(f"experiment: {out}")
    return 0


def _saved_experiment(out: Path, quiet: bool) -> tuple[RunSpec, list[str], list[int]]:
    """(options, presets, seeds) of the experiment in ``out``, from its experiment.json."""
    import json

    from society_env.app.runs import UserError

    path = out / "experiment.json"
    if not path.exists():
        raise UserError(f"{out} holds no experiment ({path.name} missing): nothing to resume")
    try:
        saved = json.loads(path.read_bytes())
        options, presets, seeds = saved["options"], saved["presets"], saved["seeds"]
        if not (isinstance(options, dict) and all(isinstance(key, str) for key in options)
                and isinstance(presets, list) and all(preset in PRESETS for preset in presets)
                and isinstance(seeds, list) and all(type(seed) is int for seed in seeds)):
            raise TypeError("options, presets or seeds of the wrong kind")
    except (ValueError, KeyError, TypeError) as error:  # ValueError: not JSON (cut off) or not UTF-8
        detail = " ".join(str(error).split())
        raise UserError(f"{path} is damaged or from an older society-env ({type(error).__name__}: {detail}): "
                        "cannot resume") from None
    from society_env.app.runs import saved_spec

    return saved_spec(options, path, quiet=quiet), presets, seeds


SUMMARY_FIELDS = {"steps": int, "population_mean": (int, float), "population_peak": int, "births": int, "deaths": dict,
                  "messages": int, "gives": int, "takes": int}
"""What :data:`METRICS` reads of a run's summary.json."""


def _finished_summary(run_dir: Path) -> dict[str, Any]:
    """The summary.json of a run that finished; ``UserError`` naming the file if it is damaged."""
    from society_env.app.runs import UserError
    from society_env.recording.format import Recording, RecordingError, shape_problem

    try:
        summary = Recording(run_dir).summary
    except RecordingError as error:
        raise UserError(f"{error}; cannot resume the experiment") from None
    problem = shape_problem(summary, SUMMARY_FIELDS)
    if problem is not None:
        raise UserError(f"{run_dir / 'summary.json'} {problem}: it is not a run summary; cannot resume the experiment")
    return summary


def _run_experiment(spec: RunSpec, presets: list[str], seeds: list[int], out: Path, final: Path,
                    resume: bool = False):
    """Record every (preset, seed) run into ``out`` (which becomes ``final`` when done: the paths the
    experiment records are ``final``'s); returns the table's rows and title. With ``resume``, runs that
    finished are read back, the interrupted one continues from its checkpoint, the others start."""
    import shutil

    from society_env.app.checkpoints import CHECKPOINT_FILE, load_checkpoint
    from society_env.app.runs import UserError, record_run
    from society_env.recording.files import write_bytes_atomic, write_json_atomic
    from society_env.recording.format import Recording, RecordingError

    command = {"presets": presets, "seeds": seeds, "policy": spec.policy, "steps": spec.steps,
               "set": list(spec.overrides), "options": spec.saved()}
    # (preset, seed, state, summary, checkpoint) of every run: with resume, what the runs left is read (and
    # refused if damaged) before anything is written
    plan = []
    for preset, seed in ((p, s) for p in presets for s in seeds):
        run_dir = out / f"{preset}__seed{seed}"
        if resume and (run_dir / "summary.json").exists():
            plan.append((preset, seed, "finished earlier", _finished_summary(run_dir), None))
        elif resume and (run_dir / CHECKPOINT_FILE).exists():
            checkpoint = load_checkpoint(run_dir)
            try:
                Recording(run_dir)
            except RecordingError as error:
                raise UserError(f"{error}; cannot resume the experiment") from None
            plan.append((preset, seed, "resumed", None, checkpoint))
        else:
            plan.append((preset, seed, "", None, None))
    runs: list[dict[str, Any]] = []
    total = len(plan)
    started = time.perf_counter()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write to --out {final}: {error.strerror or error}") from None
    rows = experiment_table(runs, presets)
    write_json_atomic(out / "experiment.json", {**command, "runs": runs, "table": rows})
    for number, (preset, seed, state, summary, checkpoint) in enumerate(plan, start=1):
        name = f"{preset}__seed{seed}"
        run_dir = out / name
        if resume and not state and run_dir.exists():  # killed before its first checkpoint: nothing to continue from
            shutil.rmtree(run_dir)
        if not spec.quiet:
            print(f"[{number}/{total}] {preset}, seed {seed} -> {final / name}" + (f" ({state})" if state else ""),
                  file=sys.stderr)
        if summary is None:
            summary = record_run(dataclasses.replace(spec, preset=preset, seed=seed), run_dir, command="experiment",
                                 resume=checkpoint)
        runs.append({"preset": preset, "seed": seed, "run_dir": str(final / name), "summary": summary})
        rows = experiment_table(runs, presets)
        write_json_atomic(out / "experiment.json", {**command, "runs": runs, "table": rows})
    title = f"{spec.policy}, {len(seeds)} seed(s), {spec.steps or 'max'} steps ({time.perf_counter() - started:.0f} s)"
    write_bytes_atomic(out / "table.md", (f"{title}\n\n" + markdown_table(rows, presets)).encode())
    return rows, title


def add_experiment_parser(commands: Any) -> None:
    """Register ``society-env experiment`` on the CLI's subcommands."""
    from society_env.app.runs import add_run_options
    from society_env.app.options import add_options

    experiment = commands.add_parser(
        "experiment", help="run presets x seeds and compare them side by side",
        description="Run every preset of a list with every seed (one recording each, in one directory) and print a "
                    "table comparing them: run length, population, births, deaths, artifacts, messages.",
        epilog="examples:\n"
               "  society-env experiment --presets core,inert --seeds 3 --policy cooperator=1,forager=1 --steps 300\n"
               "  society-env experiment --presets core,long_memory,creative --policy llm=3 --steps 20 \\\n"
               "      --set width=12 --set height=12 --set num_founders=3 --set initial_food=20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options({"run": experiment}, ExperimentSpec)
    add_run_options(experiment, only=("overrides", "steps", "ppo_checkpoint", "checkpoint_every", "out", "force",
                                      "resume", "quiet"), changes={
        "out": {"default_text": "runs/experiment__PRESETS__TIME"},
        "force": {"help": "replace the experiment already in --out (written beside it and renamed into place when "
                          "complete; default: refuse an occupied --out)"},
        "resume": {"help": RunSpec.resume_help("experiment") + "; the finished runs are kept, the interrupted one "
                           "continues"},
        "quiet": {"help": "no progress output (the table is still printed)"}})
    experiment.set_defaults(handler=command_experiment)
