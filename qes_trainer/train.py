"""``qes-train``: fine-tune a quantized GGUF model for the society world with QES.

Reads top to bottom (CleanRL style): hyperparameters in :class:`TrainConfig`, then :func:`train`:

1. resolve the base model (default: the embedded SmolLM2-135M-Instruct) and copy it to a private
   working file in the run directory (the user's file is never written);
2. open the copy's trainable codes writable (:class:`~qes_trainer.live_model.LiveModel`) and load the same
   file into llama.cpp with CPU repacking off, so code edits are what the model computes with;
3. per generation: every member ``(pair, sign)`` perturbs the codes in place, plays the generation's
   episodes (the same seeds for every member: common random numbers), and restores the codes exactly;
   the QES update (pair-difference z-scores, error feedback) is written into the file;
4. after every generation: an atomic checkpoint (sparse code diff from the base model, optimizer
   residual, metrics), the metrics files and the fitness plot; at the end the trained model is exported
   as ``model.gguf``, which the LLM policy loads like any GGUF (``society-env run --model ...``).

``--resume DIR`` rebuilds the working file from the base model and the checkpoint's diff and continues
with the next generation; the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qes_trainer.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from qes_trainer.fitness import (
    ESTIMATORS,
    HELDOUT_SEED,
    FitnessEvaluator,
    FitnessSettings,
    episode_seeds,
    mean_and_standard_error,
)
from qes_trainer.live_model import LiveModel
from qes_trainer.metrics import write_metrics
from policies.llm.patch import write_patch
from society_env.app.llm_options import LLMOptions
from society_env.app.options import (
    add_options,
    check_bounds,
    fixed_on_resume,
    given_options,
    option,
    resumable_flags,
    same_option,
)
from qes_trainer.population import MemberOutcome, generation_members
from qes_trainer.qes import QESOptimizer, SparseDelta
from society_env.recording.files import remove_orphaned_temporaries

__all__ = ["TrainConfig", "train", "main", "published_settings"]

WORKING_MODEL = "working-model.gguf"
TRAINED_MODEL = "model.gguf"
TRAINED_PATCH = "model.qespatch"
FOUR_BIT = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"}


@dataclass
class TrainConfig:
    """Every setting of a training run (saved in its checkpoint; ``--resume`` reuses it). Each field made
    with :func:`~society_env.app.options.option` is also a ``qes-train`` option, declared only here."""

    model: str | None = option(None, "GGUF file to fine-tune; never modified", group="QES", type=str,
                               default_text="the embedded SmolLM2-135M-Instruct Q4_1")
    generations: int = option(10, "generations to run in total (on --resume: the new total)", group="run",
                              minimum=1, resumable=True)
    pairs: int = option(4, "mirrored pairs per generation, population 2 x PAIRS (the paper uses 25)", group="QES",
                        minimum=2, note="fitness is z-scored across pairs, so one pair learns nothing")
    sigma: float | None = option(None, "noise scale in code units", group="QES", type=float,
                                 default_text="the paper's: 0.01 for 4-6 bit codes, 0.001 for Q8_0")
    alpha: float | None = option(None, "learning rate", group="QES", type=float,
                                 default_text="the paper's: 5e-4 for 4-6 bit codes, 1e-4 for Q8_0")
    gamma: float = option(0.9, "residual decay", group="QES", minimum=0)
    residual: str = option("full", "error feedback: full fp16 residual per code, seed replay, or none",
                           group="QES", choices=("full", "replay", "none"))
    window: int = option(50, "seed-replay window in generations", group="QES", minimum=1)
    seed: int = option(0, "the run's only seed: noise and episode seeds derive from it and the generation", group="run")
    threads: int | None = same_option(LLMOptions, "threads", help="llama.cpp threads; part of the run, since it "
                                      "can change the last bits")
    batch_size: int = same_option(LLMOptions, "batch_size")
    fitness: FitnessSettings = field(default_factory=FitnessSettings)
    tensors: str | None = option(None, "train only the trainable tensors whose names match one of these glob "
                                 "patterns, e.g. 'blk.2[4-9].*' for the last six blocks of a 30-block model",
                                 group="QES", type=str, metavar="GLOB[,GLOB...]",
                                 default_text="all 2-D attention/MLP block weights")
    eval_every: int = option(0, "evaluate the current model on held-out episodes every G generations and after the "
                             "last, logged as heldout_* and plotted; 0 = never", group="episodes", metavar="G", minimum=0)
    eval_episodes: int = option(32, "held-out episodes of that evaluation (seeds 10000, 10001, ..., as qes-eval)",
                                group="episodes", minimum=2, note="a standard error needs two")
    eval_estimator: str = option("expected", "estimator of the held-out evaluation (expected: exact, so progress "
                                 "shows without episode noise)", group="episodes", choices=ESTIMATORS)
    workers: int = option(0, "evaluate the population on N Ray workers, each with its own model copy (a local Ray "
                          "is started unless --ray-address is given); 0 = in this process. Same result", group="ray",
                          minimum=0, resumable=True)
    ray_address: str | None = option(None, "an existing Ray cluster (e.g. auto or HEAD_IP:6379); without --workers: "
                                     "one worker per THREADS cluster CPUs", group="ray", type=str, metavar="ADDR",
                                     default_text="none", resumable=True)
    member_timeout: float | None = option(None, "replace a Ray worker that has not finished a member after SECONDS "
                                          "and re-queue the member", group="ray", type=float, metavar="SECONDS",
                                          default_text="none", resumable=True)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fitness"]["overrides"] = list(self.fitness.overrides)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return cls(**{**data, "fitness": FitnessSettings.from_dict(data["fitness"])})


RESUMED_META = {"config": dict, "base_sha256": str, "generation": int, "metrics": list}
"""What a resume reads of the ``meta`` that :func:`train` saves in its checkpoints."""


def _saved_config(meta: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The training configuration a checkpoint holds; CheckpointError naming it if that (or another part
    of :data:`RESUMED_META`) is missing or does not load."""
    path = Path(run_dir) / CHECKPOINT_NAME
    wrong = [key for key, kind in RESUMED_META.items() if not isinstance(meta.get(key), kind)]
    if wrong:
        raise CheckpointError(f"{path} is a truncated or inconsistent checkpoint ({wrong[0]!r} missing or of the "
                              "wrong kind): it cannot be resumed")
    try:
        return TrainConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} holds a training configuration this qes-train "
                              f"cannot use ({type(error).__name__}: {error}): it cannot be resumed") from None


