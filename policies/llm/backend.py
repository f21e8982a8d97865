"""One interface for every language model the project talks to, modelled on Concordia's ``LanguageModel``.

A backend is a model behind one :class:`LanguageModel` interface; the LLM policy
(:class:`policies.llm.policy.LLMPolicy`), the QES fitness and the anthropologist all use it. Two
implementations: :class:`policies.llm.local.LocalBackend` (a GGUF in this process, llama.cpp) and
:class:`policies.llm.server.ServerBackend` (OpenAI-compatible servers). What they share:

- **agent sessions**: :meth:`LanguageModel.prepare` turns an agent's chat into what the backend
  generates from (prompt tokens in-process, the messages themselves for a server);
  :meth:`LanguageModel.generate` answers a batch of agents, each constrained by its
  :class:`AnswerSpec` (the GBNF grammar, or the JSON schema where a server takes no grammar), seeded by
  the turn's ``seed_key``; a session (the agent) may keep its KV cache between steps (:meth:`release`
  drops it);
- **one-off chats**: :meth:`LanguageModel.chat` answers one conversation under a JSON schema (the
  anthropologist's tag, audit, note and novelty calls);
- **decision distributions**, where the backend can read the model's logits
  (:attr:`LanguageModel.gives_decisions`): :meth:`LanguageModel.decision_distribution` gives, for each
  turn, the exact probability of each answer whose effect needs no further choice. A backend that cannot
  raises :class:`NoLogitsError` (a capability check, not a refused inherited method).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Hashable, Sequence

from policies.llm.answer import (
    Options,
    action_grammar,
    answer_json_schema,
    available_answers,
    forced_continuation,
    whole_answer_grammar,
)
from policies.llm.engine import GenerationResult
from policies.llm.prompt_config import PromptConfig
from society_env.world.config import SocietyConfig

__all__ = ["LanguageModel", "AnswerSpec", "AgentTurn", "Answer", "LLMPolicyError", "NoLogitsError",
           "SAMPLED_DECISION"]

SAMPLED_DECISION = ("sampled",)
"""The key of :meth:`LanguageModel.decision_distribution` for answers that are not enumerated."""


class LLMPolicyError(ValueError):
    """A configuration problem of the LLM stack (not a model output problem: those never raise)."""


class NoLogitsError(LLMPolicyError):
    """The backend cannot give what was asked: it reads the model's logits, which the backend does not have."""


@dataclass(eq=False)
class AnswerSpec:
    """What one agent may answer this step (its :class:`~policies.llm.answer.Options` under the world and the
    prompt settings), in each form a backend constrains generation with; each is built when first asked for."""

    options: Options
    config: SocietyConfig
    settings: PromptConfig

    @cached_property
    def grammar(self) -> str:
        """GBNF of the answer after ``ANSWER_PREFILL`` (the in-process engine's prompt ends with the prefill)."""
        return action_grammar(self.options, self.config, self.settings)

    @cached_property
    def whole_grammar(self) -> str:
        """GBNF of the whole answer, prefill included (servers that honour a ``grammar`` field)."""
        return whole_answer_grammar(self.options, self.config, self.settings)

    @cached_property
    def json_schema(self) -> dict[str, Any]:
        """The whole answer as a JSON schema (servers that take ``response_format`` instead)."""
        return answer_json_schema(self.options, self.config, self.settings)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The actions the agent can take now (answer names)."""
        return tuple(available_answers(self.options, self.config, self.settings))

    @cached_property
    def forced(self) -> Callable[[str], tuple[str, bool]]:
        """The forced-text function of the answer: the actions it can take now decide when a word is complete."""
        return functools.partial(forced_continuation, talk=self.settings.talk, names=self.names)


@dataclass
class AgentTurn:
    """One agent's answer to generate this step."""

    agent: str
    prompt: Any
    """What the backend generates from (:meth:`LanguageModel.prepare`): prompt tokens, or chat messages."""
    messages: list[dict[str, str]]
    answer: AnswerSpec
    seed_key: tuple[int, ...]
    """(policy seed, step, agent slot): seeds the answer's sampling."""

    @property
    def options(self) -> Options:
        return self.answer.options


