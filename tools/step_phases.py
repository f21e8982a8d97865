"""Where the time of one ``SocietyVectorEnv.step`` goes (the same world as ``benchmarks/env_vs_magent2.py``: N
founders on a torus of 0.04 agents per cell, random actions).

A one-off experiment (2026-12-06, the third session of issue 30): it measured each part of a step alone
(500 agents: the gather 0.10 ms and the rules 0.13 ms of a 0.31 ms step); documented in
docs/lab/performance-2026.md. ``tools/profile_step.py`` samples the parts inside the one compiled call.

    python tools/step_phases.py --agents 500 --threads 1
    python tools/step_phases.py --agents 100000 --threads 2 --steps 20 --dtype uint8

Each measured step is timed whole (``envs.step``), then replayed part by part on a copy of the world
taken before it (same generator state, same actions), each part one call of the compiled function that
does it, timed alone: the rule phases (``kernels.rank_and_transfer`` with NumPy's permutation,
``kernels.step_after_artifacts``) and the observation's parts (the channel grid, the families, the
position order where the grid is big, the view gather, the features). A world on one thread does all of
these in one compiled call (``kernels.step_and_observe``); a world on threads does the rules in that call
and the observation's parts afterwards, with their parallel loops.
Each part called alone pays numba's argument unboxing and finds its inputs in a fresh copy of the world, so
the sum of the parts is more than they cost inside the one call; the whole step beside it shows how much.
Prints ms per step, means over ``--steps`` steps after 5 warm-up steps.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from env_vs_magent2 import our_overrides  # noqa: E402
from society_env.world import kernels  # noqa: E402
from society_env.world.encodings import MOVE_DELTAS, NEIGHBOUR_DELTAS  # noqa: E402
from society_env.world.rules import TRANSFER_CODES  # noqa: E402
from society_env.world.state import ALIVE  # noqa: E402
from society_env.world.threads import use_threads  # noqa: E402
from society_env.world.vector import SocietyVectorEnv  # noqa: E402

PARTS = ("rules: priority + give/take (kernels.rank_and_transfer)", "rules: phases 3-10 (kernels.step_after_artifacts)",
         "observation: channel grid (kernels.fill_grid)", "observation: families (kernels.group_families)",
         "observation: position order (big grids only)", "observation: view gather (kernels.gather_views)",
         "observation: features (kernels.write_features)")


def replay(envs: SocietyVectorEnv, world, rng, alive: np.ndarray, actions: np.ndarray, spent: dict) -> None:
    """The step of world 0 from ``world`` (a copy), part by part, each part's seconds added to ``spent``."""
    def timed(part, function, *args):
        start = time.perf_counter()
        result = function(*args)
        spent[part] += time.perf_counter() - start
        return result

    slots, scratch = envs.num_slots, envs._scratch
    spec = scratch.spec
    kind, target, amount, message = (np.ascontiguousarray(actions[:, i]) for i in range(4))
    present, acting = np.flatnonzero(alive), alive.copy()
    failed, blocked, ate = np.zeros(slots, np.int8), np.zeros(slots, bool), np.zeros(slots, np.int64)
    threaded = use_threads(envs.num_threads, present.size)
    start = time.perf_counter()
    order = rng.permutation(present.size)
    spent[PARTS[0]] += time.perf_counter() - start
    *_, by_rank, transfer_kind, source, dest, granted = timed(
        PARTS[0], kernels.rank_and_transfer, order, world.status, ALIVE, acting, kind, target, amount, world.position,
        world.occupant, world.energy, spec.radius, envs._transfer_amounts, TRANSFER_CODES, failed)
    birth = kernels.BirthState(world.position, world.occupant, world.status, world.energy, world.age, world.parent,
                               world.lineage, world.generation, world.birth_step)
    timed(PARTS[1], kernels.step_after_artifacts, rng, acting, kind, message, by_rank, present, birth, world.genome,
          world.food, world.food_density, world.food_cdf, world.message, world.num_born, world.step, envs._rule,
          NEIGHBOUR_DELTAS, MOVE_DELTAS, (transfer_kind, source, dest, granted), failed, blocked, ate,
          np.zeros(slots), envs._regrowth[0])
    living = np.flatnonzero(world.status == ALIVE)
    out = envs._observations[0]
    features = envs._features[0] if envs.compact else out
    twin = {True: "_parallel", False: ""}[threaded]
    timed(PARTS[2], getattr(kernels, "fill_grid" + twin), scratch.padded, scratch.kin, spec.radius, world.food,
          world.energy, world.message, world.lineage, world.position, world.status, ALIVE, spec.compact,
          spec.food_value, spec.initial_energy, spec.high, np.zeros((0, 0), np.int64))
    members, first = timed(PARTS[3], kernels.group_families, world.lineage, world.status, ALIVE)
    visited = living
    if spec.by_position:
        visited = living[timed(PARTS[4], kernels.position_order, world.occupant, living, slots)]
    timed(PARTS[5], getattr(kernels, "gather_views" + twin), scratch.padded, scratch.kin, spec.size, visited,
          world.position, world.lineage, members, first, visited, spec.kin_channel, out)
    own = kernels.OwnState(world.energy, world.age, world.position, world.genome, spec.initial_energy, spec.lifespan,
                           spec.height, spec.width)
    timed(PARTS[6], getattr(kernels, "write_features" + twin), own, living, living, features, spec.features_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500, help="founders (default 500)")
    parser.add_argument("--threads", type=int, default=1, help="num_threads of the env (default 1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "uint8", "uint16"])
    parser.add_argument("--steps", type=int, default=300, help="measured steps (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    envs = SocietyVectorEnv(1, "default", num_threads=args.threads, obs_dtype=args.dtype, **our_overrides(args.agents, args.steps + 5))
    envs.reset(seed=args.seed)
    nvec, rng = envs.single_action_space.nvec, np.random.default_rng(args.seed + 1)
    actions = [rng.integers(0, nvec, size=(1, envs.num_slots, nvec.size)) for _ in range(args.steps + 5)]
    spent, total, living = dict.fromkeys(PARTS, 0.0), 0.0, 0
    for step, step_actions in enumerate(actions):
        world, generator, alive = envs.worlds[0].copy(), copy.deepcopy(envs._rngs[0]), envs._alive[0].copy()
        start = time.perf_counter()
        envs.step(step_actions)
        seconds = time.perf_counter() - start
        if step < 5:  # warm-up (the parts' own compiled forms load on first use)
            replay(envs, world, generator, alive, step_actions[0].astype(np.int64), dict.fromkeys(PARTS, 0.0))
            continue
        total += seconds
        living += int(alive.sum())
        replay(envs, world, generator, alive, step_actions[0].astype(np.int64), spent)
    print(f"{args.agents} founders ({living / args.steps:.0f} living on average), {args.dtype}, "
          f"num_threads {args.threads}, {args.steps} steps: {total / args.steps * 1e3:.3f} ms per step, "
          f"{living / total / 1e6:.2f}M agent-steps/s")
    for part, seconds in spent.items():
        print(f"  {part:60s} {seconds / args.steps * 1e3:8.3f} ms")
    print(f"  {'the parts, called one by one':60s} {sum(spent.values()) / args.steps * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
