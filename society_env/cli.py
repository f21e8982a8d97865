"""``society-env``: run societies, replay recordings, report on them and watch them.

This is the application layer at the top of the data flow: it is the only ``society_env`` module
that imports ``policies`` (the world modules never do).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from society_env.config import PRESETS, PROMPT_MOTIVATIONS, make_config


class UserError(Exception):
    """A mistake in the command line or its inputs: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# society-env run
# ---------------------------------------------------------------------------------------------
def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["width=20", "language=true"]`` -> ``{"width": 20, "language": True}`` (values parsed as JSON)."""
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects FIELD=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def default_run_dir(preset: str, policy: str, seed: int) -> Path:
    """CleanRL-style run directory name: ``runs/preset__policy__seed__time``."""
    policy_part = re.sub(r"[^A-Za-z0-9=.+-]+", "+", policy)
    return Path("runs") / f"{preset}__{policy_part}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def command_run(args: argparse.Namespace) -> int:
    run_dir = Path(args.out) if args.out else default_run_dir(args.preset, args.policy, args.seed)
    summary = record_run(args, args.preset, args.seed, run_dir)
    if not args.quiet:
        print_summary(summary, run_dir)
        print_last_messages(run_dir)
    return 0


def run_config(args: argparse.Namespace, preset: str):
    """(policy entries, config) of a run: ``preset`` plus the ``--set`` overrides; the language option is
    switched on when LLM agents take part (they read the text view)."""
    from policies import POLICIES, PolicySpecError, parse_policy_spec

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1 (got {args.steps})")
    try:
        entries = parse_policy_spec(args.policy, POLICIES)
        overrides = parse_overrides(args.set)
        if any(name == "llm" for name, _ in entries):
            overrides.setdefault("language", True)
        return entries, make_config(preset, **overrides)
    except (ValueError, PolicySpecError) as error:
        raise UserError(str(error)) from None


def record_run(args: argparse.Namespace, preset: str, seed: int, run_dir: Path, command: str = "run") -> dict[str, Any]:
    """Run and record one episode of ``preset`` with ``seed`` (policies, steps, overrides and LLM options
    from ``args``) into ``run_dir``; returns the run's summary."""
    from policies import PolicyAssignment
    from society_env.env import SocietyEnv
    from society_env.recording import RecordingError, RecordingWriter

    entries, config = run_config(args, preset)
    env = SocietyEnv(config, render_mode="ansi" if getattr(args, "render", "none") == "ansi" else None)
    assignment = PolicyAssignment(entries, config.num_founders)
    policies = {name: _build_policy(name, config, args) for name, _ in entries}
    steps = config.max_steps if args.steps is None else args.steps
    meta = {
        "preset": preset,
        "seed": seed,
        "steps_requested": steps,
        "policy": args.policy,
        "assignment": assignment.policy_of,
        "config": config.to_dict(),
        "command": command,
        "llm": _llm_options(args, config) if "llm" in policies else None,
    }
    try:
        recorder = RecordingWriter(run_dir, meta)
    except RecordingError as error:
        raise UserError(str(error)) from None

    try:
        stats = _run_with_progress(env, assignment, policies, seed, steps, recorder, getattr(args, "render", "none"),
                                   args.quiet)
    except ValueError as error:  # e.g. an LLM prompt that outgrows its context: the recording so far is kept
        from policies.llm_policy import LLMPolicyError

        if not isinstance(error, LLMPolicyError):
            raise
        recorder.close()
        raise UserError(f"{error} (recording so far: {run_dir})") from None
    summary = stats.summary(assignment.policy_of)
    recorder.close(summary)
    return summary


def print_last_messages(run_dir: Path, count: int = 6) -> None:
    """What the society said last (from the recording), so a run ends with something to read."""
    from society_env.recording import Recording

    said = [e for e in Recording(run_dir).events() if e["type"] == "message" and e.get("text")]
    latest: dict[str, dict] = {}
    for event in said:  # the last message of each distinct text, most recent last
        latest.pop(event["text"], None)
        latest[event["text"]] = event
    if latest:
        print("last messages:")
        for event in list(latest.values())[-count:]:
            print(f"  step {event['step']:>4}  {event['agent']}: {event['text']}")


