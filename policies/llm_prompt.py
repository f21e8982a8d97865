"""Prompts, action grammars and answer parsing for LLM agents (pure functions, no model needed).

The system prompt is split in two: a **shared** part (world rules, answer format, motivation) that is
identical for every agent and is evaluated once per step for all of them, followed by the
**agent-specific** part (name, personality). Everything that changes per step goes in the user message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from society_env.artifacts import artifact_action
from society_env.config import NUM_TRAITS, TRAIT_NAMES, SocietyConfig
from society_env.observations import view_cell_index
from society_env.rules import EAST, GIVE, NORTH, REPRODUCE, SOUTH, STAY, TAKE, WEST
from society_env.text_view import read_artifact_view

MOTIVATIONS = {
    "base": "Your goal is to survive as long as possible, and to help your family line prosper.",
    "creative": "Your goal is to survive, and to be creative: invent new ways to cooperate, communicate and "
                "leave your mark on this world.",
    "forage": "Your goal is to eat as much food as possible: step onto food cells.",
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
    artifacts_here: list[str] = field(default_factory=list)
    """Names of the artifacts lying on the agent's cell (worlds with visible artifacts)."""
    artifacts_carried: list[str] = field(default_factory=list)
    """Names of the artifacts the agent carries."""
    can_create: bool = False
    """The world has artifacts and the agent can pay for one."""
    can_pick_up: bool = False
    """Its inventory has room."""


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
    artifact_chars: int = 80
    """Longest artifact text the model may write (also capped by the world's artifact_text_max_chars)."""
    talk: bool = True
    """The answer carries a message and a memory note; False = the action alone."""
    actions: str = "all"
    """``all`` actions the agent can take now, or ``move`` (move or stay only)."""

    @classmethod
    def from_config(cls, config: SocietyConfig, **overrides: Any) -> "PromptSettings":
        """The settings a world's preset asks for (its ``prompt_*`` fields: the TerraLingua conditions),
        with explicit ``overrides`` (e.g. command-line options) winning."""
        values = {"history": config.prompt_history, "motivation": config.prompt_motivation,
                  "personality": config.prompt_personality, "talk": config.prompt_talk,
                  "actions": config.prompt_actions}
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def shared_system_prompt(config: SocietyConfig, settings: PromptSettings) -> str:
    """The part of the system prompt that is identical for every agent (evaluated once, reused)."""
    amounts = ", ".join(str(a) for a in config.transfer_amounts)
    lines = [
        "You are an agent living in a grid world with other agents. Each step you choose one action.",
        f"Rules: you lose {config.energy_per_step} energy every step and die at 0 energy or at age "
        f"{config.lifespan}. Step on food to eat it and gain its value. You see {config.view_radius} cells "
        "around you; the world wraps around at the edges.",
        "Positions are (dx,dy) relative to you: dx>0 is east, dx<0 west, dy>0 south, dy<0 north.",
    ]
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
            'Answer with JSON only, e.g. {"action":"move","direction":"north","message":"","memory":"food north"}.',
        ]
    else:
        lines.append('Answer with JSON only, e.g. {"action":"move","direction":"north"} or {"action":"stay"}.')
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
    lifespans = ", ".join(_lifespan_word(v) for v in config.artifact_lifespans)
    cost = f" Creating one costs {config.artifact_create_cost} energy." if config.artifact_create_cost else ""
    create = ('create leaves a named text (up to '
              f"{min(settings.artifact_chars, config.artifact_text_max_chars)} characters) on your cell, e.g. "
              '{"action":"create","name":"map","text":"food north","lifespan":"50",...}; '
              f"lifespan in steps: {lifespans}.{cost}")
    if not config.artifact_visible:
        return "Artifacts: instead of another action you may create an artifact: " + create
    return ("Artifacts are texts that stay in the world and outlive their makers. Instead of another action you "
            "may: " + create + " Or pick_up one on your cell, drop or give_artifact (to a visible agent) one you "
            "carry, modify (rewrite its text) or destroy one on your cell or carried. You read the artifacts "
            f"you stand on or carry, and can carry {config.artifact_max_inventory}.")


def _lifespan_word(steps: int) -> str:
    return str(steps) if steps else "forever"


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


def user_message(observation_text: str, memory: str, talk: bool = True) -> str:
    if not talk:  # no memory notes are written, so there is none to show
        return f"{observation_text}\nYour action (JSON):"
    return f"{observation_text}\nYour memory note: {memory or '(empty)'}\nYour action (JSON):"


def read_options(observation_text: str, energy: int, config: SocietyConfig) -> Options:
    """Visible agents and whether reproduction is possible, from the text observation."""
    targets, offsets = [], {}
    agents_line = next((line for line in observation_text.splitlines() if line.startswith("Agents:")), "")
    for name, dx, dy, _ in AGENT_LINE.findall(agents_line):
        targets.append(name)
        offsets[name] = (int(dx), int(dy))
    options = Options(targets, offsets, energy >= config.reproduce_min_energy, energy)
    if config.artifacts:
        seen, carried = read_artifact_view(observation_text)
        options.artifacts_here = list(dict.fromkeys(name for name, dx, dy in seen if dx == 0 and dy == 0))
        options.artifacts_carried = list(dict.fromkeys(carried))
        options.can_create = energy >= config.artifact_create_cost
        options.can_pick_up = len(carried) < config.artifact_max_inventory
    return options


