"""The run machinery shared by ``society-env run`` and ``society-env experiment``: a run's config and
policies from the command line, recording a run with a progress bar, its summary, and replaying it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from society_env.app.errors import UserError
from society_env.app.spec import RunSpec
from society_env.app.options import add_options, check_bounds, fixed_on_resume


def default_run_dir(preset: str, policy: str, seed: int) -> Path:
    """CleanRL-style run directory name: ``runs/preset__policy__seed__time``."""
    policy_part = re.sub(r"[^A-Za-z0-9=.+-]+", "+", policy)
    return Path("runs") / f"{preset}__{policy_part}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def run_config(spec: RunSpec):
    """(policy entries, world config, prompt) of a run: the spec's preset plus its ``--set`` overrides
    (``prompt_*`` ones set the LLM prompt, :func:`policies.llm.prompt_config.world_and_prompt`, which also
    switches the language option on when LLM agents take part)."""
    from policies import POLICIES, PolicySpecError, parse_policy_spec
    from policies.llm.prompt_config import world_and_prompt

    try:
        check_bounds(spec)
        entries = parse_policy_spec(spec.policy, POLICIES)
        llm_agents = any(name == "llm" for name, _ in entries)
        return (entries, *world_and_prompt(spec.preset, spec.overrides, llm_agents))
    except (ValueError, PolicySpecError) as error:
        raise UserError(str(error)) from None


def record_run(spec: RunSpec, run_dir: Path, command: str = "run", resume=None, hooks=()) -> dict[str, Any]:
    """Run and record one episode as ``spec`` says into ``run_dir``; returns the run's summary. With
    ``spec.checkpoint_every`` K > 0 a
    checkpoint is written every K steps (:mod:`society_env.app.checkpoints`); ``resume`` (a
    ``RunCheckpoint`` of the recording in ``run_dir``) continues from it. ``hooks``
    (``policies.rollout.EpisodeHook``) follow the episode too, after the recorder and the progress bar."""
    from policies import PolicyAssignment
    from society_env.app.checkpoints import RunCheckpoint, remove_checkpoint, save_checkpoint
    from society_env.world.env import SocietyEnv
    from society_env.recording.files import remove_orphaned_temporaries
    from society_env.recording.format import RecordingError, RecordingWriter

    entries, config, prompt = run_config(spec)
    env = SocietyEnv(config, render_mode="ansi" if spec.render == "ansi" else None)
    assignment = PolicyAssignment(entries, config.num_founders)
    policies = {name: _build_policy(name, config, prompt, spec) for name, _ in entries}
    steps = config.max_steps if spec.steps is None else spec.steps
    meta = {
        "preset": spec.preset,
        "seed": spec.seed,
        "steps_requested": steps,
        "policy": spec.policy,
        "assignment": assignment.policy_of,
        "config": config.to_dict(),
        "command": command,
        "llm": spec.llm.record(prompt) if "llm" in policies else None,
    }
    try:
        if resume is None:
            recorder = RecordingWriter(run_dir, meta)
        else:
            remove_orphaned_temporaries(run_dir)
            recorder = RecordingWriter.reopen(run_dir, resume.recording)
    except RecordingError as error:
        raise UserError(str(error)) from None
    options = spec.saved()

    def checkpoint(state) -> None:
        save_checkpoint(run_dir, RunCheckpoint(options, state, recorder.sync()))

    try:
        stats = _run_with_progress(env, assignment, policies, spec.seed, steps, recorder, spec.render,
                                   spec.quiet, checkpoint_every=spec.checkpoint_every,
                                   on_checkpoint=checkpoint, resume=None if resume is None else resume.state,
                                   hooks=hooks)
    except (ValueError, RuntimeError) as error:  # a prompt outgrowing its context, a server that died: keep the recording
        from policies.llm.engine import ModelError
        from policies.llm.policy import LLMPolicyError

        if not isinstance(error, (LLMPolicyError, ModelError)):
            raise
        recorder.close()
        raise UserError(f"{error} (recording so far: {run_dir})") from None
    summary = stats.summary(assignment.policy_of)
    recorder.close(summary)
    remove_checkpoint(run_dir)
    return summary


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    """Where the recording is."""
    summary: dict[str, Any]
    """The run's summary (what summary.json holds)."""