def _llm_options(args: argparse.Namespace, config=None) -> dict[str, Any]:
    """The LLM policy's options from the command line; with ``config``, the prompt settings are the
    effective ones (the preset's condition, overridden by explicit --history/--motivation/--personality)."""
    options = {
        "model": args.model, "n_ctx": args.n_ctx, "n_threads": args.threads, "n_gpu_layers": args.n_gpu_layers,
        "temperature": args.temperature, "chat_format": args.chat_format, "batch_size": args.llm_batch,
        "batched": not args.sequential, "max_tokens": args.max_tokens,
        "history": args.history, "motivation": args.motivation, "personality": args.personality,
    }
    if config is not None:
        from policies.llm_prompt import PromptSettings

        prompt = PromptSettings.from_config(config, history=args.history, motivation=args.motivation,
                                            personality=args.personality)
        options.update(history=prompt.history, motivation=prompt.motivation, personality=prompt.personality)
    return options


def _build_policy(name: str, config, args: argparse.Namespace):
    from policies import make_policy

    if name != "llm":
        return make_policy(name, config)
    from policies.llm_engine import ModelError
    from policies.llm_policy import LLMPolicyError, PromptSettings
    from policies.models import ModelPullError

    options = _llm_options(args, config)
    for key in ("history", "motivation", "personality"):  # in the prompt settings below
        options.pop(key)
    prompt = PromptSettings.from_config(config, history=args.history, motivation=args.motivation,
                                        personality=args.personality)
    try:
        return make_policy("llm", config, prompt=prompt, **options)
    except ImportError:
        raise UserError('the LLM policy needs llama-cpp-python: pip install "society-env[llm]"') from None
    except (ModelError, LLMPolicyError, ModelPullError) as error:
        raise UserError(str(error)) from None


