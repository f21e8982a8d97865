"""Baseline table: how long societies driven by one baseline policy live, and how they compare to random.

For every preset and every baseline policy the whole population (founders and, by inheritance, every
newborn) is driven by that one policy. Each combination runs on seeds ``0 .. N-1``; the table shows
mean +/- standard error over seeds. The "vs random" columns compare each policy with the random
baseline on the same preset and the same seeds (seed ``s`` gives both the same founders and food),
per seed, then average: lifespan as a ratio (policy / random), return as a difference (policy - random).

    python -m society_env.app.baselines                     # 5 seeds, presets default and small
    python -m society_env.app.baselines --quick             # smoke test: small preset, 2 seeds
    python -m society_env.app.baselines --markdown          # the same table as Markdown (for docs/baselines.md)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policies import POLICIES, PolicyAssignment, PolicySpecError, make_policy, parse_policy_spec
from policies.rollout import EpisodeStats, run_episode
from society_env.world.config import PRESETS, make_config
from society_env.world.env import SocietyEnv
from society_env.world.encodings import DEATH_CAUSES

BASELINES = ("random", "forager", "cooperator", "raider")
DEFAULT_MIXED = "forager=1,cooperator=1,raider=1"
CAUSES = tuple(DEATH_CAUSES.values())  # starvation, old_age


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
def episode_numbers(stats: EpisodeStats, policy_of: dict[str, str]) -> dict[str, Any]:
    """The numbers of one episode: whole-society metrics plus the summary's per-policy breakdown.

    ``lifespan`` and ``return`` are means over every agent that ever lived (for a one-policy run they
    equal the summary's ``per_policy[name]`` values). Agents alive at the end count with their age then.
    """
    summary = stats.summary(policy_of)
    agents = list(policy_of)
    lifespans = [stats.lifespans[a] for a in agents if a in stats.lifespans]
    returns = [stats.returns.get(a, 0.0) for a in agents]
    numbers = {
        "lifespan": float(np.mean(lifespans)) if lifespans else 0.0,
        "return": float(np.mean(returns)) if returns else 0.0,
        "population_mean": summary["population_mean"],
        "population_peak": summary["population_peak"],
        "population_end": summary["population_end"],
        "steps": summary["steps"],
        "births": summary["births"],
        "gives": summary["gives"],
        "takes": summary["takes"],
        "agents": len(agents),
        "seconds": summary["seconds"],
        "per_policy": summary["per_policy"],
    }
    for cause in CAUSES:
        numbers[f"deaths_{cause}"] = summary["deaths"].get(cause, 0)
    return numbers


def run_society(preset: str, entries: list[tuple[str, float]], seed: int, steps: int | None,
                options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One episode of ``preset`` with the founders split between policies by ``entries`` (``options``:
    keyword options per policy name, e.g. ``{"ppo": {"checkpoint": PATH}}``)."""
    config = make_config(preset)
    env = SocietyEnv(config)
    assignment = PolicyAssignment(entries, config.num_founders)
    drivers = {name: make_policy(name, config, **(options or {}).get(name, {})) for name, _ in entries}
    stats = run_episode(env, assignment, drivers, seed, max_steps=steps)
    return episode_numbers(stats, assignment.policy_of)


def run_all(presets: Sequence[str], rows: Sequence[tuple[str, list[tuple[str, float]]]], seeds: Sequence[int],
            steps: int | None, log=None, options: dict[str, dict[str, Any]] | None = None,
            row_options: dict[str, dict[str, dict[str, Any]]] | None = None
            ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``results[preset][row label]`` = the list of per-seed episode numbers (``row_options``: the options
    of one row's policies, by row label, over ``options``)."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for preset in presets:
        results[preset] = {}
        for label, entries in rows:
            episodes = []
            for seed in seeds:
                started = time.perf_counter()
                numbers = run_society(preset, entries, seed, steps, {**(options or {}), **(row_options or {}).get(label, {})})
                numbers["seed"] = seed
                episodes.append(numbers)
                if log is not None:
                    log(f"{preset:>8} {label:<32} seed {seed:<3} steps {numbers['steps']:>5}  "
                        f"lifespan {numbers['lifespan']:6.1f}  {time.perf_counter() - started:5.1f} s")
            results[preset][label] = episodes
    return results


# ---------------------------------------------------------------------------------------------
# statistics and formatting
# ---------------------------------------------------------------------------------------------
def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (``nan`` error for a single value)."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    if array.size == 1:
        return float(array[0]), math.nan
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def fmt(mean: float, se: float, decimals: int | None = None, sign: bool = False, suffix: str = "") -> str:
    if math.isnan(mean):
        return "-"
    if decimals is None:
        decimals = 0 if abs(mean) >= 100 else 1
    text = f"{mean:+.{decimals}f}" if sign else f"{mean:.{decimals}f}"
    text += suffix
    if not math.isnan(se):
        text += f" ± {se:.{decimals}f}"
    return text


def cell(episodes: list[dict[str, Any]], key: str, decimals: int | None = None) -> str:
    return fmt(*mean_se([e[key] for e in episodes]), decimals)


def versus_random(episodes: list[dict[str, Any]], random: list[dict[str, Any]] | None) -> tuple[str, str]:
    """Paired by seed: lifespan ratio and return difference to the random baseline."""
    if not random:
        return "-", "-"
    by_seed = {e["seed"]: e for e in random}
    pairs = [(e, by_seed[e["seed"]]) for e in episodes if e["seed"] in by_seed]
    ratios = [e["lifespan"] / r["lifespan"] for e, r in pairs if r["lifespan"] > 0]
    differences = [e["return"] - r["return"] for e, r in pairs]
    return fmt(*mean_se(ratios), 2, suffix="×"), fmt(*mean_se(differences), None, sign=True)


SURVIVAL_COLUMNS = ("preset", "policy", "agents\never lived", "mean\nlifespan", "lifespan\nvs random", "return\nper agent",
                    "return\nvs random", "steps\nsurvived")
POPULATION_COLUMNS = ("preset", "policy", "population\nmean", "population\npeak", "population\nfinal", "births",
                      "deaths\nstarvation", "deaths\nold age", "gives", "takes")


def table_rows(results: dict[str, dict[str, list[dict[str, Any]]]], mixed_label: str | None
               ) -> tuple[list[list[str]], list[list[str]]]:
    survival, population = [], []
    for preset, by_label in results.items():
        random = by_label.get("random")
        for label, episodes in by_label.items():
            vs_lifespan, vs_return = versus_random(episodes, random) if label != "random" else ("1× (ref.)", "0 (ref.)")
            survival.append([preset, label, cell(episodes, "agents", 0), cell(episodes, "lifespan"), vs_lifespan,
                             cell(episodes, "return"), vs_return, cell(episodes, "steps", 0)])
            population.append([preset, label, cell(episodes, "population_mean"), cell(episodes, "population_peak"),
                               cell(episodes, "population_end"), cell(episodes, "births", 0),
                               cell(episodes, "deaths_starvation", 0), cell(episodes, "deaths_old_age", 0),
                               cell(episodes, "gives", 0), cell(episodes, "takes", 0)])
            if label == mixed_label:  # per-policy lines of the mixed society
                for name in sorted({n for e in episodes for n in e["per_policy"]}):
                    parts = [e["per_policy"][name] for e in episodes if name in e["per_policy"]]
                    agents = [{"agents": p["agents"], "lifespan": p["mean_lifespan"], "return": p["mean_return"]} for p in parts]
                    survival.append([preset, f"  ↳ {name} in mixed", cell(agents, "agents", 0), cell(agents, "lifespan"),
                                     "", cell(agents, "return"), "", ""])
    return survival, population


def print_rich(survival: list[list[str]], population: list[list[str]], title: str, caption: str | None) -> None:
    from society_env.app.console import table_console
    from rich.table import Table

    console = table_console()
    for name, columns, rows in (("survival and return", SURVIVAL_COLUMNS, survival),
                                ("population and events", POPULATION_COLUMNS, population)):
        table = Table(title=f"{title}: {name}", caption=caption)
        for k, column in enumerate(columns):
            table.add_column(column, justify="left" if k < 2 else "right", no_wrap=True)
        previous = None
        for row in rows:
            if previous is not None and row[0] != previous:
                table.add_section()
            previous = row[0]
            table.add_row(*row)
        console.print(table)


def markdown(survival: list[list[str]], population: list[list[str]]) -> str:
    lines = []
    for columns, rows in ((SURVIVAL_COLUMNS, survival), (POPULATION_COLUMNS, population)):
        lines.append("| " + " | ".join(c.replace("\n", " ") for c in columns) + " |")
        lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(columns) - 2)) + "|")
        for row in rows:
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m society_env.app.baselines",
        description="Run each baseline policy as a whole society on each preset over several seeds and print "
                    "mean ± standard error of lifespan, return, population and events, with the ratio/difference "
                    "to the random baseline on the same preset and seeds.",
        epilog="examples:\n  python -m society_env.app.baselines\n  python -m society_env.app.baselines --quick\n"
               "  python -m society_env.app.baselines --presets small --seeds 20 --mixed forager=1,raider=1\n"
               "  python -m society_env.app.baselines --markdown --json baselines.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=None, help="episodes per row, seeds S..S+N-1 (default 5; 2 with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="the first seed (default 0): name a fresh range for a held-out evaluation")
    parser.add_argument("--presets", default=None, help="comma-separated presets (default: default,small; small with --quick). "
                        f"Known: {', '.join(PRESETS)}")
    parser.add_argument("--policies", default=",".join(BASELINES),
                        help="comma-separated baseline policies, each driving the whole population "
                             f"(default: {','.join(BASELINES)}); include random for the 'vs random' columns")
    parser.add_argument("--mixed", default=DEFAULT_MIXED,
                        help=f"extra row: a mixed society as NAME=SHARE,... founder shares (default: {DEFAULT_MIXED}); "
                             "'' or 'none' to skip")
    parser.add_argument("--steps", type=int, default=None, help="cap on episode length (default: the preset's max_steps)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: preset small and 2 seeds unless --presets/--seeds are given")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown instead of rich tables")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write every episode's numbers to PATH")
    parser.add_argument("--quiet", action="store_true", help="no per-episode progress lines on stderr")
    parser.add_argument("--learned", metavar="NAMES", default=None,
                        help="rows 'learned:NAME' for shipped learned policies (comma-separated names of society-env "
                             "models, or 'all'); needs the rl extra")
    parser.add_argument("--ppo-checkpoint", metavar="PATH", default=None,
                        help="policy.pt of policies/learned/train_ppo.py: adds a 'ppo' row (the policy trained on the preset it "
                             "was trained for; training draws 31-bit episode seeds, so seeds 0..N-1 are held out)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    presets = [p.strip() for p in (args.presets or ("small" if args.quick else "default,small")).split(",") if p.strip()]
    if seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    try:
        names = [name for name, _ in parse_policy_spec(args.policies, POLICIES)]
        options = {"ppo": {"checkpoint": args.ppo_checkpoint}} if args.ppo_checkpoint else {}
        if args.ppo_checkpoint:
            names.append("ppo")
        rows: list[tuple[str, list[tuple[str, float]]]] = [(name, [(name, 1.0)]) for name in names]
        row_options: dict[str, dict[str, dict[str, Any]]] = {}
        if args.learned:
            from policies.learned.trained import TRAINED_POLICIES

            learned = list(TRAINED_POLICIES) if args.learned == "all" else [n.strip() for n in args.learned.split(",")]
            for name in learned:
                rows.append((f"learned:{name}", [("learned", 1.0)]))
                row_options[f"learned:{name}"] = {"learned": {"checkpoint": name}}
        mixed_label = None
        if args.mixed and args.mixed.strip().lower() != "none":
            mixed = parse_policy_spec(args.mixed, POLICIES)
            mixed_label = "mixed"
            rows.append((mixed_label, mixed))
    except PolicySpecError as error:
        parser.error(str(error))

    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    try:
        results = run_all(presets, rows, list(range(args.first_seed, args.first_seed + seeds)), args.steps, log, options,
                          row_options)
    except (ValueError, PolicySpecError) as error:  # e.g. a learned policy that is not shipped
        parser.error(str(error))
    elapsed = time.perf_counter() - started

    survival, population = table_rows(results, mixed_label)
    cap = f", steps capped at {args.steps}" if args.steps else ""
    first = f" from {args.first_seed}" if args.first_seed else ""
    title = f"baselines ({seeds} seed{'s' if seeds != 1 else ''}{first}, mean ± s.e.{cap})"
    if args.markdown:
        print(markdown(survival, population))
    else:
        caption = f"mixed = founders split {args.mixed}; newborns inherit the parent's policy" if mixed_label else None
        print_rich(survival, population, title, caption)
    if log is not None:
        log(f"{sum(len(e) for r in results.values() for e in r.values())} episodes in {elapsed:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": seeds, "first_seed": args.first_seed, "steps": args.steps,
                                               "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
