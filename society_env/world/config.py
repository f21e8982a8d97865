"""World configuration: one frozen dataclass and the named presets.

Every number of the world lives here. Fields are split (as in Craftax) into
*shape-defining* ones, which change the observation/action spaces or array
sizes, and *tunable* ones, which only change the dynamics.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

NUM_TRAITS = 7
"""Personality traits per agent, each in [-1, 1]; the genome adds fertility in [0.5, 1]."""

TRAIT_NAMES = (
    ("openness", "curious and inventive", "cautious and conventional"),
    ("conscientiousness", "organised and careful", "spontaneous and careless"),
    ("extraversion", "outgoing and talkative", "reserved and quiet"),
    ("agreeableness", "kind and cooperative", "competitive and suspicious"),
    ("neuroticism", "anxious and sensitive", "calm and resilient"),
    ("generosity", "sharing and altruistic", "selfish and hoarding"),
    ("boldness", "daring and risk-taking", "careful and risk-averse"),
)
"""(name, positive pole, negative pole) of each trait, in genome order."""


REWARD_SHARING = ("individual", "lineage", "population")
"""The values of ``reward_sharing`` (what each credits: ``society_env.world.rewards.SHARING``)."""
RETIRED_FIELDS = ("extra", "prompt_history", "prompt_motivation", "prompt_personality", "prompt_talk",
                  "prompt_actions", "prompt_nearest_food", "prompt_view", "prompt_message_chars",
                  "prompt_memory_chars")
"""Fields configs of older versions saved that the world no longer has, dropped when they are loaded
(recordings' ``meta.json``, state dicts of run checkpoints): ``extra`` went unused; the ``prompt_*``
fields were LLM prompt settings, which belong to the LLM stack (``policies.llm.prompt_config``)."""


@dataclass(frozen=True)
class SocietyConfig:
    """All parameters of the society world. Defaults are TerraLingua's published core setting."""

    # ---- shape-defining -------------------------------------------------
    width: int = 50
    """Grid width in cells. The grid is a torus: movement, vision and neighbour checks wrap."""
    height: int = 50
    """Grid height in cells."""
    max_agents: int = 1024
    """Size of the agent id pool (``possible_agents``). Founders take the first ids, every birth takes
    the next never-used id; when the pool is used up, reproduction fails with ``population_pool_full``."""
    view_radius: int = 6
    """Chebyshev radius of the egocentric view (6 gives a 13x13 window)."""
    transfer_amounts: tuple[int, ...] = (1, 5, 10, 20)
    """Energy amounts a give/take action can ask for (the action's ``amount`` index picks one)."""
    message_vocab_size: int = 8
    """Tokens of the numeric message channel; token 0 means silent."""
    language: bool = False
    """Add a text rendering of each observation and a free-text message to each action (for LLMs)."""
    fixed_slots: bool = False
    """Keep ``agents == possible_agents`` for the whole episode (unborn and dead slots get zero
    observations and rewards, their actions are ignored); needed by SuperSuit's vector-env conversion."""
    message_max_chars: int = 120
    """Longest free-text message an agent may broadcast (language option)."""
    text_max_chars: int = 4000
    """Cap on the length of the text observation; longer renderings are cut with a marker."""

    # ---- tunable: population ---------------------------------------------
    num_founders: int = 20
    """Agents placed on random free cells at reset."""
    initial_energy: int = 50
    """Energy of every founder."""
    energy_per_step: int = 1
    """Energy every living agent loses each step."""
    lifespan: int = 100
    """Age at which an agent dies of old age."""
    reproduce_min_energy: int = 50
    """Energy needed to reproduce."""
    reproduce_cost: int = 50
    """Energy the parent pays to reproduce."""
    child_energy: int = 50
    """Energy a newborn starts with."""
    mutation_prob: float = 0.5
    """Probability that each genome entry of a child receives Gaussian noise."""
    mutation_std: float = 0.3
    """Standard deviation of that noise (results are clamped to the trait's range)."""

    # ---- tunable: food -----------------------------------------------------
    food_distribution: str = "clustered"
    """``clustered`` (one toroidal Gaussian zone around a random centre) or ``uniform``."""
    food_zone_sigma: float = 2.0
    """Standard deviation in cells of the clustered food zone."""
    initial_food: int = 100
    """Food tiles placed at reset, drawn from the spawn density."""
    food_value: int = 10
    """Value of a new food tile."""
    food_decay_prob: float = 0.05
    """Probability per step that a food tile loses one unit; tiles are removed at 0."""
    food_regrowth_rate: float = 1.0
    """Mean of the Poisson number of new tiles per step (drawn from the density, on empty cells)."""

    # ---- tunable: episode and rewards ------------------------------------
    max_steps: int = 3000
    """Steps after which the episode is truncated; it ends earlier when nobody is alive."""
    reward_mode: str = "shaped"
    """``shaped`` (TerraLingua's shaping, below) or ``survival`` (+1 per step alive, nothing else)."""
    reward_eat_per_unit: float = 1.0
    reward_give_giver: float = 0.5
    """Per energy unit, to the giver."""
    reward_give_receiver: float = 1.0
    """Per energy unit, to the receiver."""
    reward_take_taker: float = 1.0
    """Per energy unit, to the taker."""
    reward_take_victim: float = -2.0
    """Per energy unit, to the victim."""
    reward_blocked_move: float = -0.5
    reward_death: float = -100.0
    reward_sharing: str = "individual"
    """Who is credited with each agent's reward of a step (``society_env.world.rewards.SHARING``):
    ``individual`` (the agent alone), ``lineage`` (the agent, and each of its ancestors up to
    ``lineage_generations`` generations up that is alive in the step gets ``lineage_discount`` to the power of
    the generations between them, times that reward) or ``population`` (every agent of the step gets the
    step's mean reward: the fully cooperative bound)."""
    lineage_discount: float = 0.5
    """``lineage`` sharing: the share of a reward passed one generation up (a grandparent gets its square)."""
    lineage_generations: int = 3
    """``lineage`` sharing: how many generations up a reward is credited (1: parents only)."""

    # ---- artifacts (text objects; acted on in the language option) -------
    artifacts: bool = False
    """Artifacts exist: named text objects on cells or in inventories (``society_env.world.artifacts``).
    Acting on them needs the language option (the action dict gains an ``artifact`` entry)."""
    artifact_visible: bool = True
    """Artifacts appear in observations and can be picked up, given, modified and destroyed. ``False``
    (the ``inert`` condition): they can still be created, but nobody sees or reads them and every other
    artifact action fails with ``artifacts_inert``."""
    artifact_create_cost: int = 0
    """Energy paid to create an artifact (creating fails with ``not_enough_energy`` below it)."""
    artifact_max_total: int = 256
    """Artifacts in the world at once (on cells and in inventories); creating beyond fails with ``world_full``."""
    artifact_max_per_cell: int = 4
    """Artifacts lying on one cell; creating or dropping beyond fails with ``cell_full``."""
    artifact_max_inventory: int = 4
    """Artifacts one agent can carry; picking up or receiving beyond fails with ``inventory_full``."""
    artifact_name_max_chars: int = 24
    """Longest artifact name (printable ASCII without quotes, backslashes or line breaks)."""
    artifact_text_max_chars: int = 280
    """Longest artifact text; longer creations or modifications fail with ``text_too_long``."""
    artifact_max_versions: int = 8
    """Versions (texts) the world state keeps per artifact, newest last; the recording keeps all of them."""
    artifact_lifespans: tuple[int, ...] = (10, 50, 200, 0)
    """Lifespans (in steps) a creator can choose from (the action's ``lifespan`` index); 0 = forever."""

    def __post_init__(self) -> None:
        problems = []
        if self.width < 3 or self.height < 3:
            problems.append("width and height must be at least 3")
        if self.num_founders < 1:
            problems.append("num_founders must be at least 1")
        if self.num_founders > self.max_agents:
            problems.append(f"num_founders ({self.num_founders}) exceeds max_agents ({self.max_agents})")
        if self.num_founders > self.width * self.height:
            problems.append("more founders than grid cells")
        if self.view_radius < 1:
            problems.append("view_radius must be at least 1")
        if not self.transfer_amounts or min(self.transfer_amounts) < 1:
            problems.append("transfer_amounts must be a non-empty tuple of positive ints")
        if self.message_vocab_size < 1:
            problems.append("message_vocab_size must be at least 1")
        if self.food_distribution not in ("clustered", "uniform"):
            problems.append(f"food_distribution must be 'clustered' or 'uniform', got {self.food_distribution!r}")
        if self.reward_mode not in ("shaped", "survival"):
            problems.append(f"reward_mode must be 'shaped' or 'survival', got {self.reward_mode!r}")
        if self.reward_sharing not in REWARD_SHARING:
            problems.append(f"reward_sharing must be one of {', '.join(REWARD_SHARING)}, got {self.reward_sharing!r}")
        if not 0.0 <= self.lineage_discount <= 1.0:
            problems.append(f"lineage_discount must lie in [0, 1], got {self.lineage_discount}")
        if self.lineage_generations < 1:
            problems.append(f"lineage_generations must be at least 1, got {self.lineage_generations}")
        if not 0.0 <= self.food_decay_prob <= 1.0 or not 0.0 <= self.mutation_prob <= 1.0:
            problems.append("probabilities must lie in [0, 1]")
        if self.initial_food > self.width * self.height - self.num_founders:
            problems.append("initial_food exceeds the free cells")
        if self.max_steps < 1 or self.lifespan < 1:
            problems.append("max_steps and lifespan must be positive")
        if min(self.artifact_max_total, self.artifact_max_per_cell, self.artifact_max_inventory,
               self.artifact_name_max_chars, self.artifact_text_max_chars, self.artifact_max_versions) < 1:
            problems.append("artifact caps must be at least 1")
        if not self.artifact_lifespans or min(self.artifact_lifespans) < 0:
            problems.append("artifact_lifespans must be a non-empty tuple of ints >= 0 (0 = forever)")
        if self.artifact_create_cost < 0:
            problems.append("artifact_create_cost must be >= 0")
        if problems:
            raise ValueError("invalid SocietyConfig: " + "; ".join(problems))
        object.__setattr__(self, "transfer_amounts", tuple(int(a) for a in self.transfer_amounts))
        object.__setattr__(self, "artifact_lifespans", tuple(int(a) for a in self.artifact_lifespans))

    @property
    def artifact_action_max_chars(self) -> int:
        """Longest name or text an artifact action may carry at all (its ``Text`` spaces' bound): beyond
        it the action is malformed (``ValueError``); beyond the artifact caps it only fails as a rule."""
        return max(self.text_max_chars, self.artifact_text_max_chars, self.artifact_name_max_chars)

    @property
    def view_size(self) -> int:
        """Side of the egocentric view window (2 * view_radius + 1)."""
        return 2 * self.view_radius + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field."""
        data = dataclasses.asdict(self)
        data["transfer_amounts"] = list(self.transfer_amounts)
        data["artifact_lifespans"] = list(self.artifact_lifespans)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SocietyConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``. Configs saved by older versions
        load too (their :data:`RETIRED_FIELDS` are dropped)."""
        return _from_fields(cls(), {key: value for key, value in data.items() if key not in RETIRED_FIELDS})


FIELD_ALIASES = {"max_cycles": "max_steps"}
"""Other names for config fields: ``max_cycles`` is PettingZoo's (MPE, SISL, MAgent2) for ``max_steps``."""


def _resolve_aliases(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with every alias replaced by its field (``ValueError`` if both are given and differ)."""
    for alias, name in FIELD_ALIASES.items():
        if alias in overrides:
            if name in overrides and overrides[name] != overrides[alias]:
                raise ValueError(f"{alias}={overrides[alias]!r} and {name}={overrides[name]!r} disagree "
                                 f"({alias} is another name for {name})")
            overrides = {**{k: v for k, v in overrides.items() if k != alias}, name: overrides[alias]}
    return overrides


def _from_fields(base: SocietyConfig, overrides: dict[str, Any]) -> SocietyConfig:
    overrides = _resolve_aliases(overrides)
    names = {f.name for f in dataclasses.fields(SocietyConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(
            f"unknown SocietyConfig field(s): {', '.join(unknown)}. Valid fields: {', '.join(sorted(names))}"
        )
    problems = [problem for name, value in overrides.items() if (problem := _type_problem(name, value, base))]
    if problems:
        raise ValueError("invalid SocietyConfig: " + "; ".join(problems))
    for name in ("transfer_amounts", "artifact_lifespans"):
        if name in overrides:
            overrides = {**overrides, name: tuple(overrides[name])}
    return dataclasses.replace(base, **overrides)


def _type_problem(name: str, value: Any, base: SocietyConfig) -> str | None:
    """Why ``value`` cannot be field ``name`` (typed like its default: int, float, bool, str or a tuple
    of ints), or None. Ints are accepted for floats, nothing else is converted."""
    default = getattr(base, name)

    def integer(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))

    if isinstance(default, bool):
        ok, expected = isinstance(value, (bool, np.bool_)), "true or false"
    elif isinstance(default, int):
        ok, expected = integer(value), "an integer"
    elif isinstance(default, float):
        ok, expected = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)), "a number"
    elif isinstance(default, tuple):
        ok, expected = isinstance(value, (list, tuple)) and all(map(integer, value)), "a list of integers"
    else:
        ok, expected = isinstance(value, str), "a string"
    return None if ok else f"{name} must be {expected}, got {value!r}"


# The conditions that differ in the LLM prompt only (history, motivation, personality) have the core world;
# their prompts are the LLM stack's (policies.llm.prompt_config.PRESET_PROMPTS).
_CORE: dict[str, Any] = {"language": True, "artifacts": True}
CONDITIONS: dict[str, dict[str, Any]] = {
    # TerraLingua's core condition: one clustered food zone, free artifacts (and 1-step history).
    "core": _CORE,
    # 20 steps of history in the prompt.
    "long_memory": _CORE,
    # 20 steps of history and food spawning uniformly over the whole grid.
    "abundant": {**_CORE, "food_distribution": "uniform"},
    # Creating an artifact costs 10 energy.
    "artifact_cost": {**_CORE, "artifact_create_cost": 10},
    # The prompt asks agents to be creative.
    "creative": _CORE,
    # Artifacts can be created but are invisible and inert.
    "inert": {**_CORE, "artifact_visible": False},
    # No motivation sentence in the prompt.
    "no_motivation": _CORE,
    # No personality in the prompt.
    "no_personality": _CORE,
}
"""The eight conditions TerraLingua compares, as presets over the default (core) world."""

# A learning task for QES (docs/training.md): food close and in view, short episodes, eating is the
# only reward (LLM agents answer with a move or stay alone: its prompt, policies.llm.prompt_config).
_FORAGE: dict[str, Any] = {
    "width": 9,
    "height": 9,
    "num_founders": 2,
    "max_agents": 8,
    "view_radius": 2,
    "initial_energy": 30,
    "initial_food": 16,
    "food_distribution": "uniform",
    "food_regrowth_rate": 1.0,
    "food_decay_prob": 0.0,
    "max_steps": 8,
    "reward_give_giver": 0.0,
    "reward_give_receiver": 0.0,
    "reward_take_taker": 0.0,
    "reward_take_victim": 0.0,
    "language": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    # TerraLingua's core setting: 50x50 torus, 20 founders, one clustered food zone.
    "default": {},
    # The eight TerraLingua conditions (docs/conditions.md); "abundant" is one of them.
    **CONDITIONS,
    # Fast: for tests, demos and LLM societies on a laptop (LLM agents see the compact view: its prompt).
    "small": {
        "width": 16,
        "height": 16,
        "num_founders": 6,
        "max_agents": 64,
        "initial_food": 24,
        "food_zone_sigma": 3.0,
        "food_regrowth_rate": 0.5,
        "max_steps": 200,
        "lifespan": 60,
        "view_radius": 4,
    },
    "forage": _FORAGE,
    # The same world; the LLM's view text also names the nearest visible food in compass words (its prompt).
    "forage_hint": _FORAGE,
    # Thousands of agents on a 200x200 torus with uniform food.
    "large": {
        "width": 200,
        "height": 200,
        "num_founders": 2000,
        "max_agents": 20000,
        "initial_food": 4000,
        "food_distribution": "uniform",
        "food_regrowth_rate": 40.0,
    },
}
"""Named presets: overrides applied to the :class:`SocietyConfig` defaults."""


def make_config(preset: str = "default", **overrides: Any) -> SocietyConfig:
    """Build a config from a named preset plus field overrides.

    Raises ``ValueError`` naming the problem for an unknown preset or field.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    merged = {**PRESETS[preset], **_resolve_aliases(overrides)}  # an alias given by the user beats the preset
    return _from_fields(SocietyConfig(), merged)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["width=20", "language=true"]`` -> ``{"width": 20, "language": True}`` (command-line ``--set``
    overrides; values parsed as JSON, else kept as strings). ``ValueError`` for a pair without ``=``."""
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides
