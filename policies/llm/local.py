"""The in-process backend: a GGUF model run by llama.cpp in this process (:class:`LocalBackend`).

Agent sessions run on :class:`policies.llm.engine.LlamaEngine` (batched, grammar-constrained, one KV
sequence per agent). Only this backend has the model's logits, so it alone gives decision distributions:
the exact probability of each answer whose effect needs no further choice (see
:meth:`LocalBackend.decision_distribution`). One-off chats (the anthropologist's) run on llama-cpp-python's
high-level ``Llama`` over the same file, made on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Hashable, Sequence

import numpy as np

from policies.llm.answer import ANSWER_PREFILL, ANSWERS, DECIDED_ANSWERS, DIRECTION_KINDS, Options, answer_head
from policies.llm.backend import SAMPLED_DECISION, AgentTurn, Answer, AnswerSpec, LanguageModel, LLMPolicyError
from policies.llm.engine import GenerationRequest, GenerationResult, LlamaEngine, ModelError
from policies.llm.models import resolve_model, sha256_of
from society_env.world.encodings import STAY

__all__ = ["LocalBackend", "CHAT_FORMATS", "CHATML_TEMPLATE", "PLAIN_TEMPLATE", "MOVE_KINDS"]

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
:meth:`LocalBackend.move_distribution`."""
CHAT_SEED = 0


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


