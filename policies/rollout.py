"""One episode, the only episode loop: policies act for their agents, the env steps, hooks observe.

Everything that follows an episode is an :class:`EpisodeHook` of :func:`run_episode`: the run's progress
bar and recorder (:class:`RecordSteps`), run checkpoints (:class:`Checkpoints`), replay verification
(``society_env.app.runs.replay_recording``), the QES fitness's Rao-Blackwellised return
(``qes_trainer.fitness``) and the endurance benchmark's sampling (:class:`EveryStep`). The loop itself
knows nothing of them.

When an episode ends is the env's rule (``society_env.world.rules.episode_end``: nobody alive, or
``max_steps`` steps); ``run_episode`` stops there or after its own ``max_steps``, whichever comes first.
"""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from policies.assignment import PolicyAssignment
from policies.base import Policy
from society_env.world.env import SocietyEnv
from society_env.world.names import agent_name
from society_env.world.outcome import ARTIFACT_EVENT_PREFIX, ARTIFACT_EVENTS, ATE, BORN, DIED, GAVE, MESSAGE, TOOK
from society_env.recording.format import RecordingWriter, count_events, step_events
from society_env.world.state import ALIVE

__all__ = ["EpisodeStats", "RunState", "Rollout", "Step", "EpisodeHook", "EveryStep", "RecordSteps", "Checkpoints",
           "policy_seeds", "reset_policies", "start_episode", "collect_actions", "run_episode"]


_ARTIFACT_KINDS = tuple(kind.removeprefix(ARTIFACT_EVENT_PREFIX) for kind in ARTIFACT_EVENTS)
"""The artifact event types without their prefix (created, picked_up, ...), as the summary counts them."""


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

    def observe_start(self, env: SocietyEnv) -> None:
        self.population.append(len(env.agents))
        self.food_tiles.append(int(np.count_nonzero(env.world.food)))

    def observe_step(self, env: SocietyEnv, rewards: dict[str, float], infos: dict[str, dict],
                     events: list[dict[str, Any]]) -> None:
        """Add one step: its rewards, the ``ate`` infos, and its world events (:func:`step_events`, the
        same list the recording writes), counted by :func:`count_events` as the report counts them."""
        self.steps += 1
        for agent, reward in rewards.items():
            self.returns[agent] += reward
        for agent, info in infos.items():
            if ATE in info:
                self.food_eaten[agent] += 1
        counts = count_events(events)
        self.births += counts[BORN]
        self.gives += counts[GAVE]
        self.energy_given += counts[f"{GAVE}_amount"]
        self.takes += counts[TOOK]
        self.energy_taken += counts[f"{TOOK}_amount"]
        self.messages += counts[MESSAGE]
        for kind, count in counts.items():
            if kind.startswith(f"{DIED}:"):
                self.deaths[kind.removeprefix(f"{DIED}:")] += count
            elif kind in ARTIFACT_EVENTS:
                self.artifact_events[kind.removeprefix(ARTIFACT_EVENT_PREFIX)] += count
        for event in events:
            if event["type"] == DIED:
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
                          _ARTIFACT_KINDS if kind not in ("created", "modified")}},
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


@dataclass
class Step:
    """One step as the hooks see it after the env applied it."""

    actions: dict[str, Any]
    rewards: dict[str, float]
    infos: dict[str, dict]
    events: list[dict[str, Any]]
    """The step's world events (``society_env.recording.format.step_events``), as the recording writes them."""


@dataclass
class Rollout:
    """The episode in progress, as the hooks see it."""

    env: SocietyEnv
    assignment: PolicyAssignment
    policies: dict[str, Policy]
    stats: EpisodeStats
    limit: int
    """The last step this episode may reach."""
    resumed: bool = False
    seconds_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def run_state(self) -> RunState:
        """The state to resume from after this step (policies that cache computation drop it first, so
        the uninterrupted run computes what a resumed one will)."""
        states = {}
        for name, policy in self.policies.items():
            if not hasattr(policy, "state_dict"):
                raise TypeError(f"policy {name!r} has no state_dict(), so a run with it cannot be checkpointed")
            if hasattr(policy, "drop_cache"):
                policy.drop_cache()
            states[name] = policy.state_dict()
        return RunState(self.env.state_dict(), dict(self.assignment.policy_of), states, copy.deepcopy(self.stats),
                        self.seconds())


class EpisodeHook:
    """What follows an episode; every method is optional (the base class does nothing).

    ``on_start`` runs after the reset (or the resume), ``before_step`` with the step's actions before the
    env applies them (e.g. to try other actions on a copy of the env), ``after_step`` after every step,
    ``on_end`` once the episode stopped (its statistics final)."""

    def on_start(self, rollout: Rollout) -> None:
        pass

    def before_step(self, rollout: Rollout, actions: dict[str, Any]) -> None:
        pass

    def after_step(self, rollout: Rollout, step: Step) -> None:
        pass

    def on_end(self, rollout: Rollout) -> None:
        pass


