"""Where threads start to pay: ``SocietyVectorEnv`` stepped on one thread (one compiled call per step) and
on ``--threads`` threads (the rules, then the observation's parallel loops) at the same sizes, the two
alternated in blocks of 10 steps in one process, for ``society_env.threads.PARALLEL_MIN_AGENTS``.

The threaded env is forced onto its threaded path at every size (the threshold set to 0 for it). Both
worlds are the one of ``benchmarks/array_api.py`` with the same seed and actions, so they stay identical
(checked at the end). ``--busy`` also runs a busy loop in another process, as a neighbour using one of
the cores would.

    python benchmarks/thread_threshold.py                          # 2500, 5000, 10000, 20000 agents
    python benchmarks/thread_threshold.py --sizes 5000 --busy
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from array_api import our_overrides

from society_env import observations, threads
from society_env.vector import SocietyVectorEnv


def compare(agents: int, threads_count: int, dtype: str, blocks: int) -> tuple[float, float]:
    """Mean ms per step on one thread and on ``threads_count`` (threaded path forced), alternated."""
    one = SocietyVectorEnv(1, num_threads=1, obs_dtype=dtype, **our_overrides(agents, blocks * 10))
    many = SocietyVectorEnv(1, num_threads=threads_count, obs_dtype=dtype, **our_overrides(agents, blocks * 10))
    one.reset(seed=0)
    many.reset(seed=0)
    nvec, rng = one.single_action_space.nvec, np.random.default_rng(1)
    spent = {"one": [], "many": []}
    for block in range(blocks):
        actions = [rng.integers(0, nvec, size=(1, one.num_slots, nvec.size)) for _ in range(10)]
        for name, envs, threshold in (("one", one, threads.PARALLEL_MIN_AGENTS), ("many", many, 0)):
            saved = threads.PARALLEL_MIN_AGENTS
            threads.PARALLEL_MIN_AGENTS = threshold  # use_threads reads it at every call
            try:
                for action in actions:
                    started = time.perf_counter()
                    envs.step(action)
                    if block > 0:  # the first block warms up
                        spent[name].append(time.perf_counter() - started)
            finally:
                threads.PARALLEL_MIN_AGENTS = saved
    assert np.array_equal(one._observations, many._observations), "the two paths must write the same bytes"
    return 1e3 * float(np.mean(spent["one"])), 1e3 * float(np.mean(spent["many"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2500,5000,10000,20000", help="founders, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="threads of the threaded env (default 2)")
    parser.add_argument("--dtypes", default="float32,uint8", help="observation dtypes, comma-separated")
    parser.add_argument("--blocks", type=int, default=8, help="blocks of 10 steps per env (default 8, first one untimed)")
    parser.add_argument("--busy", action="store_true", help="a busy loop in another process meanwhile")
    args = parser.parse_args()
    print(f"PARALLEL_MIN_AGENTS = {threads.PARALLEL_MIN_AGENTS}; observations.py sees "
          f"{observations.PARALLEL_MIN_AGENTS} for loading the loops at reset\n")
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        print(f"| founders | dtype | 1 thread ms/step | {args.threads} threads ms/step | speed-up of the threads |")
        print("|---|---|---|---|---|")
        for agents in (int(s) for s in args.sizes.split(",")):
            for dtype in args.dtypes.split(","):
                one, many = compare(agents, args.threads, dtype, args.blocks)
                print(f"| {agents} | {dtype} | {one:.2f} | {many:.2f} | {one / many:.2f}x |", flush=True)
    finally:
        if neighbour is not None:
            neighbour.kill()


if __name__ == "__main__":
    main()
