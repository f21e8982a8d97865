"""Signal per pair: does a perturbation that wins on a generation's training episodes also win on
held-out ones?

A one-off experiment (2026-12-01): it measured that a pair difference on the 8 training episodes
predicts the one on 32 held-out episodes (same sign in the 3 pairs it finished, held-out ~70% of
training); documented in docs/training.md ("What limited learning, and what it would take").

QES moves the codes along the pair differences d_p = F(+p) - F(-p) measured on the generation's few
episodes. That is learning only insofar as d_p on those episodes predicts d_p on episodes never seen.
This measures it on the base model with the forage recipe's fitness (the ``expected`` estimator: no
sampling noise, so all of the disagreement is the episodes' own): for PAIRS perturbations of one
generation, d_p on the training episodes (8 episodes, as the recipe) and on 32 held-out episodes, and
their correlation across pairs, on a private copy of the model.

Usage: python tools/qes_signal.py [--pairs 8] [--sigma 0.01] [--threads 2] [--model PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from policies.llm.engine import LlamaEngine
from policies.llm.models import resolve_model
from qes_trainer.fitness import HELDOUT_SEED, FitnessEvaluator, FitnessSettings, episode_seeds
from qes_trainer.live_model import LiveModel
from qes_trainer.qes import QESOptimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=0.01)
    parser.add_argument("--train-episodes", type=int, default=8)
    parser.add_argument("--heldout-episodes", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    settings = FitnessSettings(preset="forage", policy="llm=2", estimator="expected")
    with tempfile.TemporaryDirectory() as scratch:
        live = LiveModel.create(resolve_model(args.model), Path(scratch) / "work.gguf")
        noise = QESOptimizer(live.specs(), sigma=args.sigma, alpha=1.0, residual="none", seed=0)
        engine = LlamaEngine(live.path, n_ctx=settings.context_tokens(), max_batch=8, n_threads=args.threads,
                             use_extra_bufts=False)
        evaluator = FitnessEvaluator(settings, engine)
        train_seeds = episode_seeds(0, 0, args.train_episodes)
        heldout_seeds = list(range(HELDOUT_SEED, HELDOUT_SEED + args.heldout_episodes))
        train_d, heldout_d = [], []
        started = time.perf_counter()
        for pair in range(args.pairs):
            fitness = {}
            for sign in (1, -1):
                applied, _ = live.perturb(noise, 0, pair, sign)
                try:
                    fitness[sign] = (evaluator.fitness(evaluator.evaluate(train_seeds)),
                                     evaluator.fitness(evaluator.evaluate(heldout_seeds)))
                finally:
                    live.restore(applied)
            train_d.append(fitness[1][0] - fitness[-1][0])
            heldout_d.append(fitness[1][1] - fitness[-1][1])
            print(f"pair {pair}: d_train {train_d[-1]:+.4f}  d_heldout {heldout_d[-1]:+.4f}", flush=True)
        engine.close()
        live.close()
    train_d, heldout_d = np.array(train_d), np.array(heldout_d)
    correlation = float(np.corrcoef(train_d, heldout_d)[0, 1])
    agree = float(np.mean(np.sign(train_d) == np.sign(heldout_d)))
    print(f"\n{args.pairs} pairs, sigma {args.sigma}, {time.perf_counter() - started:.0f} s")
    print(f"|d| on the training episodes: mean {np.abs(train_d).mean():.4f}; on held-out: {np.abs(heldout_d).mean():.4f}")
    print(f"correlation of d_train with d_heldout across pairs: {correlation:+.2f}; same sign in {agree:.0%} of pairs")


if __name__ == "__main__":
    main()
