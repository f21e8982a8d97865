"""Where the time of one ``SocietyVectorEnv.step`` goes: the rule calls and the parts of the observation
write, timed by wrappers around the module-level functions the step calls (the same world as
``benchmarks/array_api.py``: N founders on a torus of 0.04 agents per cell, random actions).

    python benchmarks/step_phases.py --agents 500 --threads 1
    python benchmarks/step_phases.py --agents 100000 --threads 2 --steps 20 --dtype uint8

Prints ms per step for each part (means over ``--steps`` steps after 5 warm-up steps) and the rest
(Python around them, action checks, resets). The wrappers add about a microsecond per call.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from array_api import our_overrides  # noqa: E402
from society_env import observations, rules  # noqa: E402
from society_env.vector import SocietyVectorEnv  # noqa: E402

PARTS = {
    "rules: priority + give/take (rules.rank_and_transfer)": (rules, ["rank_and_transfer"]),
    "rules: phases 3-10 (rules.step_after_artifacts)": (rules, ["step_after_artifacts"]),
    "observation: channel grid (kernels.fill_grid)": (observations, ["fill_grid", "fill_grid_parallel"]),
    "observation: position order + families": (observations, ["position_order", "group_families"]),
    "observation: view gather (kernels.gather_views)": (observations, ["gather_views", "gather_views_parallel"]),
    "observation: features (kernels.write_features)": (observations, ["write_features", "write_features_parallel"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "uint8", "uint16"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    envs = SocietyVectorEnv(1, "default", num_threads=args.threads, obs_dtype=args.dtype, **our_overrides(args.agents))
    envs.reset(seed=args.seed)
    nvec, rng = envs.single_action_space.nvec, np.random.default_rng(args.seed + 1)
    actions = [rng.integers(0, nvec, size=(1, envs.num_slots, nvec.size)) for _ in range(args.steps + 5)]
    for step_actions in actions[:5]:
        envs.step(step_actions)

    spent = dict.fromkeys(PARTS, 0.0)
    for part, (module, names) in PARTS.items():
        for name in names:
            function = getattr(module, name)

            def timed(*a, _function=function, _part=part, **k):
                start = time.perf_counter()
                result = _function(*a, **k)
                spent[_part] += time.perf_counter() - start
                return result

            setattr(module, name, timed)
    living, start = 0, time.perf_counter()
    for step_actions in actions[5:]:
        living += int(envs._alive.sum())
        envs.step(step_actions)
    total = time.perf_counter() - start
    print(f"{args.agents} founders ({living / args.steps:.0f} living on average), {args.dtype}, "
          f"num_threads {args.threads}, {args.steps} steps: {total / args.steps * 1e3:.3f} ms per step, "
          f"{living / total / 1e6:.2f}M agent-steps/s")
    for part, seconds in spent.items():
        print(f"  {part:60s} {seconds / args.steps * 1e3:8.3f} ms")
    print(f"  {'the rest':60s} {(total - sum(spent.values())) / args.steps * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
