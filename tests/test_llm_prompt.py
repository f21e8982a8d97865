"""Prompt building, grammar construction and answer parsing: pure functions, no model needed."""

import re

import numpy as np
import pytest

import society_env
from policies.llm.answer import AnswerError, Options, action_grammar, answer_length_bound, parse_answer
from policies.llm.prompt import (
    TRAIT_POLES,
    PromptSettings,
    agent_system_prompt,
    read_options,
    shared_system_prompt,
    nearest_food_line,
    user_message,
)
from policies.llm.prompt_config import PRESET_PROMPTS, PromptConfig, prompt_config_for, world_and_prompt
from society_env import GIVE, NORTH, REPRODUCE, STAY, TAKE, view_cell_index

CONFIG = society_env.make_config("small", language=True)


def test_shared_prompt_has_rules_poles_and_motivation_and_no_agent_specifics():
    text = shared_system_prompt(CONFIG, PromptSettings())
    assert "die at 0 energy or at age 60" in text and "dx>0 is east" in text
    assert "curious and inventive" in text and "cautious and conventional" in text  # both poles
    assert "survive" in text
    assert "agent_" not in text
    assert "creative" in shared_system_prompt(CONFIG, PromptSettings(motivation="creative"))
    bare = shared_system_prompt(CONFIG, PromptSettings(motivation="none", personality=False))
    assert TRAIT_POLES not in bare and "Your goal" not in bare


def test_agent_part_has_name_and_trait_values():
    genome = np.array([0.5, -0.4, 0, 0, 0, 0, 1.0, 0.7])
    text = agent_system_prompt("agent_7", genome, PromptSettings())
    assert "agent_7" in text and "openness +0.5" in text and "conscientiousness -0.4" in text and "fertility 0.7" in text
    assert "openness" not in agent_system_prompt("agent_7", genome, PromptSettings(personality=False))


def test_user_message_carries_observation_and_memory():
    message = user_message("agent_1 | step 3/200 | energy 40", "food was north")
    assert "energy 40" in message and "food was north" in message


def test_options_come_from_the_view_in_infos():
    env = society_env.parallel_env("small", language=True, num_founders=3)
    env.reset(seed=0)
    world = env.world
    for slot, (row, col) in enumerate([(5, 5), (5, 7), (3, 5)]):
        world.occupant[tuple(world.position[slot])] = -1
        world.position[slot] = (row, col)
        world.occupant[row, col] = slot
    obs, _, _, _, infos = env.step({a: {"action": np.zeros(4, np.int64), "message": ""} for a in env.agents})
    view = infos["agent_0"]["view"]
    # The view lists what the text shows, nearest first, as data.
    assert [(name, dx, dy) for name, dx, dy, _ in view["agents"]] == [("agent_2", 0, -2), ("agent_1", 2, 0)]
    for name, dx, dy, energy in view["agents"]:
        assert f"{name} ({dx:+d},{dy:+d})".replace("+0", "0") + f" energy {energy}" in obs["agent_0"]["text"]
    options = read_options(view, 49, CONFIG)
    assert options.offsets == {"agent_2": (0, -2), "agent_1": (2, 0)}
    assert not options.can_reproduce and read_options(view, 80, CONFIG).can_reproduce


OPTIONS = Options(targets=["agent_4"], offsets={"agent_4": (1, -2)}, can_reproduce=True, energy=70)


def test_answers_map_to_env_actions():
    vector, message, memory, artifact = parse_answer('{"action": "move", "direction": "north", "message": "hi", "memory": "m"}', OPTIONS, CONFIG)
    assert vector.tolist() == [NORTH, 0, 0, 0] and message == "hi" and memory == "m" and artifact is None
    vector, *_ = parse_answer('{"action": "give", "target": "agent_4", "amount": 5, "message": "", "memory": ""}', OPTIONS, CONFIG)
    assert vector.tolist() == [GIVE, view_cell_index(CONFIG, -2, 1), CONFIG.transfer_amounts.index(5), 0]
    vector, *_ = parse_answer('{"action": "take", "target": "agent_4", "amount": 20, "message": "", "memory": ""}', OPTIONS, CONFIG)
    assert vector[0] == TAKE
    assert parse_answer('{"action": "reproduce", "message": "", "memory": ""}', OPTIONS, CONFIG)[0][0] == REPRODUCE
    assert parse_answer('{"action": "stay", "message": "", "memory": ""}', OPTIONS, CONFIG)[0][0] == STAY


