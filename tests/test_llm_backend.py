"""The LLM policy's own logic over the backend interface (policies.llm.backend), against a mock backend: what
the policy asks of a backend, how it seeds the answers, how it reads them back. A mock is right here
because only the policy's bookkeeping is under test; the real backends are tested on real GGUFs
(test_llm_policy, test_llm_sessions, test_forage_task, test_rao_blackwell) and a real server
(test_llm_server)."""

from __future__ import annotations

import pytest

import society_env
from policies.llm.backend import AgentTurn, LanguageModel, NoLogitsError
from policies.llm.engine import GenerationResult
from policies.llm.policy import LLMPolicy
from policies.llm.prompt import example_answer
from policies.llm.prompt_config import prompt_config_for
from society_env.world.encodings import STAY
from society_env.world.names import agent_slot

FORAGE = society_env.make_config("forage")


class ScriptedBackend(LanguageModel):
    """Answers every turn with ``answer`` and remembers what it was asked; ``context`` bounds the prompt
    length (one token per character)."""

    def __init__(self, answer: str, context: int | None = None):
        self.answer, self.context = answer, context
        self.asked: list[list[AgentTurn]] = []
        self.released: list[str] = []
        self.resets = 0

    @property
    def context_tokens(self) -> int | None:
        return self.context

    def prepare(self, messages):
        return "".join(message["content"] for message in messages)

    def prompt_length(self, prompt) -> int:
        return len(prompt)

    def generate(self, turns, max_tokens, temperature, batched=True):
        self.asked.append(list(turns))
        return [GenerationResult(text=self.answer, finished=True) for _ in turns]

    def release(self, session) -> None:
        self.released.append(session)

    def reset(self) -> None:
        self.resets += 1

    def costs(self, calls, seconds):
        return {"model": "scripted", "chat_format": "none", "prompt_tokens": 0, "generated_tokens": 0}


def first_step(policy: LLMPolicy, seed: int | None):
    env = society_env.parallel_env("forage")
    observations, infos = env.reset(seed=3)
    policy.reset(seed)
    return policy.act(observations, infos), env


def test_reset_none_draws_fresh_entropy_and_a_seed_repeats_the_answers_seeds():
    stay = example_answer("stay", prompt_config_for("forage"))
    backend = ScriptedBackend(stay)
    policy = LLMPolicy(FORAGE, backend, prompt="forage")
    keys = []
    for seed in (None, None, 7, 7):
        first_step(policy, seed)
        keys.append([turn.seed_key for turn in backend.asked[-1]])
    assert keys[0] != keys[1]  # None: fresh entropy each time, as the scripted policies' reset(None)
    assert keys[2] == keys[3] and keys[2][0][0] == 7  # a seed: the same sampling seeds
    assert keys[2] == [(7, 1, agent_slot(turn.agent)) for turn in backend.asked[-1]]  # (seed, step, slot)
    assert backend.resets == 4  # every episode starts from an empty cache


def test_answers_become_actions_and_unusable_ones_stay_put_and_are_counted():
    settings = prompt_config_for("forage")
    actions, _ = first_step(LLMPolicy(FORAGE, ScriptedBackend(example_answer("move", settings, direction="north")), prompt="forage"), 0)
    assert {int(action["action"][0]) for action in actions.values()} == {1}  # move north
    policy = LLMPolicy(FORAGE, ScriptedBackend('{"action": "fly"}'), prompt="forage")
    actions, _ = first_step(policy, 0)
    assert {int(action["action"][0]) for action in actions.values()} == {STAY}
    assert policy.failures == len(actions)
    calls = [event for event in policy.drain_events() if event["type"] == "llm_call"]
    assert len(calls) == len(actions) and all(call["failure"] for call in calls)


def test_history_is_dropped_oldest_first_until_the_prompt_fits_the_backends_context():
    settings = prompt_config_for("forage", {"history": 4})
    stay = example_answer("stay", settings)
    backend = ScriptedBackend(stay)
    policy = LLMPolicy(FORAGE, backend, prompt=settings)
    env = society_env.parallel_env("forage")
    observations, infos = env.reset(seed=3)
    policy.reset(0)
    for _ in range(3):
        policy.act(observations, infos)
        observations, _, _, _, infos = env.step({agent: {"action": [STAY, 0, 0, 0], "message": ""} for agent in env.agents})
    agent = env.agents[0]
    full = backend.prepare(policy.build_messages(agent, observations[agent], info=infos[agent]))
    backend.context = len(full) + policy.max_tokens - 1  # one token short of the whole history
    prompt, messages = policy.prepared_prompt(agent, observations[agent], infos[agent])
    assert len(messages) == 1 + 2 * 2 + 1  # system, two of the three past turns, this step
    backend.context = 10
    with pytest.raises(ValueError, match="even without history; raise n_ctx"):
        policy.prepared_prompt(agent, observations[agent], infos[agent])


def test_dead_agents_sessions_are_released_and_a_backend_without_logits_says_so():
    backend = ScriptedBackend(example_answer("stay", prompt_config_for("forage")))
    policy = LLMPolicy(FORAGE, backend, prompt="forage")
    _, env = first_step(policy, 0)
    assert policy.act({}, {}) == {} and sorted(backend.released) == sorted(env.agents)  # nobody left: every session goes
    with pytest.raises(NoLogitsError, match="only the in-process engine"):
        policy.move_distribution([])
