"""QES trainer overhead: perturb + restore time vs evaluation time, and peak memory vs plain inference.

Two child processes, each measured by its own peak resident set size (``ru_maxrss``):

* inference: the LLM policy on the base model plays the same fitness episodes as the training
  members (same preset, policies, seeds, steps), with no trainer;
* trainer: ``qes_trainer.train.train`` for GENERATIONS generations with PAIRS mirrored pairs.

Printed: per member, the perturb + restore seconds as a ratio of that member's evaluation seconds
(target <= 10%), and the trainer's peak RSS against inference RSS + the optimizer residual (target: at
most 10% above that sum). Both figures come from the same run on the same machine.

Usage: python benchmarks/qes_overhead.py [--model PATH] [--generations 1] [--pairs 2] [--episodes 1]
       [--max-steps 3] [--residual full]
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


def main() -> None:
    from policies.llm.models import resolve_model
    from policies.llm.gguf_codes import open_gguf_tensors, select_trainable
    from qes_trainer.fitness import FitnessSettings
    from qes_trainer.train import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="GGUF to train (default: the embedded default model)")
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--residual", default="full", choices=("full", "replay", "none"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    model = resolve_model(args.model)
    config = TrainConfig(model=str(model), generations=args.generations, pairs=args.pairs, residual=args.residual,
                         threads=args.threads, fitness=FitnessSettings(episodes=args.episodes, max_steps=args.max_steps))
    with open_gguf_tensors(model) as tensors:
        trainable, _ = select_trainable(tensors)
        codes = sum(t.n_elements for t in trainable)
    residual_mib = codes * 2 / 2**20 if args.residual == "full" else 0.0

    inference = child(CHILD_INFERENCE, json.dumps(config.to_dict()))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = child(CHILD_TRAIN, json.dumps(config.to_dict()), run_dir)

    rows = trainer["metrics"]
    members = sum(row["members"] for row in rows)
    perturb = sum(row["seconds_perturbation"] for row in rows) / members
    evaluation = sum(row["seconds_evaluation"] for row in rows) / members
    update = sum(row["seconds_update"] for row in rows) / len(rows)
    budget = (inference["peak_rss_mib"] + residual_mib) * 1.10
    print(f"model: {model.name}  trainable codes: {codes:,}  residual ({args.residual}): {residual_mib:.0f} MiB")
    print(f"setting: {args.generations} generation(s) x {2 * args.pairs} members x {args.episodes} episode(s) x "
          f"{args.max_steps} steps, {args.threads} threads")
    print()
    print("| per member | seconds |")
    print("|---|---|")
    print(f"| evaluation (episodes) | {evaluation:.2f} |")
    print(f"| perturb + restore | {perturb:.3f} |")
    print(f"| **perturb + restore / evaluation** | **{perturb / evaluation:.1%}** (target <= 10%) |")
    print(f"| update (per generation) | {update:.2f} |")
    print(f"| inference alone, same episodes | {inference['seconds_per_member']:.2f} |")
    print()
    print("| peak RSS | MiB |")
    print("|---|---|")
    print(f"| plain inference | {inference['peak_rss_mib']:.0f} |")
    print(f"| inference + residual | {inference['peak_rss_mib'] + residual_mib:.0f} |")
    print(f"| trainer | {trainer['peak_rss_mib']:.0f} |")
    print(f"| **trainer / (inference + residual)** | **{trainer['peak_rss_mib'] / (budget / 1.10):.2f}x** (target <= 1.10x, "
          f"{'met' if trainer['peak_rss_mib'] <= budget else 'missed'}) |")


if __name__ == "__main__":
    main()