@pytest.mark.parametrize("answer,reason", [
    ("not json", "not valid JSON"),
    ('{"action": "fly", "message": "", "memory": ""}', "unknown action"),
    ('{"action": "give", "target": "agent_9", "amount": 5, "message": "", "memory": ""}', "not visible"),
    ('{"action": "give", "target": "agent_4", "amount": 7, "message": "", "memory": ""}', "amount"),
    ('{"action": "move", "direction": "up", "message": "", "memory": ""}', "direction"),
    ('[1, 2]', "not a JSON object"),
])
def test_bad_answers_raise_with_the_reason(answer, reason):
    with pytest.raises(AnswerError, match=reason):
        parse_answer(answer, OPTIONS, CONFIG)


def test_grammar_lists_only_available_actions():
    grammar = action_grammar(OPTIONS, CONFIG, PromptSettings(message_chars=30, memory_chars=40))
    assert '\\"agent_4\\"' in grammar and "reproduce" in grammar and "{0,30}" in grammar and "{0,40}" in grammar
    lonely = Options(targets=[], offsets={}, can_reproduce=False, energy=10)
    grammar = action_grammar(lonely, CONFIG, PromptSettings())
    assert "give" not in grammar and "take" not in grammar and "reproduce" not in grammar
    # the message cap never exceeds the world's limit
    assert f"{{0,{CONFIG.message_max_chars}}}" in action_grammar(lonely, CONFIG, PromptSettings(message_chars=10_000))


def test_forced_continuations_follow_the_grammar_skeleton():
    from policies.llm.answer import forced_continuation

    assert forced_continuation('move"') == (', "direction": "', False)
    assert forced_continuation('move", "direction": "north"') == (', "message": "', False)
    assert forced_continuation('give"') == (', "target": "', False)
    assert forced_continuation('give", "target": "agent_12"') == (', "amount": ', False)
    assert forced_continuation('give", "target": "agent_1') == ("", False)  # agent_1 or agent_12...
    assert forced_continuation('give", "target": "agent_1", "amount": 1') == ("", False)  # 1 or 10
    assert forced_continuation('stay"') == (', "message": "', False)
    assert forced_continuation('stay", "message": "hello') == ("", False)
    assert forced_continuation('stay", "message": "hello"') == (', "memory": "', False)
    assert forced_continuation('stay", "message": "", "memory": "north"') == ("}", True)


ARTIFACT_CONFIG = society_env.make_config("core", artifact_create_cost=10)
ARTIFACT_OPTIONS = Options(targets=["agent_4"], offsets={"agent_4": (1, -2)}, can_reproduce=False, energy=30,
                           artifacts_here=["map"], artifacts_carried=["note"], can_create=True, can_pick_up=True)


def test_artifacts_appear_in_the_prompt_and_grammar_only_in_worlds_that_have_them():
    assert "Artifacts" not in shared_system_prompt(CONFIG, PromptSettings())
    text = shared_system_prompt(ARTIFACT_CONFIG, PromptSettings())
    assert "pick_up" in text and "costs 10 energy" in text and "forever" in text
    inert = society_env.make_config("inert")
    assert "create" in shared_system_prompt(inert, PromptSettings()) and "pick_up" not in shared_system_prompt(inert, PromptSettings())
    assert "create" not in action_grammar(OPTIONS, CONFIG, PromptSettings())
    grammar = action_grammar(ARTIFACT_OPTIONS, ARTIFACT_CONFIG, PromptSettings(artifact_chars=33))
    for piece in ("create", "pick_up", "give_artifact", "modify", "destroy", '"\\"map\\""', "{0,33}", '"\\"forever\\""'):
        assert piece in grammar, piece
    poor = Options(targets=[], offsets={}, can_reproduce=False, energy=5, can_create=False, can_pick_up=True)
    grammar = action_grammar(poor, ARTIFACT_CONFIG, PromptSettings())
    assert "create" not in grammar and "pick_up" not in grammar and "modify" not in grammar


def test_artifact_options_come_from_the_text_view():
    env = society_env.parallel_env("core", width=12, height=12, num_founders=2, initial_food=0, view_radius=3)
    env.reset(seed=0)
    from society_env.world.artifacts import artifact_action

    stay = {"action": np.zeros(4, np.int64), "message": ""}
    env.step({"agent_0": {**stay, "artifact": artifact_action("create", name="map", text="t")}, "agent_1": stay})
    obs, _, _, _, infos = env.step({"agent_0": {**stay, "artifact": artifact_action("create", name="law", text="t")}, "agent_1": stay})
    options = read_options(infos["agent_0"]["view"], 48, env.config)
    assert options.artifacts_here == ["map", "law"] and options.artifacts_carried == [] and options.can_create


