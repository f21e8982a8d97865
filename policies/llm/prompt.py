"""Prompts for LLM agents, and the options an agent has, read from its observation (pure functions, no
model needed). The answer format (grammar, forced text, length bound, parser) is ``policies.llm.answer``.

The system prompt is split in two: a **shared** part (world rules, answer format, motivation) that is
identical for every agent and is evaluated once per step for all of them, followed by the
**agent-specific** part (name, personality). Everything that changes per step goes in the user message.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from policies.llm.answer import ANSWER_PREFILL, Options, format_answer, lifespan_word
from policies.llm.prompt_config import PromptConfig
from policies.scripted.perception import Perception
from society_env.world.config import NUM_TRAITS, TRAIT_NAMES, SocietyConfig
from society_env.world.observations import split_observation

MOTIVATIONS = {
    "base": "Your goal is to survive as long as possible, and to help your family line prosper.",
    "creative": "Your goal is to survive, and to be creative: invent new ways to cooperate, communicate and "
                "leave your mark on this world.",
    "forage": "Your goal is to eat as much food as possible: step onto food cells.",
    "none": "",
}


PromptSettings = PromptConfig
"""The former name of :class:`~policies.llm.prompt_config.PromptConfig` (scripts and benchmarks use it)."""


__all__ = ["COMPACT_AGENTS_LISTED", "COMPACT_SPEAKERS_LISTED", "MOTIVATIONS", "TRAIT_POLES", "PromptConfig", "PromptSettings",
           "agent_system_prompt", "artifact_rules", "compact_view", "compass", "describe_personality", "example_answer",
           "nearest_food_line", "read_options", "shared_system_prompt", "user_message"]


def shared_system_prompt(config: SocietyConfig, settings: PromptSettings) -> str:
    """The part of the system prompt that is identical for every agent (evaluated once, reused)."""
    amounts = ", ".join(str(a) for a in config.transfer_amounts)
    lines = [
        "You are an agent living in a grid world with other agents. Each step you choose one action.",
        f"Rules: you lose {config.energy_per_step} energy every step and die at 0 energy or at age "
        f"{config.lifespan}. Step on food to eat it and gain its value. You see {config.view_radius} cells "
        "around you; the world wraps around at the edges.",
    ]
    if settings.view == "compact":
        lines.append("Where things are is said in steps north, south, east or west of you.")
    else:
        lines.append("Positions are (dx,dy) relative to you: dx>0 is east, dx<0 west, dy>0 south, dy<0 north.")
    if settings.actions == "move":
        lines.append("Actions: move (north/south/east/west) into an empty cell, or stay.")
    else:
        lines.append(
            f"Actions: move (north/south/east/west) into an empty cell; stay; give energy to a visible agent; "
            f"take energy from a visible agent; reproduce (needs {config.reproduce_min_energy} energy, costs "
            f"{config.reproduce_cost}, makes a child next to you). Amounts: {amounts}.")
    if settings.talk:
        lines += [
            f"Every step you may also broadcast a short message (up to {settings.message_chars} characters, "
            "\"\" for silence) that agents who see you hear next step, and write a memory note to yourself "
            f"(up to {settings.memory_chars} characters) that you will read next step.",
            "Answer with JSON only, e.g. " + example_answer("move", settings, direction="north", message="",
                                                           memory="food north") + ".",
        ]
    else:
        lines.append("Answer with JSON only, e.g. " + example_answer("move", settings, direction="north") + " or "
                     + example_answer("stay", settings) + ".")
    if config.artifacts:
        lines.append(artifact_rules(config, settings))
    if settings.personality:
        lines.append(TRAIT_POLES)
    motivation = MOTIVATIONS[settings.motivation]
    if motivation:
        lines.append(motivation)
    return "\n".join(lines)


TRAIT_POLES = (
    "Each agent has a personality: traits from -1 to +1, "
    + "; ".join(f"{name} (+1 {positive}, -1 {negative})" for name, positive, negative in TRAIT_NAMES)
    + "; and fertility from 0.5 to 1 (how strongly it wants children). Act according to yours."
)
"""Both poles of every trait: part of the shared prompt, so only the values are agent-specific."""


def artifact_rules(config: SocietyConfig, settings: PromptSettings) -> str:
    """The prompt's paragraph on artifacts (only in worlds that have them)."""
    lifespans = ", ".join(lifespan_word(v) for v in config.artifact_lifespans)
    cost = f" Creating one costs {config.artifact_create_cost} energy." if config.artifact_create_cost else ""
    lifespan = 50 if 50 in config.artifact_lifespans else config.artifact_lifespans[0]
    example = example_answer("create", settings, elide_talk=True, name="map", text="food north",
                             lifespan=lifespan_word(lifespan))
    create = ('create leaves a named text (up to '
              f"{min(settings.artifact_chars, config.artifact_text_max_chars)} characters) on your cell, e.g. "
              f"{example}; lifespan in steps: {lifespans}.{cost}")
    if not config.artifact_visible:
        return "Artifacts: instead of another action you may create an artifact: " + create
    return ("Artifacts are texts that stay in the world and outlive their makers. Instead of another action you "
            "may: " + create + " Or pick_up one on your cell, drop or give_artifact (to a visible agent) one you "
            "carry, modify (rewrite its text) or destroy one on your cell or carried. You read the artifacts "
            f"you stand on or carry, and can carry {config.artifact_max_inventory}.")


