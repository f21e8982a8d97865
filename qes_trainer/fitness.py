"""Fitness of a model: the mean episode return of the LLM-driven agents over a fixed set of episodes.

QES compares the two members of a mirrored pair by their fitness difference, so noise that is not due to
the weights must be the same for both. Common random numbers do that here: every member of a generation
plays the same episode seeds (world layout, food, personalities), the same scripted co-players (their
seeds derive from the episode seed) and the same LLM sampling seeds (from episode seed, step and agent).
Only the weights differ.

A member's fitness on an episode is the **return per LLM founder**: the summed rewards of the LLM agents
and their descendants (who inherit the policy), divided by the number of LLM founders (a fixed number,
so the estimators below can be unbiased for it). Three estimators (``FitnessSettings.estimator``):

- ``sampled``: play the episodes, sampling every answer (what ``qes-eval`` always does);
- ``rao_blackwell``: play the same sampled episodes, but at every LLM decision replace the agent's
  sampled reward by its exact expectation over the answers the grammar allows whose effect needs no
  further choice (stay, reproduce, move in each direction: probabilities from the logits, asked of the
  LLM backend, ``LanguageModel.decision_distribution``; each one's reward from one env step on a copy of the env,
  the other agents' sampled actions held fixed), plus the sampled reward when the sampled answer was
  none of those (give, take, ...). Unbiased for the episode return by the tower property
  (docs/training.md, "The Rao-Blackwellised return"), any world, any action set, multi-step;
- ``expected``: the *exact* expected return of each LLM agent's first decision of each episode, from
  the action probabilities in the model's logits (``LLMPolicy.move_distribution``, from the backend) and the reward
  the world gives each action (one env step per action, from a copy of the episode's first state). No
  sampling noise at all: a member's fitness is a smooth function of its weights. Needs a move-only
  world (the ``forage`` preset).
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from policies import POLICIES, PolicyAssignment, make_policy, parse_policy_spec
from policies.base import make_action
from policies.llm.backend import SAMPLED_DECISION
from policies.llm.engine import LlamaEngine
from society_env.app.llm_options import LLMOptions
from policies.llm.policy import MOVE_KINDS, LlamaCppPolicy, LLMPolicy, default_context
from policies.llm.prompt_config import PromptConfig, world_and_prompt
from policies.scripted.perception import DIRECTIONS, Perception
from policies.rollout import EpisodeHook, Rollout, Step, collect_actions, run_episode, start_episode
from society_env.app.options import option, same_option
from society_env.world.env import SocietyEnv
from society_env.world.names import agent_name
from society_env.world.encodings import GIVE, REPRODUCE, STAY, TAKE

__all__ = ["FitnessSettings", "FitnessEvaluator", "EpisodeResult", "episode_seeds", "mean_and_standard_error",
           "ESTIMATORS"]

TRAINED_POLICY = "llm"
ESTIMATORS = ("sampled", "rao_blackwell", "expected")
HELDOUT_SEED = 10_000
"""First held-out episode seed (qes-eval, qes-train --eval-every); training draws 32-bit hashes of
(seed, generation), so small consecutive seeds are held out in practice."""


@dataclass(frozen=True)
class FitnessSettings:
    """What one fitness evaluation plays (identical for every member of a run). The prompt (history,
    motivation, personality, talk, action set) is the preset's with the ``--set prompt_*`` overrides,
    exactly as ``society-env run`` uses it.
    Fields made with :func:`~society_env.app.options.option` are also ``qes-train`` / ``qes-eval`` options."""

    preset: str = option("small", "world preset", group="episodes")
    policy: str = option("llm=2,forager=4", "founder policies as in society-env run; the llm agents are the "
                         "trained ones, the others fixed co-players", group="episodes")
    overrides: tuple[str, ...] = option(
        (), "override a world config field or, as prompt_FIELD, a prompt field (repeatable), e.g. --set "
        "reward_mode=survival", group="episodes", flag="--set", metavar="FIELD=VALUE", append=True,
        default_text="none", parse=tuple)
    """``FIELD=VALUE`` pairs as ``society-env run --set`` takes them (read by
    :func:`policies.llm.prompt_config.world_and_prompt`)."""
    episodes: int = option(2, "episodes per member", group="episodes", minimum=1)
    max_steps: int = option(12, "steps per episode (at most the preset's max_steps)", group="episodes", minimum=1,
                            flag="--steps", aliases=("--max-steps",))
    n_ctx: int | None = same_option(LLMOptions, "n_ctx")
    temperature: float = same_option(LLMOptions, "temperature")
    max_tokens: int | None = None
    """None: the longest answer the action grammar allows (see :class:`policies.llm.policy.LLMPolicy`)."""
    chat_format: str | None = None
    estimator: str = option("sampled", "fitness of a member: sampled episodes, or the expected return of each LLM "
                            "agent's first decision, exact from the action logits (no sampling noise; move-only "
                            "worlds such as --preset forage)", group="episodes", choices=ESTIMATORS)

    def world_config(self):
        return world_and_prompt(self.preset, self.overrides, llm_agents=True)[0]

    def prompt(self) -> PromptConfig:
        return world_and_prompt(self.preset, self.overrides, llm_agents=True)[1]

    def context_tokens(self) -> int:
        """The context per agent this evaluation uses (``n_ctx`` or the preset's default)."""
        return self.n_ctx if self.n_ctx is not None else default_context(self.world_config(), self.prompt())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FitnessSettings":
        """Inverse of ``dataclasses.asdict``; accepts the settings of older checkpoints (which stored
        prompt fields of their own, dropped: the prompt comes from the preset and ``--set``; and their
        overrides as parsed ``[field, value]`` pairs, written back as the ``FIELD=VALUE`` they were)."""
        data = {key: value for key, value in data.items() if key not in ("history", "motivation", "personality")}
        data["overrides"] = tuple(item if isinstance(item, str) else f"{item[0]}={json.dumps(item[1])}"
                                  for item in data.get("overrides", ()))
        return cls(**data)


@dataclass
class EpisodeResult:
    seed: int
    fitness: float  # the estimator's return per LLM founder (descendants included)
    steps: int
    failures: int  # LLM answers that fell back to "stay"
    behaviour: Counter = field(default_factory=Counter)
    """What the LLM agents did (sampled episodes): ``agent_steps``, ``food_eaten``, ``moves``,
    ``food_in_view`` (agent-steps with food visible), ``towards_food`` (of those, moves that step closer to
    the nearest visible food), ``stays``."""
    sampled_fitness: float | None = None
    """The sampled return per LLM founder of the same episode (``fitness`` is the Rao-Blackwellised one)."""


def episode_seeds(seed: int, generation: int, episodes: int) -> list[int]:
    """The episode seeds every member of ``generation`` plays (common random numbers)."""
    return [int(s) for s in np.random.SeedSequence([seed, generation]).generate_state(episodes, dtype=np.uint32)]


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    error = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), error