def test_artifact_answers_map_to_env_artifact_actions():
    from society_env.world.artifacts import artifact_action

    def parse(text):
        vector, _, _, artifact = parse_answer(text, ARTIFACT_OPTIONS, ARTIFACT_CONFIG)
        assert vector.tolist() == [STAY, 0, 0, 0]
        return artifact

    tail = ', "message": "", "memory": ""}'
    assert parse('{"action": "create", "name": "law", "text": "share", "lifespan": "forever"' + tail) == artifact_action(
        "create", name="law", text="share", lifespan=3)
    assert parse('{"action": "pick_up", "artifact": "map"' + tail) == artifact_action("pick_up", name="map")
    assert parse('{"action": "give_artifact", "artifact": "note", "target": "agent_4"' + tail) == artifact_action(
        "give", name="note", target=view_cell_index(ARTIFACT_CONFIG, -2, 1))
    assert parse('{"action": "modify", "artifact": "note", "text": "v2"' + tail) == artifact_action("modify", name="note", text="v2")
    with pytest.raises(AnswerError, match="neither here nor carried"):
        parse('{"action": "destroy", "artifact": "ghost"' + tail)
    with pytest.raises(AnswerError, match="lifespan"):
        parse('{"action": "create", "name": "x", "text": "", "lifespan": "7"' + tail)
    with pytest.raises(AnswerError, match="unknown action"):
        parse_answer('{"action": "create", "name": "x", "text": "", "lifespan": "10"' + tail, OPTIONS, CONFIG)


def test_forced_continuations_of_artifact_answers():
    from policies.llm.answer import forced_continuation

    assert forced_continuation('create"') == (', "name": "', False)
    assert forced_continuation('create", "name": "law"') == (', "text": "', False)
    assert forced_continuation('create", "name": "law", "text": "be kind"') == (', "lifespan": "', False)
    assert forced_continuation('create", "name": "law", "text": "be kind", "lifespan": "10') == ("", False)
    assert forced_continuation('create", "name": "law", "text": "be kind", "lifespan": "10"') == (', "message": "', False)
    assert forced_continuation('give_artifact"') == (', "artifact": "', False)
    assert forced_continuation('give_artifact", "artifact": "map"') == (', "target": "', False)
    assert forced_continuation('give_artifact", "artifact": "map", "target": "agent_1') == ("", False)
    assert forced_continuation('give_artifact", "artifact": "map", "target": "agent_1"') == (', "message": "', False)
    assert forced_continuation('modify", "artifact": "map"') == (', "text": "', False)
    assert forced_continuation('modify", "artifact": "map", "text": "new"') == (', "message": "', False)
    assert forced_continuation('destroy", "artifact": "map"') == (', "message": "', False)
    assert forced_continuation('drop", "artifact": "ma') == ("", False)


def test_prompt_settings_default_to_the_presets_condition_and_explicit_options_win():
    assert prompt_config_for("long_memory").history == 20
    assert prompt_config_for("creative").motivation == "creative"
    assert prompt_config_for("no_motivation").motivation == "none"
    assert prompt_config_for("no_personality").personality is False
    core = prompt_config_for("core")
    assert (core.history, core.motivation, core.personality) == (1, "base", True)
    assert prompt_config_for("long_memory", {"history": 3, "motivation": None}).history == 3
    assert prompt_config_for("large") == PromptConfig()  # a preset that changes nothing of the prompt
    from policies.llm.prompt import MOTIVATIONS
    from policies.llm.prompt_config import PROMPT_MOTIVATIONS

    assert set(MOTIVATIONS) == set(PROMPT_MOTIVATIONS)  # every motivation a config accepts has its sentence


# What each preset's prompt was when the prompt_* fields were the world config's (before 2026-12-07):
# the presets must prompt exactly as they did.
PROMPTS_BEFORE_THE_SPLIT = {
    "default": {}, "large": {}, "core": {}, "artifact_cost": {}, "inert": {},
    "long_memory": {"history": 20}, "abundant": {"history": 20}, "creative": {"motivation": "creative"},
    "no_motivation": {"motivation": "none"}, "no_personality": {"personality": False},
    "small": {"view": "compact", "message_chars": 16, "memory_chars": 16},
    "forage": {"personality": False, "motivation": "forage", "talk": False, "actions": "move"},
    "forage_hint": {"personality": False, "motivation": "forage", "talk": False, "actions": "move", "nearest_food": True},
}


