"""World throughput: agent-steps per second of the society world with uniformly random actions, in one run
next to the slow per-agent reference step, MAgent2's C++ grid engine, and the language (text) view.

For 20, 200, 1000 and 5000 agents (``--sizes``) it measures:

* **numeric**: ``society_env`` with the numeric observation (13x13 view, 6 channels, 12 features);
* **language**: the same world with ``language=True`` (a text observation rendered per agent, actions
  with a free-text message), compared with TerraLingua's ~4k agent-steps/s (a quoted figure, not measured);
* **reference**: ``tests/reference_world.py`` (plain Python, one agent at a time) driven with the same
  random actions from the same start (fewer steps: it is slow); the run is checked to end in exactly the
  world ``society_env`` reaches with those actions;
* **MAgent2** ``gather_v5.parallel_env()`` and ``battle_v4.parallel_env()`` at their default sizes, and
  ``battle_v4`` with ``map_size`` chosen to match each population size, random actions.

"wall" agent-steps/s counts the whole loop (drawing the random actions, building the action dict, the
step); "in-step" counts time inside ``env.step`` (``reference_step``) only; "rules-only" counts time in
``society_env.world.rules.advance_world`` as ``env.step`` calls it (the part the reference computes: it builds no
observations). The measured steps are cut into blocks (``--block``, 10 steps) and each configuration
reports its best block, as timeit reports the best repeat: on a shared machine that is the least disturbed
one. "in-step CPU" is process CPU time inside the step over all measured steps, which other processes
hardly change. Each configuration runs in a fresh subprocess, so its peak memory is its own: "RSS growth"
is the peak resident set size minus the one before the environment was built; "traced peak" is the
tracemalloc peak over two extra steps (Python and NumPy allocations only: MAgent2's C++ buffers are not
traced).

World per size n: side = round(sqrt(25 n)) (one agent per 25 cells), n founders, uniform food with the
``large`` preset's amounts per agent (2 n initial tiles, 0.02 n regrowth per step), max_agents = 2 n + 100
for births, max_steps = 10**6. Populations stay within about 10% over the measured steps.

    python benchmarks/env_throughput.py            # sizes 20,200,1000,5000; 30 steps after 3 warm-up steps (~15 s)
    python benchmarks/env_throughput.py --quick    # sizes 20,200,1000; 10 steps (a few seconds)
    python benchmarks/env_throughput.py --sizes 1000 --steps 50 --no-magent
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout: society_env and tests/reference_world.py from here
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TERRALINGUA_AGENT_STEPS_PER_S = 4_000
"""TerraLingua's measured throughput as quoted in the issue (agent-steps/s); a constant, not measured here."""
DEFAULT_SIZES = (20, 200, 1000, 5000)
MESSAGES = ("", "food north", "food south", "food west", "food east", "help me", "share?", "follow me")
"""Free-text message of a language action, picked by the action's (random) message token."""
BATTLE_DENSITY = 0.08
"""Agents per cell of battle_v4 (both teams): map_size 45 gives 162 agents."""


# ---- configurations -----------------------------------------------------------------------------
def world_overrides(agents: int, language: bool) -> dict[str, Any]:
    side = max(3, round(math.sqrt(25 * agents)))
    return {
        "width": side,
        "height": side,
        "num_founders": agents,
        "max_agents": 2 * agents + 100,
        "initial_food": 2 * agents,
        "food_regrowth_rate": 0.02 * agents,
        "food_distribution": "uniform",
        "max_steps": 10**6,
        "language": language,
    }


def make_world(agents: int, language: bool):
    import society_env

    return society_env.parallel_env("default", **world_overrides(agents, language))