class FitnessEvaluator:
    """Plays ``settings.episodes`` episodes with the model loaded in ``engine`` and returns their fitness.

    The engine must already hold the weights to evaluate; the LLM policy resets its KV cache at every
    episode start, so weight changes between evaluations are picked up (and results depend only on the
    weights and the seeds, not on what was evaluated before).
    """

    def __init__(self, settings: FitnessSettings, engine: LlamaEngine):
        if settings.estimator not in ESTIMATORS:
            raise ValueError(f"unknown fitness estimator {settings.estimator!r}; use {' or '.join(ESTIMATORS)}")
        self.settings = settings
        self.entries = parse_policy_spec(settings.policy, POLICIES)
        if not any(name == TRAINED_POLICY for name, _ in self.entries):
            raise ValueError(f"--policy {settings.policy!r} has no {TRAINED_POLICY!r} agents to train")
        self.config = settings.world_config()
        self.env = SocietyEnv(self.config)
        prompt = settings.prompt()
        if settings.estimator == "expected" and prompt.actions != "move":
            raise ValueError(f"the expected-return estimator needs a move-only world (prompt_actions='move', "
                             f"as in the forage preset); preset {settings.preset!r} offers all actions")
        self.llm = LlamaCppPolicy(self.config, engine=engine, temperature=settings.temperature,
                                  max_tokens=settings.max_tokens, chat_format=settings.chat_format,
                                  batch_size=engine.max_batch, prompt=prompt)
        self.policies = {name: self.llm if name == TRAINED_POLICY else make_policy(name, self.config)
                         for name, _ in self.entries}

    def play(self, seed: int, rao_blackwell: bool = False) -> EpisodeResult:
        """One sampled episode; with ``rao_blackwell`` its fitness is the Rao-Blackwellised return
        (module docstring) and ``sampled_fitness`` the plain one."""
        assignment = PolicyAssignment(self.entries, self.config.num_founders)
        founders = sum(1 for name in assignment.policy_of.values() if name == TRAINED_POLICY)
        failures_before = self.llm.failures
        trained_policy = TrainedAgents(self.llm, self.config, read_decisions=rao_blackwell)
        estimate = _RaoBlackwellReturn(trained_policy) if rao_blackwell else None
        stats = run_episode(self.env, assignment, {**self.policies, TRAINED_POLICY: trained_policy}, seed,
                            self.settings.max_steps, hooks=[estimate] if estimate else ())
        behaviour = trained_policy.counts
        self.llm.drain_events()  # prompts/completions are only kept when recording; don't let them pile up
        trained = [agent for agent, name in assignment.policy_of.items() if name == TRAINED_POLICY]
        behaviour["food_eaten"] = sum(stats.food_eaten.get(agent, 0) for agent in trained)
        behaviour["births"] = sum(1 for agent in trained if agent not in _founders(assignment, self.config))
        behaviour["lifespan_total"] = sum(stats.lifespans.get(agent, 0) for agent in trained)
        behaviour["agents"] = len(trained)
        behaviour["gives"], behaviour["takes"] = trained_policy.gives, trained_policy.takes
        sampled = sum(stats.returns.get(agent, 0.0) for agent in trained) / founders
        fitness = estimate.total / founders if estimate else sampled
        return EpisodeResult(seed, float(fitness), stats.steps, self.llm.failures - failures_before, behaviour,
                             sampled_fitness=float(sampled))

    def expected_first_step(self, seeds: Sequence[int]) -> list[EpisodeResult]:
        """The exact expected return of every LLM agent's first decision, per episode (module docstring)."""
        decisions, starts = [], []
        for seed in seeds:
            assignment = PolicyAssignment(self.entries, self.config.num_founders)
            # the episode's start, as the rollout makes it (the LLM's empty cache: the weights may have changed)
            observations, infos = start_episode(self.env, self.policies, seed)
            # the co-players' first actions, the same whatever the LLM does
            fixed = collect_actions(assignment, self.policies, self.env.agents, observations, infos, skip=[TRAINED_POLICY])
            trained = [agent for agent in self.env.agents if assignment.policy_of.get(agent) == TRAINED_POLICY]
            starts.append((copy.deepcopy(self.env), fixed, trained))
            decisions += [(agent, observations[agent]) for agent in trained]
        probabilities = self.llm.move_distribution(decisions)
        results, row = [], 0
        stay = make_action(self.config, STAY)
        for seed, (start, fixed, trained) in zip(seeds, starts):
            expected = []
            for agent in trained:
                value = 0.0
                for column, kind in enumerate(MOVE_KINDS):
                    world = copy.deepcopy(start)  # the reward of this action, the other LLM agents staying
                    actions = {**fixed, **{other: stay for other in trained}, agent: make_action(self.config, kind)}
                    value += probabilities[row, column] * world.step(actions)[1][agent]
                expected.append(value)
                row += 1
            results.append(EpisodeResult(seed, float(np.mean(expected)), 1, 0))
        return results

    def evaluate(self, seeds: Sequence[int], on_episode: Callable[[EpisodeResult], None] | None = None) -> list[EpisodeResult]:
        """The fitness of every episode of ``seeds`` with the settings' estimator (``on_episode`` is called
        with each result as it is known: sampled episodes one by one, expected ones all at once)."""
        if self.settings.estimator == "expected":
            results = self.expected_first_step(seeds)
        else:
            results = []
            for seed in seeds:
                rao_blackwell = self.settings.estimator == "rao_blackwell"
                results.append(self.play(seed, rao_blackwell=True) if rao_blackwell else self.play(seed))
                if on_episode is not None:
                    on_episode(results[-1])
            return results
        for result in results if on_episode is not None else ():
            on_episode(result)
        return results

    @staticmethod
    def fitness(results: Sequence[EpisodeResult]) -> float:
        return float(np.mean([r.fitness for r in results]))


