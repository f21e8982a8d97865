"""When the world's compiled loops run on several threads: the thread count of an env, and the sizes below
which one thread runs whatever it says.

Two ways to use the threads, both giving the same bytes as one thread. The observation loops have
``parallel=True`` twins (``society_env.world.kernels``): :func:`use_threads` picks them for a big world. And
``SocietyVectorEnv`` can step several worlds side by side, each whole on one thread:
:func:`world_threads` says when.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

PARALLEL_MIN_AGENTS = 8192
"""Below this many living agents (observers) the loops run on one thread whatever ``num_threads`` says.
On a 2-core AMD EPYC (docs/performance.md, 2026-12-06) the threaded step of the array API was slower than
the one-call step on one thread at 2000-2500 agents and within 0.8-1.2x of it up to 10,000 (the rules
are serial, and two threads share the memory bandwidth the gather needs), 1.2-1.5x faster from 20,000
on; and with the other core busy it was up to 2.7x slower. Worlds of fewer slots (``max_agents``: LLM
runs, QES episodes, tests) never start OpenMP threads, which GNU OpenMP does not support across a later
fork of the process (a child forked after they ran steps its worlds on one thread: :func:`use_threads`);
bigger ones with ``num_threads`` > 1 load the parallel loops at reset (``observations.load_parallel_loops``)."""


WORLD_THREAD_MIN_AGENTS = 1000
"""``SocietyVectorEnv`` steps its worlds side by side on threads only if they hold at least this many living
agents per thread (and none is big enough for the parallel loops). Handing a world to another thread and
back costs about 70 us on the 2-core AMD EPYC (a sleeping thread's wake-up in this VM): side by side, two
worlds of 250 agents were 0.4-0.6x of one thread, of 500 0.6-0.7x, of 1000 1.0-1.8x, of 2500 1.3-1.8x;
two float32 worlds of 20,000 were faster one after the other, each on the parallel loops (1.35x against
1.2x: two worlds' grids compete for the cache). docs/performance.md has the runs
(``tools/thread_threshold.py --worlds 2``). Numba's parallel loop over the worlds hands them over at
once while its GNU OpenMP threads spin, but stalled 2-11 ms at the first step after the caller slept 5-20
ms (``tools/thread_handoff.py --sleep``): not used."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_threads(num_threads: int | None) -> int:
    """``num_threads`` of an env (None: :func:`available_cores`), checked; a bad value is a ValueError."""
    if num_threads is None:
        return available_cores()
    if not isinstance(num_threads, (int, np.integer)) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None (the cores available), got {num_threads!r}")
    return int(num_threads)


_parallel_loops_pid: int | None = None
"""The process that ran the parallel loops (numba then holds its threading layer's threads), or None."""
_warned_forked_child = False


def use_threads(threads: int, agents: int) -> bool:
    """Whether to run the parallel twins for a world of ``agents`` living agents (and, if so, set how many
    threads numba may use, for this thread).

    Not in a process forked from one that ran them under GNU OpenMP (numba's ``omp`` threading layer,
    the default where numba finds no TBB): numba ends such a child with SIGTERM at its first parallel
    loop ("fork() called from a process already using GNU OpenMP"). There the loops run on one thread,
    which writes the same bytes, and a ``RuntimeWarning`` says so once."""
    global _parallel_loops_pid, _warned_forked_child
    if threads <= 1 or agents < PARALLEL_MIN_AGENTS:
        return False
    import numba

    pid = os.getpid()
    if _parallel_loops_pid not in (None, pid) and numba.threading_layer() == "omp":
        if not _warned_forked_child:
            _warned_forked_child = True
            warnings.warn("this process was forked from one that ran society_env's parallel loops on GNU OpenMP, "
                          "which a forked child cannot use: its worlds step on one thread (the same arrays). Start "
                          "worker processes with the 'spawn' or 'forkserver' method to give them threads.",
                          RuntimeWarning, stacklevel=2)
        return False
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _parallel_loops_pid = pid
    return True


def world_threads(threads: int, living: list[int]) -> int:
    """How many threads step the worlds of a vector env side by side, each world on one (1: one world after
    the other), for ``living`` agents per world and an env of ``threads`` threads."""
    count = min(threads, len(living))
    if count <= 1 or max(living) >= PARALLEL_MIN_AGENTS or sum(living) < WORLD_THREAD_MIN_AGENTS * count:
        return 1
    return count
