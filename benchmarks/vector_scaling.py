"""The array API at scale: ``SocietyVectorEnv`` cost per agent-step from 1k to 100k agents in one world,
steps per second, peak memory per agent, and numba's first-call compile time.

Each size runs in a fresh subprocess (its peak RSS is its own), on the world of
``benchmarks/env_throughput.py`` (one agent per 25 cells, uniform food, ``max_agents = 2n + 100``),
uniformly random actions drawn with one ``rng.integers`` call per step. "in-step" counts time inside
``step()`` only; the steps are timed one by one and the table shows the median (the machine is shared).
"RSS per agent" is the subprocess's peak resident set size minus the one before the env was built, per
founder and per slot. Linear cost means flat microseconds per agent-step from row to row.

The compile time is measured in two more subprocesses with an empty numba cache directory
(``NUMBA_CACHE_DIR``): the first compiles every kernel (what the first run on a machine pays), the second
loads them from that cache (every later run).

    python benchmarks/vector_scaling.py                      # 1k, 10k, 100k agents; ~2 minutes
    python benchmarks/vector_scaling.py --sizes 1000,3000,10000,30000,100000 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(agents: int, steps: int, warmup: int, seed: int) -> dict:
    from benchmarks.env_throughput import world_overrides
    from society_env.world.vector import SocietyVectorEnv

    before = peak_rss_mb()
    envs = SocietyVectorEnv(1, "default", **world_overrides(agents, False))
    tick = time.perf_counter()
    _, infos = envs.reset(seed=seed)
    reset_s = time.perf_counter() - tick
    rng = np.random.default_rng(seed + 1)
    nvec = envs.single_action_space.nvec
    times, living = [], []
    for step in range(warmup + steps):
        actions = rng.integers(0, nvec, size=(1, envs.num_slots, nvec.size))
        alive = int(infos["alive"].sum())
        tick = time.perf_counter()
        infos = envs.step(actions)[4]
        if step >= warmup:
            times.append(time.perf_counter() - tick)
            living.append(alive)
    median = float(np.median(times))
    agents_per_step = float(np.mean(living))
    grown = peak_rss_mb() - before
    return {"agents": agents, "slots": envs.num_slots, "grid": envs.config.width, "steps": steps,
            "living_mean": agents_per_step, "median_step_s": median, "us_per_agent_step": 1e6 * median / agents_per_step,
            "steps_per_s": 1.0 / median, "reset_s": reset_s, "peak_rss_growth_mb": grown,
            "rss_kb_per_agent": 1024 * grown / agents, "rss_kb_per_slot": 1024 * grown / envs.num_slots}


def first_call(cache_dir: str) -> dict:
    """Import, build, reset and step a small world: with an empty cache this compiles every kernel."""
    tick = time.perf_counter()
    from society_env.world.vector import SocietyVectorEnv

    envs = SocietyVectorEnv(1, "small")
    envs.reset(seed=0)
    envs.step(np.zeros((1, envs.num_slots, len(envs.single_action_space.nvec)), dtype=np.int64))
    import society_env

    env = society_env.parallel_env("small")
    env.reset(seed=0)
    env.step({agent: np.zeros(env.action_space(agent).shape, dtype=np.int64) for agent in env.agents})
    return {"seconds": time.perf_counter() - tick, "cache_dir": cache_dir}


def run_worker(spec: dict, env: dict | None = None) -> dict:
    process = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                             capture_output=True, text=True, env=env)
    if process.returncode != 0:
        raise RuntimeError(f"{spec} failed:\n{process.stderr}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated agents per world")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per size (default 10)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        result = first_call(spec["cache_dir"]) if spec["kind"] == "compile" else measure(spec["agents"], spec["steps"], spec["warmup"], spec["seed"])
        print(json.dumps(result))
        return

    load = os.getloadavg()[0]
    print(f"# {os.cpu_count()} cores, numpy {np.__version__}, load average {load:.2f} at start")
    rows = []
    for agents in [int(x) for x in args.sizes.split(",") if x]:
        print(f"measuring {agents} agents", file=sys.stderr, flush=True)
        rows.append(run_worker({"kind": "size", "agents": agents, "steps": args.steps, "warmup": args.warmup, "seed": args.seed}))
    print()
    print("| agents (founders) | slots | grid | living per step | median step | steps/s | us/agent-step | reset | peak RSS growth | per agent | per slot |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['agents']:,} | {r['slots']:,} | {r['grid']}x{r['grid']} | {r['living_mean']:,.0f} | {1e3 * r['median_step_s']:.1f} ms "
              f"| {r['steps_per_s']:.1f} | {r['us_per_agent_step']:.2f} | {r['reset_s']:.2f} s | {r['peak_rss_growth_mb']:,.0f} MB "
              f"| {r['rss_kb_per_agent']:.1f} kB | {r['rss_kb_per_slot']:.1f} kB |")
    if len(rows) >= 2:
        print()
        print(f"- cost per agent-step at {rows[-1]['agents']:,} agents is {rows[-1]['us_per_agent_step'] / rows[0]['us_per_agent_step']:.2f}x "
              f"the one at {rows[0]['agents']:,} (1.0 = linear)")
    largest = max(rows, key=lambda r: r["agents"])
    if largest["agents"] >= 100_000:
        verdict = "met" if largest["steps_per_s"] >= 10 else "MISSED"
        print(f"- {largest['agents']:,}-agent world >= 10 steps/s: {largest['steps_per_s']:.1f} ({verdict})")
    compile_times = {}
    if not args.no_compile:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            compile_times["cold"] = run_worker({"kind": "compile", "cache_dir": cache}, env)["seconds"]
            compile_times["warm"] = run_worker({"kind": "compile", "cache_dir": cache}, env)["seconds"]
        print(f"- import + first reset and step of both APIs: {compile_times['cold']:.1f} s with an empty numba cache "
              f"(compiling every kernel), {compile_times['warm']:.1f} s with it filled")
    if args.json:
        args.json.write_text(json.dumps({"sizes": rows, "compile_s": compile_times}, indent=1))


if __name__ == "__main__":
    main()
