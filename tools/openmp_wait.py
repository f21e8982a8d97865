"""How GNU OpenMP's idle-thread waiting changes llama.cpp's speed, on a quiet or a shared machine: a
270-token prompt and 20 one-token decodes of the default model, 3 repeats, in a fresh process per
setting (OpenMP reads its variables once, at load), settings alternated. The findings and why the
commands set ``GOMP_SPINCOUNT=1000`` are in docs/llm-agents.md (Threads on a shared machine).

    python tools/openmp_wait.py                 # quiet machine
    python tools/openmp_wait.py --busy 2        # beside two busy loops (other work on the cores)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SETTINGS = {
    "GNU default (spins)": {},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def measure(threads: int) -> list[float]:
    """In this process: seconds of a prompt and 20 decodes, 3 times."""
    import llama_cpp

    from policies.llm.engine import disable_amx_weight_buffers
    from policies.llm.models import resolve_model

    disable_amx_weight_buffers()
    model = llama_cpp.Llama(str(resolve_model(None)), n_threads=threads, n_threads_batch=threads, n_ctx=1024,
                            verbose=False)
    tokens = model.tokenize(("The society of agents lives on a grid. " * 30).encode())
    times = []
    for _ in range(3):
        model.reset()
        started = time.perf_counter()
        model.eval(tokens)
        for token in tokens[:20]:
            model.eval([token])
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=0, help="busy loops running beside (default 0)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure is not None:
        print(" ".join(f"{t:.3f}" for t in measure(args.measure)))
        return
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
        runs = [(f"2 threads, {name}", 2, extra) for name, extra in SETTINGS.items()] + [("1 thread", 1, {})]
        for round_ in range(args.rounds):
            for label, threads, extra in runs:
                out = subprocess.run([sys.executable, __file__, "--measure", str(threads)], env={**clean, **extra},
                                     capture_output=True, text=True, check=True).stdout.split()
                times = sorted(float(t) for t in out)
                print(f"round {round_ + 1}  {label:<36} min {times[0]:.2f} s  median {times[1]:.2f} s", flush=True)
    finally:
        for process in busy:
            process.kill()


if __name__ == "__main__":
    main()
