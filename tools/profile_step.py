"""Where a ``SocietyVectorEnv`` step spends its time, per compiled function, sampled by Linux ``perf``.

A one-off experiment (2026-12-06): it measured the share of each compiled function in a step at 500 and
5000 agents (the view gather 35% and 47%); documented in docs/performance.md ("Where a step's time goes").

The world is ``benchmarks/env_vs_magent2.py``'s (N founders on a torus of 0.04 agents per cell, random
actions). The script compiles the kernels afresh (into an empty numba cache: 25-30 s), writes a perf map
(``/tmp/perf-PID.map``) naming the compiled functions' code, then samples its own process with ``perf
record`` while it steps ``--episodes`` episodes of 300 steps, and prints ``perf report``'s top symbols.
numba's code has no symbols of its own: without the map perf shows bare addresses, and a kernel loaded
from the disk cache has no module to take the names from, hence the fresh compile.

    python tools/profile_step.py --agents 500
    python tools/profile_step.py --agents 5000 --episodes 10 --top 40

Names are numba's mangled ones (``13_gather_viewsB3v49...`` is ``kernels._gather_views``); a function
another one inlined is counted in its caller. Shares are of samples in this process: the Python around
the step is in them (``_PyEval_EvalFrameDefault``, ``gc_collect_main``), the drawing of random actions
too (NumPy's ``integers``, a few percent).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def write_perf_map(module) -> int:
    """``/tmp/perf-PID.map`` for every compiled overload of ``module``'s numba functions (each function of
    each overload's LLVM module, its size up to the next known address). Returns the symbols written."""
    from numba.core.registry import CPUDispatcher

    entries = set()
    for name in dir(module):
        dispatcher = getattr(module, name)
        if not isinstance(dispatcher, CPUDispatcher):
            continue
        for compiled in dispatcher.overloads.values():
            library = compiled.library
            for function in library._final_module.functions:
                if function.is_declaration:
                    continue
                address = library.get_pointer_to_function(function.name)
                if address:
                    entries.add((address, function.name.split("kernels")[-1][:80]))
    ordered = sorted(entries)
    with open(f"/tmp/perf-{os.getpid()}.map", "w") as out:
        for (address, name), (following, _) in zip(ordered, ordered[1:] + [(ordered[-1][0] + 4096, "")]):
            out.write(f"{address:x} {min(following - address, 1 << 20):x} {name}\n")
    return len(ordered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500, help="founders (default 500)")
    parser.add_argument("--episodes", type=int, default=100, help="sampled episodes of 300 steps (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="num_threads of the env (default 1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "uint8", "uint16"])
    parser.add_argument("--frequency", type=int, default=5000, help="samples per second (default 5000)")
    parser.add_argument("--top", type=int, default=30, help="symbols to print (default 30)")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        parser.error("needs Linux perf on the PATH (linux-tools / linux-perf)")

    cache = tempfile.mkdtemp(prefix="numba-cache-")
    os.environ["NUMBA_CACHE_DIR"] = cache  # before numba is imported: compile here, so the map can name the code
    import numpy as np
    from env_vs_magent2 import our_overrides

    from society_env.world import kernels
    from society_env.world.vector import SocietyVectorEnv

    envs = SocietyVectorEnv(1, num_threads=args.threads, obs_dtype=args.dtype, **our_overrides(args.agents, 300))
    nvec, rng = envs.single_action_space.nvec, np.random.default_rng(1)
    actions = [rng.integers(0, nvec, size=(1, envs.num_slots, nvec.size)) for _ in range(50)]
    print("compiling (an empty numba cache) ...", flush=True)
    envs.reset(seed=0)
    envs.step(actions[0])
    print(f"perf map: {write_perf_map(kernels)} symbols", flush=True)

    data = Path(cache) / "perf.data"
    recorder = subprocess.Popen(["perf", "record", "-q", "-F", str(args.frequency), "-p", str(os.getpid()),
                                 "-o", str(data)])
    time.sleep(1.0)  # perf attaches
    started, steps = time.perf_counter(), 0
    for episode in range(args.episodes):
        envs.reset(seed=episode)
        for step in range(300):
            envs.step(actions[step % len(actions)])
            steps += 1
    elapsed = time.perf_counter() - started
    recorder.send_signal(signal.SIGINT)
    recorder.wait()
    print(f"{args.agents} founders, {args.dtype}, num_threads {args.threads}: {elapsed / steps * 1e3:.3f} ms per step "
          f"(resets included), {steps} steps sampled\n", flush=True)
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "sym", "--stdio"],
                            capture_output=True, text=True, check=True)
    lines = [line for line in report.stdout.splitlines() if line.strip() and not line.startswith("#")]
    print("\n".join(line[:120] for line in lines[: args.top]))
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