def published_settings(tensor_types: Sequence[str]) -> tuple[float, float]:
    """(sigma, alpha) from the QES paper: INT4 0.01 / 5e-4 for <= 6-bit codes, INT8 0.001 / 1e-4 for Q8_0."""
    if any(name in FOUR_BIT for name in tensor_types):
        return 0.01, 5e-4
    return 0.001, 1e-4


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_member: Callable[[MemberOutcome], None] | None = None,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Run (or, with ``resume``, continue) QES training in ``run_dir``; returns the trained GGUF's path."""
    from policies.llm.models import resolve_model, sha256_of
    from qes_trainer.population import LocalPopulation

    distributed = bool(config.workers or config.ray_address)
    if distributed:
        from qes_trainer.distributed import RayPopulation, require_ray

        require_ray()  # before any file is written
    run_dir = Path(run_dir)
    rows: list[dict[str, Any]] = []
    checkpoint = None
    if resume:
        meta, diff, optimizer_state = checkpoint = load_checkpoint(run_dir)
        saved = _saved_config(meta, run_dir)
        remove_orphaned_temporaries(run_dir)  # half-written files of the killed run (a checkpoint, a model copy)
        config = dataclasses.replace(saved, generations=config.generations, workers=config.workers,  # only these
                                     ray_address=config.ray_address, member_timeout=config.member_timeout)  # may change
        rows = meta["metrics"]
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        if (run_dir / "checkpoint.npz").exists():
            raise CheckpointError(f"{run_dir} already holds a training run: use --resume {run_dir} or another --out")

    # 1. the base model and its private working copy
    base_model = resolve_model(config.model)
    base_sha256 = sha256_of(base_model)
    if checkpoint is not None and checkpoint[0]["base_sha256"] != base_sha256:
        raise CheckpointError(f"the base model {base_model} changed since the checkpoint was written "
                              f"(SHA-256 {base_sha256[:12]}..., checkpoint has {checkpoint[0]['base_sha256'][:12]}...)")
    live = LiveModel.create(base_model, run_dir / WORKING_MODEL, config.tensors)
    types = sorted({t.tensor_type.name for t in live.trainable.values()})
    default_sigma, default_alpha = published_settings(types)
    sigma = default_sigma if config.sigma is None else config.sigma
    alpha = default_alpha if config.alpha is None else config.alpha

    # 2. the optimizer (resumed: codes from the checkpoint's diff, then its residual) and the live model
    optimizer = QESOptimizer(live.specs(), sigma=sigma, alpha=alpha, gamma=config.gamma,
                             residual=config.residual, window=config.window, seed=config.seed)
    trained_diff = {name: SparseDelta(np.empty(0, np.int64), np.empty(0, np.int16), spec.size)  # codes - base codes
                    for name, spec in live.specs().items()}
    if checkpoint is not None:
        trained_diff = diff
        _, gated = live.apply(diff)
        if gated:
            raise CheckpointError(f"the checkpoint's code diff does not fit {base_model} ({gated} codes out of range)")
        optimizer.load_state_dict(optimizer_state)
    if distributed:  # one model copy per Ray worker, brought to the current codes from the base and the diff
        population = RayPopulation(base_model, trained_diff, optimizer, config.fitness, batch_size=config.batch_size,
                                   threads=config.threads, workers=config.workers, address=config.ray_address,
                                   member_timeout=config.member_timeout, tensors=config.tensors)
    else:
        population = LocalPopulation(live, optimizer, config.fitness, batch_size=config.batch_size, threads=config.threads)

    # held-out evaluation of the current (unperturbed) model, on seeds training never draws
    heldout = _heldout_evaluator(config, population, live) if config.eval_every else None
    pending: dict[str, Any] = {}
    if heldout is not None:
        if checkpoint is None:  # a fresh run: the base model, before any update
            pending = _heldout_row(heldout, prefix="heldout_base")
        else:  # None for runs saved before gains were logged: then no gains are logged
            heldout.base = checkpoint[0].get("heldout_base_per_episode")

    # 3. generations: evaluate every member on the same episodes, then update the codes
    members = generation_members(config.pairs)
    for generation in range(optimizer.generation, config.generations):
        seeds = episode_seeds(config.seed, generation, config.fitness.episodes)
        outcomes = {(o.pair, o.sign): o for o in population.evaluate(generation, members, seeds, on_member)}
        if set(outcomes) != set(members):  # never update from a partial population
            raise RuntimeError(f"generation {generation}: {len(members) - len(outcomes)} member(s) were not evaluated")
        pair_returns = [(outcomes[(pair, 1)].fitness, outcomes[(pair, -1)].fitness) for pair in range(config.pairs)]
        fitnesses = [outcome.fitness for outcome in outcomes.values()]
        noise_entries = sum(o.noise_entries for o in outcomes.values())

        started = time.perf_counter()
        stats = optimizer.update(live.codes(), generation, pair_returns)
        _, gated = live.apply(stats.applied)
        assert gated == 0, "the optimizer gated the update against the file's own codes"
        population.apply_update(stats.applied)
        trained_diff = {name: delta + stats.applied[name] if name in stats.applied else delta
                        for name, delta in trained_diff.items()}
        seconds_update = time.perf_counter() - started

        rows.append({
            "generation": generation,
            "fitness_mean": float(np.mean(fitnesses)),
            "fitness_max": float(np.max(fitnesses)),
            "fitness_min": float(np.min(fitnesses)),
            "fitness_std": float(np.std(fitnesses)),
            "update_ratio": stats.update_ratio,
            "codes_changed": stats.changed,
            "perturbation_boundary_ratio": sum(o.noise_gated for o in outcomes.values()) / max(noise_entries, 1),
            "update_boundary_hits": stats.boundary_hits,
            "llm_failures": sum(o.llm_failures for o in outcomes.values()),
            "seconds_evaluation": round(sum(o.seconds_evaluation for o in outcomes.values()), 3),
            "seconds_perturbation": round(sum(o.seconds_perturbation for o in outcomes.values()), 4),
            "seconds_update": round(seconds_update, 3),
            "sigma": optimizer.sigma,
            "alpha": optimizer.alpha,
            "members": len(members),
            **population.generation_stats(),
            **pending,
        })
        pending = {}
        if heldout is not None and ((generation + 1) % config.eval_every == 0 or generation + 1 == config.generations):
            rows[-1].update(_heldout_row(heldout, prefix="heldout"))
        # 4. checkpoint (atomic), then the metrics files rebuilt from the rows it holds
        meta = {"config": config.to_dict(), "base_model": str(base_model), "base_sha256": base_sha256,
                "generation": generation + 1, "metrics": rows, "tensor_types": types}
        if heldout is not None and heldout.base is not None:
            meta["heldout_base_per_episode"] = heldout.base
        save_checkpoint(run_dir, meta, trained_diff, optimizer.state_dict(copy=False))
        write_metrics(run_dir, rows)
        if on_generation is not None:
            on_generation(rows[-1])

    trained = run_dir / TRAINED_MODEL
    live.export(trained)
    # the same model as a small patch of the base (policies.llm.patch): what a tuned model ships as
    write_patch(run_dir / TRAINED_PATCH, base_model, trained_diff, trained,
                meta={"config": config.to_dict(), "generations": optimizer.generation})
    if heldout is not None and heldout.engine is not getattr(population, "engine", None):
        heldout.engine.close()
    population.close()
    live.close()
    (run_dir / WORKING_MODEL).unlink(missing_ok=True)
    return trained