def run(spec: RunSpec, hooks=()) -> RunResult:
    """Run ``spec`` as ``society-env run`` does: into a fresh ``spec.out`` (or ``runs/PRESET__POLICY__SEED__TIME``;
    an occupied one only with ``force``), or, with ``spec.resume``, continue that run from its checkpoint.
    ``hooks`` (``policies.rollout.EpisodeHook``) follow the episode. The programmatic entry: no command line."""
    from society_env.app.outputs import fresh_output

    if spec.resume:
        return RunResult(Path(spec.resume), resume_run(Path(spec.resume), spec.quiet, spec.render, hooks))
    run_dir = Path(spec.out) if spec.out else default_run_dir(spec.preset, spec.policy, spec.seed)
    with fresh_output(run_dir, spec.force) as writing_dir:
        summary = record_run(spec, writing_dir, hooks=hooks)
    return RunResult(run_dir, summary)


def refuse_options_with_resume(args: argparse.Namespace, *classes) -> None:
    """``--resume`` takes a run's options from its checkpoint: any option of ``classes`` (default: the
    run's, :class:`RunSpec` and the LLM's) given but not declared ``resumable`` would silently not
    apply, so it is an error."""
    from society_env.app.llm_options import LLMOptions

    given = fixed_on_resume(args, *(classes or (RunSpec, LLMOptions)))
    if given:
        raise UserError(f"--resume continues with the options the run was started with; do not give {', '.join(given)}")


