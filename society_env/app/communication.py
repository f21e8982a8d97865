"""``society-env communication``: the causal test of communication (Jaques et al. 2019; Lowe et al. 2019).

Measures on a recording (``society_env.analysis.communication``) show that tokens and behaviour go together;
this test changes the channel and watches what follows. For each seed it plays three episodes of the same
policy assignment, world and seed (``policies.rollout.run_episode``):

``plain``
    the policies as they are, each wrapped in a ``policies.channel.CounterfactualProbe`` that asks it at every
    step what it would have done with the channel zeroed or shuffled (its actions are the plain ones);
``zero`` / ``shuffle``
    every agent hears the token channel edited (``policies.channel.ChannelIntervention``): other agents' tokens
    read 0, or are permuted between the agents that sent them this step.

Paired by seed, it reports the mean +/- standard error over seeds of (intervened - plain) for the return and
the behaviour (lifespan, food eaten, population, births, gifts, the share of each action kind), and the
probe's share of decisions that the edited channel would have changed. Every agent of every policy hears the
edited channel. Worlds with the language option are refused: their agents also read messages as text, which
the test does not edit.

    society-env communication --policy cooperator --seeds 10
    society-env communication --policy random --seeds 10 --json runs/communication-random.json
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from society_env.app.errors import UserError

CONDITIONS = ("plain", "zero", "shuffle")
MEASURES = ("return", "lifespan", "food_per_agent_step", "population_mean", "births", "gives")
"""Per-episode numbers compared between conditions (besides the action-kind shares)."""


@dataclass
class CausalSettings:
    preset: str = "small"
    policy: str = "cooperator"
    seeds: int = 10
    steps: int | None = None
    overrides: tuple[str, ...] = ()
    ppo_checkpoint: str | None = None


def _kind_counts():
    from policies.rollout import EpisodeHook

    class ActionKinds(EpisodeHook):
        """Counts the action kinds the agents chose (the behaviour an intervention may shift)."""

        def __init__(self) -> None:
            self.counts: Counter = Counter()

        def after_step(self, rollout, step) -> None:
            for action in step.actions.values():
                vector = action["action"] if isinstance(action, dict) else action
                self.counts[int(vector[0])] += 1

    return ActionKinds()


def _world(settings: CausalSettings):
    from policies import POLICIES, PolicySpecError, parse_policy_spec
    from policies.llm.prompt_config import world_and_prompt

    try:
        entries = parse_policy_spec(settings.policy, POLICIES)
        config, _ = world_and_prompt(settings.preset, settings.overrides, llm_agents=False)  # no LLM agents here
    except (ValueError, PolicySpecError) as error:
        raise UserError(str(error)) from None
    if any(name == "llm" for name, _ in entries) or config.language:
        raise UserError("the causal test edits the numeric token channel; with the language option (and LLM agents) "
                        "agents also read messages as text, which it does not edit")
    if config.message_vocab_size < 2:
        raise UserError(f"the world has a message vocabulary of {config.message_vocab_size} token: there is no "
                        "channel to intervene on")
    if settings.seeds < 2:
        raise UserError("--seeds must be at least 2 (the standard error of the paired difference needs two)")
    return entries, config


def _policies(entries, config, settings: CausalSettings, condition: str) -> dict[str, Any]:
    from policies import PolicySpecError, make_policy
    from policies.channel import ChannelIntervention, CounterfactualProbe

    drivers = {}
    for name, _ in entries:
        options = {"checkpoint": settings.ppo_checkpoint} if name in ("ppo", "learned") else {}
        try:
            policy = make_policy(name, config, **options)
        except (ValueError, PolicySpecError) as error:
            raise UserError(str(error)) from None
        if condition == "plain":
            drivers[name] = CounterfactualProbe(policy, config) if hasattr(policy, "load_state_dict") else policy
        else:
            drivers[name] = ChannelIntervention(policy, config, condition)
    return drivers


def play(settings: CausalSettings, seed: int, condition: str) -> dict[str, Any]:
    """One episode of ``condition`` and its numbers (the plain one with the probe's counts)."""
    from policies import PolicyAssignment
    from policies.rollout import run_episode
    from society_env.app.baselines import episode_numbers
    from society_env.world.encodings import ACTION_NAMES
    from society_env.world.env import SocietyEnv

    entries, config = _world(settings)
    env = SocietyEnv(config)
    assignment = PolicyAssignment(entries, config.num_founders)
    drivers = _policies(entries, config, settings, condition)
    kinds = _kind_counts()
    stats = run_episode(env, assignment, drivers, seed, max_steps=settings.steps, hooks=[kinds])
    numbers = episode_numbers(stats, assignment.policy_of)
    decisions = max(stats.agent_steps, 1)
    numbers["food_per_agent_step"] = sum(stats.food_eaten.values()) / decisions
    numbers["action_share"] = {name: kinds.counts[kind] / decisions for kind, name in enumerate(ACTION_NAMES)}
    probes = {name: driver.counts for name, driver in drivers.items() if hasattr(driver, "counts")}
    if probes:
        numbers["probe"] = {mode: {key: sum(counts[mode][key] for counts in probes.values())
                                   for key in ("decisions", "heard", "changed")} for mode in ("zero", "shuffle")}
    return numbers


def mean_se(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "se": float(array.std(ddof=1) / math.sqrt(array.size))}


def causal_test(settings: CausalSettings, log=None) -> dict[str, Any]:
    """Every seed's three episodes, and the paired differences (mean and SE over seeds)."""
    from society_env.world.encodings import ACTION_NAMES

    _world(settings)  # bad settings fail before the first episode
    episodes: dict[str, list[dict[str, Any]]] = {condition: [] for condition in CONDITIONS}
    for seed in range(settings.seeds):
        for condition in CONDITIONS:
            episodes[condition].append(play(settings, seed, condition))
        if log is not None:
            plain, zero, shuffle = (episodes[c][-1]["return"] for c in CONDITIONS)
            log(f"seed {seed}: return plain {plain:.1f}, zero {zero:.1f}, shuffle {shuffle:.1f}")

    def values(condition: str, measure: str) -> list[float]:
        if measure.startswith("share:"):
            return [e["action_share"][measure.removeprefix("share:")] for e in episodes[condition]]
        return [e[measure] for e in episodes[condition]]

    rows = {}
    for measure in (*MEASURES, *(f"share:{name}" for name in ACTION_NAMES)):
        plain = values("plain", measure)
        rows[measure] = {"plain": mean_se(plain), **{
            f"{condition} - plain": mean_se(np.subtract(values(condition, measure), plain)) for condition in ("zero", "shuffle")}}
    result: dict[str, Any] = {"settings": settings.__dict__ | {"overrides": list(settings.overrides)},
                              "seeds": list(range(settings.seeds)), "paired": rows, "episodes": episodes}
    if all("probe" in e for e in episodes["plain"]):
        result["influence"] = {mode: {
            "changed_share": mean_se([e["probe"][mode]["changed"] / max(e["probe"][mode]["decisions"], 1)
                                      for e in episodes["plain"]]),
            "changed_share_of_heard": mean_se([e["probe"][mode]["changed"] / max(e["probe"][mode]["heard"], 1)
                                               for e in episodes["plain"]]),
            "heard_share": mean_se([e["probe"][mode]["heard"] / max(e["probe"][mode]["decisions"], 1)
                                    for e in episodes["plain"]])} for mode in ("zero", "shuffle")}
    return result


def _cell(value: dict[str, float], sign: bool = False) -> str:
    return f"{value['mean']:{'+' if sign else ''}.3f} ± {value['se']:.3f}"


def result_rows(result: dict[str, Any]) -> list[tuple[str, list[str]]]:
    rows = [(measure.replace("share:", "share of ") if measure.startswith("share:") else measure,
             [_cell(row["plain"]), _cell(row["zero - plain"], True), _cell(row["shuffle - plain"], True)])
            for measure, row in result["paired"].items()]
    for label, key in (("decisions the edited channel would change", "changed_share"),
                       ("... of those whose channel it edits", "changed_share_of_heard")):
        if "influence" in result:
            rows.append((label, ["", _cell(result["influence"]["zero"][key]), _cell(result["influence"]["shuffle"][key])]))
    return rows


def add_parser(commands) -> None:
    """The ``communication`` subcommand of ``society-env``."""
    parser = commands.add_parser(
        "communication", help="the causal test: play with the token channel zeroed or shuffled, paired by seed",
        description="The causal test of communication (Jaques et al. 2019): for each seed, three episodes of the same "
                    "policies, world and seed: plain (each policy also asked, every step, what it would have done "
                    "with the channel edited), with other agents' tokens zeroed, and with the tokens shuffled between "
                    "the agents that sent them. Prints the mean ± SE over seeds of intervened - plain: return, "
                    "lifespan, food eaten, population, births, gifts, action-kind shares, and the share of decisions "
                    "the edited channel would change. The measures on a recording: society-env report.",
        epilog="examples:\n  society-env communication --policy cooperator --seeds 10\n"
               "  society-env communication --policy ppo --ppo-checkpoint runs/ppo/policy.pt --json runs/communication-ppo.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from society_env.world.config import PRESETS

    parser.add_argument("--preset", default="small", choices=sorted(PRESETS), help="world preset (default small)")
    parser.add_argument("--policy", default="cooperator", help="policy assignment as NAME=SHARE,... (as for 'run'); "
                        "every agent hears the edited channel (default cooperator)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1, three episodes each (default 10)")
    parser.add_argument("--steps", type=int, default=None, help="steps per episode (default: the preset's max_steps)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a SocietyConfig field (repeatable)")
    parser.add_argument("--ppo-checkpoint", default=None, metavar="PATH", help="policy.pt for the agents of policy 'ppo'")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every number (and every episode) here")
    parser.add_argument("--quiet", action="store_true", help="no per-seed lines")
    parser.set_defaults(handler=command_communication)


def command_communication(args: argparse.Namespace) -> int:
    import sys
    import time

    from society_env.app.runs import print_columns

    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be at least 1")
    settings = CausalSettings(args.preset, args.policy, args.seeds, args.steps, tuple(args.overrides), args.ppo_checkpoint)
    started = time.perf_counter()
    result = causal_test(settings, log=None if args.quiet else lambda line: print(line, file=sys.stderr))
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_columns(f"society-env communication: {args.policy} on {args.preset}, seeds 0-{args.seeds - 1} "
                  "(mean ± SE over seeds)", ["plain", "zero - plain", "shuffle - plain"], result_rows(result),
                  justify="right")
    if args.json:
        from society_env.recording.files import write_json_atomic

        write_json_atomic(Path(args.json), result)
        print(f"numbers: {args.json}")
    return 0