def test_every_preset_prompts_as_it_did_when_the_world_config_held_the_prompt():
    assert set(PROMPTS_BEFORE_THE_SPLIT) == set(society_env.PRESETS) and set(PRESET_PROMPTS) <= set(society_env.PRESETS)
    for preset, fields in PROMPTS_BEFORE_THE_SPLIT.items():
        assert prompt_config_for(preset) == PromptConfig(**fields), preset


def test_the_world_config_has_no_prompt_field():
    from dataclasses import fields

    assert not [f.name for f in fields(society_env.SocietyConfig) if f.name.startswith("prompt")]
    assert not [key for overrides in society_env.PRESETS.values() for key in overrides if key.startswith("prompt")]
    with pytest.raises(ValueError, match="unknown SocietyConfig field"):
        society_env.make_config("small", prompt_view="compact")  # the prompt is not the world's


def test_set_prompt_fields_reach_the_prompt_and_the_rest_the_world():
    config, prompt = world_and_prompt("small", ["prompt_view=terralingua", "prompt_history=4", "width=20"], True)
    assert (prompt.view, prompt.history, prompt.message_chars) == ("terralingua", 4, 16)  # the preset's others stay
    assert config.width == 20 and config.language and not hasattr(config, "prompt_view")
    assert world_and_prompt("small", [], llm_agents=False)[0].language is False
    assert world_and_prompt("small", ["language=false"], llm_agents=True)[0].language is False  # said explicitly


