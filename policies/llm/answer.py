"""The LLM answer format, defined once: a table of the actions an LLM agent answers with and their fields.

An answer is a JSON object; generation starts after :data:`ANSWER_PREFILL`::

    {"action": "<name>", "<field>": <value>, ..., "message": "...", "memory": "..."}

(message and memory only when the prompt settings talk). From :data:`ANSWERS` come:

- :func:`action_grammar`: the GBNF grammar of one agent's answer, with only the actions it can take now
  and only the values it can use (visible targets, artifacts it stands on or carries);
- :func:`forced_continuation`: the text the grammar forces between values (keys and separators), which
  the engine feeds as one chunk instead of sampling it;
- :func:`answer_length_bound`: the longest answer the grammar allows;
- :func:`answer_head`: the text every answer with an action starts with (for the decision probabilities);
- :func:`format_answer`: an answer's text (the prompt's examples, the tests);
- :func:`answer_json_schema`: the same answers as a JSON schema (servers, the throughput benchmark);
- :func:`parse_answer`: the answer back into an env action, each field read by its :class:`Field`.

``tests/test_llm_answer.py`` round-trips every action through all of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from society_env.world.artifacts import artifact_action
from society_env.world.config import SocietyConfig
from society_env.world.encodings import (ACTION_FIELDS, ACTION_VECTOR_LENGTH, EAST, GIVE, NORTH, REPRODUCE, SOUTH, STAY,
                                   TAKE, WEST, view_cell_index)
from society_env.world.names import agent_name

__all__ = ["ANSWERS", "ANSWER_PREFILL", "ARTIFACT_ANSWERS", "AnswerError", "DECIDED_ANSWERS", "DIRECTION_KINDS", "Field",
           "Options", "action_grammar", "answer_head", "answer_json_schema", "answer_length_bound", "available_answers",
           "forced_continuation", "format_answer", "lifespan_word", "parse_answer", "whole_answer_grammar"]

ANSWER_PREFILL = '{"action": "'
"""Written into the assistant turn before generation: the model starts right at the action's name."""

CHOICE, NUMBER, TEXT = "choice", "number", "text"


class AnswerError(ValueError):
    """A model answer that cannot be turned into an action (the agent then stays put)."""


@dataclass(frozen=True)
class Field:
    """One ``"key": value`` of an answer. ``kind``: ``choice`` (one of a list of quoted words), ``number``
    (one of a list of unquoted integers) or ``text`` (a quoted string of printable ASCII without quotes
    or backslashes, so the JSON never needs escapes). ``words``: the choices when they are the same for
    every agent (else they come from the agent's :class:`Options`). ``read`` turns the parsed JSON value
    (``missing`` when the key is absent) into ``argument``: the action-vector component (``ACTION_FIELDS``)
    or ``artifact_action`` argument it gives."""

    key: str
    kind: str
    argument: str = ""
    read: Callable[[Any, "Options", SocietyConfig], Any] | None = field(default=None, compare=False, repr=False)
    missing: Any = None
    words: tuple[str, ...] = ()


def lifespan_word(steps: int) -> str:
    return str(steps) if steps else "forever"


# ---- how each field's value is read (parse_answer) -----------------------------------------------

DIRECTION_KINDS = {"north": NORTH, "south": SOUTH, "west": WEST, "east": EAST}
"""The move directions: the answer's word -> the action kind."""


def _read_direction(value: Any, options: "Options", config: SocietyConfig) -> int:
    if value not in DIRECTION_KINDS:
        raise AnswerError(f"unknown direction {value!r}")
    return DIRECTION_KINDS[value]


def _read_target(value: Any, options: "Options", config: SocietyConfig) -> int:
    if value not in options.offsets:
        raise AnswerError(f"target {value!r} is not visible")
    dx, dy = options.offsets[value]
    return view_cell_index(config, dy, dx)


def _read_amount(value: Any, options: "Options", config: SocietyConfig) -> int:
    if value not in config.transfer_amounts:
        raise AnswerError(f"amount {value!r} is not one of {config.transfer_amounts}")
    return config.transfer_amounts.index(value)