RECIPES: dict[str, dict[str, Any]] = {
    # Fine-tune the default model to forage (docs/training.md, "A measured result"): two LLM agents in the
    # forage preset, the exact expected return of their first decision on 8 episodes per member, 4 pairs,
    # only the last two of the 30 blocks (7.1M codes) with dense noise (sigma 0.2: ~15% of them per member)
    # and alpha / sigma = 0.15, so a code moves only where several generations' evidence agrees (error
    # feedback); a held-out check every 4 generations.
    "forage": {"preset": "forage", "policy": "llm=2", "estimator": "expected", "episodes": 8, "pairs": 4,
               "generations": 16, "tensors": "blk.2[89].*", "sigma": 0.2, "alpha": 0.03, "eval_every": 4,
               "eval_episodes": 32},
    # The same task with the nearest food named in compass words in the view (preset forage_hint), and
    # only the two matrices of the last block that write into the residual stream (1.2M codes).
    "forage_hint": {"preset": "forage_hint", "policy": "llm=2", "estimator": "expected", "episodes": 8,
                    "pairs": 4, "generations": 24, "tensors": "blk.29.ffn_down*,blk.29.attn_output*",
                    "sigma": 0.2, "alpha": 0.03, "eval_every": 4, "eval_episodes": 32},
    # The default agent in the society world (docs/training.md, "The society recipe"): the small world
    # with the full action set and messages, two LLM agents beside two scripted cooperators (4 founders,
    # so a member costs 2 episodes x 8 steps x 2 LLM agent-steps), the Rao-Blackwellised episode return
    # as fitness, and forage_hint's tensors and step sizes; a held-out check every 4 generations.
    "society": {"preset": "small", "policy": "llm=2,cooperator=2", "overrides": ["num_founders=4"],
                "estimator": "rao_blackwell", "episodes": 2, "max_steps": 8, "pairs": 4, "generations": 8,
                "tensors": "blk.29.ffn_down*,blk.29.attn_output*", "sigma": 0.2, "alpha": 0.03,
                "eval_every": 4, "eval_episodes": 8, "eval_estimator": "rao_blackwell", "threads": 1},
}
"""Named sets of options (``qes-train --recipe NAME``); options given explicitly win."""

