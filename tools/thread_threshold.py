"""Where threads start to pay: ``SocietyVectorEnv`` stepped on one thread (one compiled call per world and
step) and on ``--threads`` threads at the same sizes, alternated in blocks of 10 steps in one process, for
the thresholds of ``society_env.world.threads``.

A one-off experiment (2026-12-06): it measured the speed-ups behind ``threads.PARALLEL_MIN_AGENTS``
(8192) and ``threads.WORLD_THREAD_MIN_AGENTS`` (1000); documented in docs/performance.md ("Threads") and,
with the runs, docs/lab/performance-2026.md. Run it again before moving a threshold.

One world (default): one thread against the threaded path (the rules, then the observation's parallel
loops), forced at every size (``PARALLEL_MIN_AGENTS`` set to 0 for it). ``--worlds N``: N worlds stepped
one after the other on one thread, side by side on the threads (``WORLD_THREAD_MIN_AGENTS`` 0), and one
after the other on the parallel loops. Every world is the one of ``benchmarks/env_vs_magent2.py`` with the same
seed and actions, so all ways stay identical (checked at the end). ``--busy`` also runs a busy loop in
another process, as a neighbour using one of the cores would.

    python tools/thread_threshold.py                          # 2500, 5000, 10000, 20000 agents
    python tools/thread_threshold.py --sizes 5000 --busy
    python tools/thread_threshold.py --worlds 2 --sizes 250,500,1000,2500,5000,20000 --dtypes float32
    python tools/thread_threshold.py --sizes 10000,20000 --dtypes float32 --pause 20   # a slow policy

``--pause MS`` sleeps before every step, as an RL loop waiting on a slow policy would: waiting threads
have gone to sleep by the next step (``tools/thread_handoff.py`` measures what waking them costs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np
from env_vs_magent2 import our_overrides

from society_env.world import observations, threads
from society_env.world.vector import SocietyVectorEnv


def alternate(agents: int, worlds: int, ways: dict[str, tuple[int, int, int]], dtype: str,
              blocks: int, pause: float = 0.0) -> dict[str, float]:
    """Mean ms per step of ``worlds`` worlds of ``agents`` founders each, stepped each way of ``ways`` (name ->
    num_threads, the PARALLEL_MIN_AGENTS and the WORLD_THREAD_MIN_AGENTS it runs under), alternated in
    blocks of 10 steps (the first block untimed), sleeping ``pause`` ms before each step. Every way gets the same worlds and actions, so all must
    write the same bytes (checked at the end)."""
    envs = {name: SocietyVectorEnv(worlds, num_threads=count, obs_dtype=dtype, **our_overrides(agents, blocks * 10))
            for name, (count, _, _) in ways.items()}
    for env in envs.values():
        env.reset(seed=0)
    first = next(iter(envs.values()))
    nvec, rng = first.single_action_space.nvec, np.random.default_rng(1)
    spent = {name: [] for name in ways}
    for block in range(blocks):
        actions = [rng.integers(0, nvec, size=(worlds, first.num_slots, nvec.size)) for _ in range(10)]
        for name, env in envs.items():
            saved = threads.PARALLEL_MIN_AGENTS, threads.WORLD_THREAD_MIN_AGENTS
            threads.PARALLEL_MIN_AGENTS, threads.WORLD_THREAD_MIN_AGENTS = ways[name][1:]  # read at every step
            try:
                for action in actions:
                    if pause:
                        time.sleep(pause / 1e3)
                    started = time.perf_counter()
                    env.step(action)
                    if block > 0:
                        spent[name].append(time.perf_counter() - started)
            finally:
                threads.PARALLEL_MIN_AGENTS, threads.WORLD_THREAD_MIN_AGENTS = saved
    for env in envs.values():
        assert np.array_equal(first._observations, env._observations), "every way must write the same bytes"
    return {name: 1e3 * float(np.mean(times)) for name, times in spent.items()}


NEVER = 10**12
"""A threshold no world reaches."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2500,5000,10000,20000", help="founders, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="threads of the threaded env (default 2)")
    parser.add_argument("--dtypes", default="float32,uint8", help="observation dtypes, comma-separated")
    parser.add_argument("--blocks", type=int, default=8, help="blocks of 10 steps per env (default 8, first one untimed)")
    parser.add_argument("--busy", action="store_true", help="a busy loop in another process meanwhile")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="ms the caller sleeps before every step, as an RL loop waiting on a slow policy (default 0)")
    parser.add_argument("--worlds", type=int, default=1,
                        help="worlds per env (default 1); with more, also the worlds stepped side by side")
    args = parser.parse_args()
    print(f"PARALLEL_MIN_AGENTS = {threads.PARALLEL_MIN_AGENTS}; observations.py sees "
          f"{observations.PARALLEL_MIN_AGENTS} for loading the loops at reset\n")
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    many = args.threads
    if args.worlds == 1:  # one thread against the parallel loops
        ways = {"1 thread": (1, NEVER, NEVER), f"{many} threads": (many, 0, NEVER)}
    else:  # the worlds one after the other on one thread, side by side, one after the other on the parallel loops
        ways = {"1 thread": (1, NEVER, NEVER), f"{args.worlds} worlds side by side": (many, NEVER, 0),
                "parallel loops": (many, 0, NEVER)}
    names = list(ways)
    try:
        print(f"| founders per world | worlds | dtype | " + " | ".join(f"{n} ms/step" for n in names) + " | " +
              " | ".join(f"speed-up {n}" for n in names[1:]) + " |")
        print("|---|---|---|" + "---|" * (2 * len(names) - 1))
        for agents in (int(s) for s in args.sizes.split(",")):
            for dtype in args.dtypes.split(","):
                ms = alternate(agents, args.worlds, ways, dtype, args.blocks, args.pause)
                print(f"| {agents} | {args.worlds} | {dtype} | " + " | ".join(f"{ms[n]:.2f}" for n in names) + " | " +
                      " | ".join(f"{ms[names[0]] / ms[n]:.2f}x" for n in names[1:]) + " |", flush=True)
    finally:
        if neighbour is not None:
            neighbour.kill()


if __name__ == "__main__":
    main()