def _read_lifespan(value: Any, options: "Options", config: SocietyConfig) -> int:
    words = [lifespan_word(v) for v in config.artifact_lifespans]
    if str(value) not in words:
        raise AnswerError(f"lifespan {value!r} is not one of {words}")
    return words.index(str(value))


def _read_artifact(value: Any, options: "Options", config: SocietyConfig) -> str:
    if value not in options.artifacts_here + options.artifacts_carried:
        raise AnswerError(f"artifact {value!r} is neither here nor carried")
    return value


def _read_text(value: Any, options: "Options", config: SocietyConfig) -> str:
    if not isinstance(value, str):
        raise AnswerError("the artifact text must be a string")
    return value


DIRECTION = Field("direction", CHOICE, "kind", _read_direction, words=tuple(DIRECTION_KINDS))
TARGET = Field("target", CHOICE, "target", _read_target)
AMOUNT = Field("amount", NUMBER, "amount", _read_amount)
ARTIFACT = Field("artifact", CHOICE, "name", _read_artifact)
NAME = Field("name", TEXT, "name", lambda value, options, config: str(value), missing="")
TEXT_FIELD = Field("text", TEXT, "text", _read_text, missing="")
LIFESPAN = Field("lifespan", CHOICE, "lifespan", _read_lifespan)

ANSWERS: dict[str, tuple[Field, ...]] = {
    "stay": (),
    "move": (DIRECTION,),
    "give": (TARGET, AMOUNT),
    "take": (TARGET, AMOUNT),
    "reproduce": (),
    # worlds with artifacts
    "create": (NAME, TEXT_FIELD, LIFESPAN),
    "pick_up": (ARTIFACT,),
    "drop": (ARTIFACT,),
    "give_artifact": (ARTIFACT, TARGET),
    "modify": (ARTIFACT, TEXT_FIELD),
    "destroy": (ARTIFACT,),
}
"""Every answer: its action name and its fields in order (the talk fields follow)."""
VECTOR_KINDS = {"stay": STAY, "move": None, "give": GIVE, "take": TAKE, "reproduce": REPRODUCE}
"""The answers that are an action vector, and their action kind (``None``: a field gives it, move's direction)."""
ARTIFACT_KINDS = {"create": "create", "pick_up": "pick_up", "drop": "drop", "give_artifact": "give",
                  "modify": "modify", "destroy": "destroy"}
"""The answers that are an artifact action (with a "stay" vector), and its kind (``artifact_action``)."""
ARTIFACT_ANSWERS = tuple(ARTIFACT_KINDS)
REQUIREMENTS = {"reproduce": (lambda options: options.can_reproduce, "not enough energy to reproduce")}
"""Answers the parser refuses unless the agent's options allow them (the world would fail them anyway)."""
TALK_FIELDS = (Field("message", TEXT), Field("memory", TEXT))
DECIDED_ANSWERS = tuple(name for name, fields in ANSWERS.items()
                        if len(fields) <= 1 and all(spec.words for spec in fields))
"""The answers whose action is decided by words alone, the same for every agent (stay, move + a direction,
reproduce): what :meth:`policies.llm.local.LocalBackend.decision_distribution` enumerates."""
assert set(VECTOR_KINDS) | set(ARTIFACT_KINDS) == set(ANSWERS) and not set(VECTOR_KINDS) & set(ARTIFACT_KINDS)


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

    @property
    def artifacts_reachable(self) -> list[str]:
        """Carried or lying here (what modify and destroy may name)."""
        return list(dict.fromkeys(self.artifacts_carried + self.artifacts_here))


# ---- which answers, which values ----------------------------------------------------------------