class _HeldOut:
    def __init__(self, evaluator, engine, seeds):
        self.evaluator, self.engine, self.seeds = evaluator, engine, seeds
        self.base: list[float] | None = None
        """The base model's fitness per held-out episode: gains are paired with it."""


def _heldout_evaluator(config: TrainConfig, population, live: LiveModel) -> _HeldOut:
    """An evaluator of the model the trainer's working file holds now (the population's own engine when
    it evaluates in this process; else an engine of its own on the driver's working copy)."""
    from policies.llm.engine import LlamaEngine

    settings = dataclasses.replace(config.fitness, estimator=config.eval_estimator)
    engine = getattr(population, "engine", None)
    if engine is None:
        engine = LlamaEngine(live.path, n_ctx=settings.context_tokens(), max_batch=config.batch_size,
                             n_threads=config.threads, use_extra_bufts=False)
    seeds = list(range(HELDOUT_SEED, HELDOUT_SEED + config.eval_episodes))
    return _HeldOut(FitnessEvaluator(settings, engine), engine, seeds)


def _heldout_row(heldout: _HeldOut, prefix: str) -> dict[str, float]:
    started = time.perf_counter()
    values = [r.fitness for r in heldout.evaluator.evaluate(heldout.seeds)]
    mean, error = mean_and_standard_error(values)
    row = {f"{prefix}_fitness": mean, f"{prefix}_standard_error": error}
    if prefix == "heldout_base":
        heldout.base = values
    elif heldout.base is not None:  # paired by episode: the number that tells progress from the episodes' own variance
        row["heldout_gain"], row["heldout_gain_standard_error"] = mean_and_standard_error(np.subtract(values, heldout.base))
    row[f"seconds_{prefix}"] = round(time.perf_counter() - started, 3)
    return row


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
HELP = """Fine-tune a quantized GGUF model for the society world with Quantized Evolution Strategies.

Every generation evaluates 2 x PAIRS perturbed copies of the model's integer codes (mirrored pairs) on the
same EPISODES episodes (common random numbers) and moves the codes along the shaped fitness differences,
with error feedback. Fitness is the mean episode return of the LLM-driven agents. The model stays a GGUF
throughout; the trained model is written to OUT/model.gguf and loads with `society-env run --model`.

Files in OUT: checkpoint.npz (after every generation, atomic), metrics.jsonl / metrics.csv, fitness.png,
model.gguf and model.qespatch (at the end: the trained model, and the same as a small code diff against the
base model, with the base's SHA-256 and the recipe). Kill the run at any time and continue it with `qes-train --resume OUT`."""

