"""The world against MAgent2, side by side in one run: our array API against MAgent2's own array API (its
GridWorld handles, its fastest API) and our PettingZoo API against MAgent2's PettingZoo API, at the same
number of living agents and the same density, at steady state, rows interleaved. Prints the rates and the
ratios ours / MAgent2 of this run.

For each target population N (``--agents``, default 500 and 5000) it runs every row below in its own
subprocess, ``--steps`` random-action steps (default 300) after ``--warmup`` steps (default 3). The rows
run interleaved: all are built first, then each takes ``--turn`` steps (default 30) in turn, the first row
of a turn rotating, until every row has its steps. On a machine whose speed drifts (this one's moved by
1.5x within minutes) every row then meets the same speeds: run one after the other, each row met its own,
and the ratios moved with them.

| row | what is timed per step |
|---|---|
| ``ours array 1 thread`` / ``2 threads`` | ``SocietyVectorEnv.step(actions)`` (one world), ``num_threads`` 1 or 2 |
| ``ours array uint8 ...`` | the same with ``obs_dtype="uint8"`` (the compact view, features in infos) |
| ``ours array 2 worlds 2 threads`` | ``SocietyVectorEnv.step(actions)`` of two worlds of N / 2 founders each (same density), side by side on two threads |
| ``MAgent2 gather array`` / ``battle array`` | MAgent2's own GridWorld handles: ``set_action`` per group, ``step``, ``get_observation`` and ``get_reward`` per group, ``clear_dead`` (MAgent2 is single-threaded: its library links no OpenMP) |
| ``ours PettingZoo`` | ``society_env.parallel_env(...).step(dict)`` (default ``num_threads``: the cores) |
| ``ours PettingZoo language`` | the same with ``language=True``: a text observation per agent, actions with a free-text message; compared with TerraLingua's 4k agent-steps/s (a figure quoted by the project's issue, not measured here) |
| ``MAgent2 gather PZ`` / ``battle PZ`` | ``gather_v5`` / ``battle_v4`` ``parallel_env().step(dict)`` |

Worlds: a square torus of side ``round(sqrt(N / DENSITY))`` with ``DENSITY`` = 0.04 agents per cell for
every engine. Ours: N founders, uniform food with 4 N initial tiles and 0.16 N tiles regrown per step,
breeding from 80 energy, no death of old age, and enough slots for the run's births (:func:`slots_for`):
no episode ends, and the population stays near N (0.86-1.16 N over 300 steps; the table prints start,
mean and end). MAgent2's array rows place N agents at random on that map with the game's own agent types and
rules (gather: N omnivores and N food pieces; battle: two teams of N / 2); its PettingZoo rows use the
game's own map (gather: fixed 200x200 with 495 omnivores, so only for N near that; battle: ``map_size``
that gives about N agents). MAgent2 agents only die of attacks, so their populations shrink a little:
living agents are counted at every step.

Reported per row: the mean rate over all measured steps (living agent-steps / seconds inside the step, the
headline), the best block of ``--block`` steps beside it, wall and process CPU time per step, the
observation bytes per agent against the machine's copy bandwidth (the rate at which the observations alone
could be written), and the growth of the row process's peak resident set size, in all and per living agent.

Scale (``--scale``): N = 1000, 10,000 and 100,000, 100 steps in turns of 10, our one-world array rows
only (float32 and uint8, 1 and 2 threads; add MAgent2's with ``--rows``); the cost per agent-step at each
N against the smallest N is the linearity (1.00: linear). ``--compile-time`` also times importing,
resetting and stepping both APIs once in a fresh process with an empty numba cache (``NUMBA_CACHE_DIR``:
every kernel compiled, what the first run on a machine pays) and again with that cache filled (every later
run).

    python benchmarks/env_vs_magent2.py                      # N = 500, 5000; 300 steps (~3 min on 2 cores)
    python benchmarks/env_vs_magent2.py --quick              # N = 500, 60 steps in turns of 20 (~30 s)
    python benchmarks/env_vs_magent2.py --scale --compile-time
    python benchmarks/env_vs_magent2.py --agents 1000000 --steps 10 --warmup 1 --rows "ours array 2 threads,ours array uint8 2 threads"
    python benchmarks/env_vs_magent2.py --agents 500 --before /tmp/worktree-of-an-older-commit   # ours now against then, interleaved

MAgent2 comes with the ``bench`` extra (``pip install -e ".[bench]"``); without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DENSITY = 0.04
"""Agents per cell for every engine (one agent per 25 cells)."""
REGROWTH, INITIAL_FOOD, REPRODUCE_MIN_ENERGY, LIFESPAN = 0.16, 4, 80, 10**6
"""Our world per founder: food tiles regrown per step and initial food tiles; and for every agent: the energy
from which it can breed, and a lifespan no run reaches. With these, random walkers hold their number: food
alone limits them (they die of hunger, and breed when fed), and over 300 steps from N founders the
population stays within 0.86-1.16 N (mean 0.97-0.98 N at N = 500 and 5000; measured 2026-12-06). With the
default lifespan of 100 steps every founder dies at step 100, at once, and the world empties."""


def slots_for(agents: int, steps: int) -> int:
    """``max_agents`` for a run of ``steps`` steps from ``agents`` founders: slots are never reused, and the
    world above has about 0.9 N births per 300 steps; the slots cover them with a margin."""
    return round(agents * (1.2 + steps / 200))


def side_for(agents: int) -> int:
    return max(12, round(math.sqrt(agents / DENSITY)))


def our_overrides(agents: int, steps: int = 300) -> dict:
    """Our world for ``agents`` founders and a run of ``steps`` steps (:data:`REGROWTH`)."""
    return {"width": side_for(agents), "height": side_for(agents), "num_founders": agents,
            "max_agents": slots_for(agents, steps), "initial_food": INITIAL_FOOD * agents,
            "food_regrowth_rate": REGROWTH * agents, "reproduce_min_energy": REPRODUCE_MIN_ENERGY, "lifespan": LIFESPAN,
            "food_distribution": "uniform", "max_steps": 10**6}


def _rss_mb() -> float:
    """This process's peak resident set size, MB: Linux's ``VmHWM``, which starts afresh at ``exec``.
    (``ru_maxrss`` does not: a row's process would start with the peak of the parent it was forked from,
    whose bandwidth test alone holds 1 GB, and report no growth below that.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Row(NamedTuple):
    """One row's engine, ready to step: ``step()`` advances it (what is timed), ``living()`` counts the
    living agents and draws the next actions (outside the timing, as a policy would)."""

    step: Callable[[], None]
    living: Callable[[], int]
    obs_bytes: int


def timed_steps(row: Row, steps: int) -> dict:
    """Time ``row.step()`` ``steps`` times (fewer if the world empties): wall and CPU seconds, living agents
    before each."""
    walls, cpus, agents = [], [], []
    for _ in range(steps):
        agents.append(row.living())
        if agents[-1] == 0:
            break
        wall, cpu = time.perf_counter(), time.process_time()
        row.step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall": walls, "cpu": cpus, "agents": agents[: len(walls)]}


# ---- ours ---------------------------------------------------------------------------------------
def measure_ours_array(agents: int, steps: int, seed: int, threads: int, dtype: str = "float32",
                       worlds: int = 1) -> Row:
    """``worlds`` > 1: the agents split over that many worlds of ``agents / worlds`` founders each, on maps of
    the same density (``SocietyVectorEnv`` steps them side by side, each on one thread)."""
    from society_env.world.vector import SocietyVectorEnv

    envs = SocietyVectorEnv(worlds, "default", num_threads=threads, obs_dtype=dtype,
                            **our_overrides(agents // worlds, steps))
    _, infos = envs.reset(seed=seed)
    nvec, rng = envs.single_action_space.nvec, np.random.default_rng(seed + 1)
    state = {"infos": infos, "actions": None}
    shape = (worlds, envs.num_slots, nvec.size)

    def step():
        state["infos"] = envs.step(state["actions"])[4]

    def living():  # draws the next actions outside the timed step, as a policy would
        state["actions"] = rng.integers(0, nvec, size=shape)
        return int(state["infos"]["alive"].sum())

    features = 0 if dtype == "float32" else 12 * 4  # the compact form's float32 features, in infos
    return Row(step, living, envs.single_observation_space.shape[0] * np.dtype(dtype).itemsize + features)


TERRALINGUA_AGENT_STEPS_PER_S = 4_000
"""TerraLingua's throughput as quoted in the project's issue (agent-steps/s); a constant, not measured here."""
MESSAGES = ("", "food north", "food south", "food west", "food east", "help me", "share?", "follow me")
"""Free-text message of a language action, picked by the action's (random) message token."""


def measure_ours_pz(agents: int, steps: int, seed: int, language: bool = False) -> Row:
    """``language``: the text view (a ``{"observation", "text"}`` observation per agent, actions with a
    message); its observation bytes count the numeric part and the first step's mean text length."""
    import society_env

    env = society_env.parallel_env("default", language=language, **our_overrides(agents, steps))
    observations, _ = env.reset(seed=seed)
    space = env.action_space(env.possible_agents[0])
    nvec, rng = (space["action"] if language else space).nvec, np.random.default_rng(seed + 1)
    state = {"actions": None}

    def step():
        env.step(state["actions"])

    def living():
        matrix = rng.integers(0, nvec, size=(len(env.agents), nvec.size))
        if language:
            state["actions"] = {agent: {"action": row, "message": MESSAGES[token]}
                                for agent, row, token in zip(env.agents, matrix, matrix[:, 3].tolist())}
        else:
            state["actions"] = dict(zip(env.agents, matrix))
        return len(env.agents)

    text = np.mean([len(o["text"]) for o in observations.values()]) if language and observations else 0
    return Row(step, living, env.observation_size * 4 + round(text))


# ---- MAgent2 ------------------------------------------------------------------------------------
def _magent_world(game: str, agents: int, seed: int):
    """A GridWorld of ``game``'s agent types and rules on our map side, N agents placed at random."""
    import magent2
    from magent2.environments.battle.battle import get_config as battle_config
    from magent2.environments.gather.gather import get_config as gather_config

    side = side_for(agents)
    if game == "gather":
        config = gather_config(side, False, seed, step_reward=-0.01, attack_penalty=-0.1, dead_penalty=-1,
                               attack_food_reward=0.5)
    else:
        config = battle_config(side, False, seed, step_reward=-0.005, dead_penalty=-0.1, attack_penalty=-0.1,
                               attack_opponent_reward=0.2)
    world = magent2.GridWorld(config)
    world.reset()
    handles = world.get_handles()
    if game == "gather":
        food, acting = handles[0], handles[1:]
        world.add_agents(food, method="random", n=agents)
        world.add_agents(acting[0], method="random", n=agents)
    else:
        acting = handles
        for handle in acting:
            world.add_agents(handle, method="random", n=agents // 2)
    return world, acting


def measure_magent_array(game: str, agents: int, seed: int) -> Row:
    world, acting = _magent_world(game, agents, seed)
    sizes = [world.get_action_space(h)[0] for h in acting]
    rng = np.random.default_rng(seed + 1)
    state = {"actions": None}

    def step():
        for handle, actions in zip(acting, state["actions"]):
            world.set_action(handle, actions)
        world.step()
        for handle in acting:
            world.get_observation(handle)
            world.get_reward(handle)
        world.clear_dead()

    def living():
        counts = [world.get_num(h) for h in acting]
        state["actions"] = [rng.integers(0, size, n).astype(np.int32) for size, n in zip(sizes, counts)]
        return sum(counts)

    view, feature = world.get_observation(acting[0])
    return Row(step, living, (view[0].nbytes + feature[0].nbytes) if len(view) else 0)


def measure_magent_pz(game: str, agents: int, seed: int) -> Row:
    from magent2.environments import battle_v4, gather_v5

    if game == "gather":
        env = gather_v5.parallel_env(max_cycles=10**6)
    else:  # battle's map gives about 0.08 agents per cell: the map side for N agents
        env = battle_v4.parallel_env(map_size=max(12, round(math.sqrt(agents / 0.08))), max_cycles=10**6)
    env.reset(seed=seed)
    sizes = {agent: env.action_space(agent).n for agent in env.possible_agents}
    rng = np.random.default_rng(seed + 1)
    state = {"actions": None}

    def step():
        env.step(state["actions"])

    def living():
        drawn = rng.integers(0, [sizes[a] for a in env.agents]) if env.agents else []
        state["actions"] = dict(zip(env.agents, np.asarray(drawn).tolist()))
        return len(env.agents)

    observation_floats = int(np.prod(env.observation_space(env.possible_agents[0]).shape))
    return Row(step, living, observation_floats * 4)


# ---- the limit: memcpy bandwidth ----------------------------------------------------------------
def memcpy_bandwidth(threads: int, megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes copied per second between two cache-cold ``megabytes`` arrays, best of ``repeats``, with
    NumPy (one thread) or a numba ``prange`` copy over ``threads`` threads."""
    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    if threads == 1:
        copy = lambda: np.copyto(target, source)  # noqa: E731
    else:
        import numba

        @numba.njit(parallel=True)
        def parallel_copy(target, source, chunks):
            size = source.shape[0]
            for c in numba.prange(chunks):
                start, end = c * size // chunks, (c + 1) * size // chunks
                target[start:end] = source[start:end]

        numba.set_num_threads(threads)
        copy = lambda: parallel_copy(target, source, 64)  # noqa: E731
    copy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        copy()
        best = min(best, time.perf_counter() - started)
    return source.nbytes / best


def threads_of(row: str) -> int:
    return 2 if "2 threads" in row or row.startswith("ours PettingZoo") else 1


# ---- driver -------------------------------------------------------------------------------------
def _run_steps(spec: dict) -> int:
    """Steps a row's world must last: the warm-up and the measured steps (our worlds' slots are sized for them)."""
    return spec["steps"] + spec["warmup"]


ROWS = {  # row -> the Row of a spec (agents, steps, warmup, seed)
    "ours array 1 thread": lambda s: measure_ours_array(s["agents"], _run_steps(s), s["seed"], 1),
    "ours array 2 threads": lambda s: measure_ours_array(s["agents"], _run_steps(s), s["seed"], 2),
    "ours array uint8 1 thread": lambda s: measure_ours_array(s["agents"], _run_steps(s), s["seed"], 1, "uint8"),
    "ours array uint8 2 threads": lambda s: measure_ours_array(s["agents"], _run_steps(s), s["seed"], 2, "uint8"),
    "ours array 2 worlds 2 threads": lambda s: measure_ours_array(s["agents"], _run_steps(s), s["seed"], 2, worlds=2),
    "MAgent2 gather array": lambda s: measure_magent_array("gather", s["agents"], s["seed"]),
    "MAgent2 battle array": lambda s: measure_magent_array("battle", s["agents"], s["seed"]),
    "ours PettingZoo": lambda s: measure_ours_pz(s["agents"], _run_steps(s), s["seed"]),
    "MAgent2 gather PZ": lambda s: measure_magent_pz("gather", s["agents"], s["seed"]),
    "MAgent2 battle PZ": lambda s: measure_magent_pz("battle", s["agents"], s["seed"]),
    "ours PettingZoo language": lambda s: measure_ours_pz(s["agents"], _run_steps(s), s["seed"], language=True),
}
ARRAY_ROWS = [row for row in ROWS if row.startswith("ours array")]
SCALE_ROWS = ["ours array 1 thread", "ours array 2 threads", "ours array uint8 1 thread", "ours array uint8 2 threads"]

RATIOS = (  # (ours, peer): printed as ours / peer where both ran
    *((ours, peer) for ours in ("ours array 1 thread", "ours array 2 threads", "ours array uint8 1 thread",
                                "ours array uint8 2 threads", "ours array 2 worlds 2 threads")
      for peer in ("MAgent2 gather array", "MAgent2 battle array")),
    ("ours PettingZoo", "MAgent2 gather PZ"), ("ours PettingZoo", "MAgent2 battle PZ"),
)

_MESSAGE = "@@ "
"""Prefix of a worker's protocol lines on its stdout (the engines may print lines of their own)."""


def run_worker(spec: dict) -> None:
    """A row's subprocess: build the world and take the warm-up steps, then answer each line of stdin, a
    number n: time n steps and send them; 0: send the end (living agents, RSS growth, observation bytes)."""
    import warnings

    warnings.filterwarnings("ignore")
    if spec.get("root"):  # the rows of --before: society_env from that checkout
        sys.path.insert(0, spec["root"])
    rss_before = _rss_mb()
    row = ROWS[spec["row"]](spec)
    for _ in range(spec["warmup"]):
        row.living()
        row.step()
    gc.collect()

    def send(message: dict) -> None:
        print(_MESSAGE + json.dumps(message), flush=True)

    send({"ready": True})
    for line in sys.stdin:
        steps = int(line)
        if steps == 0:
            break
        send(timed_steps(row, steps))
    send({"end_agents": row.living(), "rss_growth_mb": _rss_mb() - rss_before, "obs_bytes": row.obs_bytes})


class Worker:
    """A row's subprocess (:func:`run_worker`), asked for a number of steps at a time."""

    def __init__(self, spec: dict):
        self.row = spec.get("label", spec["row"])
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read if the worker fails, closed at the end
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.errors, text=True)
        self.receive()  # built and warmed up

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(_MESSAGE):
                return json.loads(line[len(_MESSAGE):])
        self.process.wait()
        self.errors.seek(0)
        raise RuntimeError(f"{self.row} failed:\n{self.errors.read()[-3000:]}")

    def ask(self, steps: int) -> dict:
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        return self.receive()


def run_interleaved(specs: list[dict], steps: int, turn_steps: int) -> dict[str, dict]:
    """Every row of ``specs`` in its own subprocess, all alive at once and stepped in turns of
    ``turn_steps`` steps each until each has taken ``steps`` (or its world emptied); which row goes first
    rotates from turn to turn. On a machine whose speed drifts (this one's by 1.5x within minutes) every
    row then meets the same speeds, where rows run one after the other would each meet their own."""
    workers = [Worker(spec) for spec in specs]  # one at a time: each builds and warms up while the others wait
    results = {w.row: {"wall": [], "cpu": [], "agents": []} for w in workers}
    active = list(workers)
    turn = 0
    while active:
        first = turn % len(active)
        for worker in active[first:] + active[:first]:
            asked = min(turn_steps, steps - len(results[worker.row]["wall"]))
            part = worker.ask(asked)
            for key in ("wall", "cpu", "agents"):
                results[worker.row][key] += part[key]
            if len(part["wall"]) < asked or len(results[worker.row]["wall"]) == steps:
                active.remove(worker)  # done, or its world emptied
        turn += 1
    for worker in workers:
        results[worker.row].update(worker.ask(0))
        worker.process.wait()
        worker.errors.close()
    return results


def summarise(result: dict, block: int) -> dict:
    wall, cpu, agents = (np.asarray(result[k], dtype=float) for k in ("wall", "cpu", "agents"))
    blocks = [slice(i, i + block) for i in range(0, len(wall) - block + 1, block)] or [slice(0, len(wall))]
    best = max(blocks, key=lambda b: agents[b].sum() / wall[b].sum())
    return {"mean_rate": agents.sum() / wall.sum(), "best_rate": agents[best].sum() / wall[best].sum(),
            "cpu_rate": agents.sum() / max(cpu.sum(), 1e-12), "ms_per_step": 1e3 * wall.mean(),
            "cpu_ms_per_step": 1e3 * cpu.mean(), "agents_start": int(agents[0]), "agents_mean": float(agents.mean()),
            "agents_end": int(result["end_agents"]), "steps": len(wall), "rss_growth_mb": result["rss_growth_mb"],
            "obs_bytes": result["obs_bytes"]}


# ---- compile time -------------------------------------------------------------------------------
def first_call() -> tuple[float, float]:
    """Wall and CPU seconds to import, build, reset and step both APIs once on a small world: with an empty
    numba cache this compiles every kernel the two APIs use. numba compiles on one thread, so on a machine
    shared with other work the CPU seconds are the steadier figure."""
    started, cpu = time.perf_counter(), time.process_time()
    import society_env
    from society_env.world.vector import SocietyVectorEnv

    envs = SocietyVectorEnv(1, "small")
    envs.reset(seed=0)
    envs.step(np.zeros((1, envs.num_slots, len(envs.single_action_space.nvec)), dtype=np.int64))
    env = society_env.parallel_env("small")
    env.reset(seed=0)
    env.step({agent: np.zeros(env.action_space(agent).shape, dtype=np.int64) for agent in env.agents})
    return time.perf_counter() - started, time.process_time() - cpu


def compile_times() -> dict[str, list[float]]:
    """:func:`first_call` (wall, CPU seconds) in a fresh process with an empty numba cache directory ("cold"),
    then in another with the cache the first one filled ("warm")."""
    import os

    times = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "warm"):
            process = subprocess.run([sys.executable, __file__, "--worker", json.dumps({"compile": True})],
                                     capture_output=True, text=True, env={**os.environ, "NUMBA_CACHE_DIR": cache})
            if process.returncode != 0:
                raise RuntimeError(f"compile-time worker failed:\n{process.stderr[-3000:]}")
            times[label] = json.loads(process.stdout.strip().splitlines()[-1])
    return times


# ---- report -------------------------------------------------------------------------------------
def print_size(agents: int, results: dict[str, dict], args: argparse.Namespace, bandwidth: dict[int, float]) -> None:
    """One population's table, then its ratios ours / MAgent2 (and ours / before with ``--before``)."""
    print(f"\n## target {agents} living agents, {args.steps} steps after {args.warmup} warm-up, rows in turns of "
          f"{args.turn} steps (map side {side_for(agents)} for the array rows, {DENSITY} agents per cell)\n")
    print("| row | agents start / mean / end | mean agent-steps/s | best block | CPU agent-steps/s | ms per step (CPU) "
          "| obs bytes / agent | of the memcpy bound | RSS growth MB (kB / agent) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row, r in results.items():
        bound = bandwidth[threads_of(row.removeprefix("before: "))] / max(r["obs_bytes"], 1)
        r["bound_fraction"] = r["mean_rate"] / bound
        print(f"| {row} | {r['agents_start']} / {r['agents_mean']:.0f} / {r['agents_end']} | {r['mean_rate'] / 1e6:.3f}M | "
              f"{r['best_rate'] / 1e6:.3f}M | {r['cpu_rate'] / 1e6:.3f}M | {r['ms_per_step']:.2f} ({r['cpu_ms_per_step']:.2f}) | "
              f"{r['obs_bytes']} | {r['bound_fraction']:.1%} of {bound / 1e6:.0f}M | "
              f"{r['rss_growth_mb']:.0f} ({1024 * r['rss_growth_mb'] / max(r['agents_mean'], 1):.1f}) |")
    print()
    for ours, peer in RATIOS:
        if ours in results and peer in results:
            mean = results[ours]["mean_rate"] / results[peer]["mean_rate"]
            best = results[ours]["best_rate"] / results[peer]["best_rate"]
            print(f"- {ours} / {peer}: **{mean:.2f}x** mean over all steps ({best:.2f}x best blocks)")
    language = results.get("ours PettingZoo language")
    if language:
        print(f"- ours PettingZoo language / TerraLingua's quoted {TERRALINGUA_AGENT_STEPS_PER_S:,}: "
              f"**{language['mean_rate'] / TERRALINGUA_AGENT_STEPS_PER_S:.1f}x**")
    for row in ROWS:
        if row in results and f"before: {row}" in results:
            print(f"- {row} / before: **{results[row]['mean_rate'] / results[f'before: {row}']['mean_rate']:.2f}x** "
                  "mean over all steps")


def print_ratio_summary(report: dict) -> None:
    """Every ratio of the run, one column per population, side by side."""
    sizes = [key for key in report if isinstance(key, int)]
    lines = []
    for ours, peer in RATIOS:
        cells = [f"{report[n][ours]['mean_rate'] / report[n][peer]['mean_rate']:.2f}x"
                 if ours in report[n] and peer in report[n] else "-" for n in sizes]
        if any(cell != "-" for cell in cells):
            lines.append(f"| {ours} / {peer} | " + " | ".join(cells) + " |")
    for row in ARRAY_ROWS:  # cost per agent-step relative to the smallest population: 1.00 is linear
        ran = [n for n in sizes if row in report[n]]
        if len(ran) >= 2:
            base = report[ran[0]][row]["mean_rate"]
            cells = [f"{base / report[n][row]['mean_rate']:.2f}" if row in report[n] else "-" for n in sizes]
            lines.append(f"| {row}: cost per agent-step / at {ran[0]:,} | " + " | ".join(cells) + " |")
    if lines:
        print("\n## Ratios of this run (mean over all steps)\n")
        print("| ratio | " + " | ".join(f"{n:,}" for n in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                        help="target living agents, comma-separated (default 500,5000)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per row (default 300)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--block", type=int, default=10, help="steps per block of the best-block column (default 10)")
    parser.add_argument("--turn", type=int, default=None,
                        help="steps a row takes before the next row's turn (default 30; rows run interleaved)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default=None, help=f"rows to run, comma-separated (default all: {', '.join(ROWS)})")
    parser.add_argument("--quick", action="store_true",
                        help="a short check: N = 500, 60 steps in turns of 20, a 128 MB copy for the bandwidth")
    parser.add_argument("--scale", action="store_true",
                        help="N = 1000, 10000, 100000, 100 steps in turns of 10, our four one-world array rows")
    parser.add_argument("--compile-time", action="store_true",
                        help="also time the first import, reset and step with an empty numba cache and a filled one")
    parser.add_argument("--json", type=Path, default=None, help="also save every measurement as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="also plot agents vs agent-steps/s into this PNG")
    parser.add_argument("--before", type=Path, default=None,
                        help="also run our rows with society_env from this checkout (e.g. a git worktree of an earlier "
                             "commit), interleaved with the others, as rows 'before: ...'")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        if spec.get("compile"):
            print(json.dumps(first_call()))
        else:
            run_worker(spec)
        return
    if args.quick and args.scale:
        parser.error("--quick and --scale are two different runs: choose one")
    mode = {"agents": [500], "steps": 60, "turn": 20} if args.quick else \
        {"agents": [1000, 10_000, 100_000], "steps": 100, "turn": 10} if args.scale else \
        {"agents": [500, 5000], "steps": 300, "turn": 30}
    args.agents, args.steps, args.turn = (args.agents or mode["agents"], args.steps or mode["steps"],
                                          args.turn or mode["turn"])
    rows = [row for row in (args.rows or ",".join(SCALE_ROWS if args.scale else ROWS)).split(",") if row]
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    try:
        import magent2  # noqa: F401
    except ImportError:
        rows = [row for row in rows if not row.startswith("MAgent2")]
        print("magent2 is not installed (pip install -e '.[bench]'): MAgent2 rows skipped", file=sys.stderr)
    megabytes = 128 if args.quick else 512
    bandwidth = {threads: memcpy_bandwidth(threads, megabytes) for threads in (1, 2)}
    print(f"memcpy bandwidth ({megabytes} MB, best of 5): {bandwidth[1] / 1e9:.1f} GB/s on one thread, "
          f"{bandwidth[2] / 1e9:.1f} GB/s on two. Bound on agent-steps/s = bandwidth / observation bytes per agent "
          "(writing the observations, nothing else).")
    report: dict = {"memcpy_bytes_per_s": bandwidth}
    for agents in args.agents:
        specs = [{"row": row, "agents": agents, "steps": args.steps, "warmup": args.warmup, "seed": args.seed}
                 for row in rows if row != "MAgent2 gather PZ" or 250 <= agents <= 1000]  # gather_v5: 495 omnivores
        if args.before:
            specs += [{**spec, "label": f"before: {spec['row']}", "root": str(args.before.resolve())}
                      for spec in specs if spec["row"].startswith("ours")]
        results = {row: summarise(result, args.block)
                   for row, result in run_interleaved(specs, args.steps, args.turn).items()}
        report[agents] = results
        print_size(agents, results, args, bandwidth)
    print_ratio_summary(report)
    if args.compile_time:
        report["compile_s"] = times = compile_times()
        (cold, cold_cpu), (warm, warm_cpu) = times["cold"], times["warm"]
        print(f"\n- import + first reset and step of both APIs: {cold:.1f} s ({cold_cpu:.1f} s CPU) with an empty numba "
              f"cache (compiling every kernel), {warm:.1f} s ({warm_cpu:.1f} s CPU) with it filled")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)


def plot(report: dict, path: Path) -> None:
    """Living agents (mean) against mean agent-steps/s, one line per row, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = [key for key in report if isinstance(key, int)]
    for row in ROWS:
        points = sorted((report[n][row]["agents_mean"], report[n][row]["mean_rate"]) for n in sizes if row in report[n])
        if points:
            style = "-" if row.startswith("ours") else "--"
            ax.plot(*zip(*points), style, marker="o", label=row)
    ax.set(xscale="log", yscale="log", xlabel="living agents (mean over the measured steps)",
           ylabel="agent-steps / s (mean over all steps)", title="society_env vs MAgent2, random actions, same density")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