def resume_run(run_dir: Path, quiet: bool = False, render: str = "none", hooks=()) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its checkpoint with the options it was started with; returns
    its summary."""
    from society_env.app.checkpoints import load_checkpoint
    from society_env.recording.format import Recording, RecordingError

    checkpoint = load_checkpoint(run_dir)
    try:
        Recording(run_dir)  # a damaged meta.json is refused before anything is printed or built
    except RecordingError as error:
        raise UserError(str(error)) from None
    spec = saved_spec(checkpoint.options, run_dir / "checkpoint.pkl", quiet=quiet, render=render)
    if not quiet:
        print(f"resuming {run_dir} from step {checkpoint.state.stats.steps}", file=sys.stderr)
    return record_run(spec, run_dir, resume=checkpoint, hooks=hooks)


def saved_spec(options: dict[str, Any], source: Path, **shown: Any) -> RunSpec:
    """The :class:`RunSpec` of options a checkpoint or experiment.json saved; a one-line error naming
    ``source`` if they do not make one."""
    try:
        return RunSpec.from_saved(options, **shown)
    except (TypeError, ValueError) as error:
        raise UserError(f"{source} holds run options this society-env cannot use ({error})") from None


def print_last_messages(run_dir: Path, count: int = 6) -> None:
    """What the society said last (from the recording), so a run ends with something to read."""
    from society_env.recording.format import Recording

    said = [e for e in Recording(run_dir).events() if e["type"] == "message" and e.get("text")]
    latest: dict[str, dict] = {}
    for event in said:  # the last message of each distinct text, most recent last
        latest.pop(event["text"], None)
        latest[event["text"]] = event
    if latest:
        print("last messages:")
        for event in list(latest.values())[-count:]:
            print(f"  step {event['step']:>4}  {event['agent']}: {event['text']}")


def _build_policy(name: str, config, prompt, spec: RunSpec):
    from policies import PolicySpecError, make_policy

    if name in ("ppo", "learned"):
        try:
            return make_policy(name, config, checkpoint=spec.ppo_checkpoint)
        except (ValueError, PolicySpecError) as error:
            raise UserError(str(error)) from None
    if name != "llm":
        return make_policy(name, config)
    from policies.llm.engine import ModelError
    from policies.llm.policy import LLMPolicyError
    from policies.llm.models import ModelPullError, PatchError

    try:
        check_bounds(spec.llm)
        return spec.llm.make_policy(config, prompt)
    except ImportError:
        raise UserError('the LLM policy needs llama-cpp-python: pip install "society-env[llm]"') from None
    except (ModelError, LLMPolicyError, ModelPullError, PatchError, ValueError) as error:
        raise UserError(str(error)) from None


def _run_with_progress(env, assignment, policies, seed, steps, recorder, render, quiet, checkpoint_every=0,
                       on_checkpoint=None, resume=None, hooks=()):
    from contextlib import ExitStack

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from policies.rollout import Checkpoints, EveryStep, RecordSteps, run_episode

    with ExitStack() as stack:
        if render == "ansi":
            screen = Console()
            display = EveryStep(lambda env, stats: screen.print(env.render(), markup=False, highlight=False))
        elif quiet:
            display = None
        else:
            columns = (TextColumn("step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[live]}"),
                       TimeElapsedColumn())
            progress = stack.enter_context(Progress(*columns, console=Console(stderr=True), transient=False))
            task = progress.add_task("run", total=steps, live="")

            def update(env, stats):
                live = f"alive {stats.population[-1]}  food {stats.food_tiles[-1]}  births {stats.births}"
                progress.update(task, completed=stats.steps, live=live)

            display = EveryStep(update)
        # the recording first: a checkpoint syncs the recording written so far
        every_step = [RecordSteps(recorder), *([display] if display else []), *hooks,
                      *([Checkpoints(checkpoint_every, on_checkpoint)] if checkpoint_every else [])]
        return run_episode(env, assignment, policies, seed, steps, every_step, resume)


def print_summary(summary: dict[str, Any], run_dir: Path | None = None) -> None:
    from society_env.app.console import table_console
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
    console = table_console()
    console.print(table)
    if run_dir is not None:
        console.print(f"recording: {run_dir}", markup=False, highlight=False)


def replay_recording(run_dir: str | Path) -> dict[str, Any]:
    """Re-run a recording's actions in a fresh env; compare events and snapshots line by line."""
    from policies.replay import ReplayAssignment, ReplayedWorld, ReplayPolicy
    from policies.rollout import run_episode
    from society_env.world.env import SocietyEnv
    from society_env.world.outcome import WORLD_EVENTS
    from society_env.recording.format import Recording

    recording = Recording(run_dir)
    recorded_world = recording.meta.get("world", "society_v1")  # recordings before v2 did not say
    if recorded_world != SocietyEnv.metadata["name"]:
        raise UserError(f"{run_dir} was recorded with {recorded_world}; this is {SocietyEnv.metadata['name']}, whose "
                        "random draws differ, so its actions cannot be replayed into the same world (report and "
                        "view still read it)")
    config = recording.config
    env = SocietyEnv(config)
    policy = ReplayPolicy(config, recording)
    replayed = ReplayedWorld()
    try:
        run_episode(env, ReplayAssignment(recording), {ReplayPolicy.name: policy}, recording.meta["seed"],
                    policy.recorded_steps, [replayed])
    except (ValueError, KeyError, TypeError) as error:  # an action line that is not one this world can take
        raise UserError(f"{Path(run_dir) / 'actions.jsonl'}, step {policy.step - 1}: cannot replay the recorded "
                        f"actions ({error})") from None
    events, snapshots = replayed.events, replayed.snapshots

    recorded_events = [e for e in recording.events() if e["type"] in WORLD_EVENTS]
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


def print_columns(title: str, names: list[str], rows: list[tuple[str, list[str]]], **column_style: Any) -> None:
    """A table with one labelled row per number and one column per run or preset (``column_style`` goes to
    rich's ``add_column``, e.g. ``justify`` or ``overflow``)."""
    from society_env.app.console import table_console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    for name in names:
        table.add_column(name, **column_style)
    for label, values in rows:
        table.add_row(label, *values)
    table_console().print(table)


def add_run_options(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None,
                    changes: dict[str, dict[str, Any]] | None = None) -> None:
    """The flags of :class:`RunSpec` (those named in ``only``, with the metadata ``changes`` per field,
    e.g. another help) and of the LLM policy (:class:`society_env.app.llm_options.LLMOptions`) on ``parser``."""
    from society_env.app.llm_options import LLMOptions

    groups = {"run": parser, "output": parser.add_argument_group("output and checkpoints"),
              "LLM": parser.add_argument_group("LLM agents (policy 'llm'; the language option is switched on automatically)")}
    changes = {"resume": {"help": RunSpec.resume_help()}, **(changes or {})}
    add_options(groups, RunSpec, only=only, changes=changes)
    add_options(groups, LLMOptions)
