"""Endurance: does memory stay flat over long runs? Resident set size (RSS, from /proc) and the memory
Python and NumPy hold (tracemalloc's current size) are sampled along two long runs, and the growth from
the first sample after warm-up to the last is reported, with the throughput of each stretch.

* **numeric**: ``--agents`` founders (default 1000) for ``--steps`` steps (default 10,000), numeric view,
  uniformly random actions drawn with numpy, the env_throughput world per size (one agent per 25 cells,
  uniform food) with regrowth raised to agents / 5 tiles per step and no old age (lifespan 10**6), so that
  random agents live on (the population settles at about 80% of the founders) instead of dying out by
  step 100 (old age) as they do in the throughput benchmark's world;
* **vector**: the same world through the array API (``SocietyVectorEnv``), ``--vector-runs``: by default
  10,000 steps at 1000 founders and 1,000 steps at 100,000 founders;
* **llm**: an LLM society recorded as ``society-env run`` records it (``society_env.app.run``: policies, recording,
  checkpoints every 50 steps) for ``--llm-steps`` steps (default 300) on the embedded SmolLM2-135M:
  ``--llm-agents`` LLM agents (default 4) in the ``forage`` world stretched to that length (lifespan
  1000, so they live on, eat and reproduce), with 4 steps of history in their prompts, in a KV cache of
  640 tokens per batch slot (batch 2: 1920 cells). Measured: 4 agents' talk-free prompts fit, so no
  session was evicted; use ``--llm-agents 8`` (or more) to exercise evictions. ``--model tiny`` uses the tiny
  GGUF the tests generate instead (its tokenizer spends ~10x more tokens per prompt: 4096 per slot).

    python benchmarks/endurance.py                       # both (~35 minutes on 2 cores)
    python benchmarks/endurance.py --part numeric --steps 2000
    python benchmarks/endurance.py --part vector         # array API: 10k steps x 1000 agents, 1k steps x 100k
    python benchmarks/endurance.py --part llm --llm-steps 100
    python benchmarks/endurance.py --quick               # numeric 500 steps, LLM 20 steps: a check that it runs
    python benchmarks/endurance.py --part vector --quick # 1000 agents x 500 steps, 10,000 x 100

Printed per run: RSS and traced memory at the first sample after warm-up and at the last, their growth
(the measure: flat means no leak), KV evictions and failed answers of the LLM run. Run it on a quiet
machine; figures go in docs/performance.md ("Endurance").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def traced_mb() -> float:
    return tracemalloc.get_traced_memory()[0] / 2**20


class Samples:
    """(step, seconds, RSS MB, traced MB, population) rows, printed as they come."""

    def __init__(self, label: str):
        self.label, self.rows, self.started = label, [], time.perf_counter()

    def take(self, step: int, population: int) -> None:
        row = (step, time.perf_counter() - self.started, rss_mb(), traced_mb(), population)
        self.rows.append(row)
        print(f"  {self.label} step {step:>6}  {row[1]:8.1f} s  RSS {row[2]:8.1f} MB  traced {row[3]:8.2f} MB  "
              f"population {population}", flush=True)

    def report(self, warmup_rows: int = 1) -> dict:
        first, last = self.rows[warmup_rows], self.rows[-1]
        return {"samples": self.rows, "rss_first_mb": first[2], "rss_last_mb": last[2],
                "rss_growth_mb": last[2] - first[2], "traced_growth_mb": last[3] - first[3],
                "rss_max_mb": max(r[2] for r in self.rows), "steps": last[0] - first[0], "seconds": last[1] - first[1]}


def lasting_world(agents: int) -> dict:
    """The env_throughput world per size with regrowth raised and no old age, so random agents live on."""
    side = max(3, round(math.sqrt(25 * agents)))
    return dict(width=side, height=side, num_founders=agents, max_agents=2 * agents + 100, initial_food=2 * agents,
                food_regrowth_rate=agents / 5, food_distribution="uniform", max_steps=10**6, lifespan=10**6)


def numeric_run(agents: int, steps: int, every: int, seed: int) -> dict:
    import society_env

    env = society_env.parallel_env("default", **lasting_world(agents))
    nvec = env.action_space(env.possible_agents[0]).nvec
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    samples = Samples("numeric")
    samples.take(0, len(env.agents))
    agent_steps = 0
    for step in range(1, steps + 1):
        if not env.agents:
            break
        actions = dict(zip(env.agents, rng.integers(0, nvec, size=(len(env.agents), nvec.size))))
        agent_steps += len(actions)
        env.step(actions)
        if step % every == 0:
            samples.take(step, len(env.agents))
    result = samples.report()
    result["agent_steps"] = agent_steps
    return result


def vector_run(agents: int, steps: int, every: int, seed: int) -> dict:
    """The same world through the array API (``SocietyVectorEnv``, one world), actions drawn as one array."""
    from society_env.world.vector import SocietyVectorEnv

    envs = SocietyVectorEnv(1, "default", **lasting_world(agents))
    nvec = envs.single_action_space.nvec
    rng = np.random.default_rng(seed)
    _, infos = envs.reset(seed=seed)
    samples = Samples(f"vector {agents}")
    samples.take(0, int(infos["alive"].sum()))
    agent_steps = 0
    for step in range(1, steps + 1):
        agent_steps += int(infos["alive"].sum())
        infos = envs.step(rng.integers(0, nvec, size=(1, envs.num_slots, nvec.size)))[4]
        if step % every == 0:
            samples.take(step, int(infos["alive"].sum()))
    result = samples.report()
    result["agent_steps"] = agent_steps
    return result


def llm_run(agents: int, steps: int, every: int, seed: int, model: str) -> dict:
    from society_env.app.llm_options import LLMOptions
    from policies.rollout import EveryStep
    from society_env.app import RunSpec, run

    n_ctx = 4096 if model == "tiny" else 640
    with tempfile.TemporaryDirectory() as scratch:
        if model == "tiny":
            from tests.tiny_gguf import write_tiny_model

            model = str(write_tiny_model(Path(scratch) / "tiny.gguf"))
        samples = Samples("llm")

        def sample(env, stats):  # every `every` steps, through an episode hook
            if stats.steps % every == 0:
                samples.take(stats.steps, len(env.agents))

        samples.take(0, agents)
        spec = RunSpec(preset="forage", policy=f"llm={agents}", seed=seed, steps=steps, quiet=True,
                       overrides=(f"num_founders={agents}", f"max_steps={steps}", "lifespan=1000"),
                       out=str(Path(scratch) / "run"),
                       llm=LLMOptions(model=model, n_ctx=n_ctx, batch_size=2, threads=2, history=4))
        summary = run(spec, hooks=[EveryStep(sample)]).summary
    result = samples.report()
    cost = summary["costs"]["llm"]
    result.update(agent_steps=summary["agent_steps"], kv_evictions=cost.get("kv_evictions", 0),
                  failures=cost["failures"], tokens_in_per_agent_step=cost["tokens_in_per_agent_step"])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["numeric", "vector", "llm", "both"], default="both",
                        help="both = numeric and llm; vector = the array API runs of --vector-runs")
    parser.add_argument("--agents", type=int, default=1000, help="numeric: founders (default 1000)")
    parser.add_argument("--steps", type=int, default=10_000, help="numeric: steps (default 10,000)")
    parser.add_argument("--every", type=int, default=1000, help="numeric: sample every N steps")
    parser.add_argument("--vector-runs", default="1000:10000:1000,100000:1000:100",
                        help="vector: AGENTS:STEPS:EVERY runs, comma-separated (default 1000:10000:1000,100000:1000:100)")
    parser.add_argument("--llm-agents", type=int, default=4, help="llm: LLM agents (default 4; 8 forces KV evictions)")
    parser.add_argument("--llm-steps", type=int, default=300, help="llm: steps (default 300)")
    parser.add_argument("--llm-every", type=int, default=30, help="llm: sample every N steps (default 30)")
    parser.add_argument("--model", default="default", help="default (SmolLM2-135M), tiny (generated) or a GGUF path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="short runs, a check that the parts run (not a measure of "
                        "growth): numeric 500 steps, vector 1000:500:100 and 10000:100:20, LLM 20 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.every, args.llm_steps, args.llm_every = 500, 100, 20, 5
        args.vector_runs = "1000:500:100,10000:100:20"

    tracemalloc.start()
    results = {}
    if args.part in ("numeric", "both"):
        results["numeric"] = r = numeric_run(args.agents, args.steps, args.every, args.seed)
        print(f"numeric, {args.agents} founders, {r['steps']} steps after warm-up: RSS {r['rss_first_mb']:.1f} -> "
              f"{r['rss_last_mb']:.1f} MB ({r['rss_growth_mb']:+.1f}), traced {r['traced_growth_mb']:+.2f} MB, "
              f"{r['agent_steps'] / r['samples'][-1][1]:,.0f} agent-steps/s under tracemalloc")
    if args.part == "vector":
        for run in args.vector_runs.split(","):
            agents, steps, every = (int(x) for x in run.split(":"))
            results[f"vector_{agents}"] = r = vector_run(agents, steps, every, args.seed)
            print(f"vector, {agents} founders, {r['steps']} steps after warm-up: RSS {r['rss_first_mb']:.1f} -> "
                  f"{r['rss_last_mb']:.1f} MB ({r['rss_growth_mb']:+.1f}), traced {r['traced_growth_mb']:+.2f} MB, "
                  f"{r['agent_steps'] / r['samples'][-1][1]:,.0f} agent-steps/s under tracemalloc")
    if args.part in ("llm", "both"):
        results["llm"] = r = llm_run(args.llm_agents, args.llm_steps, args.llm_every, args.seed, args.model)
        print(f"llm ({args.model}), {args.llm_agents} agents, {r['steps']} steps after warm-up: RSS {r['rss_first_mb']:.1f} -> "
              f"{r['rss_last_mb']:.1f} MB ({r['rss_growth_mb']:+.1f}), traced {r['traced_growth_mb']:+.2f} MB, "
              f"{r['kv_evictions']} KV evictions, {r['failures']} failed answers")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
