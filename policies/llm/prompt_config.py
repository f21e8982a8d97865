"""What an LLM agent's prompt says and lets it answer: :class:`PromptConfig`, the prompt settings each
preset asks for (:data:`PRESET_PROMPTS`: the TerraLingua conditions and the forage task), and the one
reading of a run's ``--set`` pairs into the world's config and the prompt's.

The prompt is the LLM stack's, not the world's: the world config (``society_env.world.config``) holds
the world's numbers only. On the command line the prompt fields keep their ``prompt_`` spelling
(``--set prompt_view=compact``), which is also how configs written before the split named them.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from society_env.world.config import PRESETS, SocietyConfig, make_config, parse_overrides

__all__ = ["PromptConfig", "PROMPT_MOTIVATIONS", "PROMPT_ACTIONS", "PROMPT_VIEWS", "PROMPT_PREFIX", "PRESET_PROMPTS",
           "prompt_config_for", "split_overrides", "llm_world_overrides", "world_and_prompt"]

PROMPT_MOTIVATIONS = ("base", "creative", "forage", "none")
"""Motivation sentences a system prompt can end with (texts in ``policies.llm.prompt.MOTIVATIONS``)."""
PROMPT_ACTIONS = ("all", "move")
PROMPT_VIEWS = ("terralingua", "compact")
PROMPT_PREFIX = "prompt_"
"""``--set prompt_FIELD=VALUE`` sets :class:`PromptConfig` field ``FIELD``."""


@dataclass(frozen=True)
class PromptConfig:
    """How an LLM agent is prompted. Defaults are TerraLingua's core condition; presets change some
    (:data:`PRESET_PROMPTS`), ``--set prompt_FIELD=VALUE`` and the ``--history`` / ``--motivation`` /
    ``--personality`` options override them."""

    message_chars: int = 60
    """Longest message the model may write (also capped by the world's ``message_max_chars``)."""
    memory_chars: int = 80
    """Longest memory note the agent keeps for itself from one step to the next."""
    motivation: str = "base"
    """The motivation sentence ending the system prompt: ``base``, ``creative``, ``forage`` or ``none``."""
    personality: bool = True
    """Describe the agent's personality traits in its system prompt."""
    history: int = 1
    """Steps the agent sees: 1 = only the current one; k > 1 adds the k-1 previous (observation, answer) turns."""
    artifact_chars: int = 80
    """Longest artifact text the model may write (also capped by the world's ``artifact_text_max_chars``)."""
    talk: bool = True
    """The answer carries a broadcast message and a memory note; False = the action alone (shorter prompts
    and answers, for tasks that need no talk)."""
    actions: str = "all"
    """``all`` actions the agent can take now, or ``move`` (move or stay only: the ``forage`` task)."""
    nearest_food: bool = False
    """Add a line naming the nearest visible food in compass words ("Nearest food: 2 north, 1 east") to the
    view text: the same information as the (dx,dy) list, in the words of the answer."""
    view: str = "terralingua"
    """``terralingua``: the env's text observation (TerraLingua's wording: every food tile as a (dx,dy)
    offset); ``compact``: about half the tokens (``policies.llm.prompt.compact_view``)."""

    def __post_init__(self) -> None:
        problems = [problem for f in dataclasses.fields(self) if (problem := _type_problem(f.name, getattr(self, f.name), f.default))]
        if not problems:
            problems = _value_problems(self)
        if problems:
            raise ValueError("invalid prompt config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _name(field: str) -> str:
    """A field as the command line spells it (the spelling users know from ``--set``)."""
    return PROMPT_PREFIX + field


def _type_problem(field: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot be ``field`` (typed like its default), or None; nothing is converted."""
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, expected = isinstance(value, numbers.Integral) and not isinstance(value, bool), "an integer"
    else:
        ok, expected = isinstance(value, str), "a string"
    return None if ok else f"{_name(field)} must be {expected}, got {value!r}"


def _value_problems(config: PromptConfig) -> list[str]:
    problems = []
    if config.history < 1:
        problems.append(f"{_name('history')} must be at least 1, got {config.history}")
    for field, choices in (("motivation", PROMPT_MOTIVATIONS), ("actions", PROMPT_ACTIONS), ("view", PROMPT_VIEWS)):
        if getattr(config, field) not in choices:
            problems.append(f"{_name(field)} must be one of {', '.join(choices)}, got {getattr(config, field)!r}")
    for field in ("message_chars", "memory_chars", "artifact_chars"):
        if getattr(config, field) < 0:
            problems.append(f"{_name(field)} must be >= 0, got {getattr(config, field)}")
    return problems


_CORE: dict[str, Any] = {"history": 1}
_FORAGE: dict[str, Any] = {"personality": False, "motivation": "forage", "talk": False, "actions": "move"}
PRESET_PROMPTS: dict[str, dict[str, Any]] = {
    # The TerraLingua conditions that differ in the prompt (docs/conditions.md); the others use _CORE's.
    "core": _CORE,
    "long_memory": {**_CORE, "history": 20},  # 20 steps of history in the prompt
    "abundant": {**_CORE, "history": 20},  # 20 steps of history (and uniform food: the world's part)
    "artifact_cost": _CORE,
    "creative": {**_CORE, "motivation": "creative"},  # the prompt asks agents to be creative
    "inert": _CORE,
    "no_motivation": {**_CORE, "motivation": "none"},
    "no_personality": {**_CORE, "personality": False},
    # LLM societies on a laptop: the compact view and short notes (half the tokens).
    "small": {"view": "compact", "message_chars": 16, "memory_chars": 16},
    # The QES learning task: a move (or stay) alone, without talk, personality or history.
    "forage": _FORAGE,
    # The same with the nearest visible food also named in compass words in the view text.
    "forage_hint": {**_FORAGE, "nearest_food": True},
}
"""The prompt settings of each preset that changes them (keyed by ``society_env.world.config.PRESETS``'
names; a preset not listed prompts with the :class:`PromptConfig` defaults)."""


def prompt_config_for(preset: str, overrides: Mapping[str, Any] | None = None) -> PromptConfig:
    """The prompt preset ``preset`` asks for, with ``overrides`` (field names without the ``prompt_``
    prefix; None values are not given) winning. ``ValueError`` naming the problem for an unknown preset
    or field, or a bad value."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    names = [f.name for f in dataclasses.fields(PromptConfig)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"unknown prompt field(s): {', '.join(map(_name, unknown))}. "
                         f"Valid fields: {', '.join(map(_name, names))}")
    return PromptConfig(**{**PRESET_PROMPTS.get(preset, {}), **given})


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` overrides as (the world's, the prompt's): ``prompt_FIELD`` keys go to the prompt, as
    ``FIELD``."""
    world = {key: value for key, value in overrides.items() if not key.startswith(PROMPT_PREFIX)}
    prompt = {key[len(PROMPT_PREFIX):]: value for key, value in overrides.items() if key.startswith(PROMPT_PREFIX)}
    return world, prompt


def llm_world_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """World overrides for LLM agents: they read the text view, so the language option is on unless the
    overrides themselves say otherwise (then the LLM policy refuses the world with a clear error)."""
    return {"language": True, **overrides}


def world_and_prompt(preset: str, pairs: Sequence[str], llm_agents: bool) -> tuple[SocietyConfig, PromptConfig]:
    """The world config and prompt of a run: preset ``preset`` with its ``--set`` ``pairs``
    (``FIELD=VALUE``; ``prompt_FIELD=VALUE`` for the prompt); with ``llm_agents`` the language option is
    switched on (:func:`llm_world_overrides`). ``ValueError`` naming the problem."""
    world, prompt = split_overrides(parse_overrides(pairs))
    if llm_agents:
        world = llm_world_overrides(world)
    return make_config(preset, **world), prompt_config_for(preset, prompt)
