"""LLM agents: a language model (any :class:`policies.llm.backend.LanguageModel`) chooses each agent's
action from its text view.

Per step, for every agent this policy drives: build the chat (shared system prompt, agent name and
personality, optional history, the observation and the agent's own memory note), the answer it may give
(the actions available to that agent: :class:`~policies.llm.backend.AnswerSpec`), have the backend
generate a constrained JSON answer, and turn it into an env action. A failed answer never crashes the
run: the agent stays put, and the failure is counted and logged with the raw text.

:class:`LLMPolicy` is the one policy over a backend; :class:`LlamaCppPolicy` builds it on a GGUF in this
process (:class:`policies.llm.local.LocalBackend`), :class:`policies.llm.server.ServerPolicy` on
OpenAI-compatible servers. The policy keeps no state of anyone else's: a caller that wants each agent's
decision distribution asks the backend with the step's turns (:meth:`LLMPolicy.begin_step`,
:meth:`LLMPolicy.answer`), as the QES fitness does.

Sampling seeds derive from (policy seed, step, agent slot), so a run is reproducible; ``reset(None)``
draws a fresh policy seed, as the scripted policies do.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.base import make_action
from policies.llm.answer import AnswerError, Options, answer_length_bound, parse_answer
from policies.llm.backend import SAMPLED_DECISION, AgentTurn, AnswerSpec, LanguageModel, LLMPolicyError
from policies.llm.engine import GenerationResult, LlamaEngine, ModelError
from policies.llm.local import MOVE_KINDS, LocalBackend
from policies.llm.prompt_config import PromptConfig, prompt_config_for
from policies.llm.prompt import (
    PromptSettings,
    agent_system_prompt,
    compact_view,
    nearest_food_line,
    read_options,
    shared_system_prompt,
    user_message,
)
from society_env.world.config import SocietyConfig
from society_env.world.encodings import ACTION_VECTOR_LENGTH
from society_env.world.names import agent_slot
from society_env.world.observations import split_observation

__all__ = ["LLMPolicy", "LlamaCppPolicy", "LLMPolicyError", "ModelError", "PromptConfig", "PromptSettings", "AgentOutcome",
           "MOVE_KINDS", "SAMPLED_DECISION", "default_context"]

DEFAULT_CONTEXT_TOKENS = 1280
LONG_CONTEXT_TOKENS = 2048
"""Context per agent in worlds whose prompt also explains artifacts or carries history."""


def default_context(config: SocietyConfig, settings: PromptConfig) -> int:
    """Context tokens per agent when none is given: 1280, or 2048 when the prompt also explains artifacts
    or carries history (the TerraLingua conditions), so the default model fits without options. Room for
    the prompt (~750 tokens in `small`, more in a crowd) plus the longest answer (212 tokens there); the
    cache size costs memory (~23 KB per token with the default model), not speed."""
    return LONG_CONTEXT_TOKENS if config.artifacts or settings.history > 1 else DEFAULT_CONTEXT_TOKENS


@dataclass
class AgentOutcome:
    """One agent's answer this step, as :meth:`LLMPolicy.answer` turned it into an action."""

    turn: AgentTurn
    result: GenerationResult
    action: Any
    failure: str | None
    """Why the answer could not be used (the agent stays put), or None."""


