"""Member evaluations per hour: the first QES recipe against the forage recipe, measured side by side.

Each configuration evaluates the same member (the base model's weights) on its fitness episodes, round
after round, in one process on one llama.cpp context per configuration. The rounds are interleaved, so
machine load hits every configuration alike; the ratios are what to read.

* ``small, sampled``: the first recipe (``qes-train`` defaults): the small preset, 2 LLM agents among 4
  foragers, 2 episodes of 12 steps, answers with message and memory note;
* ``forage, sampled``: the forage preset (talk-free move-only answers, view radius 2), 8 episodes of 8 steps;
* ``forage, expected``: the forage recipe's fitness: the exact expected return of both agents' first
  decision in 8 episodes, from the action logits (``--estimator expected``).

Also printed: prompt tokens evaluated and answer tokens per agent-step (the sampled configurations).

Usage: python benchmarks/qes_fitness.py [--rounds 2] [--threads 2] [--model PATH]
"""

from __future__ import annotations

import argparse
import time

from policies.llm.engine import LlamaEngine
from policies.llm.models import resolve_model
from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, episode_seeds

CONFIGURATIONS = {
    "small, sampled (first recipe)": FitnessSettings(),
    "forage, sampled": FitnessSettings(preset="forage", policy="llm=2", episodes=8, max_steps=8),
    "forage, expected (forage recipe)": FitnessSettings(preset="forage", policy="llm=2", episodes=8, estimator="expected"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    model = resolve_model(args.model)
    evaluators = {}
    for label, settings in CONFIGURATIONS.items():
        engine = LlamaEngine(model, n_ctx=settings.context_tokens(), max_batch=8, n_threads=args.threads)
        evaluators[label] = FitnessEvaluator(settings, engine)
    seconds = {label: [] for label in CONFIGURATIONS}
    for round_index in range(args.rounds):
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


if __name__ == "__main__":
    main()