def example_answer(action: str, settings: PromptSettings, elide_talk: bool = False, **values: str) -> str:
    """A whole answer as the grammar writes it (:func:`policies.llm.answer.format_answer`, the answer
    table's key order and spacing), for the prompt. ``elide_talk``: the message and memory fields (when
    ``settings.talk``) are written ``...``."""
    if not (elide_talk and settings.talk):
        return ANSWER_PREFILL + format_answer(action, values, settings)
    return ANSWER_PREFILL + format_answer(action, values, replace(settings, talk=False)).removesuffix("}") + ", ...}"


def describe_personality(genome: np.ndarray) -> str:
    """Trait values in genome order, e.g. ``openness +0.6, conscientiousness -0.1, ...``."""
    # One decimal: every token of the agent-specific part is paid per agent and step.
    parts = [f"{name} {value:+.1f}" for value, (name, _, _) in zip(genome[:NUM_TRAITS], TRAIT_NAMES)]
    parts.append(f"fertility {genome[NUM_TRAITS]:.1f}")
    return ", ".join(parts)


def agent_system_prompt(agent: str, genome: np.ndarray, settings: PromptSettings) -> str:
    """The agent-specific tail of the system prompt (after the shared part)."""
    text = f"\nYou are {agent}."
    if settings.personality:
        text += " Your personality: " + describe_personality(genome) + "."
    return text


def nearest_food_line(observation: Any, config: SocietyConfig) -> str:
    """``Nearest food: 2 north, 1 east`` (or ``Nearest food: none visible``): the nearest visible food
    tile by moves (Manhattan distance, ties in the view's row-major order) in compass words, read from the
    numeric observation. The (dx,dy) list says the same; this line says it in the answer's own words."""
    offsets = Perception.read(observation, config).food_offsets()
    if not offsets:
        return "Nearest food: none visible"
    d_row, d_col = offsets[0]
    parts = []
    if d_row:
        parts.append(f"{abs(d_row)} {'north' if d_row < 0 else 'south'}")
    if d_col:
        parts.append(f"{abs(d_col)} {'west' if d_col < 0 else 'east'}")
    return "Nearest food: " + ", ".join(parts)


def compass(dx: int, dy: int) -> str:
    """An offset in the answer's own words: ``2 north 1 east``, ``here`` for (0,0)."""
    parts = []
    if dy:
        parts.append(f"{abs(dy)} {'north' if dy < 0 else 'south'}")
    if dx:
        parts.append(f"{abs(dx)} {'west' if dx < 0 else 'east'}")
    return " ".join(parts) or "here"


