"""Per-agent KV sessions of the LLM engine: what an agent's sequence keeps between steps, on a real
llama.cpp model (the tiny generated GGUF)."""

import numpy as np
import pytest

import society_env
from policies.llm.engine import GenerationRequest, LlamaEngine, ModelError
from policies.llm.policy import LlamaCppPolicy
from policies.llm.prompt import PromptSettings
from tests.tiny_gguf import write_tiny_model

ANYTHING = 'root ::= [a-z]{1,4}'


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


def prompt_logits(engine: LlamaEngine, tokens: list[int], session) -> np.ndarray:
    """Evaluate a prompt through the engine's session bookkeeping; the logits after its last token."""
    sequence, keep = engine._sequence_for(GenerationRequest(tokens, ANYTHING, (0,), session=session))
    engine._decode([(t, keep + i, sequence, keep + i == len(tokens) - 1) for i, t in enumerate(tokens[keep:])])
    if session is not None:
        engine._sessions[session].tokens = list(tokens)
    logits = engine.llama_cpp.llama_get_logits_ith(engine.ctx, -1)
    return np.ctypeslib.as_array(logits, shape=(engine.n_vocab,)).copy()


def test_a_session_reuses_its_cached_prefix_and_gives_the_logits_of_a_fresh_evaluation(tiny_model):
    engine = LlamaEngine(tiny_model, n_ctx=512, max_batch=2, n_threads=1)
    shared = engine.tokenize("You live in a grid world. You are agent_1, calm and kind.\n")
    step_1 = shared + engine.tokenize("step 1: food north", add_special=False)
    step_2 = shared + engine.tokenize("step 2: food east, agent_2 nearby", add_special=False)

    prompt_logits(engine, step_1, "agent_1")
    evaluated = engine.stats.reused_tokens
    reused = prompt_logits(engine, step_2, "agent_1")
    # only the text after the common prefix was evaluated again
    common = next(i for i, (a, b) in enumerate(zip(step_1, step_2)) if a != b)
    assert engine.stats.reused_tokens - evaluated == common >= len(shared)

    # The same computation without sessions: the common part, then the rest, in one fresh sequence.
    # (llama.cpp's last bits depend on how tokens are grouped into decodes, so that is the fair reference.)
    fresh_engine = LlamaEngine(tiny_model, n_ctx=512, max_batch=2, n_threads=1)
    fresh_engine._decode([(t, i, 1, False) for i, t in enumerate(step_2[:common])])
    fresh_engine._decode([(t, i, 1, i == len(step_2) - 1) for i, t in enumerate(step_2) if i >= common])
    fresh = np.ctypeslib.as_array(fresh_engine.llama_cpp.llama_get_logits_ith(fresh_engine.ctx, -1),
                                  shape=(fresh_engine.n_vocab,))
    np.testing.assert_array_equal(reused, fresh)
    engine.close()
    fresh_engine.close()


def test_generation_reuses_sessions_and_released_sessions_start_over(tiny_model):
    engine = LlamaEngine(tiny_model, n_ctx=256, max_batch=2, n_threads=1)
    base = engine.tokenize("Rules of the world. Agent ")
    prompts = {name: base + engine.tokenize(f"{name} sees food. Act:", add_special=False) for name in ("a", "b")}
    first = engine.generate([GenerationRequest(p, ANYTHING, (1,), session=n) for n, p in prompts.items()], 8, 0.0)
    assert all(r.finished or r.tokens_out for r in first)
    second = engine.generate([GenerationRequest(p, ANYTHING, (1,), session=n) for n, p in prompts.items()], 8, 0.0)
    # the same prompt again: a single token is evaluated (its logits are needed), the rest is cached
    assert [r.tokens_in for r in second] == [1, 1]
    assert [r.text for r in second] == [r.text for r in first]
    engine.release("a")
    evaluated, shared = engine.stats.prompt_tokens, len(engine._prefix)
    third = engine.generate([GenerationRequest(prompts["a"], ANYTHING, (1,), session="a")], 8, 0.0)
    # a's own text is evaluated again (the shared part stayed cached), and the count adds up
    assert third[0].tokens_in == engine.stats.prompt_tokens - evaluated == len(prompts["a"]) - shared
    assert shared >= len(base)
    engine.close()


def test_a_full_cache_evicts_idle_sessions_instead_of_failing(tiny_model):
    # 3 x 96 KV cells asked for (llama.cpp rounds up to 512): room for about a dozen agents
    engine = LlamaEngine(tiny_model, n_ctx=96, max_batch=2, n_threads=1)
    base = engine.tokenize("Shared rules. ")
    names = [f"agent_{i}" for i in range(30)]
    for name in names:
        request = GenerationRequest(base + engine.tokenize(f"I am {name}, with a long description.", add_special=False),
                                    ANYTHING, (2,), session=name)
        result = engine.generate([request], 4, 0.7)[0]
        assert result.error is None
    assert engine.stats.evictions > 0
    assert len(engine._sessions) < len(names)
    assert names[-1] in engine._sessions  # the most recently used survive
    engine.close()


def test_policy_evaluates_only_what_changed_and_frees_dead_agents(tiny_model):
    config = society_env.make_config("small", language=True, num_founders=4)
    policy = LlamaCppPolicy(config, model=tiny_model, n_ctx=4096, n_threads=1, temperature=0.8, max_tokens=256,
                            prompt=PromptSettings(message_chars=8, memory_chars=8))
    env = society_env.SocietyEnv(config)
    observations, infos = env.reset(seed=3)
    policy.reset(3)
    for _ in range(2):
        actions = policy.act(observations, infos)
        observations, _, _, _, infos = env.step(actions)
    # Step 2 re-uses each agent's system prompt (name, personality) and evaluates its user message only.
    calls = [e for e in policy.drain_events() if e["type"] == "llm_call"][-len(actions):]
    for call in calls:
        user_tokens = len(policy.engine.tokenize(call["user"], add_special=False))
        system_tokens = len(policy.engine.tokenize(policy.shared_prompt, add_special=False))
        assert call["tokens_in"] <= user_tokens + 32 < system_tokens, call
    survivors = dict(list(observations.items())[:2])
    policy.act(survivors, infos)
    assert set(policy.engine._sessions) == set(survivors)
    policy.engine.close()


def test_a_batch_size_smaller_than_the_sequence_count_is_a_clear_error_not_an_abort(tiny_model):
    # llama.cpp asserts (and kills the process) when n_batch < n_seq_max; the engine refuses first.
    with pytest.raises(ModelError, match="n_batch 32 must be at least the number of sequences, 65"):
        LlamaEngine(tiny_model, n_batch=32, max_sessions=64, n_threads=1)
    LlamaEngine(tiny_model, n_batch=32, max_batch=4, max_sessions=8, n_threads=1).close()
