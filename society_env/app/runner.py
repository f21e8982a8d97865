"""Run one episode: policies act for their agents, the env steps, statistics and the recording follow."""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from policies.assignment import PolicyAssignment
from policies.base import Policy
from society_env.env import SocietyEnv
from society_env.names import agent_name
from society_env.recording import RecordingWriter, count_events, step_events
from society_env.state import ALIVE


@dataclass
class EpisodeStats:
    """What a run did, accumulated step by step."""

    steps: int = 0
    population: list[int] = field(default_factory=list)
    food_tiles: list[int] = field(default_factory=list)
    births: int = 0
    deaths: Counter = field(default_factory=Counter)
    gives: int = 0
    energy_given: int = 0
    takes: int = 0
    energy_taken: int = 0
    messages: int = 0
    artifact_events: Counter = field(default_factory=Counter)
    """Artifact events by type without the ``artifact_`` prefix (created, modified, expired, ...)."""
    artifacts_alive: int = 0
    """Artifacts in the world after the last step."""
    agent_steps: int = 0
    seconds: float = 0.0
    returns: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    lifespans: dict[str, int] = field(default_factory=dict)
    food_eaten: Counter = field(default_factory=Counter)
    """Food tiles eaten per agent."""
    policy_costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Inference cost readouts of policies that report them (e.g. the LLM policy)."""

    def observe_step(self, env: SocietyEnv, rewards: dict[str, float], infos: dict[str, dict],
                     events: list[dict[str, Any]]) -> None:
        """Add one step: its rewards, the ``ate`` infos, and its world events (:func:`step_events`, the
        same list the recording writes), counted by :func:`count_events` as the report counts them."""
        self.steps += 1
        for agent, reward in rewards.items():
            self.returns[agent] += reward
        for agent, info in infos.items():
            if "ate" in info:
                self.food_eaten[agent] += 1
        counts = count_events(events)
        self.births += counts["born"]
        self.gives += counts["gave"]
        self.energy_given += counts["gave_amount"]
        self.takes += counts["took"]
        self.energy_taken += counts["took_amount"]
        self.messages += counts["message"]
        for kind, count in counts.items():
            if kind.startswith("died:"):
                self.deaths[kind.removeprefix("died:")] += count
            elif kind.startswith("artifact_"):
                self.artifact_events[kind.removeprefix("artifact_")] += count
        for event in events:
            if event["type"] == "died":
                self.lifespans[event["agent"]] = event["age"]
        world = env.world
        self.artifacts_alive = len(world.artifacts)
        self.population.append(int(np.count_nonzero(world.status == ALIVE)))
        self.food_tiles.append(int(np.count_nonzero(world.food)))

    def finish(self, env: SocietyEnv) -> None:
        world = env.world
        for slot in np.flatnonzero(world.status == ALIVE).tolist():  # still alive at the end
            self.lifespans.setdefault(agent_name(slot), int(world.age[slot]))

    def summary(self, policy_of: dict[str, str]) -> dict[str, Any]:
        per_policy: dict[str, dict[str, Any]] = {}
        for name in sorted(set(policy_of.values())):
            agents = [a for a, p in policy_of.items() if p == name]
            returns = [self.returns.get(a, 0.0) for a in agents]
            lifespans = [self.lifespans[a] for a in agents if a in self.lifespans]
            per_policy[name] = {
                "agents": len(agents),
                "mean_return": float(np.mean(returns)) if returns else 0.0,
                "mean_lifespan": float(np.mean(lifespans)) if lifespans else 0.0,
            }
        return {
            "steps": self.steps,
            "population_start": self.population[0] if self.population else 0,
            "population_peak": max(self.population, default=0),
            "population_end": self.population[-1] if self.population else 0,
            "population_mean": float(np.mean(self.population[1:])) if len(self.population) > 1 else 0.0,
            "births": self.births,
            "deaths": dict(self.deaths),
            "gives": self.gives,
            "energy_given": self.energy_given,
            "takes": self.takes,
            "energy_taken": self.energy_taken,
            "messages": self.messages,
            "artifacts": {"created": self.artifact_events["created"], "modified": self.artifact_events["modified"],
                          "alive_end": self.artifacts_alive, **{kind: self.artifact_events[kind] for kind in
                          ("picked_up", "dropped", "given", "destroyed", "expired")}},
            "agent_steps": self.agent_steps,
            "seconds": round(self.seconds, 3),
            "agent_steps_per_second": round(self.agent_steps / self.seconds, 1) if self.seconds > 0 else 0.0,
            "per_policy": per_policy,
            "costs": self.policy_costs,
        }


def policy_seeds(seed: int, names: list[str]) -> dict[str, int]:
    """One seed per policy, all derived from the run seed (so the run seed is the only seed)."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: int(child.generate_state(1)[0]) for name, child in zip(names, children)}