def _run_with_progress(env, assignment, policies, seed, steps, recorder, render, quiet):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from policies.runner import run_episode

    console = Console(stderr=True)
    if render == "ansi":
        screen = Console()

        def show(env, stats):
            screen.print(env.render(), markup=False, highlight=False)

        return run_episode(env, assignment, policies, seed, steps, recorder, on_step=show)
    if quiet:
        return run_episode(env, assignment, policies, seed, steps, recorder)
    columns = (TextColumn("step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[live]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("run", total=steps, live="")

        def update(env, stats):
            live = f"alive {stats.population[-1]}  food {stats.food_tiles[-1]}  births {stats.births}"
            progress.update(task, completed=stats.steps, live=live)

        return run_episode(env, assignment, policies, seed, steps, recorder, on_step=update)


def print_summary(summary: dict[str, Any], run_dir: Path | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="society-env run summary", show_header=False)
    deaths = summary["deaths"]
    rows = [
        ("steps survived", summary["steps"]),
        ("population start / peak / end", f"{summary['population_start']} / {summary['population_peak']} / {summary['population_end']}"),
        ("births", summary["births"]),
        ("deaths (starvation / old age)", f"{deaths.get('starvation', 0)} / {deaths.get('old_age', 0)}"),
        ("gives (energy)", f"{summary['gives']} ({summary['energy_given']})"),
        ("takes (energy)", f"{summary['takes']} ({summary['energy_taken']})"),
        ("messages", summary["messages"]),
        *([("artifacts created / modified / alive at end",
            "{created} / {modified} / {alive_end}".format(**summary["artifacts"]))]
          if summary.get("artifacts", {}).get("created") else []),
        ("agent-steps/s", f"{summary['agent_steps_per_second']:,.1f}"),
    ]
    for name, numbers in summary["per_policy"].items():
        rows.append((f"{name}: agents / mean return / mean lifespan",
                     f"{numbers['agents']} / {numbers['mean_return']:.1f} / {numbers['mean_lifespan']:.1f}"))
    for name, cost in summary.get("costs", {}).items():
        rows += [
            (f"{name}: agent-steps/s (s per agent-step)", f"{cost['agent_steps_per_second']:.2f} ({cost['seconds_per_agent_step']:.3f})"),
            (f"{name}: tokens in / out per agent-step", f"{cost['tokens_in_per_agent_step']} / {cost['tokens_out_per_agent_step']}"),
            (f"{name}: prompt tokens reused from the agent's KV", f"{cost.get('tokens_reused_per_agent_step', 0)} per agent-step"
             + (f", {cost['kv_evictions']} evictions" if cost.get("kv_evictions") else "")),
            (f"{name}: prompt / generation tok/s", f"{cost['prompt_tokens_per_second']:.0f} / {cost['generation_tokens_per_second']:.0f}"),
            (f"{name}: failed answers (agent stayed)", cost["failures"]),
        ]
    for key, value in rows:
        table.add_row(key, str(value))
    console = Console()
    console.print(table)
    if run_dir is not None:
        console.print(f"recording: {run_dir}", markup=False, highlight=False)


# ---------------------------------------------------------------------------------------------
# society-env replay
# ---------------------------------------------------------------------------------------------
def replay_recording(run_dir: str | Path) -> dict[str, Any]:
    """Re-run a recording's actions in a fresh env; compare events and snapshots line by line."""
    from policies.assignment import PolicyAssignment
    from policies.replay import ReplayPolicy
    from society_env.env import SocietyEnv
    from society_env.recording import WORLD_EVENT_TYPES, Recording, founder_events, snapshot, step_events

    recording = Recording(run_dir)
    config = recording.config
    env = SocietyEnv(config)
    policy = ReplayPolicy(config, recording)
    policy.reset()
    assignment = PolicyAssignment([("replay", 1.0)], config.num_founders)
    assignment.policy_of = dict(recording.meta.get("assignment", {}))

    observations, infos = env.reset(seed=recording.meta["seed"])
    events = founder_events(env.world, assignment.policy_of)
    snapshots = [snapshot(env.world)]
    while env.agents and not policy.exhausted:
        actions = policy.act({a: observations[a] for a in env.agents}, infos)
        observations, _, _, _, infos = env.step(actions)
        assignment.update(infos)
        events.extend(step_events(env.world, infos, assignment.policy_of, env.last_outcome.artifact_events))
        snapshots.append(snapshot(env.world))

    recorded_events = [e for e in recording.events() if e["type"] in WORLD_EVENT_TYPES]
    recorded_snapshots = list(recording.snapshots())
    replayed_events = json.loads(json.dumps(events))
    replayed_snapshots = json.loads(json.dumps(snapshots))
    first_event_difference = next(
        (i for i, (a, b) in enumerate(zip(recorded_events, replayed_events)) if a != b), None)
    first_snapshot_difference = next(
        (i for i, (a, b) in enumerate(zip(recorded_snapshots, replayed_snapshots)) if a != b), None)
    return {
        "steps": policy.step,
        "events": len(replayed_events),
        "snapshots": len(replayed_snapshots),
        "identical": (
            replayed_events[: len(recorded_events)] == recorded_events
            and replayed_snapshots[: len(recorded_snapshots)] == recorded_snapshots
            and len(recorded_snapshots) <= len(replayed_snapshots)
        ),
        "first_event_difference": first_event_difference,
        "first_snapshot_difference": first_snapshot_difference,
        "complete": recording.summary is not None,
    }


def command_replay(args: argparse.Namespace) -> int:
    from society_env.recording import RecordingError

    try:
        result = replay_recording(args.run_dir)
    except RecordingError as error:
        raise UserError(str(error)) from None
    kind = "complete" if result["complete"] else "partial (killed) "
    if result["identical"]:
        print(f"replayed {result['steps']} steps of the {kind} recording: {result['events']} events and "
              f"{result['snapshots']} snapshots identical")
        return 0
    print(f"replay DIFFERS from the recording: first differing event #{result['first_event_difference']}, "
          f"first differing snapshot #{result['first_snapshot_difference']}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------
# society-env report / view
# ---------------------------------------------------------------------------------------------
def command_report(args: argparse.Namespace) -> int:
    from society_env.recording import RecordingError

    from society_env.analysis.report import (
        MissingAnalysisDependencies, comparison_rows, require_analysis_dependencies, write_comparison, write_report,
    )

    try:
        require_analysis_dependencies()
    except MissingAnalysisDependencies as error:
        raise UserError(str(error)) from None
    if args.window is not None and args.window < 1:
        raise UserError("--window must be at least 1 step")
    reports = []
    for run_dir in args.run_dirs:
        try:
            started = time.perf_counter()
            report = write_report(run_dir, window=args.window)
        except RecordingError as error:
            raise UserError(str(error)) from None
        reports.append(report)
        if not args.quiet:
            print(f"{report.run.run_dir / 'report.html'} written in {time.perf_counter() - started:.1f} s")
    if not args.quiet:
        print_columns("society-env report", [report.name for report in reports], comparison_rows(reports),
                      overflow="fold")
    if len(reports) > 1:
        compare_dir = Path(args.compare_dir) if args.compare_dir else _common_parent([Path(r) for r in args.run_dirs])
        path = write_comparison(reports, compare_dir)
        if not args.quiet:
            print(f"comparison: {path}")
    return 0


def _common_parent(paths: list[Path]) -> Path:
    import os

    return Path(os.path.commonpath([str(path.resolve().parent) for path in paths]))


def print_columns(title: str, names: list[str], rows: list[tuple[str, list[str]]], **column_style: Any) -> None:
    """A table with one labelled row per number and one column per run or preset (``column_style`` goes to
    rich's ``add_column``, e.g. ``justify`` or ``overflow``)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    for name in names:
        table.add_column(name, **column_style)
    for label, values in rows:
        table.add_row(label, *values)
    Console().print(table)


def command_view(args: argparse.Namespace) -> int:
    from society_env.analysis.viewer import write_replay
    from society_env.recording import RecordingError

    try:
        path = write_replay(args.run_dir, args.out)
    except RecordingError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"cannot write {args.out or 'replay.html'}: {error.strerror or error}") from None
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB): open it in a browser; no network needed")
    return 0


def command_models(args: argparse.Namespace) -> int:
    from policies.models import DEFAULT_MODEL, ModelPullError, default_model_path, pull_default_model

    if args.action == "path":
        print(default_model_path())
        return 0
    try:
        path = pull_default_model()
    except ModelPullError as error:
        raise UserError(str(error)) from None
    print(f"{DEFAULT_MODEL.name} ({DEFAULT_MODEL.license}) verified at {path}")
    return 0


# ---------------------------------------------------------------------------------------------
def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """The LLM policy's options (``run`` and ``experiment``)."""
    llm = parser.add_argument_group("LLM agents (policy 'llm'; the language option is switched on automatically)")
    llm.add_argument("--model", default=None,
                     help="GGUF file (default: the embedded SmolLM2-135M-Instruct Q4_1, fetched on first use)")
    llm.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; 0 = greedy (default 0.7)")
    llm.add_argument("--n-ctx", type=int, default=None,
                     help="context tokens per agent (default 1024; 2048 in worlds with artifacts or history)")
    llm.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp (default: up to 4)")
    llm.add_argument("--n-gpu-layers", type=int, default=0, help="layers to offload to a GPU, if llama.cpp has one")
    llm.add_argument("--chat-format", default=None, help="chatml, plain or a Jinja template (default: the model's own)")
    llm.add_argument("--llm-batch", type=int, default=8, help="agents generated together in one llama.cpp batch (default 8)")
    llm.add_argument("--sequential", action="store_true", help="generate one agent at a time instead of batched")
    llm.add_argument("--max-tokens", type=int, default=None,
                     help="generation cap per answer (default: the longest answer the action grammar allows)")
    llm.add_argument("--history", type=int, default=None,
                     help="steps of history in the prompt (1 = current only; default: the preset's prompt_history)")
    llm.add_argument("--motivation", choices=list(PROMPT_MOTIVATIONS), default=None,
                     help="motivation in the system prompt (default: the preset's prompt_motivation)")
    llm.add_argument("--personality", action=argparse.BooleanOptionalAction, default=None,
                     help="describe personality traits in the prompt (default: the preset's prompt_personality)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="society-env",
        description="A society of agents on a grid world: run baselines, record, replay, report on and watch episodes.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run one episode and record it",
        description="Run one episode with the given policies and write a recording directory.",
        epilog="examples:\n  society-env run --preset small --policy forager=3,raider=3 --steps 100\n"
               "  society-env run --preset small --policy cooperator --render ansi --steps 30\n"
               "  society-env run --set width=30 --set food_distribution=uniform\n"
               "  society-env run --preset small --policy llm=4,forager=2 --steps 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--preset", default="small", choices=sorted(PRESETS), help="world preset (default: small)")
    run.add_argument("--policy", default="forager",
                     help="policy assignment as NAME=SHARE,...: shares of the founders per policy; newborns "
                          "inherit their parent's policy. Policies: random, forager, cooperator, raider "
                          "(a 'scripted:' prefix is accepted), llm. Default: forager")
    run.add_argument("--seed", type=int, default=0, help="the run's only seed (env and policies); default 0")
    run.add_argument("--steps", type=int, default=None, help="steps to run (default: the preset's max_steps)")
    run.add_argument("--out", default=None, help="output directory (default: runs/PRESET__POLICY__SEED__TIME)")
    run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a SocietyConfig field (repeatable), e.g. --set width=20")
    run.add_argument("--render", choices=["none", "ansi"], default="none", help="print the grid every step")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    add_llm_arguments(run)
    run.set_defaults(handler=command_run)

    from society_env.experiment import add_experiment_parser

    add_experiment_parser(commands)

    models = commands.add_parser("models", help="manage the embedded default model",
                                 description="Fetch the default GGUF model into the cache (done automatically on first use).")
    models.add_argument("action", choices=["pull", "path"], help="pull: download and verify; path: print where it is")
    models.set_defaults(handler=command_models)

    replay = commands.add_parser(
        "replay", help="replay a recording and check it reproduces exactly",
        description="Feed a recording's actions into a fresh env with the same config and seed, and check that "
                    "events and snapshots come out identical. Exit status 0 if identical, 1 if not.",
    )
    replay.add_argument("run_dir", help="a run directory written by 'society-env run'")
    replay.set_defaults(handler=command_replay)

    report = commands.add_parser(
        "report", help="analyse recordings: series, interaction graph, families, plots, report.html",
        description="Analyse one or more run directories (complete, or partial ones of killed runs) and write into "
                    "each: report.html (one page with the plots and a table of the numbers), report.json, "
                    "report-series.csv and report-*.png. Time series: population, food, births, deaths by cause, "
                    "energy given/taken, messages, artifacts alive; survival per policy; a signed interaction graph "
                    "(+0.5 per message heard, +0.1 per sighting, +-1 per energy unit given/taken, +10 parent-child, "
                    "+5 artifact handed over) with density, reciprocity, clustering and Louvain communities over the "
                    "whole run and in sliding windows; family trees. With several runs, also a side-by-side "
                    "comparison.html and comparison.png. Needs the analysis extra: pip install \"society-env[analysis]\".",
        epilog="examples:\n  society-env report runs/small__forager__0__20261123-120000\n"
               "  society-env report runs/* --compare-dir runs --window 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by 'society-env run'")
    report.add_argument("--window", type=int, default=None,
                        help="sliding window for the graph metrics, in steps (default: a fifth of the run); "
                             "windows advance by half their length")
    report.add_argument("--compare-dir", default=None,
                        help="where comparison.html goes when several runs are given (default: their common parent)")
    report.add_argument("--quiet", action="store_true", help="print nothing")
    report.set_defaults(handler=command_report)

    view = commands.add_parser(
        "view", help="write replay.html: watch a recording in the browser",
        description="Write a self-contained replay.html (data embedded, no network needed) into the run directory: "
                    "the grid with food and agents (coloured by family or policy, brighter = more energy), a timeline "
                    "slider, play/pause and speed, the step's messages and events, and an agent's energy, age, "
                    "personality, last action and message on click. Works on partial recordings of killed runs.",
        epilog="example:\n  society-env view runs/small__forager__0__20261123-120000 && xdg-open runs/small__forager__0__20261123-120000/replay.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    view.add_argument("run_dir", help="a run directory written by 'society-env run'")
    view.add_argument("--out", default=None, help="output file (default: RUN_DIR/replay.html)")
    view.set_defaults(handler=command_view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"society-env: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("society-env: interrupted; the recording so far is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
