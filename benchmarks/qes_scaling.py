"""QES on Ray: generation time for 1 and 2 workers on this machine, bytes sent per generation against the
model size, and an extrapolation (on paper) to 64 workers from the measured per-member time and traffic.

Runs ``qes_trainer.train.train`` with the same settings three times on the same machine:

* in-process (``LocalPopulation``), THREADS llama.cpp threads;
* Ray, 1 worker with THREADS threads;
* Ray, 2 workers with THREADS / 2 threads each (the same cores, split).

and reports the steady generation time (mean over the generations after the first; the first also pays
worker start-up), the bytes the driver sent per generation (member requests + the packed update, once per
worker) and received (member outcomes), and the packed size of updates of typical sparsity for this
model. The extrapolation assumes one core per worker (the 2-worker run's per-member time), the
driver's measured update + checkpoint time, and a 1 Gbit/s link from the driver.

    python benchmarks/qes_scaling.py --generations 2 --max-steps 1 --no-in-process   # ~15 min on a loaded 2-core machine
    python benchmarks/qes_scaling.py --quick     # 2 generations of 1 pair x 1 step, Ray rows only: a check that it runs

Needs Ray (the ``train`` extra). On 2 cores the two-worker row can show no gain when other processes hold
a core; the traffic and the extrapolation do not depend on that.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time


def run(config, label: str) -> dict:
    from qes_trainer.checkpoint import load_checkpoint
    from qes_trainer.train import train

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        train(config, run_dir, on_generation=lambda row: stamps.append(time.perf_counter()))
        total = time.perf_counter() - started
        rows = load_checkpoint(run_dir)[0]["metrics"]
    steady = [b - a for a, b in zip(stamps, stamps[1:])]
    result = {"label": label, "rows": rows, "total": total, "first": stamps[0] - started,
              "steady": sum(steady) / len(steady) if steady else stamps[0] - started}
    print(f"  {label}: first generation {result['first']:.1f} s, steady {result['steady']:.1f} s/generation", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    import dataclasses

    import numpy as np

    from policies.llm.gguf_codes import SparseDelta, open_gguf_tensors, select_trainable
    from policies.llm.models import resolve_model
    from qes_trainer.distributed import pack_update, pickled_size
    from qes_trainer.fitness import FitnessSettings
    from qes_trainer.train import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="GGUF to train (default: the embedded default model)")
    parser.add_argument("--generations", type=int, default=3, help="generations per run (default 3)")
    parser.add_argument("--pairs", type=int, default=2, help="mirrored pairs per generation (default 2)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per member (default 1)")
    parser.add_argument("--max-steps", type=int, default=2, help="steps per episode (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads: the in-process run and 1 worker; "
                        "2 workers get half each (default 2)")
    parser.add_argument("--n-ctx", type=int, default=FitnessSettings.n_ctx, help="context per agent (4096 for the "
                        "tests' tiny byte-vocabulary model)")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process run")
    parser.add_argument("--quick", action="store_true", help="2 generations of 1 pair x 1 step, no in-process run")
    args = parser.parse_args(argv)
    if args.quick:
        args.generations, args.pairs, args.max_steps, args.no_in_process = 2, 1, 1, True
    import ray  # after the arguments, so that --help works without Ray

    model = resolve_model(args.model)
    model_size = model.stat().st_size
    with open_gguf_tensors(model) as tensors:
        sizes = {t.name: t.n_elements for t in select_trainable(tensors)[0]}
    codes = sum(sizes.values())
    base = TrainConfig(model=str(model), generations=args.generations, pairs=args.pairs, threads=args.threads,
                       fitness=FitnessSettings(episodes=args.episodes, max_steps=args.max_steps,
                                                                n_ctx=args.n_ctx))
    members = 2 * args.pairs
    print(f"model: {model.name}, {model_size:,} bytes, {codes:,} trainable codes; {args.generations} generations x "
          f"{members} members x {args.episodes} episode(s) x {args.max_steps} steps", flush=True)

    results = [] if args.no_in_process else [run(base, f"in-process, {args.threads} threads")]  # before Ray starts
    ray.init(address="local", num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
    results += [run(dataclasses.replace(base, workers=1), f"Ray, 1 worker x {args.threads} threads"),
               run(dataclasses.replace(base, workers=2, threads=max(1, args.threads // 2)),
                   f"Ray, 2 workers x {max(1, args.threads // 2)} thread(s)")]
    ray.shutdown()

    print()
    print("| setting | first generation s | steady s / generation | speed-up vs first row | bytes sent / generation "
          "| bytes received / generation | update bytes (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = results[0]["steady"]
    for result in results:
        rows = result["rows"]
        sent = [row.get("bytes_sent", 0) for row in rows]
        received = [row.get("bytes_received", 0) for row in rows]
        update = max(row.get("bytes_update", 0) for row in rows)
        print(f"| {result['label']} | {result['first']:.1f} | {result['steady']:.1f} | {reference / result['steady']:.2f}x | "
              f"{np.mean(sent):,.0f} | {np.mean(received):,.0f} | {update:,} |")
    print(f"\nmodel file: {model_size:,} bytes; codes changed per generation in these runs: "
          f"{[row['codes_changed'] for row in results[-1]['rows']]}")

    # Packed update size at typical update ratios (the paper's runs change ~1e-4..1e-3 of the codes a generation).
    rng = np.random.default_rng(0)
    print("\n| update ratio | codes changed | packed update bytes | / model file |")
    print("|---:|---:|---:|---:|")
    update_bytes = {}
    for ratio in (1e-5, 1e-4, 1e-3, 1e-2):
        deltas = {}
        for name, size in sizes.items():
            count = rng.binomial(size, ratio)
            indices = np.sort(rng.choice(size, count, replace=False)).astype(np.int64)
            deltas[name] = SparseDelta(indices, rng.choice(np.array([-1, 1], np.int16), count), size)
        update_bytes[ratio] = pickled_size(pack_update(deltas))
        print(f"| {ratio:g} | {sum(d.nnz for d in deltas.values()):,} | {update_bytes[ratio]:,} | "
              f"{update_bytes[ratio] / model_size:.2%} |")

    # Extrapolation on paper: W one-core workers, N members, per-member time from the 2-worker run.
    two = results[-1]["rows"]
    per_member = sum(row["seconds_wall_evaluation"] for row in two[1:] or two) / len(two[1:] or two) / members * 2
    driver = results[-1]["steady"] - sum(row["seconds_wall_evaluation"] for row in two[1:] or two) / len(two[1:] or two)
    request = 50 + 230  # bytes per member: request (~40 + 5 per episode seed) and outcome (~230), measured
    link = 125e6  # 1 Gbit/s from the driver
    print(f"\nExtrapolation: {per_member:.1f} s per member on one worker core (2-worker run), driver update + "
          f"checkpoint {driver:.1f} s per generation, update ratio 1e-3 ({update_bytes[1e-3]:,} bytes per worker), "
          f"1 Gbit/s driver link.")
    print("\n| workers | N=50 members: s / generation | speed-up vs 1 worker | N=128: s / generation | "
          "bytes sent / generation (N=50) | transfer s at 1 Gbit/s | whole model to every worker instead |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for workers in (1, 2, 4, 8, 16, 32, 64):
        sent = 50 * request + workers * update_bytes[1e-3]
        transfer = sent / link
        t50 = math.ceil(50 / workers) * per_member + driver + transfer
        t128 = math.ceil(128 / workers) * per_member + driver + (128 * request + workers * update_bytes[1e-3]) / link
        t1 = 50 * per_member + driver + (50 * request + update_bytes[1e-3]) / link
        print(f"| {workers} | {t50:.1f} | {t1 / t50:.1f}x | {t128:.1f} | {sent / 1e6:.2f} MB | {transfer:.3f} | "
              f"{workers * model_size / 1e9:.2f} GB |")


if __name__ == "__main__":
    main()