def _string_rule(name: str, max_chars: int) -> str:
    # printable ASCII without the quote and backslash, so the JSON never needs escapes
    return f'{name} ::= "\\"" [ !#-[\\]-~]{{0,{max_chars}}} "\\""'


ANSWER_PREFILL = '{"action": "'
"""Written into the assistant turn before generation: the model starts right at the action's name."""


def action_grammar(options: Options, config: SocietyConfig, settings: PromptSettings) -> str:
    """GBNF for this agent's answer after :data:`ANSWER_PREFILL`: only the actions available now (with
    ``settings.actions == "move"``: stay or move), then message and memory when ``settings.talk``."""
    amounts = " | ".join(f'"{a}"' for a in config.transfer_amounts)
    alternatives = ['"stay\\""', 'move']
    rules = ['move ::= "move\\", \\"direction\\": " ("\\"north\\"" | "\\"south\\"" | "\\"east\\"" | "\\"west\\"")']
    everything = settings.actions == "all"
    if everything and options.targets:
        names = " | ".join(f'"\\"{t}\\""' for t in options.targets)
        rules.append(f"target ::= {names}")
        rules.append(f"amount ::= {amounts}")
        alternatives += ["give", "take"]
        rules.append('give ::= "give\\", \\"target\\": " target ", \\"amount\\": " amount')
        rules.append('take ::= "take\\", \\"target\\": " target ", \\"amount\\": " amount')
    if everything and options.can_reproduce:
        alternatives.append('"reproduce\\""')
    if everything and config.artifacts:
        _artifact_grammar(options, config, settings, alternatives, rules)
    if not settings.talk:
        return "\n".join(['root ::= (' + " | ".join(alternatives) + ') "}"', *rules])
    message_chars = min(settings.message_chars, config.message_max_chars)
    root = ('root ::= (' + " | ".join(alternatives) + ') ", \\"message\\": " message '
            '", \\"memory\\": " memory "}"')
    return "\n".join([root, *rules, _string_rule("message", message_chars), _string_rule("memory", settings.memory_chars)])


def _choice(names: list[str]) -> str:
    return " | ".join(f'"\\"{name}\\""' for name in names)


def _artifact_grammar(options: Options, config: SocietyConfig, settings: PromptSettings, alternatives: list[str],
                      rules: list[str]) -> None:
    """Add the artifact actions available now: create when affordable, the others only with artifacts that
    the agent stands on or carries (names from its observation)."""
    text_rule_needed = False
    if options.can_create:
        alternatives.append("create")
        lifespans = " | ".join(f'"\\"{_lifespan_word(v)}\\""' for v in dict.fromkeys(config.artifact_lifespans))
        rules.append('create ::= "create\\", \\"name\\": " aname ", \\"text\\": " atext '
                     f'", \\"lifespan\\": " ({lifespans})')
        rules.append(f'aname ::= "\\"" [ !#-[\\]-~]{{1,{config.artifact_name_max_chars}}} "\\""')
        text_rule_needed = True
    here, carried = options.artifacts_here, options.artifacts_carried
    reachable = list(dict.fromkeys(carried + here))
    if here and options.can_pick_up:
        alternatives.append("pickup")
        rules.append(f'pickup ::= "pick_up\\", \\"artifact\\": " ({_choice(here)})')
    if carried:
        alternatives += ["drop"]
        rules.append(f'carried ::= {_choice(carried)}')
        rules.append('drop ::= "drop\\", \\"artifact\\": " carried')
        if options.targets:
            alternatives.append("giveartifact")
            rules.append('giveartifact ::= "give_artifact\\", \\"artifact\\": " carried ", \\"target\\": " target')
    if reachable:
        alternatives += ["modify", "destroy"]
        rules.append(f'reachable ::= {_choice(reachable)}')
        rules.append('modify ::= "modify\\", \\"artifact\\": " reachable ", \\"text\\": " atext')
        rules.append('destroy ::= "destroy\\", \\"artifact\\": " reachable')
        text_rule_needed = True
    if text_rule_needed:
        rules.append(_string_rule("atext", min(settings.artifact_chars, config.artifact_text_max_chars)))


