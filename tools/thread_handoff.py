"""What handing work to the second core costs, by how the work gets there and how long the threads idled.

A one-off experiment (2026-12-06): it measured the wake-up of a worker thread (50-120 us in this VM) and
the 2-11 ms stall of numba's parallel loop after the caller slept, the reasons ``SocietyVectorEnv`` hands
worlds to a worker thread only from 1000 agents a thread; documented in docs/performance.md ("Threads")
and, with the runs, docs/lab/performance-2026.md (the sixth session).

    python tools/thread_handoff.py
    python tools/thread_handoff.py --sleep --gaps 200,1000,5000,20000 --calls 40

Two units of compiled work (a ``nogil`` numba loop, each about ``--work-us`` microseconds: half of a step
of two worlds of 250 agents is about 100 us here) are done per call, three ways, alternated call by call
in one process:

| way | what a call does |
|---|---|
| ``one thread`` | both units on the calling thread |
| ``worker thread`` | one unit submitted to a one-worker ``ThreadPoolExecutor`` (as ``SocietyVectorEnv`` steps worlds side by side), the other on the calling thread |
| ``numba prange`` | both units in one ``parallel=True`` call, a ``prange`` over the two (numba's threading layer: GNU OpenMP here) |

Between calls the calling thread spins for ``--gaps`` microseconds (what an RL loop's policy would take on
this core), or with ``--sleep`` sleeps (both cores idle: a policy on a GPU, a pipe to another process),
long enough at the longer gaps for waiting threads to go to sleep. Prints the median and mean microseconds
per call and the speed-up over one thread, for every gap.

Why it matters (docs/performance.md, sixth session): a sleeping worker thread takes 50-120 us to wake in
this VM, a large part of a step of a few hundred agents, so ``SocietyVectorEnv`` hands a world to its
worker only from 1000 living agents a thread. GNU OpenMP's threads spin after a parallel loop and take the
next one at once (1.5-1.8x one thread here, against 0.8x for the worker), but after the calling thread
slept 5-20 ms a parallel loop stalled for 2-11 ms in this VM (with numba's default GNU OpenMP settings;
not with an explicit ``OMP_WAIT_POLICY`` or a small ``GOMP_SPINCOUNT``, settings a library should not
impose on the process): an RL loop with a slow policy would pay that at every step, so the worlds stay on
the worker thread.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange


@njit(nogil=True)
def work(values: np.ndarray, rounds: int) -> float:
    total = 0.0
    for _ in range(rounds):
        for i in range(values.shape[0]):
            total += values[i] * 1.0000001
            values[i] = total * 1e-9
    return total


@njit(parallel=True)
def both_on_threads(units: np.ndarray, rounds: int) -> np.ndarray:
    out = np.zeros(2)
    for k in prange(2):
        out[k] = work(units[k], rounds)
    return out


def spin(microseconds: float) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < microseconds * 1e-6:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-us", type=float, default=100.0, help="microseconds of one unit of work (default 100)")
    parser.add_argument("--gaps", default="0,50,500,5000", help="microseconds between calls, comma-separated")
    parser.add_argument("--calls", type=int, default=300, help="calls per way and gap (default 300)")
    parser.add_argument("--sleep", action="store_true", help="sleep between calls instead of spinning")
    args = parser.parse_args(argv)

    units = np.random.default_rng(0).random((2, 2000))
    rounds = 1
    work(units[0], rounds)
    start = time.perf_counter()
    work(units[0], 100)
    rounds = max(1, round(args.work_us * 1e-6 / ((time.perf_counter() - start) / 100)))
    numba.set_num_threads(2)
    both_on_threads(units, rounds)
    pool = ThreadPoolExecutor(1)

    def worker_thread() -> None:
        other = pool.submit(work, units[1], rounds)
        work(units[0], rounds)
        other.result()

    ways = {"one thread": lambda: (work(units[0], rounds), work(units[1], rounds)),
            "worker thread": worker_thread,
            "numba prange": lambda: both_on_threads(units, rounds)}
    print(f"numba threading layer: {numba.threading_layer()}; one unit of work: {rounds} rounds; "
          f"between calls the caller {'sleeps' if args.sleep else 'spins'}")
    print("| gap between calls | " + " | ".join(f"{way} (median / mean us)" for way in ways)
          + " | worker thread / one thread | prange / one thread |")
    print("|---|" + "---|" * (len(ways) + 2))
    for gap in [float(g) for g in args.gaps.split(",")]:
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.calls):
            for way, call in ways.items():
                time.sleep(gap * 1e-6) if args.sleep else spin(gap)
                start = time.perf_counter()
                call()
                times[way].append((time.perf_counter() - start) * 1e6)
        means = {way: float(np.mean(t)) for way, t in times.items()}
        cells = [f"{np.median(times[way]):.1f} / {means[way]:.1f}" for way in ways]
        print(f"| {gap:g} us | " + " | ".join(cells) + f" | {means['one thread'] / means['worker thread']:.2f}x"
              f" | {means['one thread'] / means['numba prange']:.2f}x |")
    pool.shutdown()


if __name__ == "__main__":
    main()
