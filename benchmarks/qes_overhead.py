"""QES cost per member, side by side in one run: what the trainer adds to a member's evaluation (perturb +
restore against the episodes, peak memory against plain inference), or (``--part fitness``) what a member's
evaluation costs with each fitness estimator.

``--part overhead`` (default): two child processes, each measured by its own peak resident set size
(``ru_maxrss``):

* inference: the LLM policy on the base model plays the same fitness episodes as the training
  members (same preset, policies, seeds, steps), with no trainer;
* trainer: ``qes_trainer.train.train`` for ``--generations`` generations of ``--pairs`` mirrored pairs.

Printed: per member, the perturb + restore seconds as a ratio of that member's evaluation seconds
(goal <= 10%), and the trainer's peak RSS against inference RSS + the optimizer residual (goal: at most
10% above that sum).

``--part fitness``: members per hour. Each configuration evaluates the same member (the base model's
weights) on its fitness episodes, round after round (``--rounds``), in one process on one llama.cpp context
per configuration; the rounds are interleaved, so machine load hits every configuration alike:

* ``small, sampled``: the first recipe (``qes-train`` defaults): the small preset, 2 LLM agents among 4
  foragers, 2 episodes of 12 steps, answers with message and memory note;
* ``forage, sampled``: the forage preset (talk-free move-only answers, view radius 2), 8 episodes of 8 steps;
* ``forage, expected``: the forage recipe's fitness: the exact expected return of both agents' first
  decision in 8 episodes, from the action logits (``--estimator expected``).

Printed: seconds per member (best round), members per hour, the ratio to the first recipe, and prompt and
answer tokens per agent-step (the sampled configurations).

    python benchmarks/qes_overhead.py --max-steps 2                 # 1 generation x 4 members x 1 episode x 2 steps (~3 min)
    python benchmarks/qes_overhead.py --part fitness --rounds 2     # ~5 min
    python benchmarks/qes_overhead.py --quick                       # overhead: 2 members x 1 step, a check that it runs
    python benchmarks/qes_overhead.py --part fitness --quick        # 1 round of 1-episode, 2-step configurations

The default model is the embedded SmolLM2-135M-Instruct (``policies.llm.models`` fetches it on first use).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD_INFERENCE = """
import json, resource, sys, time
from policies.llm.engine import LlamaEngine
from policies.llm.models import resolve_model
from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, episode_seeds
from qes_trainer.train import TrainConfig
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
engine = LlamaEngine(resolve_model(config.model), n_ctx=config.fitness.context_tokens(), max_batch=config.batch_size,
                     n_threads=config.threads)
evaluator = FitnessEvaluator(config.fitness, engine)
started = time.perf_counter()
members = 0
for generation in range(config.generations):
    for member in range(2 * config.pairs):
        evaluator.evaluate(episode_seeds(config.seed, generation, config.fitness.episodes))
        members += 1
seconds = time.perf_counter() - started
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds_per_member": seconds / members}))
"""

CHILD_TRAIN = """
import json, resource, sys
from qes_trainer.checkpoint import load_checkpoint
from qes_trainer.train import TrainConfig, train
config = TrainConfig.from_dict(json.loads(sys.argv[1]))
train(config, sys.argv[2])
meta = load_checkpoint(sys.argv[2])[0]
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "metrics": meta["metrics"]}))
"""


def child(code: str, *args: str) -> dict:
    process = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(f"child failed:\n{process.stderr}")
    return json.loads(process.stdout.strip().splitlines()[-1])


FITNESS_CONFIGURATIONS = {
    "small, sampled (first recipe)": {},
    "forage, sampled": {"preset": "forage", "policy": "llm=2", "episodes": 8, "max_steps": 8},
    "forage, expected (forage recipe)": {"preset": "forage", "policy": "llm=2", "episodes": 8, "estimator": "expected"},
}
"""--part fitness: ``FitnessSettings`` fields of each configuration (the rest its defaults)."""


def overhead(model, generations: int, pairs: int, episodes: int, max_steps: int, residual: str, threads: int) -> None:
    """The trainer's cost over plain inference, each in its own child process (module docstring)."""
    from policies.llm.gguf_codes import open_gguf_tensors, select_trainable
    from qes_trainer.fitness import FitnessSettings
    from qes_trainer.train import TrainConfig

    config = TrainConfig(model=str(model), generations=generations, pairs=pairs, residual=residual,
                         threads=threads, fitness=FitnessSettings(episodes=episodes, max_steps=max_steps))
    with open_gguf_tensors(model) as tensors:
        trainable, _ = select_trainable(tensors)
        codes = sum(t.n_elements for t in trainable)
    residual_mib = codes * 2 / 2**20 if residual == "full" else 0.0

    inference = child(CHILD_INFERENCE, json.dumps(config.to_dict()))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = child(CHILD_TRAIN, json.dumps(config.to_dict()), run_dir)

    rows = trainer["metrics"]
    members = sum(row["members"] for row in rows)
    perturb = sum(row["seconds_perturbation"] for row in rows) / members
    evaluation = sum(row["seconds_evaluation"] for row in rows) / members
    update = sum(row["seconds_update"] for row in rows) / len(rows)
    budget = (inference["peak_rss_mib"] + residual_mib) * 1.10
    print(f"model: {model.name}  trainable codes: {codes:,}  residual ({residual}): {residual_mib:.0f} MiB")
    print(f"setting: {generations} generation(s) x {2 * pairs} members x {episodes} episode(s) x "
          f"{max_steps} steps, {threads} threads")
    print()
    print("| per member | seconds |")
    print("|---|---|")
    print(f"| evaluation (episodes) | {evaluation:.2f} |")
    print(f"| perturb + restore | {perturb:.3f} |")
    print(f"| **perturb + restore / evaluation** | **{perturb / evaluation:.1%}** (goal <= 10%) |")
    print(f"| update (per generation) | {update:.2f} |")
    print(f"| inference alone, same episodes | {inference['seconds_per_member']:.2f} |")
    print()
    print("| peak RSS | MiB |")
    print("|---|---|")
    print(f"| plain inference | {inference['peak_rss_mib']:.0f} |")
    print(f"| inference + residual | {inference['peak_rss_mib'] + residual_mib:.0f} |")
    print(f"| trainer | {trainer['peak_rss_mib']:.0f} |")
    print(f"| **trainer / (inference + residual)** | **{trainer['peak_rss_mib'] / (budget / 1.10):.2f}x** (goal <= 1.10x, "
          f"{'met' if trainer['peak_rss_mib'] <= budget else 'missed'}) |")