COMPACT_AGENTS_LISTED = 3
COMPACT_SPEAKERS_LISTED = 2
"""The compact view lists the 3 nearest agents and what the 2 nearest speakers said (the cost of a
crowded view is then bounded; the env's text lists everyone)."""


def compact_view(observation: Any, info: dict[str, Any], config: SocietyConfig) -> str:
    """The agent's view in about half the tokens of the env's text (``PromptConfig.view="compact"``, ``--set prompt_view=compact``)::

        Energy 43, age 20/60. Food: 4 seen, nearest 2 north 1 east.
        Agents: agent_5 1 west energy 30 kin; agent_9 2 south 4 east energy 12
        Heard: agent_5: food north

    (no ``Heard:`` line when nobody in view spoke). The same facts an agent acts on, read from the numeric observation and ``infos[agent]["view"]``:
    its energy and age, the nearest food in compass words (the words it answers with) and how many tiles
    it sees, the nearest visible agents (the names give and take target) and what they said. Left out:
    the step counter, the family name (kin is marked), the offset of every food tile but the nearest,
    agents beyond the nearest :data:`COMPACT_AGENTS_LISTED` (counted) and speakers beyond the nearest
    :data:`COMPACT_SPEAKERS_LISTED`."""
    perception = Perception.read(observation, config)
    _, features = split_observation(observation, config)
    age = int(round(float(features[1]) * config.lifespan))
    food = perception.food_offsets()
    food_text = (f"Food: {len(food)} seen, nearest {compass(food[0][1], food[0][0])}." if food
                 else "Food: none seen.")
    kin = {(n.d_col, n.d_row) for n in perception.neighbours() if n.kin}
    view = info.get("view") or {}
    seen, said = view.get("agents", ()), view.get("heard", ())
    agents = "; ".join(f"{name} {compass(dx, dy)} energy {energy}{' kin' if (dx, dy) in kin else ''}"
                       for name, dx, dy, energy in seen[:COMPACT_AGENTS_LISTED]) or "none"
    if len(seen) > COMPACT_AGENTS_LISTED:
        agents += f"; {len(seen) - COMPACT_AGENTS_LISTED} more"
    heard = "; ".join(f"{name}: {text}" for name, _, _, text in said[:COMPACT_SPEAKERS_LISTED])
    return (f"Energy {round(perception.energy)}, age {age}/{config.lifespan}. {food_text}\n"
            f"Agents: {agents}" + (f"\nHeard: {heard}" if heard else ""))


def user_message(observation_text: str, memory: str, talk: bool = True, compact: bool = False) -> str:
    if compact:  # the answer prefill already says an action follows
        return f"{observation_text}\nMemory: {memory}" if talk else observation_text
    if not talk:  # no memory notes are written, so there is none to show
        return f"{observation_text}\nYour action (JSON):"
    return f"{observation_text}\nYour memory note: {memory or '(empty)'}\nYour action (JSON):"


def read_options(view: dict[str, list], energy: int, config: SocietyConfig) -> Options:
    """What an agent can do now, from its ``infos[agent]["view"]`` (the visible agents and artifacts of its
    text view, as data: :func:`society_env.world.text_view.visible_views`) and its energy (``infos``)."""
    targets, offsets = [], {}
    for name, dx, dy, _ in view.get("agents", ()):
        targets.append(name)
        offsets[name] = (int(dx), int(dy))
    options = Options(targets, offsets, energy >= config.reproduce_min_energy, energy)
    if config.artifacts:
        seen, carried = view.get("artifacts", ()), view.get("carrying", ())
        options.artifacts_here = list(dict.fromkeys(name for name, dx, dy in seen if dx == 0 and dy == 0))
        options.artifacts_carried = list(dict.fromkeys(carried))
        options.can_create = energy >= config.artifact_create_cost
        options.can_pick_up = len(carried) < config.artifact_max_inventory
    return options
