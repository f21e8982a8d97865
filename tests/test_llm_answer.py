"""The answer table round trip: for every action an agent can answer with, in worlds with and without
artifacts and with and without talk, the answer text built from the table is accepted by llama.cpp's
grammar engine (and only complete there), parses back to the intended env action, never exceeds the
length bound, and the forced continuations are exactly what the text continues with. The example answers
of every preset's prompt are answers the grammar writes, spacing included."""

import itertools
import json
import re

import jsonschema
import numpy as np
import pytest

import society_env
from policies.llm.answer import (
    ANSWER_PREFILL,
    ANSWERS,
    DIRECTION_KINDS,
    Options,
    action_grammar,
    answer_json_schema,
    answer_length_bound,
    available_answers,
    forced_continuation,
    format_answer,
    lifespan_word,
    parse_answer,
    whole_answer_grammar,
)
from policies.llm.engine import LlamaEngine, ModelError
from policies.llm.prompt import PromptSettings, shared_system_prompt
from policies.llm.prompt_config import prompt_config_for
from society_env import GIVE, NORTH, REPRODUCE, STAY, TAKE, view_cell_index
from society_env.world.artifacts import artifact_action
from society_env.world.config import PRESETS
from society_env.world.encodings import ACTION_VECTOR_LENGTH
from tests.tiny_gguf import write_tiny_model

OPTIONS = Options(["agent_4", "agent_12"], {"agent_4": (1, -2), "agent_12": (0, 1)}, True, 70,
                  artifacts_here=["map", "law"], artifacts_carried=["note"], can_create=True, can_pick_up=True)