def reference_steps(agents: int, steps: int) -> int:
    """The reference is slow: about 10k agent-steps, at least one step, at most ``steps``."""
    return max(1, min(steps, 10_000 // agents))


def battle_map_size(agents: int) -> int:
    return max(8, round(math.sqrt(agents / BATTLE_DENSITY)))


# ---- measurements (each in its own subprocess) -------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _traced_peak_mb(step, count: int = 2) -> float:
    tracemalloc.start()
    try:
        for _ in range(count):
            step()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _society_actions(env, rng: np.random.Generator, nvec: np.ndarray, language: bool) -> dict:
    matrix = rng.integers(0, nvec, size=(len(env.agents), len(nvec)))
    if language:
        return {
            agent: {"action": row, "message": MESSAGES[token]}
            for agent, row, token in zip(env.agents, matrix, matrix[:, 3].tolist())
        }
    return dict(zip(env.agents, matrix))


def _time_rules(module: str = "society_env.world.env") -> list[float]:
    """Wrap ``advance_world`` as ``module`` (the env or the vector env) calls it; returns the cell that
    accumulates its seconds."""
    env_module = importlib.import_module(module)
    rules, spent = env_module.advance_world, [0.0]

    def timed(*args, **kwargs):
        tick = time.perf_counter()
        try:
            return rules(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - tick

    env_module.advance_world = timed
    return spent


def _timed_steps(steps: int, draw, step, rules_time: list[float] | None = None) -> list[tuple]:
    """Run up to ``steps`` steps: ``draw()`` builds the actions (``None``: nobody left), ``step(actions)``
    steps. One record per step: (agents acting, loop seconds, seconds in step, CPU seconds in step,
    seconds in the rules). A full garbage collection first, for every configuration alike (as pyperf does):
    otherwise the objects left by imports and set-up trigger one in the measured steps of whichever env
    happens to allocate the next few thousand containers."""
    gc.collect()
    records = []
    for _ in range(steps):
        begin = time.perf_counter()
        actions = draw()
        if actions is None:
            break
        rules_before = rules_time[0] if rules_time else 0.0
        tick, cpu = time.perf_counter(), time.process_time()
        step(actions)
        end, cpu_end = time.perf_counter(), time.process_time()
        rules = rules_time[0] - rules_before if rules_time else end - tick
        records.append((len(actions), end - begin, end - tick, cpu_end - cpu, rules))
    return records


def _summary(records: list[tuple], block: int) -> dict:
    """Totals over all steps, and the same for the block of ``block`` consecutive steps with the best loop
    rate (on a shared machine the least disturbed block: what the tables show, like timeit's best-of)."""
    if not records:
        return {"steps": 0, "agent_steps": 0}
    blocks = [records[i : i + block] for i in range(0, len(records), block)]
    best = min(blocks, key=lambda b: sum(r[1] for r in b) / sum(r[0] for r in b))

    def total(rows: list[tuple], k: int) -> float:
        return sum(r[k] for r in rows)

    return {
        "steps": len(records), "agent_steps": total(records, 0), "wall_s": total(records, 1),
        "in_step_s": total(records, 2), "cpu_in_step_s": total(records, 3), "rules_s": total(records, 4),
        "best_steps": len(best), "best_agent_steps": total(best, 0), "best_wall_s": total(best, 1),
        "best_in_step_s": total(best, 2), "best_rules_s": total(best, 4),
    }


def measure_society(agents: int, steps: int, warmup: int, seed: int, language: bool, block: int) -> dict:
    import society_env  # noqa: F401  (imported before the memory baseline)

    rss_before = _rss_mb()
    rules_time = _time_rules()
    env = make_world(agents, language)
    env.reset(seed=seed)
    space = env.action_space(env.possible_agents[0])
    nvec = (space["action"] if language else space).nvec
    rng = np.random.default_rng(seed + 1)
    last = [None]  # keep each step's output until the next one, as a training loop does

    def draw():
        return _society_actions(env, rng, nvec, language) if env.agents else None

    def step(actions):
        last[0] = env.step(actions)

    for _ in range(warmup):
        step(draw())
    start_agents = len(env.agents)
    records = _timed_steps(steps, draw, step, rules_time)
    end_agents = len(env.agents)
    last[0] = None
    traced = _traced_peak_mb(lambda: step(draw())) if env.agents else None
    return {
        "agents_start": start_agents, "agents_end": end_agents, **_summary(records, block),
        "rss_growth_mb": _rss_mb() - rss_before, "traced_peak_mb": traced, "grid": env.config.width,
    }


def measure_vector(agents: int, steps: int, warmup: int, seed: int, block: int, worlds: int) -> dict:
    """``SocietyVectorEnv`` with ``worlds`` copies of the same world: one int array of actions in, arrays
    out; agent-steps count the slots alive at the start of each step."""
    from society_env.world.vector import SocietyVectorEnv

    rss_before = _rss_mb()
    rules_time = _time_rules("society_env.world.vector")
    envs = SocietyVectorEnv(worlds, "default", **world_overrides(agents, False))
    _, infos = envs.reset(seed=seed)
    nvec = envs.single_action_space.nvec
    rng = np.random.default_rng(seed + 1)
    shape = (worlds, envs.num_slots, nvec.size)
    state = {"infos": infos}

    class Batch:  # the action array, with the number of agents that act on it (what _timed_steps counts)
        def __init__(self, actions, living):
            self.actions, self.living = actions, living

        def __len__(self):
            return self.living

    def draw():
        return Batch(rng.integers(0, nvec, size=shape), int(state["infos"]["alive"].sum()))

    def step(batch):
        state["infos"] = envs.step(batch.actions)[4]

    for _ in range(warmup):
        step(draw())
    start_agents = int(state["infos"]["alive"].sum())
    records = _timed_steps(steps, draw, step, rules_time)
    end_agents = int(state["infos"]["alive"].sum())
    traced = _traced_peak_mb(lambda: step(draw()))
    return {
        "agents_start": start_agents, "agents_end": end_agents, **_summary(records, block), "worlds": worlds,
        "rss_growth_mb": _rss_mb() - rss_before, "traced_peak_mb": traced, "grid": envs.config.width,
    }


def measure_reference(agents: int, steps: int, seed: int, block: int) -> dict:
    from society_env.world.state import ALIVE
    from tests.reference_world import RefWorld, assert_matches, reference_step

    rss_before = _rss_mb()
    env = make_world(agents, False)
    env.reset(seed=seed)
    config = env.config
    world = [RefWorld.from_state(env.world)]
    world_rng = copy.deepcopy(env._rng)  # the env's generator at the same point: same draws
    nvec = env.action_space(env.possible_agents[0]).nvec
    rng = np.random.default_rng(seed + 1)  # the action stream measure_society starts with

    def living() -> list[int]:
        return [slot for slot, agent in world[0].agents.items() if agent.status == ALIVE]

    def draw():
        slots = living()
        if not slots:
            return None
        matrix = rng.integers(0, nvec, size=(len(slots), len(nvec)))
        return dict(zip(slots, map(tuple, matrix.tolist())))

    def step(actions):
        world[0] = reference_step(world[0], actions, config, world_rng)[0]

    start_agents = len(living())
    records = _timed_steps(steps, draw, step)
    end_agents = len(living())
    rss_growth = _rss_mb() - rss_before
    # The same actions through society_env reach exactly the same world.
    check_rng = np.random.default_rng(seed + 1)
    for _ in range(len(records)):
        env.step(_society_actions(env, check_rng, nvec, False))
    assert_matches(world[0], env.world)
    return {
        "agents_start": start_agents, "agents_end": end_agents, **_summary(records, block),
        "rss_growth_mb": rss_growth, "traced_peak_mb": None, "matches": True,
    }


def measure_magent(game: str, steps: int, warmup: int, seed: int, map_size: int | None, block: int) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    from magent2.environments import battle_v4, gather_v5

    rss_before = _rss_mb()
    if game == "gather":
        env = gather_v5.parallel_env()
    else:
        env = battle_v4.parallel_env() if map_size is None else battle_v4.parallel_env(map_size=map_size)
    env.reset(seed=seed)
    sizes = {agent: env.action_space(agent).n for agent in env.possible_agents}
    same_size = len(set(sizes.values())) == 1
    shape = env.observation_space(env.possible_agents[0]).shape
    rng = np.random.default_rng(seed + 1)
    last = [None]

    def draw():
        if not env.agents:
            return None
        if same_size:
            drawn = rng.integers(0, next(iter(sizes.values())), size=len(env.agents))
        else:
            drawn = rng.integers(0, [sizes[a] for a in env.agents])
        return dict(zip(env.agents, drawn.tolist()))

    def step(actions):
        last[0] = env.step(actions)

    for _ in range(warmup):
        step(draw())
    start_agents = len(env.agents)
    records = _timed_steps(steps, draw, step)
    end_agents = len(env.agents)
    last[0] = None
    traced = _traced_peak_mb(lambda: step(draw())) if env.agents else None
    summary = _summary(records, block)
    summary.pop("rules_s", None)
    summary.pop("best_rules_s", None)
    return {
        "agents_start": start_agents, "agents_end": end_agents, **summary,
        "rss_growth_mb": _rss_mb() - rss_before, "traced_peak_mb": traced,
        "observation_shape": list(shape), "map_side": getattr(env, "map_size", None),
    }


def run_worker(spec: dict) -> dict:
    kind, block = spec["kind"], spec["block"]
    if kind in ("numeric", "language"):
        return measure_society(spec["agents"], spec["steps"], spec["warmup"], spec["seed"], kind == "language", block)
    if kind == "reference":
        return measure_reference(spec["agents"], spec["steps"], spec["seed"], block)
    if kind == "vector":
        return measure_vector(spec["agents"], spec["steps"], spec["warmup"], spec["seed"], block, spec["worlds"])
    return measure_magent(kind, spec["steps"], spec["warmup"], spec["seed"], spec.get("map_size"), block)


def run_in_subprocess(spec: dict) -> dict:
    process = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True, text=True,
    )
    if process.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{process.stderr}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    return {**spec, **result}


# ---- report --------------------------------------------------------------------------------------
def _rate(r: dict, seconds: str, agent_steps: str = "best_agent_steps") -> float:
    return r[agent_steps] / r[seconds] if r.get(seconds) else float("nan")


def wall_rate(r: dict) -> float:
    """Agent-steps/s of the whole loop, best block."""
    return _rate(r, "best_wall_s")


def step_rate(r: dict) -> float:
    """Agent-steps/s counting only time inside the step, best block."""
    return _rate(r, "best_in_step_s")


def rules_rate(r: dict) -> float:
    """Agent-steps/s counting only time in the rules (step_world / reference_step), best block."""
    return _rate(r, "best_rules_s")


def cpu_rate(r: dict) -> float:
    """Agent-steps/s counting only CPU time inside the step, all measured steps."""
    return _rate(r, "cpu_in_step_s", "agent_steps")


def micros_per_agent(r: dict | None, key: str = "best_in_step_s") -> str:
    if r is None or not r.get("best_agent_steps") or r.get(key) is None:
        return "-"
    return f"{1e6 * r[key] / r['best_agent_steps']:.2f}"


def fmt_rate(x: float) -> str:
    if x != x:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def label(r: dict) -> str:
    kind = r["kind"]
    if kind in ("numeric", "language"):
        return f"society_env {kind}, {r['agents']} founders, {r['grid']}x{r['grid']}"
    if kind == "reference":
        return f"reference (tests/reference_world.py), {r['agents']} founders"
    if kind == "vector":
        return f"society_env vector (SocietyVectorEnv), {r['worlds']} x {r['agents']} founders, {r['grid']}x{r['grid']}"
    shape = "x".join(map(str, r["observation_shape"]))
    if kind == "gather":
        return f"MAgent2 gather_v5 default ({r['map_side']}x{r['map_side']}, obs {shape})"
    size = "default" if r.get("map_size") is None else "map_size"
    return f"MAgent2 battle_v4 {size} {r['map_side']} (obs {shape})"


def print_report(results: list[dict], args: argparse.Namespace) -> None:
    print(f"## World throughput: {args.steps} measured steps after {args.warmup} warm-up steps, seed {args.seed}")
    print()
    print(f"wall, in-step and rules-only rates are the best block of {args.block} consecutive steps; CPU counts")
    print("process CPU time inside the step over all measured steps (insensitive to other processes).")
    print()
    print("| configuration | agents (start -> end) | steps | wall agent-steps/s | in-step agent-steps/s "
          "| in-step CPU agent-steps/s | rules-only agent-steps/s | in-step us/agent-step | peak RSS growth MB "
          "| traced peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {label(r)} | {r['agents_start']} -> {r['agents_end']} | {r['steps']} | {fmt_rate(wall_rate(r))} "
              f"| {fmt_rate(step_rate(r))} | {fmt_rate(cpu_rate(r))} | {fmt_rate(rules_rate(r))} | {micros_per_agent(r)} "
              f"| {fmt_mb(r['rss_growth_mb'])} | {fmt_mb(r['traced_peak_mb'])} |")
    print()

    by = {(r["kind"], r.get("agents"), r.get("map_size")): r for r in results}
    sizes = args.sizes
    gather = by.get(("gather", None, None))
    battle = by.get(("battle", None, None))

    def ratio(a: dict | None, b: dict | None, rate, rate_b=None) -> str:
        if a is None or b is None:
            return "-"
        return f"{rate(a) / (rate_b or rate)(b):.1f}x"

    print("Ratios, wall / in-step (rules-only for the reference: it computes no observations):")
    print()
    print("| agents | numeric vs reference | numeric rules-only vs reference | numeric vs MAgent2 gather "
          "| numeric vs MAgent2 battle default | numeric vs MAgent2 battle same size | vector vs MAgent2 gather "
          "| language vs TerraLingua 4k (wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        ours = by.get(("numeric", n, None))
        lang = by.get(("language", n, None))
        ref = by.get(("reference", n, None))
        scaled = by.get(("battle", None, battle_map_size(n)))
        vector = by.get(("vector", n, None))
        cells = [
            f"{ratio(ours, ref, wall_rate)} / {ratio(ours, ref, step_rate)}",
            ratio(ours, ref, rules_rate, step_rate),
            f"{ratio(ours, gather, wall_rate)} / {ratio(ours, gather, step_rate)}",
            f"{ratio(ours, battle, wall_rate)} / {ratio(ours, battle, step_rate)}",
            f"{ratio(ours, scaled, wall_rate)} / {ratio(ours, scaled, step_rate)}"
            + (f" (vs {scaled['agents_start']} agents)" if scaled else ""),
            f"{ratio(vector, gather, wall_rate)} / {ratio(vector, gather, step_rate)}",
            f"{wall_rate(lang) / TERRALINGUA_AGENT_STEPS_PER_S:.1f}x" if lang else "-",
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")
    print()

    print("Step time per agent, microseconds per agent-step inside the step (flat from row to row = step time")
    print("linear in agents; small populations pay a fixed per-step cost):")
    print()
    print("| agents | numeric | numeric, of which rules | vector | vector, of which rules | language | reference "
          "| MAgent2 battle same size |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        numeric = by.get(("numeric", n, None))
        vector = by.get(("vector", n, None))
        print(f"| {n} | {micros_per_agent(numeric)} | {micros_per_agent(numeric, 'best_rules_s')} "
              f"| {micros_per_agent(vector)} | {micros_per_agent(vector, 'best_rules_s')} "
              f"| {micros_per_agent(by.get(('language', n, None)))} | {micros_per_agent(by.get(('reference', n, None)))} "
              f"| {micros_per_agent(by.get(('battle', None, battle_map_size(n))))} |")
    print()

    print("Targets (from the issue):")
    print()
    for n in (1000, 5000):
        ours = by.get(("numeric", n, None))
        if ours is None:
            print(f"- the numeric-view targets are stated at 1000 and 5000 agents: include {n} in --sizes to check them")
            continue
        for name, other in (("MAgent2 gather", gather), ("MAgent2 battle same size", by.get(("battle", None, battle_map_size(n))))):
            if other is None:
                continue
            verdicts = []
            for what, rate in (("wall", wall_rate), ("in-step", step_rate), ("in-step CPU", cpu_rate)):
                ok = "met" if rate(ours) >= rate(other) else "MISSED"
                verdicts.append(f"{what} {fmt_rate(rate(ours))} vs {fmt_rate(rate(other))} = {rate(ours) / rate(other):.2f}x ({ok})")
            print(f"- ParallelEnv (numeric) at {n} agents >= 1.0x {name}: " + "; ".join(verdicts))
    vector = by.get(("vector", 1000, None))
    if vector is not None and gather is not None:
        x = step_rate(vector) / step_rate(gather)
        print(f"- SocietyVectorEnv at 1000 agents per world >= 2x MAgent2 gather in-step: {fmt_rate(step_rate(vector))} vs "
              f"{fmt_rate(step_rate(gather))} = {x:.2f}x ({'met' if x >= 2 else 'MISSED'})")
    ours, ref = by.get(("numeric", 1000, None)), by.get(("reference", 1000, None))
    if ours is not None and ref is not None:
        whole = step_rate(ours) / step_rate(ref)
        rules = rules_rate(ours) / step_rate(ref)
        print(f"- numeric at 1000 agents >= 10x the reference: whole env.step {whole:.1f}x "
              f"({'met' if whole >= 10 else 'MISSED'}); rules alone (like for like) {rules:.1f}x "
              f"({'met' if rules >= 10 else 'MISSED'})")
    numeric = [(n, by[("numeric", n, None)]) for n in sizes if ("numeric", n, None) in by]
    if len(numeric) >= 2:
        base_n = 1000 if any(n == 1000 for n, _ in numeric) else numeric[0][0]
        base = dict(numeric)[base_n]
        largest_n, largest = numeric[-1]
        if largest_n != base_n:
            growth = step_rate(base) / step_rate(largest)
            print(f"- step time linear in agents: per-agent step time at {largest_n} agents is {growth:.2f}x the one at "
                  f"{base_n} ({'met' if growth <= 1.25 else 'MISSED'}; linear growth keeps it near 1 or below)")
    for n in sizes:
        r = by.get(("language", n, None))
        if r is not None:
            rate = wall_rate(r)
            print(f"- language view at {n} agents >= 10x TerraLingua's 4k (40k agent-steps/s): wall {fmt_rate(rate)} "
                  f"= {rate / TERRALINGUA_AGENT_STEPS_PER_S:.1f}x ({'met' if rate >= 10 * TERRALINGUA_AGENT_STEPS_PER_S else 'MISSED'})")
    checked = [r for r in results if r["kind"] == "reference"]
    if checked:
        print("- every reference run ended in exactly the world society_env reaches with the same actions: "
              + ("yes" if all(r.get("matches") for r in checked) else "NO"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Each configuration runs in a fresh subprocess; the report is Markdown.")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=None, help="comma-separated population sizes (default 20,200,1000,5000)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per configuration (default 30; "
                        "the reference runs min(steps, 10000 // agents) steps, at least 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before measuring (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block", type=int, default=10, help="steps per block; the tables show each configuration's "
                        "best block (default 10)")
    parser.add_argument("--quick", action="store_true", help="sizes 20,200,1000, 10 steps, 2 warm-up steps")
    parser.add_argument("--no-reference", action="store_true", help="skip the per-agent reference")
    parser.add_argument("--no-magent", action="store_true", help="skip MAgent2")
    parser.add_argument("--no-language", action="store_true", help="skip the language view")
    parser.add_argument("--no-vector", action="store_true", help="skip the array API (SocietyVectorEnv)")
    parser.add_argument("--vector-worlds", type=int, default=1, help="worlds per SocietyVectorEnv (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also save every measurement as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return

    args.sizes = sorted(args.sizes or ([20, 200, 1000] if args.quick else list(DEFAULT_SIZES)))
    args.steps = args.steps or (10 if args.quick else 30)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    if args.no_magent is False:
        try:
            import magent2  # noqa: F401
        except ImportError:
            print("magent2 is not installed (pip install -e '.[bench]'): skipping MAgent2", file=sys.stderr)
            args.no_magent = True

    common = {"warmup": args.warmup, "seed": args.seed, "block": args.block}
    specs: list[dict] = []
    for n in args.sizes:
        specs.append({"kind": "numeric", "agents": n, "steps": args.steps, **common})
        if not args.no_language:
            specs.append({"kind": "language", "agents": n, "steps": args.steps, **common})
        if not args.no_vector:
            specs.append({"kind": "vector", "agents": n, "worlds": args.vector_worlds, "steps": args.steps, **common})
        if not args.no_reference:
            specs.append({"kind": "reference", "agents": n, "steps": reference_steps(n, args.steps), **common})
    if not args.no_magent:
        specs.append({"kind": "gather", "steps": args.steps, **common})
        specs.append({"kind": "battle", "steps": args.steps, **common})
        for n in args.sizes:
            specs.append({"kind": "battle", "map_size": battle_map_size(n), "steps": args.steps, **common})

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, numpy {np.__version__}, load average {load:.2f} at start")
    results = []
    started = time.perf_counter()
    for spec in specs:
        print(f"measuring {spec}", file=sys.stderr, flush=True)
        results.append(run_in_subprocess(spec))
    print(f"# {len(specs)} configurations in {time.perf_counter() - started:.0f} s")
    print()
    print_report(results, args)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