def available_answers(options: Options | None, config: SocietyConfig, settings: Any) -> list[str]:
    """The actions an agent with ``options`` can answer with now (``None``: every one the world and the
    prompt settings can ever offer). ``settings`` is a :class:`policies.llm.prompt_config.PromptConfig`."""
    names = ["stay", "move"]
    if settings.actions != "all":  # "move": stay or move only
        return names
    if options is None or options.targets:
        names += ["give", "take"]
    if options is None or options.can_reproduce:
        names.append("reproduce")
    if not config.artifacts:
        return names
    if options is None:
        return names + list(ARTIFACT_ANSWERS)
    here, carried = options.artifacts_here, options.artifacts_carried
    if options.can_create:
        names.append("create")
    if here and options.can_pick_up:
        names.append("pick_up")
    if carried:
        names.append("drop")
        if options.targets:
            names.append("give_artifact")
    if options.artifacts_reachable:
        names += ["modify", "destroy"]
    return names


def _text_bounds(action: str | None, key: str, config: SocietyConfig, settings: Any) -> tuple[int, int]:
    if key == "message":
        return 0, min(settings.message_chars, config.message_max_chars)
    if key == "memory":
        return 0, settings.memory_chars
    if key == "name":
        return 1, config.artifact_name_max_chars
    return 0, min(settings.artifact_chars, config.artifact_text_max_chars)  # an artifact text


def _choices(action: str, spec: Field, options: Options, config: SocietyConfig) -> list[str]:
    """The words (or numbers) an agent with ``options`` may give for field ``spec`` of ``action``."""
    key = spec.key
    if spec.words:
        return list(spec.words)
    if key == "target":
        return list(options.targets)
    if key == "amount":
        return [str(amount) for amount in config.transfer_amounts]
    if key == "lifespan":
        return list(dict.fromkeys(lifespan_word(v) for v in config.artifact_lifespans))
    if action == "pick_up":
        return list(options.artifacts_here)
    if action in ("drop", "give_artifact"):
        return list(dict.fromkeys(options.artifacts_carried))
    return options.artifacts_reachable  # modify, destroy


def _longest_choice(spec: Field, config: SocietyConfig) -> int:
    """Characters of the longest word any agent may give for field ``spec`` (for the length bound)."""
    key = spec.key
    if spec.words:
        return max(map(len, spec.words))
    if key == "target":
        return len(agent_name(config.max_agents - 1))
    if key == "artifact":
        return config.artifact_name_max_chars
    if key == "amount":
        return max(len(str(a)) for a in config.transfer_amounts)
    if key == "lifespan":
        return max(len(lifespan_word(v)) for v in config.artifact_lifespans)
    raise ValueError(f"no length bound for the choices of {key!r}")


def _fields(action: str, settings: Any) -> tuple[Field, ...]:
    return ANSWERS[action] + (TALK_FIELDS if settings.talk else ())


def _key_text(key: str) -> str:
    return f', "{key}": '


def _name_text(action: str) -> str:
    """An answer's first generated text (after :data:`ANSWER_PREFILL`): the action name, closed."""
    return action + '"'


# ---- grammar ------------------------------------------------------------------------------------

