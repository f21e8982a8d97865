"""LLM agents: a local GGUF model run by llama.cpp chooses each agent's action from its text view.

Per step, for every agent this policy drives: build the chat (shared system prompt, agent name and
personality, optional history, the observation and the agent's own memory note), build a grammar
from the actions available to that agent, generate a constrained JSON answer, and turn it into an
env action. All agents of the step are generated together in one llama.cpp context (batched), or
one after the other (``batched=False``). A failed answer never crashes the run: the agent stays put,
and the failure is counted and logged with the raw text.

Sampling seeds derive from (policy seed, step, agent index), so a run is reproducible.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policies.base import make_action
from policies.llm.engine import GenerationRequest, GenerationResult, LlamaEngine, ModelError
from policies.llm.answer import (
    ANSWER_PREFILL,
    ANSWERS,
    DECIDED_ANSWERS,
    DIRECTION_KINDS,
    AnswerError,
    Options,
    action_grammar,
    answer_head,
    answer_length_bound,
    available_answers,
    forced_continuation,
    parse_answer,
)
from policies.llm.prompt import (
    MOTIVATIONS,
    PromptSettings,
    agent_system_prompt,
    compact_view,
    nearest_food_line,
    read_options,
    shared_system_prompt,
    user_message,
)
from policies.llm.models import resolve_model
from society_env.world.config import SocietyConfig
from society_env.world.names import agent_slot
from society_env.world.observations import split_observation
from society_env.world.encodings import ACTION_VECTOR_LENGTH, STAY

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)
"""Used for models without a chat template (and no ``chat_format`` override)."""
CHAT_FORMATS = {"chatml": CHATML_TEMPLATE, "plain": PLAIN_TEMPLATE}


MOVE_KINDS = (STAY, *DIRECTION_KINDS.values())
"""The answers of the move-only action set (stay, north, south, west, east), in the column order of
:meth:`LlamaCppPolicy.move_distribution`."""
SAMPLED_DECISION = ("sampled",)
"""The key of :meth:`LlamaCppPolicy.decision_distribution` for answers that are not enumerated."""


def _fitting(piece: str, texts: list[str], deeper: bool = False) -> int:
    """The index of the one text of ``texts`` that a token's ``piece`` begins (with ``deeper``: or runs
    past), -1 when none or several fit: which answer word a sampled token decides."""
    fits = [index for index, text in enumerate(texts) if text.startswith(piece) or (deeper and piece.startswith(text))]
    return fits[0] if len(fits) == 1 else -1


def _allowed_softmax(logits: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax(logits / temperature) over the ``allowed`` tokens (zero elsewhere); greedy
    (one-hot on the best allowed token) at temperature 0, as the engine samples."""
    masked = np.where(allowed, logits.astype(np.float64), -np.inf)
    if temperature <= 0:
        result = np.zeros_like(masked)
        result[np.arange(len(masked)), np.argmax(masked, axis=1)] = 1.0
        return result
    scaled = masked / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


@dataclass
class Turn:
    """One agent's answer to generate this step."""

    agent: str
    prompt: Any
    """What the backend generates from: the prompt's tokens (in-process) or the chat messages (servers)."""
    messages: list[dict[str, str]]
    options: Any
    """:class:`policies.llm.answer.Options`: what the agent can do now."""
    seed_key: tuple[int, ...]
    """(policy seed, step, agent slot): seeds the answer's sampling."""


class LLMPolicyError(ValueError):
    """A configuration problem of the LLM policy (not a model output problem: those never raise)."""


DEFAULT_CONTEXT_TOKENS = 1280
LONG_CONTEXT_TOKENS = 2048
"""Context per agent in worlds whose prompt also explains artifacts or carries history."""


def default_context(config: SocietyConfig, settings: PromptSettings) -> int:
    """Context tokens per agent when none is given: 1280, or 2048 when the prompt also explains artifacts
    or carries history (the TerraLingua conditions), so the default model fits without options. Room for
    the prompt (~750 tokens in `small`, more in a crowd) plus the longest answer (212 tokens there); the
    cache size costs memory (~23 KB per token with the default model), not speed."""
    return LONG_CONTEXT_TOKENS if config.artifacts or settings.history > 1 else DEFAULT_CONTEXT_TOKENS