@dataclass
class RunState:
    """Everything a run needs to go on from the end of step ``stats.steps`` exactly as if it had never
    stopped: the world (``env.state_dict()``, its generator included), who plays which policy, each
    policy's state (``state_dict()``) and the statistics so far. What a run checkpoint holds."""

    env: dict[str, Any]
    policy_of: dict[str, str]
    policies: dict[str, dict[str, Any]]
    stats: EpisodeStats
    seconds: float
    """Time spent stepping before this state (the resumed run's agent-steps/s include it)."""


def run_episode(
    env: SocietyEnv,
    assignment: PolicyAssignment,
    policies: dict[str, Policy],
    seed: int,
    max_steps: int | None = None,
    recorder: RecordingWriter | None = None,
    on_step: Callable[[SocietyEnv, EpisodeStats], None] | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[RunState], None] | None = None,
    resume: RunState | None = None,
    before_step: Callable[[SocietyEnv, dict[str, Any]], None] | None = None,
    after_step: Callable[[SocietyEnv, dict[str, float]], None] | None = None,
) -> EpisodeStats:
    """Play one episode (up to ``max_steps`` steps) and return its statistics.

    With ``checkpoint_every`` K > 0, ``on_checkpoint`` receives the run's :class:`RunState` after every
    K-th step the run goes on from (policies that cache computation drop it first: ``drop_cache``, so
    the uninterrupted run computes what a resumed one will). ``resume`` continues from such a state
    instead of resetting; the recorder must then already hold the recording up to that step.
    ``before_step(env, actions)`` sees every step's actions before the env applies them (e.g. to try
    other actions on a copy of the env: the fitness's Rao-Blackwellised return), ``after_step(env,
    rewards)`` the rewards after.
    """
    names = sorted(policies)
    for name, policy_seed in policy_seeds(seed, names).items():
        policies[name].reset(policy_seed)
    if resume is None:
        observations, infos = env.reset(seed=seed)
        stats = EpisodeStats()
        stats.population.append(len(env.agents))
        stats.food_tiles.append(int(np.count_nonzero(env.world.food)))
        if recorder is not None:
            recorder.record_reset(env.world, assignment.policy_of)
        earlier = 0.0
    else:
        observations, infos = env.load_state_dict(resume.env)
        for name in names:
            policies[name].load_state_dict(resume.policies[name])
        assignment.policy_of = dict(resume.policy_of)
        stats, earlier = copy.deepcopy(resume.stats), resume.seconds
    limit = env.config.max_steps if max_steps is None else min(max_steps, env.config.max_steps)
    started = time.perf_counter()
    while env.agents and stats.steps < limit:
        actions: dict[str, Any] = {}
        for name, agents in assignment.groups(env.agents).items():
            actions.update(policies[name].act({a: observations[a] for a in agents}, {a: infos[a] for a in agents}))
        stats.agent_steps += len(env.agents)
        if before_step is not None:
            before_step(env, actions)
        observations, rewards, terminations, truncations, infos = env.step(actions)
        if after_step is not None:
            after_step(env, rewards)
        assignment.update(infos)
        events = step_events(env.world, infos, assignment.policy_of, env.last_outcome.artifact_events)
        stats.observe_step(env, rewards, infos, events)
        if recorder is not None:
            extra = [
                {"step": env.world.step, **event}
                for policy in policies.values() if hasattr(policy, "drain_events")
                for event in policy.drain_events()
            ]
            recorder.record_step(actions, env.world, infos, assignment.policy_of, extra, rewards=rewards,
                                 world_events=events)
        if on_step is not None:
            on_step(env, stats)
        if checkpoint_every and stats.steps % checkpoint_every == 0 and env.agents and stats.steps < limit:
            on_checkpoint(_run_state(env, assignment, policies, stats, earlier + time.perf_counter() - started))
    stats.seconds = earlier + time.perf_counter() - started
    stats.finish(env)
    stats.policy_costs = {name: p.cost_summary() for name, p in policies.items() if hasattr(p, "cost_summary")}
    return stats


def _run_state(env: SocietyEnv, assignment: PolicyAssignment, policies: dict[str, Policy], stats: EpisodeStats,
               seconds: float) -> RunState:
    states = {}
    for name, policy in policies.items():
        if not hasattr(policy, "state_dict"):
            raise TypeError(f"policy {name!r} has no state_dict(), so a run with it cannot be checkpointed")
        if hasattr(policy, "drop_cache"):
            policy.drop_cache()
        states[name] = policy.state_dict()
    return RunState(env.state_dict(), dict(assignment.policy_of), states, copy.deepcopy(stats), seconds)
