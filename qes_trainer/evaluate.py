"""``qes-eval``: compare a base and one or more trained GGUF models on held-out episodes.

All models play the same episodes (seeds ``SEED .. SEED + EPISODES - 1``; training draws its episode
seeds from a hash of (run seed, generation), so small consecutive seeds are held out in practice) with
the same co-players and sampling seeds. The report gives each model's mean fitness with its standard
error, the paired difference (model - base) with its standard error, which is the number to look at
(pairing by episode removes the episodes' own variance), and what the LLM agents did: food eaten per
agent-step, the share of agent-steps with food in view that moved towards the nearest food, the share
of stays, the mean lifespan, and births, gives and takes per episode. With ``--estimator
rao_blackwell`` every episode is still sampled; the report gives both its Rao-Blackwellised return
and its plain sampled return, each with its paired difference.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qes_trainer.fitness import (
    HELDOUT_SEED,
    FitnessEvaluator,
    FitnessSettings,
    behaviour_summary,
    mean_and_standard_error,
)
from society_env.app.llm_options import LLMOptions
from qes_trainer.train import TrainConfig
from society_env.app.options import add_options, check_bounds, given_options, same_option

__all__ = ["evaluate_models", "main"]


def _evaluate_one(model: str | Path | None, settings: FitnessSettings, seeds: Sequence[int], threads: int | None,
                  batch_size: int) -> tuple[Path, list]:
    """One model's episode results (in this process or a worker process: everything here is picklable)."""
    from policies.llm.engine import LlamaEngine
    from policies.llm.models import resolve_model

    path = resolve_model(model)
    engine = LlamaEngine(path, n_ctx=settings.context_tokens(), max_batch=batch_size, n_threads=threads)
    try:
        return path, FitnessEvaluator(settings, engine).evaluate(seeds)
    finally:
        engine.close()