class LlamaCppPolicy:
    """Drives agents with a GGUF model through llama-cpp-python (see the module docstring).

    Arguments: ``model`` (GGUF path; ``None`` = the embedded default SmolLM2-135M-Instruct), ``n_ctx``
    (context tokens per agent; default :func:`default_context`), ``n_threads``, ``n_gpu_layers`` (passed to llama.cpp), ``temperature``
    (0 = greedy), ``chat_format`` (``chatml``, ``plain`` or a Jinja template; default: the model's own),
    ``batch_size`` (agents per llama.cpp batch), ``batched`` (False = one agent at a time),
    ``max_tokens`` (generation cap per answer; default: the longest answer the grammar allows, so no valid
    answer is cut off), ``prompt`` (:class:`PromptSettings`; default: the world
    config's ``prompt_*`` fields, i.e. the preset's TerraLingua condition), ``engine`` (share a loaded
    :class:`LlamaEngine`).
    """

    name = "llm"

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
        prompt: PromptSettings | None = None,
        engine: LlamaEngine | None = None,
    ):
        if not config.language:
            raise LLMPolicyError("the LLM policy reads text observations: create the env with language=True")
        for option, value in (("batch_size", batch_size), ("n_ctx", n_ctx), ("n_threads", n_threads),
                              ("max_tokens", max_tokens)):
            if value is not None and value < 1:
                raise LLMPolicyError(f"{option} must be at least 1, got {value}")
        if temperature < 0:
            raise LLMPolicyError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        self.config = config
        self.temperature = temperature
        self.batched = batched
        self.settings = prompt or PromptSettings.from_config(config)  # the preset's condition by default
        if self.settings.motivation not in MOTIVATIONS:
            raise LLMPolicyError(f"unknown motivation {self.settings.motivation!r}; use {', '.join(MOTIVATIONS)}")
        if self.settings.actions not in ("all", "move"):
            raise LLMPolicyError(f"unknown action set {self.settings.actions!r}; use all or move")
        self.max_tokens = max_tokens or answer_length_bound(config, self.settings) + 1  # + the end token
        if n_ctx is None:
            n_ctx = default_context(config, self.settings)
        self._start_backend(model=model, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                            batch_size=batch_size, chat_format=chat_format, engine=engine)
        self.shared_prompt = shared_system_prompt(config, self.settings)
        self.track_decisions = False
        """When True, :meth:`act` also reads each agent's decision distribution into :attr:`decisions`."""
        self.decisions: dict[str, dict[tuple, float]] = {}
        self.decided: dict[str, bool] = {}
        """Per agent of the last step: whether its sampled answer was one of the enumerated decisions."""
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

    # ---- set-up -------------------------------------------------------------------------------
    def _start_backend(self, model, n_ctx: int, n_threads, n_gpu_layers: int, batch_size: int, chat_format,
                       engine: LlamaEngine | None) -> None:
        """The in-process llama.cpp engine (loaded here unless one is shared) and the chat formatter."""
        if engine is None:
            engine = LlamaEngine(resolve_model(model), n_ctx=n_ctx, max_batch=batch_size if self.batched else 1,
                                 n_threads=n_threads, n_gpu_layers=n_gpu_layers)
        self.engine = engine
        self.formatter = self._make_formatter(chat_format)

    def _make_formatter(self, chat_format: str | None):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if chat_format:
            template = CHAT_FORMATS.get(chat_format, chat_format)
            self.chat_format = chat_format if chat_format in CHAT_FORMATS else "custom"
        else:
            template = self.engine.chat_template()
            self.chat_format = "model"
            if not template:
                template, self.chat_format = PLAIN_TEMPLATE, "plain (model has no chat template)"
        eos = self.engine.token_text(self.engine.llama_cpp.llama_vocab_eos(self.engine.vocab))
        bos = self.engine.token_text(self.engine.llama_cpp.llama_vocab_bos(self.engine.vocab))
        try:
            return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        except Exception as error:  # jinja2 raises several types for bad templates
            raise LLMPolicyError(f"invalid chat template: {error}") from None

    def reset(self, seed: int | None = None) -> None:
        self._reset_backend()
        self.seed = 0 if seed is None else int(seed)
        self.step = 0
        self.memory.clear()
        self.history.clear()
        self._announced.clear()
        self._acting.clear()

    def _reset_backend(self) -> None:
        # llama.cpp's numbers depend (in the last bits) on how tokens were grouped into batches, so a
        # run starts from an empty KV cache: its computation then depends on the run alone.
        self.engine.reset()

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
        self.engine.reset()

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

    def prompt_tokens(self, agent: str, observation: Any, info: dict[str, Any] | None = None) -> tuple[list[int], list[dict[str, str]]]:
        """Tokens of the agent's prompt; drops history turns (oldest first) until it fits the context."""
        turns = len(self.history[agent])
        while True:
            messages = self.build_messages(agent, observation, turns, info)
            prompt = self.formatter(messages=messages).prompt + ANSWER_PREFILL
            tokens = self.engine.tokenize(prompt, add_special=True)
            if len(tokens) + self.max_tokens <= self.engine.n_ctx_per_sequence:
                return tokens, messages
            if turns == 0:
                raise LLMPolicyError(
                    f"{agent}'s prompt needs {len(tokens)} tokens + {self.max_tokens} to generate, more than the "
                    f"context of {self.engine.n_ctx_per_sequence} tokens per agent even without history; raise n_ctx"
                )
            turns -= 1

    # ---- acting -------------------------------------------------------------------------------
    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        self.step += 1
        agents = list(observations)
        for gone in self._acting - set(agents):  # died since last step: free its KV cache session
            self._forget(gone)
        self._acting = set(agents)
        if not agents:
            return {}
        started = time.perf_counter()
        turns = [self._turn(agent, observations[agent], infos.get(agent) or {}) for agent in agents]
        results = self._complete(turns)
        actions = {turn.agent: self._finish(turn, result) for turn, result in zip(turns, results)}
        self.calls += len(agents)
        self.seconds += time.perf_counter() - started
        return actions

    def _turn(self, agent: str, observation: Any, info: dict[str, Any]) -> "Turn":
        """What one agent's answer this step needs: its prompt and what it can do now."""
        if "view" not in info:
            raise LLMPolicyError(f"no infos[{agent!r}]['view']: pass the env's infos to act() (language=True)")
        prompt, messages = self._prompt(agent, observation, info)
        options = read_options(info["view"], info["energy"], self.config)
        if agent not in self._announced:
            self._announced.add(agent)
            self._events.append({"type": "llm_system_prompt", "agent": agent, "text": messages[0]["content"]})
        return Turn(agent, prompt, messages, options, (self.seed, self.step, agent_slot(agent)))

    def _prompt(self, agent: str, observation: Any, info: dict[str, Any]) -> tuple[Any, list[dict[str, str]]]:
        """(what the backend generates from, the chat messages): here the prompt's tokens."""
        return self.prompt_tokens(agent, observation, info)

    def _forget(self, agent: str) -> None:
        self.engine.release(agent)

    def _complete(self, turns: list["Turn"]) -> list[GenerationResult]:
        """Every turn's answer from the in-process engine, batched; ``text`` is the whole answer."""
        requests = [GenerationRequest(turn.prompt, action_grammar(turn.options, self.config, self.settings),
                                      turn.seed_key, self._forced_for(turn.options), session=turn.agent)
                    for turn in turns]
        if self.track_decisions:
            self._read_decisions(turns)
        if self.batched:
            results = self.engine.generate(requests, self.max_tokens, self.temperature)
        else:
            results = [self.engine.generate([request], self.max_tokens, self.temperature)[0] for request in requests]
        for result in results:
            result.text = ANSWER_PREFILL + result.text
        return results

    def _finish(self, turn: "Turn", result: GenerationResult) -> Any:
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
        if self.track_decisions:  # a failed answer stays put whatever it chose: its effect is only known sampled
            self.decided[agent] = failure is None and self.decided_by(turn.options, result.first_token)
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
        return make_action(self.config, *vector.tolist(), text=message, artifact=artifact)

    def _forced_for(self, options: Options):
        """The forced-text function of one agent's answer: the actions it can take now decide when a
        word is complete (``forced_continuation``'s ``names``)."""
        names = tuple(available_answers(options, self.config, self.settings))
        return functools.partial(forced_continuation, talk=self.settings.talk, names=names)

    # ---- exact decision probabilities (for low-variance fitness) ------------------------------
    def _read_decisions(self, turns: list["Turn"]) -> None:
        """Each turn's decision distribution (:meth:`decision_distribution`) into :attr:`decisions`, read
        from the logits of its prompt before the answer is sampled. The prompt's KV stays in the agent's
        session, so the answer's generation re-evaluates one token of it."""
        self.decisions = dict(zip((turn.agent for turn in turns),
                                  self.decision_distribution([(turn.agent, turn.prompt, turn.options) for turn in turns])))

    def decision_distribution(self, turns: list[tuple[str, list[int], Options]]) -> list[dict[tuple, float]]:
        """For each ``(agent, prompt tokens, options)``: the probability with which its answer is each
        action whose immediate effect needs no further choice (``llm_answer.DECIDED_ANSWERS``):
        ``("stay",)``, ``("reproduce",)`` and ``("move", KIND)`` for each direction KIND, exact from the
        logits. The rest of the mass (give, take, artifact actions, and first tokens that do not decide an
        action alone) is :data:`SAMPLED_DECISION`: those answers are only known by sampling.

        Why this is exact: an answer's first token decides its action (or not), and the engine then
        writes the action's head (``answer_head``: ``move", "direction": "``) in canonical tokens whatever
        that token was (``LlamaEngine._write_decided``), so the direction is one more softmax over the
        tokens the grammar allows after that head (:meth:`_direction_probabilities`). Both softmaxes are
        what the engine samples from (its lazy grammar check renormalises over the allowed tokens)."""
        if not turns:
            return []
        requests = [GenerationRequest(prompt, "", (), session=agent) for agent, prompt, _ in turns]
        first = self.engine.next_token_logits(requests)
        moving = [k for k, (_, _, options) in enumerate(turns) if "move" in available_answers(options, self.config, self.settings)]
        head = self._head_tokens("move")
        p_directions = self._direction_probabilities([GenerationRequest(turns[k][1] + head, "", (), session=turns[k][0])
                                                      for k in moving]) if moving else None
        unchosen = [name for name in DECIDED_ANSWERS if not ANSWERS[name]]  # stay, reproduce: decided by their name
        results = []
        for k, (_, _, options) in enumerate(turns):
            mask, decided = self._first_tokens(options)
            p_first = _allowed_softmax(first[k : k + 1], mask, self.temperature)[0]
            distribution: dict[tuple, float] = {}
            for name in unchosen:
                if np.any(decided == DECIDED_ANSWERS.index(name)):
                    distribution[(name,)] = float(p_first[decided == DECIDED_ANSWERS.index(name)].sum())
            if k in moving:
                p_move = float(p_first[decided == DECIDED_ANSWERS.index("move")].sum())
                for column, kind in enumerate(DIRECTION_KINDS.values()):
                    distribution[("move", kind)] = p_move * float(p_directions[moving.index(k), column])
            distribution[SAMPLED_DECISION] = max(0.0, 1.0 - sum(distribution.values()))
            results.append(distribution)
        return results

    def decided_by(self, options: Options, first_token: int | None) -> bool:
        """Whether an answer whose first token was ``first_token`` is one of the decisions
        :meth:`decision_distribution` enumerates (else its effect counts as :data:`SAMPLED_DECISION`)."""
        if first_token is None:
            return False
        names = tuple(available_answers(options, self.config, self.settings))
        return self.__dict__.get("_first_token_classes", {}).get(names, {}).get(first_token, -1) >= 0

    def _head_tokens(self, name: str) -> list[int]:
        """Canonical tokens of an action's head (``llm_answer.answer_head``: its name and the forced text up
        to its first value), as the engine writes them after any first token that decides the action."""
        return self.engine.text_tokens(answer_head(name, self.settings.talk))

    def _grammar_mask(self, options: Options, accepted: str = "") -> np.ndarray:
        """The tokens this agent's grammar allows after the answer text ``accepted``."""
        engine, llama_cpp = self.engine, self.engine.llama_cpp
        grammar_text = action_grammar(options, self.config, self.settings)
        grammar = llama_cpp.llama_sampler_init_grammar(engine.vocab, grammar_text.encode(), b"root")
        try:
            engine.accept_text(grammar, accepted)
            return engine.grammar_mask(grammar)
        finally:
            llama_cpp.llama_sampler_free(grammar)

    def _first_tokens(self, options: Options) -> tuple[np.ndarray, np.ndarray]:
        """(tokens this agent's grammar allows first, and for each the index in ``DECIDED_ANSWERS`` of the
        action it decides, -1 if none). A token decides an action when its text fits the head of exactly
        that one of the agent's actions (a token running deeper than the head decides nothing). The mask is
        read from this agent's own grammar (a token may run into a target name it allows); token classes
        are cached per action set."""
        mask = self._grammar_mask(options)
        names = tuple(available_answers(options, self.config, self.settings))
        classes = self.__dict__.setdefault("_first_token_classes", {}).setdefault(names, {})
        heads = None
        decided = np.full(self.engine.n_vocab, -1)
        for token in np.flatnonzero(mask).tolist():
            if token not in classes:
                if heads is None:
                    heads = [answer_head(name, self.settings.talk) for name in names]
                fit = _fitting(self.engine.piece(token).decode("utf-8", "replace"), heads)
                classes[token] = DECIDED_ANSWERS.index(names[fit]) if fit >= 0 and names[fit] in DECIDED_ANSWERS else -1
            decided[token] = classes[token]
        return mask, decided

    def _direction_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Tokens allowed after the move head, and the action kind (``DIRECTION_KINDS``) of the one direction
        word each token fits (a direction's first letters decide it: the engine writes the rest). Cached."""
        if getattr(self, "_direction_cache", None) is None:
            mask = self._grammar_mask(Options([], {}, False, 0), answer_head("move", self.settings.talk))
            words = list(DIRECTION_KINDS)
            kind = np.full(self.engine.n_vocab, -1)
            for token in np.flatnonzero(mask).tolist():
                fit = _fitting(self.engine.piece(token).decode("utf-8", "replace"), words, deeper=True)
                kind[token] = DIRECTION_KINDS[words[fit]] if fit >= 0 else -1
            self._direction_cache = (mask, kind)
        return self._direction_cache

    def _direction_probabilities(self, requests: list[GenerationRequest]) -> np.ndarray:
        """For each request (a prompt followed by the move head's tokens): the probability of each
        direction, ``(n, 4)`` in the order of ``DIRECTION_KINDS``, from the next token's logits."""
        mask, kind = self._direction_tokens()
        p_token = _allowed_softmax(self.engine.next_token_logits(requests), mask, self.temperature)
        return np.stack([p_token[:, kind == direction].sum(axis=1) for direction in DIRECTION_KINDS.values()], axis=1)

    def move_distribution(self, observations: list[tuple[str, Any]]) -> np.ndarray:
        """The probability with which this policy's next answer is each of ``MOVE_KINDS`` (stay, north,
        south, west, east), for each ``(agent, observation)``: ``(n, 5)``, rows summing to 1.

        Computed from the logits, not sampled: the first answer token decides between stay and move (the
        heads of the two answers start with different letters), the first token after the move head
        (``move", "direction": "``) decides the direction. Each distribution is what :meth:`act` samples
        from at this temperature (the engine's lazy grammar check renormalises the softmax over the tokens
        the grammar allows), along the answer's usual tokenization. Needs ``actions="move"`` prompt settings
        (an answer with give/take/reproduce would need targets and amounts too)."""
        if self.settings.actions != "move":
            raise LLMPolicyError("move_distribution needs the move-only action set (prompt actions='move')")
        names, first_mask, first_kind = self._move_first_tokens()
        prompts = [self.prompt_tokens(agent, observation)[0] for agent, observation in observations]
        move_tail = self._head_tokens("move")  # as the engine writes it after any first token deciding move
        sessions = [("decision", index) for index in range(len(prompts))]
        try:
            first = self.engine.next_token_logits([GenerationRequest(p, "", (), session=key) for p, key in zip(prompts, sessions)])
            p_directions = self._direction_probabilities([GenerationRequest(p + move_tail, "", (), session=key)
                                                          for p, key in zip(prompts, sessions)])
        finally:
            for key in sessions:
                self.engine.release(key)
        p_first = _allowed_softmax(first, first_mask, self.temperature)
        result = np.zeros((len(prompts), len(MOVE_KINDS)))
        result[:, MOVE_KINDS.index(STAY)] = p_first[:, first_kind == names.index("stay")].sum(axis=1)
        p_move = p_first[:, first_kind == names.index("move")].sum(axis=1)
        for column, kind in enumerate(DIRECTION_KINDS.values()):
            result[:, MOVE_KINDS.index(kind)] = p_move * p_directions[:, column]
        return result

    def _move_first_tokens(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """The move-only answers (stay, move), the tokens their grammar allows first, and for each the index
        of the one answer whose head it fits (or runs past). Cached."""
        if getattr(self, "_move_first_cache", None) is None:
            options = Options([], {}, False, 0)
            names = tuple(available_answers(options, self.config, self.settings))
            heads = [answer_head(name, self.settings.talk) for name in names]
            mask = self._grammar_mask(options)
            kind = np.full(self.engine.n_vocab, -1)
            for token in np.flatnonzero(mask).tolist():
                kind[token] = _fitting(self.engine.piece(token).decode("utf-8", "replace"), heads, deeper=True)
            self._move_first_cache = (names, mask, kind)
        return self._move_first_cache

    # ---- readouts -----------------------------------------------------------------------------
    def drain_events(self) -> list[dict[str, Any]]:
        """Events for the recording since the last call (system prompts, one ``llm_call`` per agent-step)."""
        events, self._events = self._events, []
        return events

    def cost_summary(self) -> dict[str, Any]:
        """Per-run costs: agent-steps, failures, time and tokens (per agent-step), and the backend's own
        readouts (:meth:`_backend_costs`)."""
        costs = self._backend_costs()
        calls, seconds = self.calls, self.seconds

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

    def _backend_costs(self) -> dict[str, Any]:
        """The in-process engine's readouts: prompt tokens evaluated and reused, evictions, tokens/s."""
        stats = self.engine.stats
        return {
            "model": str(self.engine.model_path),
            "chat_format": self.chat_format,
            "prompt_tokens": stats.prompt_tokens,
            "generated_tokens": stats.generated_tokens,
            "tokens_reused_per_agent_step": round(stats.reused_tokens / self.calls, 1) if self.calls else 0.0,
            "kv_evictions": stats.evictions,
            "prompt_tokens_per_second": round(stats.prompt_tokens / stats.prompt_seconds, 1) if stats.prompt_seconds else 0.0,
            "generation_tokens_per_second": round(stats.generated_tokens / stats.generation_seconds, 1) if stats.generation_seconds else 0.0,
            "grammar_resamples": stats.grammar_resamples,
        }


__all__ = ["LlamaCppPolicy", "LLMPolicyError", "ModelError", "PromptSettings"]