def _founders(assignment: PolicyAssignment, config) -> set[str]:
    return {agent_name(slot) for slot in range(config.num_founders)}


def _with_kind(action: dict[str, Any], kind: int) -> dict[str, Any]:
    """The agent's sampled action with another action kind (no target or amount; message kept)."""
    vector = np.array(action["action"], copy=True)
    vector[0], vector[1], vector[2] = kind, 0, 0
    return {**action, "action": vector}


class TrainedAgents:
    """The trained agents' policy in a fitness episode, owned by the fitness: the LLM policy acts for them
    (:meth:`LLMPolicy.begin_step`, :meth:`LLMPolicy.answer`), and this counts what they chose against what
    they saw (:func:`_count_behaviour`). With ``read_decisions`` it also asks the policy's backend for
    every agent's decision distribution before the answers are sampled (:attr:`decisions`) and records
    whether each sampled answer was one of the enumerated decisions (:attr:`decided`): what the
    Rao-Blackwellised return needs. The LLM policy itself keeps none of this."""

    name = TRAINED_POLICY

    def __init__(self, policy: LLMPolicy, config, read_decisions: bool = False):
        self.policy, self.config, self.read_decisions = policy, config, read_decisions
        self.counts: Counter = Counter()
        self.gives = self.takes = 0
        self.decisions: dict[str, dict[tuple, float]] = {}
        """Per agent of the last step: the probability of each enumerated decision (and of the rest)."""
        self.decided: dict[str, bool] = {}
        """Per agent of the last step: whether its sampled answer was one of the enumerated decisions."""

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        turns = self.policy.begin_step(observations, infos)
        backend = self.policy.backend
        if self.read_decisions:  # from the prompts' logits, before the answers are sampled from them
            self.decisions = dict(zip((turn.agent for turn in turns),
                                      backend.decision_distribution(turns, self.policy.temperature)))
        outcomes = self.policy.answer(turns)
        if self.read_decisions:  # a failed answer stays put whatever it chose: its effect is only known sampled
            self.decided = {outcome.turn.agent: outcome.failure is None
                            and backend.decided_by(outcome.turn.answer, outcome.result.first_token)
                            for outcome in outcomes}
        actions = {outcome.turn.agent: outcome.action for outcome in outcomes}
        for agent, observation in observations.items():
            kind = int(actions[agent]["action"][0])
            _count_behaviour(self.counts, Perception.read(observation, self.config), kind)
            self.gives += kind == GIVE
            self.takes += kind == TAKE
        return actions

    def cost_summary(self) -> dict[str, Any]:
        return self.policy.cost_summary()


