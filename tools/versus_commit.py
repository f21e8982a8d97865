"""``SocietyVectorEnv`` of this checkout against the same env at another commit, alternated step by step in
one process: each step of one is followed by the same step of the other (the order swapping every step),
so both meet the same machine speed, which on a shared VM moves by more than the differences sought.

A one-off experiment kept as a tool (2026-12-06): it measured the fifth session's code step for step
against its start (f0751b0) and against 47192f8, with the page faults the regrowth buffers removed;
documented in docs/lab/performance-2026.md. Compare a change to the world with the commit before it:
``python tools/versus_commit.py HEAD --agents 500`` (an uncommitted change against HEAD).

The other commit's ``society_env`` is exported with ``git archive`` into a directory of the system's temp
folder under the package name ``society_env_then`` (its imports rewritten), kept there so that numba's
disk cache serves later runs. Both envs get the same seed and the same actions, so they must end with the
same observations (checked: the world's rules and random streams did not change). Prints mean and median
microseconds per ``step`` and the minor page faults per step of each (``getrusage`` around each call).

    python tools/versus_commit.py f0751b0 --preset small --worlds 4 --steps 6000   # fixed cost, small worlds
    python tools/versus_commit.py f0751b0 --agents 500 --steps 300                # env_vs_magent2.py's world
    python tools/versus_commit.py f0751b0 --agents 100000 --threads 2 --steps 40
"""

from __future__ import annotations

import argparse
import io
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from env_vs_magent2 import our_overrides  # noqa: E402

THEN = "society_env_then"


def export(commit: str) -> Path:
    """A directory holding ``commit``'s ``society_env`` as the package ``society_env_then`` (made once)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", commit], capture_output=True,
                         text=True, check=True).stdout.strip()
    folder = Path(tempfile.gettempdir()) / f"{THEN}-{sha}"
    package = folder / THEN
    if not package.exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "society_env"], capture_output=True,
                                 check=True).stdout
        staging = Path(tempfile.mkdtemp(dir=tempfile.gettempdir()))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")
        for source in (staging / "society_env").rglob("*.py"):
            source.write_text(re.sub(r"\bsociety_env\b", THEN, source.read_text()))
        folder.mkdir(exist_ok=True)
        (staging / "society_env").rename(package)  # whole or not at all
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit", help="the other commit (e.g. the start of a session)")
    parser.add_argument("--preset", default="default", help="preset of both envs (default 'default')")
    parser.add_argument("--agents", type=int, help="founders per world in env_vs_magent2.py's world (default: the preset's)")
    parser.add_argument("--worlds", type=int, default=1, help="num_envs (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="num_threads (default 1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "uint8", "uint16"])
    parser.add_argument("--steps", type=int, default=300, help="measured steps of each (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sys.path.insert(0, str(export(args.commit)))
    from society_env.world.vector import SocietyVectorEnv as Now
    from society_env_then.vector import SocietyVectorEnv as Then

    overrides = our_overrides(args.agents, args.steps + args.warmup) if args.agents else {}
    envs = {name: cls(args.worlds, args.preset, num_threads=args.threads, obs_dtype=args.dtype, **overrides)
            for name, cls in (("now", Now), (f"then ({args.commit})", Then))}
    for env in envs.values():
        env.reset(seed=args.seed)
    first = envs["now"]
    nvec, rng = first.single_action_space.nvec, np.random.default_rng(args.seed + 1)
    spent = {name: [] for name in envs}
    faults = dict.fromkeys(envs, 0)
    for step in range(args.warmup + args.steps):
        actions = rng.integers(0, nvec, size=(args.worlds, first.num_slots, nvec.size))
        names = list(envs) if step % 2 else list(envs)[::-1]
        for name in names:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            envs[name].step(actions)
            elapsed = time.perf_counter() - started
            if step >= args.warmup:
                spent[name].append(elapsed)
                faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    then = envs[list(envs)[1]]
    assert np.array_equal(first._observations, then._observations), "the two commits' worlds differ"
    living = int(first._alive.sum())
    print(f"{args.worlds} world(s) of preset {args.preset!r}{f', {args.agents} founders' if args.agents else ''}, "
          f"{args.dtype}, num_threads {args.threads}: {args.steps} steps after {args.warmup}, alternated "
          f"({living} living at the end)\n")
    print("| env | mean us / step | median us / step | minor page faults / step |")
    print("|---|---|---|---|")
    for name, times in spent.items():
        print(f"| {name} | {1e6 * np.mean(times):.1f} | {1e6 * np.median(times):.1f} | {faults[name] / args.steps:.0f} |")
    now, past = (np.mean(times) for times in spent.values())
    print(f"\nnow / then: {past / now:.3f}x the speed (mean)")


if __name__ == "__main__":
    main()