def fitness(model, rounds: int, threads: int, quick: bool) -> None:
    """Members per hour of each fitness configuration, rounds interleaved (module docstring)."""
    import time

    from policies.llm.engine import LlamaEngine
    from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, episode_seeds

    evaluators = {}
    for label, fields in FITNESS_CONFIGURATIONS.items():
        if quick:  # a check that every configuration runs, not its cost
            fields = {**fields, "episodes": 1, "max_steps": 2}
        settings = FitnessSettings(**fields)
        engine = LlamaEngine(model, n_ctx=settings.context_tokens(), max_batch=8, n_threads=threads)
        evaluators[label] = FitnessEvaluator(settings, engine)
    seconds = {label: [] for label in evaluators}
    for round_index in range(rounds):
        for label, evaluator in evaluators.items():
            seeds = episode_seeds(0, round_index, evaluator.settings.episodes)
            started = time.perf_counter()
            evaluator.evaluate(seeds)
            seconds[label].append(time.perf_counter() - started)
            print(f"round {round_index} {label}: {seconds[label][-1]:.1f} s per member", flush=True)
    reference = min(seconds[next(iter(seconds))])
    print(f"\n{'configuration':36} {'s/member (best)':>16} {'members/hour':>13} {'vs first':>9} "
          f"{'prompt tok/agent-step':>22} {'answer tok/agent-step':>22}")
    for label, evaluator in evaluators.items():
        best = min(seconds[label])
        costs = evaluator.llm.cost_summary()
        tokens = (f"{costs['tokens_in_per_agent_step']:>22} {costs['tokens_out_per_agent_step']:>22}"
                  if evaluator.settings.estimator == "sampled" else f"{'-':>22} {'-':>22}")
        print(f"{label:36} {best:16.1f} {3600 / best:13.0f} {reference / best:8.2f}x {tokens}")
    if quick:
        print("--quick: 1-episode, 2-step configurations; not the recipes' cost")


def main(argv: list[str] | None = None) -> None:
    from policies.llm.models import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("overhead", "fitness"), default="overhead",
                        help="overhead: perturb + restore and memory against inference (default); fitness: members per hour")
    parser.add_argument("--model", default=None, help="GGUF to train (default: the embedded default model)")
    parser.add_argument("--generations", type=int, default=1, help="overhead: generations (default 1)")
    parser.add_argument("--pairs", type=int, default=2, help="overhead: mirrored pairs per generation (default 2)")
    parser.add_argument("--episodes", type=int, default=1, help="overhead: episodes per member (default 1)")
    parser.add_argument("--max-steps", type=int, default=3, help="overhead: steps per episode (default 3)")
    parser.add_argument("--residual", default="full", choices=("full", "replay", "none"), help="overhead: error feedback")
    parser.add_argument("--rounds", type=int, default=2, help="fitness: interleaved rounds (default 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="a check that the part runs: overhead 1 pair x 1 step; fitness 1 round of 1-episode, "
                             "2-step configurations")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    if args.part == "overhead":
        overhead(model, args.generations, 1 if args.quick else args.pairs, args.episodes,
                 1 if args.quick else args.max_steps, args.residual, args.threads)
    else:
        fitness(model, 1 if args.quick else args.rounds, args.threads, args.quick)


if __name__ == "__main__":
    main()