class EveryStep(EpisodeHook):
    """Calls ``function(env, stats)`` after every step (a progress bar, a renderer, a sampler)."""

    def __init__(self, function: Callable[[SocietyEnv, EpisodeStats], None]):
        self.function = function

    def after_step(self, rollout: Rollout, step: Step) -> None:
        self.function(rollout.env, rollout.stats)


class RecordSteps(EpisodeHook):
    """Writes the episode into a :class:`~society_env.recording.format.RecordingWriter`: the reset (unless the
    episode resumes a recording that already holds it) and every step with its world events and the
    events the policies report (``drain_events``: prompts, completions)."""

    def __init__(self, recorder: RecordingWriter):
        self.recorder = recorder

    def on_start(self, rollout: Rollout) -> None:
        if not rollout.resumed:
            self.recorder.record_reset(rollout.env.world, rollout.assignment.policy_of)

    def after_step(self, rollout: Rollout, step: Step) -> None:
        world = rollout.env.world
        extra = [{"step": world.step, **event} for policy in rollout.policies.values()
                 if hasattr(policy, "drain_events") for event in policy.drain_events()]
        self.recorder.record_step(step.actions, world, step.infos, rollout.assignment.policy_of, extra,
                                  rewards=step.rewards, world_events=step.events)


class Checkpoints(EpisodeHook):
    """Hands ``save`` the run's :class:`RunState` after every ``every``-th step the episode goes on from."""

    def __init__(self, every: int, save: Callable[[RunState], None]):
        if every < 1:
            raise ValueError(f"checkpoints need a period of at least 1 step, got {every}")
        self.every, self.save = every, save

    def after_step(self, rollout: Rollout, step: Step) -> None:
        steps = rollout.stats.steps
        if steps % self.every == 0 and rollout.env.agents and steps < rollout.limit:
            self.save(rollout.run_state())


def reset_policies(policies: dict[str, Policy], seed: int, skip: Sequence[str] = ()) -> None:
    """Reset every policy (but those named in ``skip``) with its seed derived from the episode seed
    (:func:`policy_seeds`, over all the names: skipping one does not change the others' seeds)."""
    for name, policy_seed in policy_seeds(seed, sorted(policies)).items():
        if name not in skip:
            policies[name].reset(policy_seed)


def start_episode(env: SocietyEnv, policies: dict[str, Policy], seed: int) -> tuple[dict, dict]:
    """Reset the policies (:func:`reset_policies`), then the env with ``seed``; returns the first
    observations and infos."""
    reset_policies(policies, seed)
    return env.reset(seed=seed)


def collect_actions(assignment: PolicyAssignment, policies: dict[str, Policy], agents: Sequence[str],
                    observations: dict, infos: dict, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Every living agent's action from its policy (one batched ``act`` call per policy), leaving out
    the policies named in ``skip``."""
    actions: dict[str, Any] = {}
    for name, group in assignment.groups(agents).items():
        if name not in skip:
            actions.update(policies[name].act({a: observations[a] for a in group}, {a: infos[a] for a in group}))
    return actions


def run_episode(
    env: SocietyEnv,
    assignment: PolicyAssignment,
    policies: dict[str, Policy],
    seed: int,
    max_steps: int | None = None,
    hooks: Sequence[EpisodeHook] = (),
    resume: RunState | None = None,
) -> EpisodeStats:
    """Play one episode (up to ``max_steps`` steps) and return its statistics.

    ``resume`` continues from a :class:`RunState` (a :class:`Checkpoints` hook's) instead of resetting;
    a recorder hook must then already hold the recording up to that step."""
    if resume is None:
        observations, infos = start_episode(env, policies, seed)
        stats, earlier = EpisodeStats(), 0.0
        stats.observe_start(env)
    else:
        reset_policies(policies, seed)
        observations, infos = env.load_state_dict(resume.env)
        for name, policy in policies.items():
            policy.load_state_dict(resume.policies[name])
        assignment.policy_of = dict(resume.policy_of)
        stats, earlier = copy.deepcopy(resume.stats), resume.seconds
    limit = env.config.max_steps if max_steps is None else min(max_steps, env.config.max_steps)
    rollout = Rollout(env, assignment, policies, stats, limit, resumed=resume is not None, seconds_before=earlier)
    for hook in hooks:
        hook.on_start(rollout)
    while env.agents and stats.steps < limit:
        actions = collect_actions(assignment, policies, env.agents, observations, infos)
        stats.agent_steps += len(env.agents)
        for hook in hooks:
            hook.before_step(rollout, actions)
        observations, rewards, terminations, truncations, infos = env.step(actions)
        assignment.update(infos)
        events = step_events(env.world, infos, assignment.policy_of, env.last_outcome.artifact_events)
        stats.observe_step(env, rewards, infos, events)
        step = Step(actions, rewards, infos, events)
        for hook in hooks:
            hook.after_step(rollout, step)
    stats.seconds = rollout.seconds()
    stats.finish(env)
    stats.policy_costs = {name: p.cost_summary() for name, p in policies.items() if hasattr(p, "cost_summary")}
    for hook in hooks:
        hook.on_end(rollout)
    return stats