class _RaoBlackwellReturn(EpisodeHook):
    """Accumulates the Rao-Blackwellised return of the LLM agents over one episode (module docstring).

    ``before_step`` sees the step's actions (all agents, sampled): for every LLM agent it steps a copy
    of the env once per enumerated decision (that agent's action replaced, everyone else's kept) and
    adds the probability-weighted rewards. ``after_step`` adds the agent's sampled reward only when its
    sampled answer was not an enumerated decision."""

    def __init__(self, trained: TrainedAgents):
        self.trained = trained
        self.total = 0.0
        self._sampled: list[str] = []
        self._scratch: SocietyEnv | None = None

    def before_step(self, rollout: Rollout, actions: dict[str, Any]) -> None:
        env, state = rollout.env, None
        self._sampled = []
        for agent, distribution in self.trained.decisions.items():
            if agent not in actions:
                continue
            if not self.trained.decided.get(agent, False):
                self._sampled.append(agent)
            for option, probability in distribution.items():
                if option == SAMPLED_DECISION or probability == 0.0:
                    continue
                kind = {"stay": STAY, "reproduce": REPRODUCE}.get(option[0], option[-1])
                if state is None:
                    state = env.state_dict()
                    if self._scratch is None:
                        self._scratch = copy.deepcopy(env)
                self._scratch.load_state_dict(state)
                rewards = self._scratch.step({**actions, agent: _with_kind(actions[agent], kind)})[1]
                self.total += probability * rewards.get(agent, 0.0)
        self.trained.decisions = {}

    def after_step(self, rollout: Rollout, step: Step) -> None:
        self.total += sum(step.rewards.get(agent, 0.0) for agent in self._sampled)


def _count_behaviour(counts: Counter, perception: Perception, kind: int) -> None:
    """Count one agent-step: a move, a stay, and whether it stepped towards the nearest visible food."""
    counts["agent_steps"] += 1
    move = DIRECTIONS.get(kind)
    counts["moves" if move else "stays"] += 1
    food = perception.food_offsets()
    if not food:
        return
    counts["food_in_view"] += 1
    nearest = min(abs(dr) + abs(dc) for dr, dc in food)
    if move and any(abs(dr) + abs(dc) == nearest and abs(dr - move[0]) + abs(dc - move[1]) < nearest for dr, dc in food):
        counts["towards_food"] += 1


def behaviour_summary(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Readable rates over sampled episodes: food eaten per agent-step, share of agent-steps with food in
    view that moved towards the nearest food, share of stays."""
    total: Counter = Counter()
    for result in results:
        total.update(result.behaviour)
    steps = max(total["agent_steps"], 1)
    episodes = max(len(results), 1)
    return {"food_per_agent_step": total["food_eaten"] / steps,
            "towards_food_share": total["towards_food"] / max(total["food_in_view"], 1),
            "stay_share": total["stays"] / steps,
            "mean_lifespan": total["lifespan_total"] / max(total["agents"], 1),
            "births_per_episode": total["births"] / episodes,
            "gives_per_episode": total["gives"] / episodes,
            "takes_per_episode": total["takes"] / episodes,
            "agent_steps": total["agent_steps"]}