def _literal(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def action_grammar(options: Options, config: SocietyConfig, settings: Any, prefill: str = "") -> str:
    """GBNF for this agent's answer after :data:`ANSWER_PREFILL`: only the actions available now, each
    with only the values the agent can use, then message and memory when ``settings.talk``. With
    ``prefill`` the grammar starts with that text (the whole answer: :func:`whole_answer_grammar`)."""
    rules: dict[str, str] = {}

    def value_rule(action: str, spec: Field) -> str:
        if spec.kind == TEXT:
            low, high = _text_bounds(action, spec.key, config, settings)
            name = spec.key if spec.key in ("message", "memory") else f"{spec.key}-{low}-{high}"
            # printable ASCII without the quote and backslash, so the JSON never needs escapes
            rules[name] = f'{name} ::= "\\"" [ !#-[\\]-~]{{{low},{high}}} "\\""'
            return name
        words = _choices(action, spec, options, config)
        quote = '"' if spec.kind == CHOICE else ""
        name = f"{action}-{spec.key}".replace("_", "-")
        rules[name] = f"{name} ::= " + " | ".join(_literal(f"{quote}{word}{quote}") for word in words)
        return name

    alternatives = []
    for action in available_answers(options, config, settings):
        parts = [_literal(_name_text(action))]
        for spec in ANSWERS[action]:
            parts += [_literal(_key_text(spec.key)), value_rule(action, spec)]
        alternatives.append(" ".join(parts))
    tail = []
    for spec in TALK_FIELDS if settings.talk else ():
        tail += [_literal(_key_text(spec.key)), value_rule(spec.key, spec)]
    head = f"{_literal(prefill)} " if prefill else ""
    root = f"root ::= {head}(" + " | ".join(alternatives) + ") " + " ".join(tail + [_literal("}")])
    return "\n".join([root, *rules.values()])


def whole_answer_grammar(options: Options, config: SocietyConfig, settings: Any) -> str:
    """:func:`action_grammar` with :data:`ANSWER_PREFILL` at its start: the whole answer, for servers
    that generate the assistant turn from its first character (GBNF of llama-server, llama-cpp-python)."""
    return action_grammar(options, config, settings, prefill=ANSWER_PREFILL)


def answer_json_schema(options: Options, config: SocietyConfig, settings: Any) -> dict[str, Any]:
    """The same answers as :func:`action_grammar` as a JSON schema (one ``anyOf`` branch per available
    action, every value an ``enum`` or a bounded printable string), for servers that constrain output
    with a ``json_schema`` response format (vLLM, SGLang). It does not fix the key order; the parser
    does not need it."""
    branches = []
    for action in available_answers(options, config, settings):
        properties: dict[str, Any] = {"action": {"const": action}}
        for spec in _fields(action, settings):
            if spec.kind == TEXT:
                low, high = _text_bounds(action, spec.key, config, settings)
                properties[spec.key] = {"type": "string", "minLength": low, "maxLength": high,
                                        "pattern": "^[ !#-\\[\\]-~]*$"}
            elif spec.kind == NUMBER:
                properties[spec.key] = {"enum": [int(word) for word in _choices(action, spec, options, config)]}
            else:
                properties[spec.key] = {"enum": _choices(action, spec, options, config)}
        branches.append({"type": "object", "properties": properties, "required": list(properties),
                         "additionalProperties": False})
    return {"anyOf": branches}


# ---- forced text, length bound, formatting --------------------------------------------------------

_ACTION_NAME = re.compile(r'([a-z_]+)"')
_QUOTED = re.compile(r'"[^"]*"')


def forced_continuation(generated: str, talk: bool = True, names: tuple[str, ...] | None = None) -> tuple[str, bool]:
    """What :func:`action_grammar` forces after ``generated`` (the answer after :data:`ANSWER_PREFILL`):
    the next key (with the opening quote of a quoted value) when a value just ended, ``}`` when the last
    one did; and whether the answer is complete after it. Nothing is forced after a number (``1`` may
    go on to ``10``) or inside a free value.

    A *decided word* is forced too: an action name once ``generated`` fits only one of ``names`` (the
    actions this agent can take now; default: all), a direction once its first letters fit only one.
    So every decision of an answer is one sampled token followed by forced text, and the engine writes
    the decided word in its canonical tokens (:meth:`policies.llm.engine.LlamaEngine.generate`): the
    probability of each decision is then exactly one softmax over the grammar's allowed first tokens
    (what :meth:`policies.llm.local.LocalBackend.decision_distribution` reads from the logits)."""
    match = _ACTION_NAME.match(generated)
    if not match or match.group(1) not in ANSWERS:
        fits = [name for name in (names or ANSWERS) if _name_text(name).startswith(generated)]
        if not generated or len(fits) != 1 or (match and match.group(1) not in ANSWERS):
            return "", False
        remainder = _name_text(fits[0])[len(generated):]
        more, complete = forced_continuation(generated + remainder, talk, names)
        return remainder + more, complete
    rest = generated[match.end():]
    for spec in ANSWERS[match.group(1)] + (TALK_FIELDS if talk else ()):
        key = _key_text(spec.key)
        if not rest:
            return key + ("" if spec.kind == NUMBER else '"'), False
        if len(rest) < len(key) and key.startswith(rest):  # a token ran into the key: finish it
            return key[len(rest):] + ("" if spec.kind == NUMBER else '"'), False
        if not rest.startswith(key) or spec.kind == NUMBER:
            return "", False
        value = _QUOTED.match(rest, len(key))
        if not value:
            typed = rest[len(key):]
            if spec.words and typed.startswith('"'):  # the same words for every agent: decided by their letters
                fits = [word for word in spec.words if word.startswith(typed[1:])]
                if len(fits) == 1:
                    remainder = fits[0][len(typed) - 1:] + '"'
                    more, complete = forced_continuation(generated + remainder, talk, names)
                    return remainder + more, complete
            return "", False
        rest = rest[value.end():]
    return ("}", True) if not rest else ("", False)


def answer_head(action: str, talk: bool = True) -> str:
    """The text every answer with ``action`` starts with (after :data:`ANSWER_PREFILL`): its name and the
    text the grammar forces after it, up to its first chosen value (``move", "direction": "``), or the
    whole answer when nothing is chosen after the name (``stay"}`` without talk)."""
    return _name_text(action) + forced_continuation(_name_text(action), talk)[0]


def format_answer(action: str, values: dict[str, str], settings: Any) -> str:
    """The answer text (after :data:`ANSWER_PREFILL`) for ``action`` with ``values`` by key (numbers as
    their digits); the inverse of :func:`parse_answer`, used by the tests and the length bound."""
    parts = [_name_text(action)]
    for spec in _fields(action, settings):
        value = values[spec.key]
        parts.append(_key_text(spec.key) + (value if spec.kind == NUMBER else f'"{value}"'))
    return "".join(parts) + "}"


def answer_length_bound(config: SocietyConfig, settings: Any) -> int:
    """The most characters an answer of :func:`action_grammar` can have (after :data:`ANSWER_PREFILL`):
    the longest answer any agent of this world can give, every value at its longest. The grammar allows
    printable ASCII only, so every token of an answer is at least one character: with this many tokens
    (plus one for the end token) no valid answer is ever cut off."""
    def longest(action: str, spec: Field) -> str:
        if spec.kind == TEXT:
            return "x" * _text_bounds(action, spec.key, config, settings)[1]
        return "x" * _longest_choice(spec, config)

    return max(len(format_answer(action, {spec.key: longest(action, spec) for spec in _fields(action, settings)}, settings))
               for action in available_answers(None, config, settings))


# ---- parsing --------------------------------------------------------------------------------------

def parse_answer(text: str, options: Options, config: SocietyConfig) -> tuple[np.ndarray, str, str, dict | None]:
    """Model answer (the whole JSON, prefill included) -> (action vector, message, memory note, artifact
    action or ``None``). Raises ``AnswerError`` with the reason. An artifact action comes with a "stay" vector."""
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnswerError(f"not valid JSON ({error.msg})") from None
    if not isinstance(answer, dict):
        raise AnswerError("the answer is not a JSON object")
    action = answer.get("action")
    if action not in ANSWERS or (action in ARTIFACT_ANSWERS and not config.artifacts):
        raise AnswerError(f"unknown action {action!r}")
    message = answer.get("message", "")
    memory = answer.get("memory", "")
    if not isinstance(message, str) or not isinstance(memory, str):
        raise AnswerError("message and memory must be strings")
    message = "".join(ch for ch in message if 32 <= ord(ch) < 127)[: config.message_max_chars]
    values = {spec.argument: spec.read(answer.get(spec.key, spec.missing), options, config) for spec in ANSWERS[action]}
    allowed, reason = REQUIREMENTS.get(action, (None, ""))
    if allowed is not None and not allowed(options):
        raise AnswerError(reason)
    vector = np.zeros(ACTION_VECTOR_LENGTH, dtype=np.int64)
    if action in ARTIFACT_KINDS:
        return vector, message, memory, artifact_action(ARTIFACT_KINDS[action], **values)
    values.setdefault("kind", VECTOR_KINDS[action])
    for argument, value in values.items():
        vector[ACTION_FIELDS.index(argument)] = value
    return vector, message, memory, None
