"""Prompts, action grammars and answer parsing for LLM agents (pure functions, no model needed).

The system prompt is split in two: a **shared** part (world rules, answer format, motivation) that is
identical for every agent and is evaluated once per step for all of them, followed by the
**agent-specific** part (name, personality). Everything that changes per step goes in the user message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from society_env.config import NUM_TRAITS, TRAIT_NAMES, SocietyConfig
from society_env.observations import view_cell_index
from society_env.rules import EAST, GIVE, NORTH, REPRODUCE, SOUTH, STAY, TAKE, WEST

MOTIVATIONS = {
    "base": "Your goal is to survive as long as possible, and to help your family line prosper.",
    "creative": "Your goal is to survive, and to be creative: invent new ways to cooperate, communicate and "
                "leave your mark on this world.",
    "none": "",
}
DIRECTION_KINDS = {"north": NORTH, "south": SOUTH, "west": WEST, "east": EAST}
AGENT_LINE = re.compile(r"(agent_\d+) \(([+-]?\d+),([+-]?\d+)\) energy (-?\d+)")


class AnswerError(ValueError):
    """A model answer that cannot be turned into an action (the agent then stays put)."""


@dataclass
class Options:
    """What an agent may do this step, read from its observation."""

    targets: list[str]  # visible agents (give/take partners)
    offsets: dict[str, tuple[int, int]]  # name -> (dx, dy)
    can_reproduce: bool
    energy: int


@dataclass
class PromptSettings:
    message_chars: int = 60
    """Longest message the model may write (also capped by the world's message_max_chars)."""
    memory_chars: int = 80
    """Longest memory note the agent keeps for itself from one step to the next."""
    motivation: str = "base"
    """``base``, ``creative`` or ``none``."""
    personality: bool = True
    """Describe the agent's personality traits in its system prompt."""
    history: int = 1
    """Steps the agent sees: 1 = only the current one; k > 1 adds the k-1 previous (observation, answer) turns."""


def shared_system_prompt(config: SocietyConfig, settings: PromptSettings) -> str:
    """The part of the system prompt that is identical for every agent (evaluated once, reused)."""
    amounts = ", ".join(str(a) for a in config.transfer_amounts)
    lines = [
        "You are an agent living in a grid world with other agents. Each step you choose one action.",
        f"Rules: you lose {config.energy_per_step} energy every step and die at 0 energy or at age "
        f"{config.lifespan}. Step on food to eat it and gain its value. You see {config.view_radius} cells "
        "around you; the world wraps around at the edges.",
        "Positions are (dx,dy) relative to you: dx>0 is east, dx<0 west, dy>0 south, dy<0 north.",
        f"Actions: move (north/south/east/west) into an empty cell; stay; give energy to a visible agent; "
        f"take energy from a visible agent; reproduce (needs {config.reproduce_min_energy} energy, costs "
        f"{config.reproduce_cost}, makes a child next to you). Amounts: {amounts}.",
        f"Every step you may also broadcast a short message (up to {settings.message_chars} characters, "
        "\"\" for silence) that agents who see you hear next step, and write a memory note to yourself "
        f"(up to {settings.memory_chars} characters) that you will read next step.",
        'Answer with JSON only, e.g. {"action":"move","direction":"north","message":"","memory":"food north"}.',
    ]
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


def user_message(observation_text: str, memory: str) -> str:
    return f"{observation_text}\nYour memory note: {memory or '(empty)'}\nYour action (JSON):"


def read_options(observation_text: str, energy: int, config: SocietyConfig) -> Options:
    """Visible agents and whether reproduction is possible, from the text observation."""
    targets, offsets = [], {}
    agents_line = next((line for line in observation_text.splitlines() if line.startswith("Agents:")), "")
    for name, dx, dy, _ in AGENT_LINE.findall(agents_line):
        targets.append(name)
        offsets[name] = (int(dx), int(dy))
    return Options(targets, offsets, energy >= config.reproduce_min_energy, energy)


def _string_rule(name: str, max_chars: int) -> str:
    # printable ASCII without the quote and backslash, so the JSON never needs escapes
    return f'{name} ::= "\\"" [ !#-[\\]-~]{{0,{max_chars}}} "\\""'


ANSWER_PREFILL = '{"action": "'
"""Written into the assistant turn before generation: the model starts right at the action's name."""


def action_grammar(options: Options, config: SocietyConfig, settings: PromptSettings) -> str:
    """GBNF for this agent's answer after :data:`ANSWER_PREFILL`: only the actions available now."""
    amounts = " | ".join(f'"{a}"' for a in config.transfer_amounts)
    alternatives = ['"stay\\""', 'move']
    rules = ['move ::= "move\\", \\"direction\\": " ("\\"north\\"" | "\\"south\\"" | "\\"east\\"" | "\\"west\\"")']
    if options.targets:
        names = " | ".join(f'"\\"{t}\\""' for t in options.targets)
        rules.append(f"target ::= {names}")
        rules.append(f"amount ::= {amounts}")
        alternatives += ["give", "take"]
        rules.append('give ::= "give\\", \\"target\\": " target ", \\"amount\\": " amount')
        rules.append('take ::= "take\\", \\"target\\": " target ", \\"amount\\": " amount')
    if options.can_reproduce:
        alternatives.append('"reproduce\\""')
    message_chars = min(settings.message_chars, config.message_max_chars)
    root = ('root ::= (' + " | ".join(alternatives) + ') ", \\"message\\": " message '
            '", \\"memory\\": " memory "}"')
    return "\n".join([root, *rules, _string_rule("message", message_chars), _string_rule("memory", settings.memory_chars)])


_FORCED_AFTER = [
    # (pattern the generated text ends with, text the grammar forces next, answer complete after it)
    (re.compile(r'^move"$'), ', "direction": "', False),
    (re.compile(r'^(give|take)"$'), ', "target": "', False),
    (re.compile(r'^(give|take)", "target": "agent_\d+"$'), ', "amount": ', False),
    (re.compile(r'^(stay|reproduce)"$|"direction": "(north|south|east|west)"$'), ', "message": "', False),
    (re.compile(r', "message": "[^"]*"$'), ', "memory": "', False),
    (re.compile(r', "memory": "[^"]*"$'), "}", True),
]


def forced_continuation(generated: str) -> tuple[str, bool]:
    """What :func:`action_grammar` forces after ``generated`` (the answer after :data:`ANSWER_PREFILL`):
    the JSON keys and separators between values, and whether the answer is complete after them.
    The engine feeds forced text as one chunk instead of sampling it token by token."""
    for pattern, text, complete in _FORCED_AFTER:
        if pattern.search(generated):
            return text, complete
    return "", False


def parse_answer(text: str, options: Options, config: SocietyConfig) -> tuple[np.ndarray, str, str]:
    """Model answer -> (action vector, message, memory note). Raises ``AnswerError`` with the reason."""
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnswerError(f"not valid JSON ({error.msg})") from None
    if not isinstance(answer, dict):
        raise AnswerError("the answer is not a JSON object")
    action = answer.get("action")
    message = answer.get("message", "")
    memory = answer.get("memory", "")
    if not isinstance(message, str) or not isinstance(memory, str):
        raise AnswerError("message and memory must be strings")
    message = "".join(ch for ch in message if 32 <= ord(ch) < 127)[: config.message_max_chars]
    vector = np.zeros(4, dtype=np.int64)
    if action == "stay":
        vector[0] = STAY
    elif action == "move":
        direction = answer.get("direction")
        if direction not in DIRECTION_KINDS:
            raise AnswerError(f"unknown direction {direction!r}")
        vector[0] = DIRECTION_KINDS[direction]
    elif action in ("give", "take"):
        target = answer.get("target")
        if target not in options.offsets:
            raise AnswerError(f"target {target!r} is not visible")
        amount = answer.get("amount")
        if amount not in config.transfer_amounts:
            raise AnswerError(f"amount {amount!r} is not one of {config.transfer_amounts}")
        dx, dy = options.offsets[target]
        vector[:3] = (GIVE if action == "give" else TAKE, view_cell_index(config, dy, dx), config.transfer_amounts.index(amount))
    elif action == "reproduce":
        if not options.can_reproduce:
            raise AnswerError("not enough energy to reproduce")
        vector[0] = REPRODUCE
    else:
        raise AnswerError(f"unknown action {action!r}")
    return vector, message, memory