class LocalBackend(LanguageModel):
    """A GGUF in this process (module docstring).

    Arguments: ``model`` (a name or path for :func:`policies.llm.models.resolve_model`; ``None`` = the
    embedded default), ``n_ctx`` (context tokens per agent), ``n_threads``, ``n_gpu_layers``,
    ``max_batch`` (agents per llama.cpp batch), ``chat_format`` (``chatml``, ``plain`` or a Jinja
    template; default: the model's own), ``engine`` (share a loaded :class:`LlamaEngine` instead).
    """

    gives_decisions = True

    def __init__(self, model: str | Path | None = None, n_ctx: int = 1024, n_threads: int | None = None,
                 n_gpu_layers: int = 0, max_batch: int = 8, chat_format: str | None = None,
                 engine: LlamaEngine | None = None):
        if engine is None:
            engine = LlamaEngine(resolve_model(model), n_ctx=n_ctx, max_batch=max_batch, n_threads=n_threads,
                                 n_gpu_layers=n_gpu_layers)
        self.engine = engine
        self.label = engine.model_path.name
        self.formatter = self._make_formatter(chat_format)
        # token tables, per action set (and the answer's talk) or per world and prompt settings
        self._first_token_classes: dict[tuple, dict[int, int]] = {}
        self._direction_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._move_first_cache: dict[tuple, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {}
        self._chat_model = None
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """``gguf:SHA-256`` of the model file (read once: 0.3 s for the default model)."""
        if self._identity is None:
            self._identity = f"gguf:{sha256_of(self.engine.model_path)}"
        return self._identity

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

    # ---- agent sessions -----------------------------------------------------------------------
    @property
    def context_tokens(self) -> int:
        return self.engine.n_ctx_per_sequence

    def prepare(self, messages: list[dict[str, str]]) -> list[int]:
        return self.engine.tokenize(self.formatter(messages=messages).prompt + ANSWER_PREFILL, add_special=True)

    def prompt_length(self, prompt: list[int]) -> int:
        return len(prompt)

    def generate(self, turns: Sequence[AgentTurn], max_tokens: int, temperature: float,
                 batched: bool = True) -> list[GenerationResult]:
        requests = self.requests(turns)
        if batched:
            results = self.engine.generate(requests, max_tokens, temperature)
        else:
            results = [self.engine.generate([request], max_tokens, temperature)[0] for request in requests]
        for result in results:
            result.text = ANSWER_PREFILL + result.text
        return results

    @staticmethod
    def requests(turns: Sequence[AgentTurn]) -> list[GenerationRequest]:
        """The engine's requests of the turns (grammar, seed, forced text; the agent's session)."""
        return [GenerationRequest(turn.prompt, turn.answer.grammar, turn.seed_key, turn.answer.forced, session=turn.agent)
                for turn in turns]

    def release(self, session: Hashable) -> None:
        self.engine.release(session)

    def reset(self) -> None:
        # llama.cpp's numbers depend (in the last bits) on how tokens were grouped into batches, so a
        # run starts from an empty KV cache: its computation then depends on the run alone.
        self.engine.reset()

    def drop_cache(self) -> None:
        self.engine.reset()

    def costs(self, calls: int, seconds: float) -> dict[str, Any]:
        """The engine's readouts: prompt tokens evaluated and reused, evictions, tokens/s."""
        stats = self.engine.stats
        return {
            "model": str(self.engine.model_path),
            "chat_format": self.chat_format,
            "prompt_tokens": stats.prompt_tokens,
            "generated_tokens": stats.generated_tokens,
            "tokens_reused_per_agent_step": round(stats.reused_tokens / calls, 1) if calls else 0.0,
            "kv_evictions": stats.evictions,
            "prompt_tokens_per_second": round(stats.prompt_tokens / stats.prompt_seconds, 1) if stats.prompt_seconds else 0.0,
            "generation_tokens_per_second": round(stats.generated_tokens / stats.generation_seconds, 1) if stats.generation_seconds else 0.0,
            "grammar_resamples": stats.grammar_resamples,
        }

    def close(self) -> None:
        if self._chat_model is not None:
            self._chat_model.close()
            self._chat_model = None
        self.engine.close()

    # ---- one-off chats ---------------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]], schema: dict | None, max_tokens: int, temperature: float = 0.0,
             seed: int = CHAT_SEED, n_ctx: int = 2048) -> Answer:
        """One conversation through llama-cpp-python's ``create_chat_completion`` (its sampler and the
        model's chat template), under ``schema`` turned into GBNF."""
        from llama_cpp import LlamaGrammar
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        model = self.chat_model(n_ctx)
        grammar = LlamaGrammar.from_string(json_schema_to_gbnf(json.dumps(schema)), verbose=False) if schema else None
        try:
            reply = model.create_chat_completion(messages=messages, grammar=grammar, max_tokens=max_tokens,
                                                 temperature=temperature, seed=seed)
        except ValueError as error:  # "Requested tokens (...) exceed context window"
            return Answer("", failure=str(error))
        choice, usage = reply["choices"][0], reply.get("usage") or {}
        return Answer((choice["message"]["content"] or "").strip(), usage.get("prompt_tokens", 0),
                      usage.get("completion_tokens", 0), None if choice.get("finish_reason") == "stop" or schema is None
                      else f"answer cut off after {max_tokens} tokens")

    def chat_model(self, n_ctx: int = 2048):
        """llama-cpp-python's high-level ``Llama`` on this model, for one-off chats (made on first use)."""
        if self._chat_model is None:
            self._chat_model = high_level_model(self.engine.model_path, self.engine.n_threads, n_ctx=n_ctx)
        return self._chat_model

    # ---- decision distributions (the logits are here) ------------------------------------------------
    def decision_distribution(self, turns: Sequence[AgentTurn], temperature: float) -> list[dict[tuple, float]]:
        """For each turn: the probability with which its answer is each action whose immediate effect needs
        no further choice (``policies.llm.answer.DECIDED_ANSWERS``): ``("stay",)``, ``("reproduce",)`` and
        ``("move", KIND)`` for each direction KIND, exact from the logits of its prompt, read before its
        answer is sampled (the prompt's KV stays in the agent's session, so the answer's generation
        re-evaluates one token of it). The rest of the mass (give, take, artifact actions, and first
        tokens that do not decide an action alone) is :data:`SAMPLED_DECISION`: those answers are only
        known by sampling.

        Why this is exact: an answer's first token decides its action (or not), and the engine then
        writes the action's head (``answer_head``: ``move", "direction": "``) in canonical tokens whatever
        that token was (``LlamaEngine._write_decided``), so the direction is one more softmax over the
        tokens the grammar allows after that head (:meth:`_direction_probabilities`). Both softmaxes are
        what the engine samples from (its lazy grammar check renormalises over the allowed tokens)."""
        if not turns:
            return []
        requests = [GenerationRequest(turn.prompt, "", (), session=turn.agent) for turn in turns]
        first = self.engine.next_token_logits(requests)
        moving = [k for k, turn in enumerate(turns) if "move" in turn.answer.names]
        p_directions = None
        if moving:
            answer = turns[moving[0]].answer
            head = self._head_tokens("move", answer.settings.talk)
            p_directions = self._direction_probabilities(
                [GenerationRequest(turns[k].prompt + head, "", (), session=turns[k].agent) for k in moving], answer,
                temperature)
        unchosen = [name for name in DECIDED_ANSWERS if not ANSWERS[name]]  # stay, reproduce: decided by their name
        results = []
        for k, turn in enumerate(turns):
            mask, decided = self._first_tokens(turn.answer)
            p_first = _allowed_softmax(first[k : k + 1], mask, temperature)[0]
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

    def decided_by(self, answer: AnswerSpec, first_token: int | None) -> bool:
        if first_token is None:
            return False
        return self._first_token_classes.get((answer.names, answer.settings.talk), {}).get(first_token, -1) >= 0

    def move_distribution(self, prompts: Sequence[list[int]], answer: AnswerSpec, temperature: float) -> np.ndarray:
        """The probability with which the answer to each prompt is each of ``MOVE_KINDS`` (stay, north,
        south, west, east): ``(n, 5)``, rows summing to 1, for the move-only action set (``answer``: its
        spec with no targets, ``Options([], {}, False, 0)``, the same for every prompt).

        Computed from the logits, not sampled: the first answer token decides between stay and move (the
        heads of the two answers start with different letters), the first token after the move head
        (``move", "direction": "``) decides the direction. Each distribution is what generation samples
        from at this temperature (the engine's lazy grammar check renormalises the softmax over the tokens
        the grammar allows), along the answer's usual tokenization."""
        names, first_mask, first_kind = self._move_first_tokens(answer)
        move_tail = self._head_tokens("move", answer.settings.talk)  # as the engine writes it after any first token deciding move
        sessions = [("decision", index) for index in range(len(prompts))]
        try:
            first = self.engine.next_token_logits([GenerationRequest(p, "", (), session=key) for p, key in zip(prompts, sessions)])
            p_directions = self._direction_probabilities([GenerationRequest(p + move_tail, "", (), session=key)
                                                          for p, key in zip(prompts, sessions)], answer, temperature)
        finally:
            for key in sessions:
                self.engine.release(key)
        p_first = _allowed_softmax(first, first_mask, temperature)
        result = np.zeros((len(prompts), len(MOVE_KINDS)))
        result[:, MOVE_KINDS.index(STAY)] = p_first[:, first_kind == names.index("stay")].sum(axis=1)
        p_move = p_first[:, first_kind == names.index("move")].sum(axis=1)
        for column, kind in enumerate(DIRECTION_KINDS.values()):
            result[:, MOVE_KINDS.index(kind)] = p_move * p_directions[:, column]
        return result

    def _head_tokens(self, name: str, talk: bool) -> list[int]:
        """Canonical tokens of an action's head (``answer_head``: its name and the forced text up to its
        first value), as the engine writes them after any first token that decides the action."""
        return self.engine.text_tokens(answer_head(name, talk))

    def _grammar_mask(self, grammar_text: str, accepted: str = "") -> np.ndarray:
        """The tokens a grammar allows after the answer text ``accepted``."""
        engine, llama_cpp = self.engine, self.engine.llama_cpp
        grammar = llama_cpp.llama_sampler_init_grammar(engine.vocab, grammar_text.encode(), b"root")
        try:
            engine.accept_text(grammar, accepted)
            return engine.grammar_mask(grammar)
        finally:
            llama_cpp.llama_sampler_free(grammar)

    def _first_tokens(self, answer: AnswerSpec) -> tuple[np.ndarray, np.ndarray]:
        """(tokens this agent's grammar allows first, and for each the index in ``DECIDED_ANSWERS`` of the
        action it decides, -1 if none). A token decides an action when its text fits the head of exactly
        that one of the agent's actions (a token running deeper than the head decides nothing). The mask is
        read from this agent's own grammar (a token may run into a target name it allows); token classes
        are cached per action set."""
        mask = self._grammar_mask(answer.grammar)
        names = answer.names
        classes = self._first_token_classes.setdefault((names, answer.settings.talk), {})
        heads = None
        decided = np.full(self.engine.n_vocab, -1)
        for token in np.flatnonzero(mask).tolist():
            if token not in classes:
                if heads is None:
                    heads = [answer_head(name, answer.settings.talk) for name in names]
                fit = _fitting(self.engine.piece(token).decode("utf-8", "replace"), heads)
                classes[token] = DECIDED_ANSWERS.index(names[fit]) if fit >= 0 and names[fit] in DECIDED_ANSWERS else -1
            decided[token] = classes[token]
        return mask, decided

    def _direction_tokens(self, answer: AnswerSpec) -> tuple[np.ndarray, np.ndarray]:
        """Tokens allowed after the move head (in the grammar of an agent with no targets in ``answer``'s world
        and prompt settings), and the action kind (``DIRECTION_KINDS``) of the one direction word each token
        fits (a direction's first letters decide it: the engine writes the rest). Cached."""
        key = _world_key(answer)
        if key not in self._direction_cache:
            lonely = AnswerSpec(Options([], {}, False, 0), answer.config, answer.settings)
            mask = self._grammar_mask(lonely.grammar, answer_head("move", answer.settings.talk))
            words = list(DIRECTION_KINDS)
            kind = np.full(self.engine.n_vocab, -1)
            for token in np.flatnonzero(mask).tolist():
                fit = _fitting(self.engine.piece(token).decode("utf-8", "replace"), words, deeper=True)
                kind[token] = DIRECTION_KINDS[words[fit]] if fit >= 0 else -1
            self._direction_cache[key] = (mask, kind)
        return self._direction_cache[key]

    def _direction_probabilities(self, requests: list[GenerationRequest], answer: AnswerSpec,
                                 temperature: float) -> np.ndarray:
        """For each request (a prompt followed by the move head's tokens): the probability of each
        direction, ``(n, 4)`` in the order of ``DIRECTION_KINDS``, from the next token's logits."""
        mask, kind = self._direction_tokens(answer)
        p_token = _allowed_softmax(self.engine.next_token_logits(requests), mask, temperature)
        return np.stack([p_token[:, kind == direction].sum(axis=1) for direction in DIRECTION_KINDS.values()], axis=1)

    def _move_first_tokens(self, answer: AnswerSpec) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """The move-only answers (stay, move), the tokens their grammar allows first, and for each the index
        of the one answer whose head it fits (or runs past). Cached."""
        talk, key = answer.settings.talk, _world_key(answer)
        if key not in self._move_first_cache:
            names = answer.names
            heads = [answer_head(name, talk) for name in names]
            mask = self._grammar_mask(answer.grammar)
            kind = np.full(self.engine.n_vocab, -1)
            for token in np.flatnonzero(mask).tolist():
                kind[token] = _fitting(self.engine.piece(token).decode("utf-8", "replace"), heads, deeper=True)
            self._move_first_cache[key] = (names, mask, kind)
        return self._move_first_cache[key]


def _world_key(answer: AnswerSpec) -> tuple:
    """A cache key of the world and prompt settings an answer spec is read under."""
    return answer.config, repr(answer.settings)


def high_level_model(path: str | Path, n_threads: int, n_ctx: int = 2048, **options: Any):
    """llama-cpp-python's high-level ``Llama`` on ``path`` (seeded, quiet, the AMX workaround applied);
    ``options`` go to ``Llama`` (e.g. ``embedding=True``, ``logits_all=True``)."""
    import llama_cpp

    from policies.llm.engine import check_gguf_file, disable_amx_weight_buffers, silence_llama_logs

    disable_amx_weight_buffers()
    silence_llama_logs()  # llama.cpp prints context notes to stderr even with verbose=False
    try:
        return llama_cpp.Llama(str(check_gguf_file(path)), n_threads=n_threads, seed=CHAT_SEED, verbose=False,
                               n_ctx=n_ctx, **options)
    except (ValueError, RuntimeError) as error:
        raise ModelError(f"llama.cpp could not load {path}: {error}") from None