class LLMPolicy:
    """Drives agents with a language model behind ``backend`` (see the module docstring).

    Arguments: ``config`` (the world; it needs ``language=True``), ``backend`` (a
    :class:`~policies.llm.backend.LanguageModel`), ``temperature`` (0 = greedy), ``max_tokens`` (generation
    cap per answer; default: the longest answer the grammar allows, so no valid answer is cut off),
    ``prompt`` (a :class:`~policies.llm.prompt_config.PromptConfig`, or the name of the preset whose
    prompt to use, e.g. ``"forage"``: :func:`~policies.llm.prompt_config.prompt_config_for`; default:
    ``PromptConfig()``, TerraLingua's core condition), ``batched`` (False = one agent at a time, where the backend batches).
    """

    name = "llm"

    def __init__(self, config: SocietyConfig, backend: LanguageModel, temperature: float = 0.7,
                 max_tokens: int | None = None, prompt: PromptConfig | str | None = None, batched: bool = True):
        self.config = config
        self.settings = checked_settings(config, prompt, temperature=temperature, max_tokens=max_tokens)
        self.temperature = temperature
        self.batched = batched
        self.max_tokens = max_tokens or answer_length_bound(config, self.settings) + 1  # + the end token
        self.backend = backend
        self.shared_prompt = shared_system_prompt(config, self.settings)
        self.seed = 0
        self.step = 0
        self.memory: dict[str, str] = {}
        self.history: dict[str, deque] = defaultdict(lambda: deque(maxlen=max(self.settings.history - 1, 0)))
        self.failures = 0
        self.calls = 0
        self.seconds = 0.0
        self._events: list[dict[str, Any]] = []
        self._announced: set[str] = set()
        self._acting: set[str] = set()
        self._step_started = 0.0

    @property
    def chat_format(self) -> str:
        return self.backend.chat_format

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: an empty cache, no memories; ``seed`` None draws a fresh one (OS entropy)."""
        self.backend.reset()
        self.seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
        self.step = 0
        self.memory.clear()
        self.history.clear()
        self._announced.clear()
        self._acting.clear()

    # ---- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What a run checkpoint keeps of this policy: the sampling seed and step (the sampling seeds
        derive from them), each agent's memory note and history, and the counters. Plain data."""
        return {"seed": self.seed, "step": self.step, "memory": dict(self.memory),
                "history": {agent: list(turns) for agent, turns in self.history.items()},
                "failures": self.failures, "calls": self.calls, "seconds": self.seconds,
                "announced": sorted(self._announced), "acting": sorted(self._acting)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (after :meth:`reset`: the KV cache is empty)."""
        self.seed, self.step, self.memory = state["seed"], state["step"], dict(state["memory"])
        self.history.clear()
        for agent, turns in state["history"].items():
            self.history[agent].extend(tuple(turn) for turn in turns)
        self.failures, self.calls, self.seconds = state["failures"], state["calls"], state["seconds"]
        self._announced, self._acting = set(state["announced"]), set(state["acting"])

    def drop_cache(self) -> None:
        """Forget the cached KV of every agent. A run does it at each checkpoint, so that a run resumed
        from the checkpoint (which starts with an empty cache) computes exactly what the uninterrupted
        run computes from there on."""
        self.backend.drop_cache()

    # ---- prompting ----------------------------------------------------------------------------
    def build_messages(self, agent: str, observation: Any, history_turns: int | None = None,
                       info: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """The chat of one agent-step; ``info`` (the env's ``infos[agent]``) is needed for the compact view."""
        _, features = split_observation(observation, self.config)
        system = self.shared_prompt + agent_system_prompt(agent, features[4:], self.settings)
        messages = [{"role": "system", "content": system}]
        turns = list(self.history[agent])
        if history_turns is not None:
            turns = turns[len(turns) - history_turns :] if history_turns else []
        for past_user, past_answer in turns:
            messages.append({"role": "user", "content": past_user})
            messages.append({"role": "assistant", "content": past_answer})
        compact = self.settings.view == "compact"
        text = compact_view(observation, info or {}, self.config) if compact else observation["text"]
        if self.settings.nearest_food and not compact:  # the compact view names the nearest food already
            text += "\n" + nearest_food_line(observation, self.config)
        messages.append({"role": "user", "content": user_message(text, self.memory.get(agent, ""), self.settings.talk,
                                                                 compact)})
        return messages

    def prepared_prompt(self, agent: str, observation: Any, info: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, str]]]:
        """(what the backend generates from, the chat messages) of the agent's prompt; drops history turns
        (oldest first) until it fits the backend's context per agent."""
        turns = len(self.history[agent])
        while True:
            messages = self.build_messages(agent, observation, turns, info)
            prompt = self.backend.prepare(messages)
            length, context = self.backend.prompt_length(prompt), self.backend.context_tokens
            if length is None or context is None or length + self.max_tokens <= context:
                return prompt, messages
            if turns == 0:
                raise LLMPolicyError(
                    f"{agent}'s prompt needs {length} tokens + {self.max_tokens} to generate, more than the "
                    f"context of {context} tokens per agent even without history; raise n_ctx"
                )
            turns -= 1

    def answer_spec(self, options: Options) -> AnswerSpec:
        """What an agent with ``options`` may answer, under this policy's world and prompt settings."""
        return AnswerSpec(options, self.config, self.settings)

    # ---- acting -------------------------------------------------------------------------------
    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        turns = self.begin_step(observations, infos)
        return {outcome.turn.agent: outcome.action for outcome in self.answer(turns)}

    def begin_step(self, observations: dict[str, Any], infos: dict[str, dict]) -> list[AgentTurn]:
        """Start a step: forget the agents that died since the last one, and build every acting agent's turn
        (its prompt and what it may answer). :meth:`answer` then generates them."""
        self.step += 1
        agents = list(observations)
        for gone in self._acting - set(agents):  # died since last step: free its KV cache session
            self.backend.release(gone)
        self._acting = set(agents)
        self._step_started = time.perf_counter()
        return [self._turn(agent, observations[agent], infos.get(agent) or {}) for agent in agents]

    def answer(self, turns: list[AgentTurn]) -> list[AgentOutcome]:
        """Every turn's answer from the backend, turned into its action (with the agent's memory, history,
        the ``llm_call`` event and the counters)."""
        if not turns:
            return []
        results = self.backend.generate(turns, self.max_tokens, self.temperature, batched=self.batched)
        outcomes = [self._finish(turn, result) for turn, result in zip(turns, results)]
        self.calls += len(turns)
        self.seconds += time.perf_counter() - self._step_started
        return outcomes

    def _turn(self, agent: str, observation: Any, info: dict[str, Any]) -> AgentTurn:
        """What one agent's answer this step needs: its prompt and what it can do now."""
        if "view" not in info:
            raise LLMPolicyError(f"no infos[{agent!r}]['view']: pass the env's infos to act() (language=True)")
        prompt, messages = self.prepared_prompt(agent, observation, info)
        options = read_options(info["view"], info["energy"], self.config)
        if agent not in self._announced:
            self._announced.add(agent)
            self._events.append({"type": "llm_system_prompt", "agent": agent, "text": messages[0]["content"]})
        return AgentTurn(agent, prompt, messages, self.answer_spec(options), (self.seed, self.step, agent_slot(agent)))

    def _finish(self, turn: AgentTurn, result: GenerationResult) -> AgentOutcome:
        """The env action of an answer (stay, counted as a failure, when it is missing or invalid), the
        agent's memory and history, and the ``llm_call`` event."""
        agent = turn.agent
        failure = result.error
        if failure is None and not result.finished:
            failure = f"answer cut off after {result.tokens_out} tokens (max_tokens {self.max_tokens})"
        vector, message, memory, artifact = np.zeros(ACTION_VECTOR_LENGTH, np.int64), "", self.memory.get(agent, ""), None
        if failure is None:
            try:
                vector, message, memory, artifact = parse_answer(result.text, turn.options, self.config)
            except AnswerError as error:
                failure = str(error)
        if failure is not None:
            self.failures += 1
        if message and self.config.message_vocab_size > 1:
            vector[3] = 1
        self.memory[agent] = memory[: self.settings.memory_chars]
        user_text = turn.messages[-1]["content"]
        if self.settings.history > 1:
            self.history[agent].append((user_text, result.text))
        self._events.append({
            "type": "llm_call", "agent": agent, "user": user_text, "completion": result.text,
            "tokens_in": result.tokens_in, "tokens_out": result.tokens_out, "seconds": round(result.seconds, 4),
            "failure": failure,
        })
        return AgentOutcome(turn, result, make_action(self.config, *vector.tolist(), text=message, artifact=artifact),
                            failure)

    # ---- exact decision probabilities (backends with logits) ------------------------------------
    def move_distribution(self, observations: list[tuple[str, Any]]) -> np.ndarray:
        """The probability with which this policy's next answer is each of ``MOVE_KINDS`` (stay, north,
        south, west, east), for each ``(agent, observation)``: ``(n, 5)``, rows summing to 1, exact from
        the backend's logits (:meth:`policies.llm.local.LocalBackend.move_distribution`). Needs
        ``actions="move"`` prompt settings (an answer with give/take/reproduce would need targets and
        amounts too) and a backend with logits."""
        if self.settings.actions != "move":
            raise LLMPolicyError("move_distribution needs the move-only action set (prompt actions='move')")
        prompts = [self.prepared_prompt(agent, observation)[0] for agent, observation in observations]
        return self.backend.move_distribution(prompts, self.answer_spec(Options([], {}, False, 0)), self.temperature)

    # ---- readouts -----------------------------------------------------------------------------
    def drain_events(self) -> list[dict[str, Any]]:
        """Events for the recording since the last call (system prompts, one ``llm_call`` per agent-step)."""
        events, self._events = self._events, []
        return events

    def cost_summary(self) -> dict[str, Any]:
        """Per-run costs: agent-steps, failures, time and tokens (per agent-step), and the backend's own
        readouts (:meth:`~policies.llm.backend.LanguageModel.costs`)."""
        calls, seconds = self.calls, self.seconds
        costs = self.backend.costs(calls, seconds)

        def per_step(total: float) -> float:
            return round(total / calls, 1) if calls else 0.0

        return {
            "agent_steps": calls,
            "failures": self.failures,
            **costs,
            "tokens_in_per_agent_step": per_step(costs["prompt_tokens"]),
            "tokens_out_per_agent_step": per_step(costs["generated_tokens"]),
            "seconds_per_agent_step": round(seconds / calls, 4) if calls else 0.0,
            "agent_steps_per_second": round(calls / seconds, 3) if seconds else 0.0,
        }

    def close(self) -> None:
        self.backend.close()