EXAMPLES = """examples:
  qes-train --generations 5 --pairs 4 --out runs/qes-demo
  qes-train --resume runs/qes-demo --generations 10     # continue (and extend) a run
  qes-eval --trained runs/qes-demo/model.gguf --episodes 8
see docs/training.md for every option and metric."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qes-train", description=HELP, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {"run": parser.add_argument_group("run"), "QES": parser.add_argument_group("QES"),
              "episodes": parser.add_argument_group("fitness episodes"), "LLM": parser.add_argument_group("LLM"),
              "ray": parser.add_argument_group('distributed (Ray; pip install "society-env[distributed]"; '
                                               "docs/distributed.md)")}
    run = groups["run"]
    run.add_argument("--recipe", choices=sorted(RECIPES), help="a named set of options, e.g. 'forage': the measured "
                     "fine-tuning recipe of docs/training.md (options given explicitly win)")
    run.add_argument("--out", help="run directory (default: runs/qes__PRESET__SEED__TIME)")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint, with its saved "
                     f"settings (only {', '.join(RESUMABLE)} may be given: the total, and where members are evaluated)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_options(groups, TrainConfig)
    add_options(groups, FitnessSettings)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A fresh run's config: the given options over the recipe's (if any) over the defaults."""
    if args.recipe:
        for name, value in RECIPES[args.recipe].items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    config = TrainConfig(**given_options(args, TrainConfig), fitness=FitnessSettings(**given_options(args, FitnessSettings)))
    check_bounds(config)
    check_bounds(config.fitness)
    config.fitness.world_config()  # a bad --set is a one-line error before anything is written
    _check_distribution_options(config)
    return config