def answer_length_bound(config: SocietyConfig, settings: PromptSettings) -> int:
    """The most characters an answer of :func:`action_grammar` can have (after :data:`ANSWER_PREFILL`):
    its longest action alternative, then message and memory at their caps. The grammar allows printable
    ASCII only, so every token of an answer is at least one character: with this many tokens (plus one
    for the end token) no valid answer is ever cut off."""
    target = len(f'"agent_{config.max_agents - 1}"')
    actions = [len('reproduce"'), len('move", "direction": "north"'),
               len('give", "target": ') + target + len(', "amount": ') + max(len(str(a)) for a in config.transfer_amounts)]
    if settings.actions == "move":
        actions = [len('move", "direction": "north"')]
    if not settings.talk:
        return max(actions) + len("}")
    if config.artifacts and settings.actions == "all":
        name = config.artifact_name_max_chars + 2
        text = min(settings.artifact_chars, config.artifact_text_max_chars) + 2
        lifespan = max(len(_lifespan_word(v)) for v in config.artifact_lifespans) + 2
        actions += [len('create", "name": ') + name + len(', "text": ') + text + len(', "lifespan": ') + lifespan,
                    len('modify", "artifact": ') + name + len(', "text": ') + text,
                    len('give_artifact", "artifact": ') + name + len(', "target": ') + target]
    message = min(settings.message_chars, config.message_max_chars) + 2
    return max(actions) + len(', "message": ') + message + len(', "memory": ') + settings.memory_chars + 2 + len("}")


_FORCED_AFTER = [
    # (pattern the generated text ends with, text the grammar forces next, answer complete after it)
    (re.compile(r'^create"$'), ', "name": "', False),
    (re.compile(r'^create", "name": "[^"]*"$'), ', "text": "', False),
    (re.compile(r'^create", "name": "[^"]*", "text": "[^"]*"$'), ', "lifespan": "', False),
    (re.compile(r'^(pick_up|drop|give_artifact|modify|destroy)"$'), ', "artifact": "', False),
    (re.compile(r'^give_artifact", "artifact": "[^"]*"$'), ', "target": "', False),
    (re.compile(r'^modify", "artifact": "[^"]*"$'), ', "text": "', False),
    (re.compile(r'^(create", "name": "[^"]*", "text": "[^"]*", "lifespan": "[^"]*"'
                r'|(pick_up|drop|destroy)", "artifact": "[^"]*"'
                r'|give_artifact", "artifact": "[^"]*", "target": "agent_\d+"'
                r'|modify", "artifact": "[^"]*", "text": "[^"]*")$'), ', "message": "', False),
    (re.compile(r'^move"$'), ', "direction": "', False),
    (re.compile(r'^(give|take)"$'), ', "target": "', False),
    (re.compile(r'^(give|take)", "target": "agent_\d+"$'), ', "amount": ', False),
    (re.compile(r'^(stay|reproduce)"$|"direction": "(north|south|east|west)"$'), ', "message": "', False),
    (re.compile(r', "message": "[^"]*"$'), ', "memory": "', False),
    (re.compile(r', "memory": "[^"]*"$'), "}", True),
]
_ACTION_COMPLETE = re.compile(r'^(stay|reproduce)"$|"direction": "(north|south|east|west)"$')


def forced_continuation(generated: str, talk: bool = True) -> tuple[str, bool]:
    """What :func:`action_grammar` forces after ``generated`` (the answer after :data:`ANSWER_PREFILL`):
    the JSON keys and separators between values, and whether the answer is complete after them.
    The engine feeds forced text as one chunk instead of sampling it token by token. ``talk=False``:
    the grammar of an answer without message and memory (it closes right after a move or stay)."""
    if not talk and _ACTION_COMPLETE.search(generated):
        return "}", True
    for pattern, text, complete in _FORCED_AFTER:
        if pattern.search(generated):
            return text, complete
    return "", False


def parse_answer(text: str, options: Options, config: SocietyConfig) -> tuple[np.ndarray, str, str, dict | None]:
    """Model answer -> (action vector, message, memory note, artifact action or ``None``).
    Raises ``AnswerError`` with the reason. An artifact action comes with a "stay" vector."""
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
    elif config.artifacts and action in ARTIFACT_ANSWERS:
        return vector, message, memory, _artifact_answer(action, answer, options, config)
    else:
        raise AnswerError(f"unknown action {action!r}")
    return vector, message, memory, None


ARTIFACT_ANSWERS = ("create", "pick_up", "drop", "give_artifact", "modify", "destroy")


def _artifact_answer(action: str, answer: dict, options: Options, config: SocietyConfig) -> dict:
    """The env's artifact action for an artifact answer (the world's rules judge caps and costs)."""
    text = answer.get("text", "")
    if not isinstance(text, str):
        raise AnswerError("the artifact text must be a string")
    if action == "create":
        words = [_lifespan_word(v) for v in config.artifact_lifespans]
        lifespan = str(answer.get("lifespan"))
        if lifespan not in words:
            raise AnswerError(f"lifespan {answer.get('lifespan')!r} is not one of {words}")
        return artifact_action("create", name=str(answer.get("name", "")), text=text, lifespan=words.index(lifespan))
    name = answer.get("artifact")
    if name not in options.artifacts_here + options.artifacts_carried:
        raise AnswerError(f"artifact {name!r} is neither here nor carried")
    if action == "give_artifact":
        target = answer.get("target")
        if target not in options.offsets:
            raise AnswerError(f"target {target!r} is not visible")
        dx, dy = options.offsets[target]
        return artifact_action("give", name=name, target=view_cell_index(config, dy, dx))
    return artifact_action(action, name=name, text=text)