def checked_settings(config: SocietyConfig, prompt: PromptConfig | str | None, **numbers: Any) -> PromptConfig:
    """The prompt of an LLM policy (``prompt``, a preset's name or the defaults), after checking the world
    and the numeric options; :class:`LLMPolicyError` naming the first problem."""
    if not config.language:
        raise LLMPolicyError("the LLM policy reads text observations: create the env with language=True")
    for option in ("batch_size", "n_ctx", "n_threads", "max_tokens"):
        value = numbers.get(option)
        if value is not None and value < 1:
            raise LLMPolicyError(f"{option} must be at least 1, got {value}")
    if numbers.get("temperature", 0) < 0:
        raise LLMPolicyError(f"temperature must be >= 0 (0 = greedy), got {numbers['temperature']}")
    if prompt is None:
        return PromptConfig()
    if isinstance(prompt, str):
        try:
            return prompt_config_for(prompt)
        except ValueError as error:
            raise LLMPolicyError(str(error)) from None
    if not isinstance(prompt, PromptConfig):  # its fields were checked when it was made
        raise LLMPolicyError(f"prompt must be a PromptConfig or a preset name, got {type(prompt).__name__}")
    return prompt


class LlamaCppPolicy(LLMPolicy):
    """:class:`LLMPolicy` on a GGUF run by llama.cpp in this process (:class:`~policies.llm.local.LocalBackend`).

    Arguments: ``model`` (a registry name or GGUF path, :func:`policies.llm.models.resolve_model`;
    ``None`` = the embedded default SmolLM2-135M-Instruct), ``n_ctx`` (context tokens per agent; default
    :func:`default_context`), ``n_threads``, ``n_gpu_layers`` (passed to llama.cpp), ``chat_format``
    (``chatml``, ``plain`` or a Jinja template; default: the model's own), ``batch_size`` (agents per
    llama.cpp batch), ``engine`` (share a loaded :class:`LlamaEngine`), and :class:`LLMPolicy`'s
    ``temperature``, ``max_tokens``, ``prompt`` and ``batched``.
    """

    def __init__(
        self,
        config: SocietyConfig,
        model: str | Path | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        temperature: float = 0.7,
        chat_format: str | None = None,
        batch_size: int = 8,
        batched: bool = True,
        max_tokens: int | None = None,
        prompt: PromptConfig | str | None = None,
        engine: LlamaEngine | None = None,
    ):
        settings = checked_settings(config, prompt, batch_size=batch_size, n_ctx=n_ctx, n_threads=n_threads,
                                    max_tokens=max_tokens, temperature=temperature)
        backend = LocalBackend(model, n_ctx=n_ctx or default_context(config, settings), n_threads=n_threads,
                               n_gpu_layers=n_gpu_layers, max_batch=batch_size if batched else 1,
                               chat_format=chat_format, engine=engine)
        super().__init__(config, backend, temperature=temperature, max_tokens=max_tokens, prompt=settings,
                         batched=batched)

    @property
    def engine(self) -> LlamaEngine:
        """The llama.cpp engine of this policy's backend."""
        return self.backend.engine