@pytest.mark.parametrize("pair, message", [
    ("prompt_view=fancy", "prompt_view must be one of terralingua, compact, got 'fancy'"),
    ("prompt_history=0", "prompt_history must be at least 1"),
    ("prompt_history=two", "prompt_history must be an integer, got 'two'"),
    ("prompt_talk=maybe", "prompt_talk must be true or false"),
    ("prompt_motivation=greed", "prompt_motivation must be one of base, creative, forage, none"),
    ("prompt_colour=red", "unknown prompt field(s): prompt_colour"),
])
def test_a_bad_prompt_value_is_a_one_line_error_naming_the_field(pair, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        world_and_prompt("small", [pair], llm_agents=True)
    assert "\n" not in str(error.value)


def test_the_answer_length_bound_is_the_longest_answer_the_grammar_allows():
    settings = PromptConfig()
    small = society_env.make_config("small", language=True)  # 64 agent slots, amounts up to 20
    longest = 'take", "target": "agent_63", "amount": 20, "message": "' + "m" * 60 + '", "memory": "' + "n" * 80 + '"}'
    assert answer_length_bound(small, settings) == len(longest)
    parse_answer('{"action": "' + longest, Options(["agent_63"], {"agent_63": (1, 0)}, False, 50), small)  # valid

    core = society_env.make_config("core")  # artifacts: names up to 24 characters, texts capped at 80 here
    longest = ('create", "name": "' + "a" * 24 + '", "text": "' + "t" * 80 + '", "lifespan": "forever", "message": "'
               + "m" * 60 + '", "memory": "' + "n" * 80 + '"}')
    assert answer_length_bound(core, settings) == len(longest)
    assert answer_length_bound(core, PromptSettings(message_chars=10, memory_chars=10, artifact_chars=10)) == len(longest) - 50 - 70 - 70


# ---- the talk-free, move-only answer format (the forage task) -----------------------------------------

FORAGE = society_env.make_config("forage")
FORAGE_PROMPT = prompt_config_for("forage")


def test_forage_preset_asks_for_a_move_alone():
    assert (FORAGE_PROMPT.talk, FORAGE_PROMPT.actions, FORAGE_PROMPT.personality) == (False, "move", False)
    text = shared_system_prompt(FORAGE, FORAGE_PROMPT)
    assert "message" not in text and "memory" not in text and "give energy" not in text and "reproduce" not in text
    assert '{"action": "move", "direction": "north"} or {"action": "stay"}' in text and "eat as much food" in text
    assert "memory note" not in user_message("agent_0 | step 0/8", "", talk=False)


def test_move_only_grammar_offers_stay_and_moves_and_closes_after_them():
    from policies.llm.answer import forced_continuation

    options = Options(["agent_1"], {"agent_1": (1, 0)}, True, 80)  # a partner and energy to reproduce: not offered
    grammar = action_grammar(options, FORAGE, FORAGE_PROMPT)
    assert "give" not in grammar and "reproduce" not in grammar and "message" not in grammar
    assert forced_continuation('move", "direction": "east"', talk=False) == ("}", True)
    assert forced_continuation('stay"', talk=False) == ("}", True)
    assert forced_continuation('move"', talk=False) == (', "direction": "', False)
    assert forced_continuation('stay"', talk=True) == (', "message": "', False)  # the talking format unchanged
    longest = '{"action": "move", "direction": "north"}'
    assert answer_length_bound(FORAGE, FORAGE_PROMPT) == len(longest) - len('{"action": "')
    for answer, kind in (('{"action": "stay"}', STAY), ('{"action": "move", "direction": "north"}', NORTH)):
        vector, message, memory, artifact = parse_answer(answer, options, FORAGE)
        assert vector[0] == kind and message == memory == "" and artifact is None


def _view_with_food(config, cells):
    """A numeric observation whose view holds food exactly at the (d_row, d_col) offsets ``cells``."""
    from society_env.world.observations import NUM_CHANNELS, NUM_FEATURES

    size, r = config.view_size, config.view_radius
    view = np.zeros((size, size, NUM_CHANNELS), dtype=np.float32)
    for d_row, d_col in cells:
        view[r + d_row, r + d_col, 0] = 1.0
    return {"observation": np.concatenate([view.ravel(), np.zeros(NUM_FEATURES, dtype=np.float32)])}


@pytest.mark.parametrize("cells, line", [
    ([(-2, 0), (1, 1)], "Nearest food: 2 north"),                  # nearest by moves, not by listing order
    ([(2, 2), (1, -1)], "Nearest food: 1 south, 1 west"),
    ([(0, 2)], "Nearest food: 2 east"),
    ([], "Nearest food: none visible"),
])
def test_nearest_food_line_names_the_nearest_food_in_compass_words(cells, line):
    config = society_env.make_config("forage_hint")
    assert nearest_food_line(_view_with_food(config, cells), config) == line


def test_the_forage_hint_preset_adds_the_line_to_the_view_and_forage_does_not():
    hint, plain = society_env.make_config("forage_hint"), society_env.make_config("forage")
    assert prompt_config_for("forage_hint").nearest_food and not prompt_config_for("forage").nearest_food
    assert hint == plain  # the same world


def test_a_decided_word_is_forced_to_its_end():
    from policies.llm.answer import forced_continuation

    names = ("stay", "move", "give", "take", "reproduce")  # what an agent with a visible neighbour can do
    assert forced_continuation("m", names=names) == ('ove", "direction": "', False)
    assert forced_continuation("mo") == ("", False)  # move or modify, when every action is possible
    assert forced_continuation("g", names=names) == ('ive", "target": "', False)
    assert forced_continuation("g") == ("", False)  # give or give_artifact
    assert forced_continuation('move",', names=names) == (' "direction": "', False)  # a token ran into the key
    assert forced_continuation('move", "direction": "n') == ('orth", "message": "', False)
    assert forced_continuation('move", "direction": "so', talk=False) == ('uth"}', True)
    assert forced_continuation("s", talk=False, names=names) == ('tay"}', True)
    assert forced_continuation('give", "target": "agent_1', names=names) == ("", False)  # targets stay sampled


def test_compact_view_says_what_the_numeric_view_and_infos_say():
    from policies.llm.prompt import compact_view, nearest_food_line
    from society_env.world.env import SocietyEnv

    config = society_env.make_config("small", language=True, num_founders=12)
    env = SocietyEnv(config)
    observations, infos = env.reset(seed=5)
    for agent in env.agents:
        text = compact_view(observations[agent], infos[agent], config)
        head, agents_line = text.split("\n")[:2]
        assert head.startswith(f"Energy {config.initial_energy}, age 0/{config.lifespan}.")
        nearest = nearest_food_line(observations[agent], config)  # "Nearest food: 2 north, 1 east"
        if "none visible" in nearest:
            assert "Food: none seen." in head
        else:
            assert "nearest " + nearest.removeprefix("Nearest food: ").replace(",", "") + "." in head
        seen = infos[agent]["view"]["agents"]
        assert [part.split(" ")[0] for part in agents_line.removeprefix("Agents: ").split("; ")][:3] == \
            ([name for name, *_ in seen[:3]] or ["none"])
        if len(seen) > 3:
            assert agents_line.endswith(f"; {len(seen) - 3} more")
        assert "Heard" not in text  # nobody has spoken at the start
    actions = {agent: {"action": [0, 0, 0, 1], "message": f"hi from {agent}"} for agent in env.agents}
    observations, _, _, _, infos = env.step(actions)
    listener = next(agent for agent in env.agents if infos[agent]["view"]["agents"])
    heard = infos[listener]["view"]["heard"]
    assert heard and heard[0][3] == f"hi from {heard[0][0]}"
    assert f"Heard: {heard[0][0]}: hi from {heard[0][0]}" in compact_view(observations[listener], infos[listener], config)