@dataclass
class Answer:
    """The answer of a one-off :meth:`LanguageModel.chat`."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    failure: str | None = None


class LanguageModel:
    """A language model behind the project's one interface (module docstring). Subclasses implement the
    methods; those a backend cannot offer raise (:class:`NoLogitsError` for the logit readers)."""

    label: str = "model"
    """What reports and cost readouts call the model."""
    identity: str = "model"
    """What identifies its answers (cache keys): a file's SHA-256, a server's model name."""
    chat_format: str = "model"
    """How chats become prompts: ``model`` (its own template), ``chatml``, ``plain``, ``custom``, ``server``."""
    gives_decisions: bool = False
    """Whether :meth:`decision_distribution` and :meth:`move_distribution` work (the model's logits are here)."""

    # ---- agent sessions -----------------------------------------------------------------------
    @property
    def context_tokens(self) -> int | None:
        """Context tokens per session, if the backend bounds them here (None: the server's business)."""
        return None

    def prepare(self, messages: list[dict[str, str]]) -> Any:
        """What :meth:`generate` generates from for this chat (the answer prefill included)."""
        raise NotImplementedError

    def prompt_length(self, prompt: Any) -> int | None:
        """Tokens of a prepared prompt, if known here (None: never too long for this backend)."""
        return None

    def generate(self, turns: Sequence[AgentTurn], max_tokens: int, temperature: float,
                 batched: bool = True) -> list[GenerationResult]:
        """Every turn's answer (``text`` is the whole answer, prefill included); a failed request is a result
        with ``error`` set, never an exception."""
        raise NotImplementedError

    def release(self, session: Hashable) -> None:
        """Forget a session's cached state (its agent died)."""

    def reset(self) -> None:
        """Start from an empty cache (an episode's start; after weight changes)."""

    def drop_cache(self) -> None:
        """Forget every cached session, so what follows computes what a fresh start would."""

    def costs(self, calls: int, seconds: float) -> dict[str, Any]:
        """Cost readouts for ``calls`` agent-steps that took ``seconds``: the model, tokens, tokens/s."""
        return {"model": self.label, "chat_format": self.chat_format}

    def close(self) -> None:
        pass

    # ---- one-off chats ---------------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]], schema: dict | None, max_tokens: int, temperature: float = 0.0,
             seed: int = 0) -> Answer:
        """One conversation's answer, constrained to ``schema`` (a JSON schema) when given."""
        raise NotImplementedError

    # ---- decision distributions --------------------------------------------------------------------
    def decision_distribution(self, turns: Sequence[AgentTurn], temperature: float) -> list[dict[tuple, float]]:
        """For each turn: the probability with which its answer is each action whose immediate effect needs
        no further choice (``("stay",)``, ``("reproduce",)``, ``("move", KIND)``), exact from the logits;
        the rest of the mass is :data:`SAMPLED_DECISION`."""
        raise NoLogitsError(_no_logits(self, "decision_distribution (the rao_blackwell estimator)"))

    def decided_by(self, answer: AnswerSpec, first_token: int | None) -> bool:
        """Whether an answer whose first token was ``first_token`` is one of the decisions
        :meth:`decision_distribution` enumerates."""
        raise NoLogitsError(_no_logits(self, "decided_by (the rao_blackwell estimator)"))

    def move_distribution(self, prompts: Sequence[Any], answer: AnswerSpec, temperature: float):
        """For each prepared prompt of a move-only agent: the probability of each of stay, north, south,
        west, east, ``(n, 5)``."""
        raise NoLogitsError(_no_logits(self, "move_distribution (the expected first-step fitness)"))


def _no_logits(backend: LanguageModel, what: str) -> str:
    return (f"{what} reads the model's logits, which only the in-process engine has: {type(backend).__name__} "
            "returns text alone (LLM servers: drop --llm-server)")
