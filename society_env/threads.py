"""When the world's compiled loops run on several threads: the thread count of an env, and the sizes below
which one thread runs whatever it says.

Two ways to use the threads, both giving the same bytes as one thread. The observation loops have
``parallel=True`` twins (``society_env.kernels``): :func:`use_threads` picks them for a big world. And
``SocietyVectorEnv`` can step several worlds side by side, each whole on one thread:
:func:`world_threads` says when.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

PARALLEL_MIN_AGENTS = 8192
"""Below this many living agents (observers) the loops run on one thread whatever ``num_threads`` says.
On a 2-core AMD EPYC (docs/performance.md, 2026-12-06) the threaded step of the array API was slower than
the one-call step on one thread at 2000-2500 agents and within 0.8-1.2x of it up to 10,000 (the rules
are serial, and two threads share the memory bandwidth the gather needs), 1.2-1.5x faster from 20,000
on; and with the other core busy it was up to 2.7x slower. Worlds of fewer slots (``max_agents``: LLM
runs, QES episodes, tests) never start OpenMP threads, which GNU OpenMP does not support across a later
fork of the process (a child forked after they ran steps its worlds on one thread: :func:`use_threads`); bigger ones with ``num_threads`` > 1 load the parallel loops at reset
(``observations.load_parallel_loops``)."""


WORLD_THREAD_MIN_AGENTS = 200
"""``SocietyVectorEnv`` steps its worlds side by side on threads only if they hold at least this many living
agents per thread (and none is big enough for the parallel loops). The worlds go to numba's threads in one
parallel loop (``kernels.step_worlds``), whose threads spin a while after a loop and so take the next
step's worlds at once; with a step every few hundred microseconds (a fast policy), two worlds side by side
were 1.0-1.3x one thread at 50-100 founders each, 1.3x at 150, 1.4-1.6x at 250 and 500, 1.4-1.7x at 1000
(2-core AMD EPYC, 2026-12-06, ``benchmarks/thread_threshold.py --worlds 2``). A policy slow enough for the
threads to fall asleep (milliseconds) finds them tens of microseconds from waking
(``benchmarks/thread_handoff.py``): at 200 agents a thread, about what stepping one world fewer on this
thread saves. The PPO presets' worlds (tens of agents) stay on one thread."""


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
"""The process that ran numba's parallel loops (numba then holds its threading layer's threads), or None."""
_warned_forked_child = False


def parallel_loops_allowed() -> bool:
    """Whether this process may run numba's parallel loops: not if it was forked from one that ran them under
    GNU OpenMP (numba's ``omp`` threading layer, the default where numba finds no TBB), which numba ends
    with SIGTERM at its first parallel loop ("fork() called from a process already using GNU OpenMP").
    There the worlds step on one thread, with the same arrays, and a ``RuntimeWarning`` says so once."""
    global _warned_forked_child
    if _parallel_loops_pid in (None, os.getpid()):
        return True
    import numba

    if numba.threading_layer() != "omp":
        return True
    if not _warned_forked_child:
        _warned_forked_child = True
        warnings.warn("this process was forked from one that ran society_env's parallel loops on GNU OpenMP, "
                      "which a forked child cannot use: its worlds step on one thread (the same arrays). Start "
                      "worker processes with the 'spawn' or 'forkserver' method to give them threads.",
                      RuntimeWarning, stacklevel=3)
    return False


_claimed: tuple[int, int, int] | None = None
"""(process, thread, threads) of the last :func:`claim_threads`: numba's setting is per thread, and setting
it again costs microseconds."""


def claim_threads(threads: int) -> None:
    """Let numba's next parallel loops (called from this thread) use ``threads`` threads, and remember that
    this process runs them (:func:`parallel_loops_allowed`)."""
    global _parallel_loops_pid, _claimed
    claim = (os.getpid(), threading.get_ident(), threads)
    if claim == _claimed:
        return
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _parallel_loops_pid, _claimed = claim[0], claim


def use_threads(threads: int, agents: int) -> bool:
    """Whether to run the parallel twins for a world of ``agents`` living agents (and, if so, set how many
    threads numba may use, for this thread): not below :data:`PARALLEL_MIN_AGENTS`, nor in a process
    that may not (:func:`parallel_loops_allowed`)."""
    if threads <= 1 or agents < PARALLEL_MIN_AGENTS or not parallel_loops_allowed():
        return False
    claim_threads(threads)
    return True


def world_threads(threads: int, living: list[int]) -> int:
    """How many threads step the worlds of a vector env side by side, each world on one (1: one world after
    the other), for ``living`` agents per world and an env of ``threads`` threads.

    A world big enough for the parallel loops (:data:`PARALLEL_MIN_AGENTS`) keeps them unless every thread
    gets a world that big: two worlds of 20,000 agents side by side were 1.43-1.51x one thread (float32)
    and 1.59-1.60x (uint8), one after the other on the parallel loops 1.35-1.43x and 0.93-1.05x
    (``benchmarks/thread_threshold.py --worlds 2``, 2026-12-06); a big world beside a small one would
    leave its thread's partner idle."""
    count = min(threads, len(living))
    if count <= 1 or sum(living) < WORLD_THREAD_MIN_AGENTS * count:
        return 1
    if max(living) >= PARALLEL_MIN_AGENTS and sum(n >= PARALLEL_MIN_AGENTS for n in living) < threads:
        return 1
    return count if parallel_loops_allowed() else 1