def evaluate_models(models: dict[str, str | Path | None], settings: FitnessSettings, seeds: Sequence[int],
                    threads: int | None = None, batch_size: int = 8, jobs: int = 1) -> dict[str, Any]:
    """Fitness of each model (label -> GGUF path, None = default model) on ``seeds``, plus paired differences
    against the first model and (sampled episodes) the behaviour rates of :func:`behaviour_summary`.
    ``jobs`` > 1 evaluates that many models at once, each in its own process (same results: every model
    plays the same seeds whatever runs beside it)."""
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(jobs, len(models)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {label: pool.submit(_evaluate_one, model, settings, list(seeds), threads, batch_size)
                       for label, model in models.items()}
            outcomes = {label: future.result() for label, future in futures.items()}
    else:
        outcomes = {label: _evaluate_one(model, settings, seeds, threads, batch_size) for label, model in models.items()}

    per_episode: dict[str, list[float]] = {}
    sampled: dict[str, list[float]] = {}
    report: dict[str, Any] = {"seeds": list(seeds), "settings": dataclasses.asdict(settings),
                              "models": {}}
    for label, (path, results) in outcomes.items():
        per_episode[label] = [r.fitness for r in results]
        mean, error = mean_and_standard_error(per_episode[label])
        report["models"][label] = {"model": str(path), "fitness_mean": mean, "fitness_standard_error": error,
                                   "per_episode": per_episode[label],
                                   "llm_failures": sum(r.failures for r in results)}
        if settings.estimator == "rao_blackwell":  # the same sampled episodes' plain returns, side by side
            sampled[label] = [r.sampled_fitness for r in results]
            mean, error = mean_and_standard_error(sampled[label])
            report["models"][label].update(sampled_mean=mean, sampled_standard_error=error,
                                           sampled_per_episode=sampled[label])
        if settings.estimator != "expected":
            report["models"][label]["behaviour"] = behaviour_summary(results)
    reference = next(iter(per_episode))
    for label in list(per_episode)[1:]:
        difference = np.subtract(per_episode[label], per_episode[reference])
        mean, error = mean_and_standard_error(difference)
        report["models"][label][f"difference_vs_{reference}"] = {"mean": mean, "standard_error": error}
        if label in sampled:
            mean, error = mean_and_standard_error(np.subtract(sampled[label], sampled[reference]))
            report["models"][label][f"sampled_difference_vs_{reference}"] = {"mean": mean, "standard_error": error}
    return report


def _model_argument(text: str) -> tuple[str, str]:
    """``LABEL=PATH`` or ``PATH`` (labelled by its run directory, e.g. runs/forage-full/model.gguf -> forage-full;
    a single unlabelled model is ``trained``)."""
    label, separator, path = text.partition("=")
    if not separator:
        path = text
        label = Path(text).parent.name if Path(text).name == "model.gguf" and Path(text).parent.name else Path(text).stem
    return label, path


def _built_tuned_models(models: dict[str, str | None]) -> dict[str, str | None]:
    """Models named as tuned models of ``society-env models`` (e.g. ``smollm2-society``) stand for their built
    GGUF (built here once, not in each ``--jobs`` worker); a missing patch is a one-line PatchError."""
    from policies.llm.models import is_tuned_model, resolve_model

    return {label: str(resolve_model(model)) if is_tuned_model(model) else model for label, model in models.items()}


@dataclass(frozen=True)
class EvalOptions:
    """qes-eval's own options, declared as qes-train's (same default and bound)."""

    eval_episodes: int = same_option(TrainConfig, "eval_episodes", flag="--episodes", aliases=("--eval-episodes",),
                                     help="held-out episodes per model (seeds SEED, SEED+1, ...; qes-train's "
                                          "--eval-episodes)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qes-eval", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__,
        epilog="examples:\n  qes-eval --trained runs/qes-demo/model.gguf --episodes 8 --out runs/qes-demo/eval.json\n"
               "  qes-eval --preset forage --policy llm=2 --steps 8 --episodes 32 \\\n"
               "      --trained full=runs/forage-full/model.gguf none=runs/forage-none/model.gguf\n"
               "  qes-eval --trained smollm2-society --episodes 8   # a tuned model of society-env models")
    parser.add_argument("--trained", required=True, nargs="+", metavar="[LABEL=]PATH",
                        help="one or more trained GGUFs (e.g. RUN_DIR/model.gguf) or tuned model names (society-env "
                             "models), each compared with the base")
    parser.add_argument("--base", default=None, help="the base GGUF or tuned model name (default: the embedded "
                        "default model)")
    add_options({"episodes": parser}, EvalOptions)
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED, help=f"first held-out episode seed (default {HELDOUT_SEED})")
    # the episodes' settings are qes-train's own options (the LLM prompt is the preset's, as for both)
    add_options({"episodes": parser, "LLM": parser}, FitnessSettings,
                only=("preset", "policy", "overrides", "max_steps", "estimator", "n_ctx", "temperature"))
    add_options({"LLM": parser}, LLMOptions, only=("threads",))
    parser.add_argument("--jobs", type=int, default=1, help="models evaluated at once, each in its own process with "
                        "--threads threads (default 1: one after the other)")
    parser.add_argument("--out", help="also write the report as JSON to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from society_env.app.console import table_console
    from rich.table import Table

    from policies.llm.engine import ModelError
    from society_env.recording.files import unwritable, write_json_atomic

    problem = None if not args.out else unwritable(args.out) or (
        None if Path(args.out).parent.is_dir() else f"{Path(args.out).parent} does not exist")
    if problem is not None:  # refused before any model is built or evaluated
        print(f"qes-eval: error: cannot write --out {args.out}: {problem}", file=sys.stderr)
        return 2
    try:
        options = EvalOptions(**given_options(args, EvalOptions))
        check_bounds(options)
        settings = FitnessSettings(**{**given_options(args, FitnessSettings), "episodes": options.eval_episodes})
        check_bounds(settings)
        check_bounds(LLMOptions(threads=args.threads))
    except ValueError as error:
        print(f"qes-eval: error: {error}", file=sys.stderr)
        return 2
    seeds = list(range(args.seed, args.seed + options.eval_episodes))
    models: dict[str, str | None] = {"base": args.base}
    for text in args.trained:
        label, path = _model_argument(text)
        if len(args.trained) == 1 and "=" not in text:
            label = "trained"
        if label in models:
            print(f"qes-eval: error: two models are labelled {label!r}; name them LABEL=PATH", file=sys.stderr)
            return 2
        models[label] = path
    try:
        models = _built_tuned_models(models)
        report = evaluate_models(models, settings, seeds, threads=args.threads, jobs=max(args.jobs, 1))
    except (ValueError, ModelError, OSError) as error:
        print(f"qes-eval: error: {error}", file=sys.stderr)
        return 2
    table = Table(title=f"held-out fitness over {options.eval_episodes} episodes (seeds {seeds[0]}..{seeds[-1]})")
    columns = ["model", "fitness (mean ± SE)", "model - base (paired)", "LLM failures"]
    rao_blackwell = settings.estimator == "rao_blackwell"
    if rao_blackwell:
        columns[1:3] = ["Rao-Blackwellised (mean ± SE)", "model - base (paired)", "sampled (mean ± SE)",
                        "sampled: model - base"]
    if settings.estimator != "expected":
        columns += ["food / agent-step", "towards food", "stays", "lifespan", "births", "gives", "takes"]
    for column in columns:
        table.add_column(column)
    for label, numbers in report["models"].items():
        difference = numbers.get("difference_vs_base")
        row = [f"{label}: {Path(numbers['model']).name}", f"{numbers['fitness_mean']:.3f} ± {numbers['fitness_standard_error']:.3f}",
               f"{difference['mean']:+.3f} ± {difference['standard_error']:.3f}" if difference else ""]
        if rao_blackwell:
            plain = numbers.get("sampled_difference_vs_base")
            row += [f"{numbers['sampled_mean']:.3f} ± {numbers['sampled_standard_error']:.3f}",
                    f"{plain['mean']:+.3f} ± {plain['standard_error']:.3f}" if plain else ""]
        row.append(str(numbers["llm_failures"]))
        if "behaviour" in numbers:
            behaviour = numbers["behaviour"]
            row += [f"{behaviour['food_per_agent_step']:.3f}", f"{behaviour['towards_food_share']:.1%}",
                    f"{behaviour['stay_share']:.1%}", f"{behaviour['mean_lifespan']:.1f}",
                    f"{behaviour['births_per_episode']:.2f}", f"{behaviour['gives_per_episode']:.2f}",
                    f"{behaviour['takes_per_episode']:.2f}"]
        table.add_row(*row)
    table_console().print(table)
    if args.out:
        write_json_atomic(Path(args.out), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