WORLDS = [
    ("small", society_env.make_config("small", language=True), PromptSettings()),
    ("core", society_env.make_config("core"), PromptSettings(artifact_chars=20)),
    ("small, no talk", society_env.make_config("small", language=True), PromptSettings(talk=False)),
    ("forage", society_env.make_config("forage"), prompt_config_for("forage")),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = LlamaEngine(write_tiny_model(tmp_path_factory.mktemp("answers") / "tiny.gguf"), n_ctx=512, max_batch=1,
                         n_threads=1)
    yield engine
    engine.close()


def _values(action, config, settings):
    """A few value combinations per action: each choice, texts empty and at their cap."""
    choices = {
        "direction": list(DIRECTION_KINDS), "target": OPTIONS.targets, "amount": [str(a) for a in config.transfer_amounts],
        "lifespan": [lifespan_word(v) for v in config.artifact_lifespans],
        "artifact": {"pick_up": OPTIONS.artifacts_here, "drop": OPTIONS.artifacts_carried,
                     "give_artifact": OPTIONS.artifacts_carried}.get(action, OPTIONS.artifacts_reachable),
        "name": ["a", "n" * config.artifact_name_max_chars],
        "text": ["", "t" * min(settings.artifact_chars, config.artifact_text_max_chars)],
        "message": ["", "m" * min(settings.message_chars, config.message_max_chars)],
        "memory": ["hi there", "r" * settings.memory_chars],
    }
    keys = [spec.key for spec in ANSWERS[action]] + (["message", "memory"] if settings.talk else [])
    return [dict(zip(keys, combination)) for combination in itertools.product(*(choices[k] for k in keys))][:24]


def _intended(action, values, config):
    """What the answer must mean: (action vector, artifact action or None)."""
    vector = np.zeros(ACTION_VECTOR_LENGTH, dtype=np.int64)
    if action == "move":
        vector[0] = DIRECTION_KINDS[values["direction"]]
    elif action in ("give", "take"):
        dx, dy = OPTIONS.offsets[values["target"]]
        vector[:3] = (GIVE if action == "give" else TAKE, view_cell_index(config, dy, dx),
                      config.transfer_amounts.index(int(values["amount"])))
    elif action == "reproduce":
        vector[0] = REPRODUCE
    elif action == "create":
        lifespans = [lifespan_word(v) for v in config.artifact_lifespans]
        return vector, artifact_action("create", name=values["name"], text=values["text"],
                                       lifespan=lifespans.index(values["lifespan"]))
    elif action == "give_artifact":
        dx, dy = OPTIONS.offsets[values["target"]]
        return vector, artifact_action("give", name=values["artifact"], target=view_cell_index(config, dy, dx))
    elif action in ("pick_up", "drop", "modify", "destroy"):
        return vector, artifact_action(action, name=values["artifact"], text=values.get("text", ""))
    else:
        assert action == "stay" and vector[0] == STAY
    return vector, None


def _accepts(engine, grammar_text, text):
    """Whether the grammar accepts ``text``, and whether it is complete after it (the end token allowed)."""
    grammar = engine.llama_cpp.llama_sampler_init_grammar(engine.vocab, grammar_text.encode(), b"root")
    try:
        engine.accept_text(grammar, text)
    except ModelError:
        return False, False
    finally_end = engine._accepts(grammar, engine.llama_cpp.llama_vocab_eos(engine.vocab))
    engine.llama_cpp.llama_sampler_free(grammar)
    return True, finally_end


@pytest.mark.parametrize("label, config, settings", WORLDS, ids=[w[0] for w in WORLDS])
def test_every_answer_round_trips_through_grammar_parser_bound_and_forced_text(engine, label, config, settings):
    grammar = action_grammar(OPTIONS, config, settings)
    whole_grammar, schema = whole_answer_grammar(OPTIONS, config, settings), answer_json_schema(OPTIONS, config, settings)
    bound = answer_length_bound(config, settings)
    offered = available_answers(OPTIONS, config, settings)
    assert ("create" in offered) == config.artifacts and ("give" in offered) == (settings.actions == "all")
    for action in offered:
        for values in _values(action, config, settings):
            text = format_answer(action, values, settings)
            accepted, complete = _accepts(engine, grammar, text)
            assert accepted and complete, text
            assert not _accepts(engine, grammar, text[:-1])[1], text  # one character short is not complete
            vector, message, memory, artifact = parse_answer(ANSWER_PREFILL + text, OPTIONS, config)
            expected_vector, expected_artifact = _intended(action, values, config)
            assert vector.tolist() == expected_vector.tolist() and artifact == expected_artifact, text
            assert (message, memory) == ((values["message"], values["memory"]) if settings.talk else ("", ""))
            assert len(text) <= bound
            # the server formats: the whole answer in the GBNF of llama-server, and the JSON schema of vLLM
            assert _accepts(engine, whole_grammar, ANSWER_PREFILL + text) == (True, True), text
            jsonschema.validate(json.loads(ANSWER_PREFILL + text), schema)
            for end in range(len(text)):  # forced text is always what the answer goes on with
                forced, done = forced_continuation(text[:end], talk=settings.talk)
                assert text[end:].startswith(forced), (text[:end], forced)
                assert done == (bool(forced) and end + len(forced) == len(text)), (text[:end], forced)


def test_the_grammar_rejects_what_the_agent_cannot_do(engine):
    config = society_env.make_config("core")
    lonely = Options([], {}, False, 5)
    grammar = action_grammar(lonely, config, PromptSettings())
    schema = answer_json_schema(lonely, config, PromptSettings())
    for text in ('give", "target": "agent_4", "amount": 5', 'reproduce"', 'pick_up", "artifact": "map"',
                 'move", "direction": "up"', 'stay", "message": "a\\"b"', 'stay", "message": "a\\b"'):
        assert not _accepts(engine, grammar, text)[0], text
    talk = {"message": "", "memory": ""}
    jsonschema.validate({"action": "move", "direction": "north", **talk}, schema)
    for answer in ({"action": "give", "target": "agent_4", "amount": 5, **talk}, {"action": "reproduce", **talk},
                   {"action": "pick_up", "artifact": "map", **talk}, {"action": "move", "direction": "up", **talk},
                   {"action": "stay", "message": 'a"b', "memory": ""}, {"action": "stay", "message": "a\\b", "memory": ""},
                   {"action": "stay", "message": "", "memory": "", "extra": 1}, {"action": "stay", "message": ""}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(answer, schema)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_the_prompts_example_answers_are_answers_the_grammar_writes(engine, preset):
    config = society_env.make_config(preset, language=True)
    settings = prompt_config_for(preset)
    grammar = whole_answer_grammar(OPTIONS, config, settings)
    examples = re.findall(r'\{"action".*?\}', shared_system_prompt(config, settings))
    assert examples and any('"move"' in example for example in examples)
    for example in examples:
        if example.endswith(", ...}"):  # an example that leaves out the message and memory: a true prefix
            assert settings.talk and _accepts(engine, grammar, example.removesuffix(", ...}")) == (True, False), example
            continue
        assert _accepts(engine, grammar, example) == (True, True), example
        vector, *_ = parse_answer(example, OPTIONS, config)
        assert vector[0] in (NORTH, STAY), example