def _check_distribution_options(config: TrainConfig) -> None:
    if config.member_timeout is not None and not config.member_timeout > 0:
        raise ValueError(f"--member-timeout must be positive (got {config.member_timeout})")


def _check_resume_options(args: argparse.Namespace) -> None:
    fixed = fixed_on_resume(args, TrainConfig, FitnessSettings) + [f"--{name}" for name in ("out", "recipe")
                                                                   if getattr(args, name) is not None]
    if fixed:
        raise ValueError(f"--resume continues a run with its saved settings; only {', '.join(RESUMABLE)} may be given "
                         f"(got {', '.join(fixed)})")


RESUMABLE = resumable_flags(TrainConfig, FitnessSettings) + ["--quiet"]
"""What ``qes-train --resume`` may be given (from the options' declarations; --quiet only shows)."""


def _progress_callbacks(config: TrainConfig, start_generation: int, quiet: bool):
    """A rich progress bar over all members of all generations, showing the latest fitness."""
    if quiet:
        return None, None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    members = 2 * config.pairs
    progress = Progress(TextColumn("gen {task.fields[generation]}"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[live]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True))
    task = progress.add_task("train", total=(config.generations - start_generation) * members,
                             completed=0, generation=start_generation, live="")
    last: dict[str, str] = {"generation": ""}

    def on_member(result: MemberOutcome) -> None:
        sign = "+" if result.sign > 0 else "-"
        progress.update(task, advance=1, generation=result.generation,
                        live=f"member {sign}{result.pair} fitness {result.fitness:.2f}{last['generation']}")

    def on_generation(row: dict[str, Any]) -> None:
        last["generation"] = (f" | gen {row['generation']}: mean {row['fitness_mean']:.2f} "
                              f"max {row['fitness_max']:.2f} changed {row['codes_changed']}")
        progress.console.print(f"generation {row['generation']}: fitness mean {row['fitness_mean']:.3f} "
                               f"[{row['fitness_min']:.3f}, {row['fitness_max']:.3f}]  codes changed {row['codes_changed']} "
                               f"({row['update_ratio']:.2e})  eval {row['seconds_evaluation']:.1f}s  "
                               f"perturb {row['seconds_perturbation']:.2f}s  update {row['seconds_update']:.2f}s",
                               markup=False, highlight=False)

    return progress, on_member, on_generation


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.resume:
            _check_resume_options(args)
            run_dir = Path(args.resume)
            meta = load_checkpoint(run_dir)[0]
            # the saved settings, with the options a resume may change (the total, where to evaluate)
            config = dataclasses.replace(_saved_config(meta, run_dir), **given_options(args, TrainConfig))
            check_bounds(config)
            _check_distribution_options(config)
            start = meta["generation"]
        else:
            config = config_from_args(args)
            run_dir = Path(args.out) if args.out else (
                Path("runs") / f"qes__{config.fitness.preset}__{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}")
            start = 0
        progress, on_member, on_generation = _progress_callbacks(config, start, args.quiet)
        if progress is not None:
            with progress:
                trained = train(config, run_dir, resume=bool(args.resume), on_member=on_member, on_generation=on_generation)
        else:
            trained = train(config, run_dir, resume=bool(args.resume))
    except ImportError as error:
        print(f'qes-train: error: {error} (install the training extra: pip install "society-env[train]")', file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as error:
        print(f"qes-train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        try:
            saved = f"the checkpoint holds {load_checkpoint(run_dir)[0]['generation']} generation(s)"
        except CheckpointError:
            saved = "no generation was completed"
        print(f"qes-train: interrupted; {saved}; continue with: qes-train --resume {run_dir}", file=sys.stderr)
        return 130
    rows = load_checkpoint(run_dir)[0]["metrics"]
    print(json.dumps({"trained_model": str(trained), "generations": len(rows),
                      "fitness_first": rows[0]["fitness_mean"], "fitness_last": rows[-1]["fitness_mean"],
                      "metrics": str(run_dir / "metrics.jsonl")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
