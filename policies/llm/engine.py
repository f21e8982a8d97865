"""Batched, grammar-constrained generation on llama.cpp's low-level API.

One llama.cpp context serves many agents: each agent (a *session*) keeps its own sequence for as
long as it lives. The prompts' longest common prefix (the shared system prompt) is decoded once into
sequence 0; a new session starts by sharing those KV cells (``llama_memory_seq_cp``). On later calls a
session keeps the KV of the longest common prefix of its new prompt and what it holds (its name,
personality, the chat template up to the per-step text), so each step only the text that changed is
evaluated. Generation then advances all sequences of a batch together, one token each per decode.
When the cache is full, the least recently used idle sessions are evicted (and rebuilt when needed).

Sampling is done here in numpy from the logits, with a *lazy* grammar check: sample a token, test
only that token against the sequence's grammar, and only if it is rejected filter the whole
vocabulary through the grammar and sample again. This is what llama.cpp's own common sampler does,
and it avoids the ~5 ms per token that filtering the full 49k vocabulary costs. No ``top_k`` sampler
is ever placed before the grammar (that aborts the process when no top-k token fits the grammar).
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable

import numpy as np

GGUF_MAGIC = b"GGUF"
LLAMA_MAX_SEQ = 256
"""Sequences a llama.cpp context can hold (``LLAMA_MAX_SEQ`` in llama.cpp, measured: 257 fails)."""


class ModelError(RuntimeError):
    """A model file that cannot be used: missing, not GGUF, unsupported or failing to load."""


@dataclass
class GenerationRequest:
    prompt_tokens: list[int]
    grammar: str
    seed_key: tuple[int, ...]
    """Integers that seed this request's sampling generator (e.g. episode seed, step, agent index)."""
    forced: Callable[[str], tuple[str, bool]] | None = None
    """Given the text generated so far, the text the grammar forces next and whether the answer is then
    complete. Forced text is fed to the model as one multi-token chunk instead of token by token."""
    session: Hashable | None = None
    """Key of a session (e.g. the agent's name) whose KV is kept for its next request; ``None`` = one-off."""


@dataclass
class GenerationResult:
    text: str = ""
    tokens_in: int = 0
    """Prompt tokens evaluated for this request: its own, plus its share of the shared-prefix tokens this
    call evaluated (so the results of a call add up to the tokens the engine evaluated)."""
    tokens_out: int = 0
    """Tokens of the answer: sampled ones plus grammar-forced ones."""
    tokens_forced: int = 0
    """Of ``tokens_out``, those forced by the grammar and decoded as chunks (not sampled)."""
    finished: bool = False
    """The grammar completed and the model stopped; False means cut off at max_tokens."""
    seconds: float = 0.0
    error: str | None = None
    first_token: int | None = None
    """The answer's first sampled token (it decides the action: ``LocalBackend.decision_distribution``)."""


@dataclass
class EngineStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prompt_seconds: float = 0.0
    generation_seconds: float = 0.0
    grammar_resamples: int = 0
    calls: int = 0
    reused_tokens: int = 0
    """Prompt tokens whose KV a session already held (not evaluated again)."""
    evictions: int = 0
    """Sessions dropped from a full cache (their next prompt is evaluated in full)."""


@dataclass
class _Session:
    sequence: int
    tokens: list[int] = field(default_factory=list)
    """The tokens whose KV the sequence holds, at positions 0..len-1."""


def check_gguf_file(path: str | Path) -> Path:
    """Raise ``ModelError`` naming the problem unless ``path`` is a readable GGUF file."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    return path


OPENMP_SPIN_COUNT = "1000"
"""``GOMP_SPINCOUNT`` the commands set: an idle OpenMP thread spins this many times, then sleeps."""


def limit_openmp_spinning() -> None:
    """Let llama.cpp's idle OpenMP worker threads spin only briefly before they sleep (``GOMP_SPINCOUNT``),
    unless the user chose a wait policy (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``). The commands call this
    before llama.cpp loads (GNU OpenMP reads the variables once, at load). On a shared machine GNU OpenMP's
    default spinning takes the cores the working thread needs; a short spin keeps the quiet-machine speed,
    which ``OMP_WAIT_POLICY=PASSIVE`` loses (10-30% slower). Measured 2026-12-07 by ``tools/openmp_wait.py``
    (docs/llm-agents.md): 2 threads, quiet, 1.03-1.22 s as by default, against 1.35-1.38 s passive; beside
    two busy loops, 2.25-2.56 s against 3.33-6.08 s by default. A library user who wants the same sets the
    variable before importing llama_cpp."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)


def default_thread_count(processes: int = 1) -> int:
    """llama.cpp threads when none are given: this machine's cores shared by ``processes`` llama.cpp
    contexts (at least 1, at most 4 each). Oversubscribed, llama.cpp's threads wait for each other at
    every operation (measured 5-10x slower)."""
    return max(1, min((os.cpu_count() or 1) // max(processes, 1), 4))


_LOG_CALLBACK = None


def amx_kernels_built_in() -> bool:
    """Whether this llama.cpp build has its AMX matrix kernels (``-march=native`` on Sapphire Rapids and
    newer Xeons builds them in). They segfault in the first ``llama_decode`` on these machines (llama.cpp
    issues #20824 and #26954: tile state not enabled on the worker threads), and they are reached only
    through the "extra" (repacked) weight buffers, so :class:`LlamaEngine` and
    :func:`disable_amx_weight_buffers` turn those off when this is true."""
    import llama_cpp

    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


def disable_amx_weight_buffers() -> None:
    """On a build with AMX kernels (:func:`amx_kernels_built_in`), make every model that llama-cpp-python's
    high-level ``Llama`` (and so ``python -m llama_cpp.server``) loads from now on skip the extra weight
    buffers, as :class:`LlamaEngine` does: the only way to avoid the AMX segfault without rebuilding."""
    import llama_cpp
    import llama_cpp.llama_cpp as bindings  # what llama_cpp.llama.Llama calls at load time

    if not amx_kernels_built_in() or getattr(bindings.llama_model_default_params, "_no_amx", False):
        return
    default_params = bindings.llama_model_default_params

    def model_params_without_extra_buffers():
        params = default_params()
        params.use_extra_bufts = False
        return params

    model_params_without_extra_buffers._no_amx = True
    bindings.llama_model_default_params = llama_cpp.llama_model_default_params = model_params_without_extra_buffers


def silence_llama_logs() -> None:
    """Route llama.cpp's logging to nowhere unless SOCIETY_ENV_LLAMA_LOG is set."""
    global _LOG_CALLBACK
    import llama_cpp

    if os.environ.get("SOCIETY_ENV_LLAMA_LOG") or _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def _quiet(level, text, user_data):  # pragma: no cover - called from C
        return None

    _LOG_CALLBACK = _quiet
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


class LlamaEngine:
    """A GGUF model and one multi-sequence context, with batched constrained generation.

    Arguments: ``n_ctx`` (context tokens per sequence; the cache holds ``n_ctx * (max_batch + 1)`` cells
    shared by all sessions), ``max_batch`` (sequences advanced together), ``n_threads``, ``n_gpu_layers``,
    ``use_extra_bufts`` (False keeps weights in the memory-mapped file, for live weight edits),
    ``n_batch`` (tokens per ``llama_decode``), ``max_sessions`` (agents whose KV is kept between calls;
    at most 255).
    """

    def __init__(
        self,
        model_path: str | Path,
        n_ctx: int = 1024,
        max_batch: int = 8,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        use_extra_bufts: bool = True,
        n_batch: int = 512,
        max_sessions: int = 64,
    ):
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.model_path = check_gguf_file(model_path)
        # Sequence 0 holds the shared prefix; the others are sessions (at least one per agent of a batch).
        n_sequences = min(LLAMA_MAX_SEQ, max(max_batch, max_sessions) + 1)
        if max_batch < 1:
            raise ModelError(f"max_batch must be at least 1, got {max_batch}")
        if n_sequences < max_batch + 1:
            raise ModelError(f"max_batch {max_batch} exceeds llama.cpp's {LLAMA_MAX_SEQ - 1} sequences per context")
        if n_batch < n_sequences:  # llama.cpp would abort the process (an assertion), not fail
            raise ModelError(f"n_batch {n_batch} must be at least the number of sequences, {n_sequences} "
                             "(max(max_batch, max_sessions) + 1)")
        silence_llama_logs()
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        # Repacked CPU buffers (Q4_0, Q4_K) copy the weights at load; the QES trainer turns them off so
        # that edits to the memory-mapped file are seen by the model.
        model_params.use_extra_bufts = use_extra_bufts and not amx_kernels_built_in()
        self.model = llama_cpp.llama_model_load_from_file(str(self.model_path).encode(), model_params)
        if not self.model:
            raise ModelError(f"llama.cpp could not load {self.model_path} (unsupported architecture or corrupt file)")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.max_batch = max_batch
        self.n_ctx_per_sequence = n_ctx
        self.n_threads = n_threads or default_thread_count()

        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = n_ctx * (max_batch + 1)
        context_params.n_batch = n_batch
        context_params.n_ubatch = n_batch
        context_params.n_seq_max = n_sequences
        context_params.kv_unified = True  # copied prefix cells are shared, not duplicated
        context_params.n_threads = self.n_threads
        context_params.n_threads_batch = self.n_threads
        context_params.no_perf = True
        # Flash attention: measured ~30% faster prompt evaluation here with many sequences in one cache.
        context_params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        self.ctx = llama_cpp.llama_init_from_model(self.model, context_params)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ModelError(f"llama.cpp could not create a context for {self.model_path} (n_ctx {context_params.n_ctx})")
        self.n_batch = n_batch
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(max(n_batch, max_batch + 1), 0, max_batch + 1)
        self._prefix: list[int] = []
        self._sessions: OrderedDict[Hashable, _Session] = OrderedDict()  # least recently used first
        self._free_sequences = list(range(n_sequences - 1, 0, -1))
        self._n_sequences = n_sequences
        self._busy: set[int] = set()  # sequences of the batch being generated (never evicted)
        self.stats = EngineStats()
        self._candidates = (llama_cpp.llama_token_data * self.n_vocab)()
        self._candidate_view = np.ctypeslib.as_array(self._candidates)
        self._candidate_view["id"] = np.arange(self.n_vocab)
        self._single = (llama_cpp.llama_token_data * 1)()
        self.eog = np.array([llama_cpp.llama_vocab_is_eog(self.vocab, t) for t in range(self.n_vocab)], dtype=bool)
        self._pieces: dict[int, bytes] = {}

    # ---- model metadata and text ------------------------------------------------------------
    def metadata(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(1 << 16)
        length = self.llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", "replace") if length >= 0 else None

    def chat_template(self) -> str | None:
        template = self.llama_cpp.llama_model_chat_template(self.model, None)
        return template.decode("utf-8", "replace") if template else None

    def token_text(self, token: int) -> str:
        text = self.llama_cpp.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", "replace") if text else ""

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        tokens = (self.llama_cpp.llama_token * capacity)()
        count = self.llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        if count < 0:
            capacity = -count
            tokens = (self.llama_cpp.llama_token * capacity)()
            count = self.llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        return list(tokens[:count])

    def text_tokens(self, text: str) -> list[int]:
        """Tokens whose pieces spell exactly ``text`` (no added space or specials): the tokenizer's own when
        they do, else a greedy longest-piece match (SentencePiece vocabularies prefix a space)."""
        tokens = self.tokenize(text, add_special=False)
        data = text.encode("utf-8")
        if b"".join(self.piece(t) for t in tokens) == data:
            return tokens
        if getattr(self, "_piece_table", None) is None:
            self._piece_table = {}
            for token in range(self.n_vocab):
                piece = self.piece(token)
                if piece and not self.eog[token]:
                    self._piece_table.setdefault(piece, token)
            self._longest_piece = max(map(len, self._piece_table))
        result, position = [], 0
        while position < len(data):
            for length in range(min(self._longest_piece, len(data) - position), 0, -1):
                token = self._piece_table.get(data[position : position + length])
                if token is not None:
                    result.append(token)
                    position += length
                    break
            else:
                raise ModelError(f"the vocabulary of {self.model_path.name} cannot spell {text!r}")
        return result

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            buffer = ctypes.create_string_buffer(64)
            length = self.llama_cpp.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
            cached = buffer.raw[: max(length, 0)]
            self._pieces[token] = cached
        return cached

    # ---- KV cache --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every cached token and session (required after the model weights change)."""
        self.llama_cpp.llama_memory_clear(self.memory, True)
        self._prefix = []
        self._sessions.clear()
        self._free_sequences = list(range(self._n_sequences - 1, 0, -1))

    def release(self, session: Hashable) -> None:
        """Drop a session's KV (e.g. its agent died); unknown keys are ignored."""
        entry = self._sessions.pop(session, None)
        if entry is not None:
            self._free(entry.sequence)

    def _free(self, sequence: int) -> None:
        self.llama_cpp.llama_memory_seq_rm(self.memory, sequence, -1, -1)
        self._free_sequences.append(sequence)

    def _evict_idle(self) -> bool:
        """Evict the least recently used session that is not part of the current batch."""
        for key, entry in self._sessions.items():
            if entry.sequence not in self._busy:
                del self._sessions[key]
                self._free(entry.sequence)
                self.stats.evictions += 1
                return True
        return False

    def _sequence_for(self, request: GenerationRequest) -> tuple[int, int]:
        """(sequence, tokens of the prompt whose KV it already holds) for a request, set up for decoding
        the rest of the prompt from that position."""
        prompt = request.prompt_tokens
        entry = self._sessions.get(request.session) if request.session is not None else None
        if entry is not None:
            self._sessions.move_to_end(request.session)
            keep = min(_common_length(entry.tokens, prompt), len(prompt) - 1)  # >= 1 token to decode
            self.llama_cpp.llama_memory_seq_rm(self.memory, entry.sequence, keep, -1)
            entry.tokens = prompt[:keep]
            self.stats.reused_tokens += keep
            return entry.sequence, keep
        if not self._free_sequences and not self._evict_idle():
            raise ModelError(f"no free llama.cpp sequence for a new agent ({self._n_sequences - 1} in use)")
        sequence = self._free_sequences.pop()
        self.llama_cpp.llama_memory_seq_rm(self.memory, sequence, -1, -1)
        keep = min(_common_length(self._prefix, prompt), len(prompt) - 1)
        if keep:
            self.llama_cpp.llama_memory_seq_cp(self.memory, 0, sequence, 0, keep)
        if request.session is not None:
            self._sessions[request.session] = _Session(sequence, prompt[:keep])
        return sequence, keep

    def _chunk_starts(self, count: int) -> list[int]:
        """Chunk boundaries such that the *last* chunk is a full one (it holds the logit rows we need)."""
        first = count % self.n_batch or self.n_batch
        return [0] + list(range(first, count, self.n_batch)) if count > self.n_batch else [0]

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, wants_logits) entries in chunks of at most n_batch."""
        batch = self.batch
        starts = self._chunk_starts(len(entries))
        for start, end in zip(starts, starts[1:] + [len(entries)]):
            chunk = entries[start:end]
            for i, (token, position, sequence, logits) in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = position
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = sequence
                batch.logits[i] = logits
            batch.n_tokens = len(chunk)
            status = self.llama_cpp.llama_decode(self.ctx, batch)
            # 1 = no room in the KV cache (nothing of the chunk was decoded): make room and retry.
            while status == 1 and self._evict_idle():
                status = self.llama_cpp.llama_decode(self.ctx, batch)
            if status != 0:
                raise ModelError(f"llama_decode failed with status {status} (context full? n_ctx per agent {self.n_ctx_per_sequence})")

    def _ensure_prefix(self, prefix: list[int]) -> int:
        """Make sequence 0 hold exactly ``prefix``, re-using the longest matching part already cached;
        returns the number of tokens evaluated."""
        keep = _common_length(self._prefix, prefix)
        if keep < len(self._prefix):
            self.llama_cpp.llama_memory_seq_rm(self.memory, 0, keep, -1)
        new = prefix[keep:]
        if new:
            self._decode([(t, keep + i, 0, False) for i, t in enumerate(new)])
            self.stats.prompt_tokens += len(new)
        self._prefix = list(prefix)
        return len(new)

    # ---- generation -------------------------------------------------------------------------
    def generate(self, requests: list[GenerationRequest], max_tokens: int, temperature: float) -> list[GenerationResult]:
        """Generate for every request, ``max_batch`` sequences at a time."""
        results: list[GenerationResult] = []
        for start in range(0, len(requests), self.max_batch):
            results.extend(self._generate_batch(requests[start : start + self.max_batch], max_tokens, temperature))
        return results

    def _generate_batch(self, requests: list[GenerationRequest], max_tokens: int, temperature: float) -> list[GenerationResult]:
        started = time.perf_counter()
        results, sequences, entries = self._decode_prompts(requests, max_tokens)
        decoded = None
        try:
            decoded = self._generate_answers(requests, results, sequences, entries, max_tokens, temperature)
        finally:
            self._release_batch(requests, sequences, decoded)
        elapsed = time.perf_counter() - started
        for result in results:
            result.seconds = elapsed / len(requests)
        return results

    def next_token_logits(self, requests: list[GenerationRequest]) -> np.ndarray:
        """The logits of the token after each request's prompt, ``(len(requests), n_vocab)`` float32,
        without generating anything (``grammar`` and ``seed_key`` are ignored). Sessions keep the prompt's
        KV as in :meth:`generate`, so a longer prompt of the same session next evaluates only its tail."""
        rows = []
        for start in range(0, len(requests), self.max_batch):
            batch = requests[start : start + self.max_batch]
            results, sequences, entries = self._decode_prompts(batch, 0)
            try:
                last_chunk = len(entries) - self._chunk_starts(len(entries))[-1]
                for i in range(len(batch)):
                    pointer = self.llama_cpp.llama_get_logits_ith(self.ctx, last_chunk - len(batch) + i)
                    rows.append(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy())
            finally:
                self._release_batch(batch, sequences, [[] for _ in batch])
        return np.stack(rows) if rows else np.zeros((0, self.n_vocab), dtype=np.float32)

    def _decode_prompts(self, requests: list[GenerationRequest], max_tokens: int):
        """Decode every request's prompt into its sequence; returns (results, sequences, decoded entries).
        The last entries are each prompt's final token, in request order (their logits are computed)."""
        self.stats.calls += 1
        results = [GenerationResult() for _ in requests]
        for request, result in zip(requests, results):
            if len(request.prompt_tokens) + max_tokens > self.n_ctx_per_sequence:
                raise ModelError(
                    f"prompt of {len(request.prompt_tokens)} tokens + {max_tokens} to generate exceeds the context of "
                    f"{self.n_ctx_per_sequence} tokens per agent; raise n_ctx or shorten the history"
                )

        # New sessions start from sequence 0, which holds the longest common prefix of their prompts
        # (the shared system prompt); sessions that already exist keep their own cached tokens.
        new = [i for i, r in enumerate(requests) if r.session is None or r.session not in self._sessions]
        prompt_started = time.perf_counter()
        if new:
            first = requests[new[0]].prompt_tokens
            prefix_length = min(len(requests[i].prompt_tokens) for i in new) - 1
            for i in new[1:]:
                prefix_length = min(prefix_length, _common_length(first[:prefix_length], requests[i].prompt_tokens))
            evaluated = self._ensure_prefix(first[:prefix_length])
            for rank, i in enumerate(new):  # the new requests share the cost of the prefix
                results[i].tokens_in = evaluated // len(new) + (rank < evaluated % len(new))

        entries, finals, sequences = [], [], []
        self._busy = set()
        try:
            for index, request in enumerate(requests):
                sequence, keep = self._sequence_for(request)
                self._busy.add(sequence)
                sequences.append(sequence)
                suffix = request.prompt_tokens[keep:]
                for offset, token in enumerate(suffix[:-1]):
                    entries.append((token, keep + offset, sequence, False))
                # Each sequence's last prompt token goes at the very end, so all logit rows land in the last chunk.
                finals.append((suffix[-1], keep + len(suffix) - 1, sequence, True))
                results[index].tokens_in += len(suffix)
            entries += finals
            self._decode(entries)
        except BaseException:
            self._release_batch(requests, sequences, None)
            raise
        self.stats.prompt_tokens += len(entries)
        self.stats.prompt_seconds += time.perf_counter() - prompt_started
        return results, sequences, entries

    def _release_batch(self, requests: list[GenerationRequest], sequences: list[int], decoded: list[list[int]] | None) -> None:
        """After a batch: free one-off sequences; sessions record the tokens their KV now holds after the
        prompt (``decoded``; None after a failure: no more than before)."""
        self._busy = set()
        for index, sequence in enumerate(sequences):
            request = requests[index]
            if request.session is None:  # one-off requests never keep their sequence
                self._free(sequence)
            elif decoded is not None:
                self._sessions[request.session].tokens = request.prompt_tokens + decoded[index]

    def _generate_answers(self, requests, results, sequences, entries, max_tokens, temperature) -> list[list[int]]:
        """Sample every request's answer after its prompt; returns the answer tokens decoded into each
        sequence (the KV the session now holds after its prompt)."""
        llama_cpp = self.llama_cpp
        # Logit rows of this decode: the last token of each suffix, in order.
        generation_started = time.perf_counter()
        grammars = [llama_cpp.llama_sampler_init_grammar(self.vocab, r.grammar.encode(), b"root") for r in requests]
        try:
            for index, grammar in enumerate(grammars):
                if not grammar:
                    results[index].error = "invalid grammar"
            rngs = [np.random.default_rng(list(r.seed_key)) for r in requests]
            pieces: list[list[bytes]] = [[] for _ in requests]
            decoded: list[list[int]] = [[] for _ in requests]
            positions = [len(r.prompt_tokens) for r in requests]
            decision_start = [True] * len(requests)  # the next token is the first of a word the answer chooses
            active = [i for i in range(len(requests)) if grammars[i]]
            # llama_get_logits_ith takes the row within the last decoded chunk: the finals are its tail.
            last_chunk = len(entries) - self._chunk_starts(len(entries))[-1]
            logit_row = {i: last_chunk - len(requests) + i for i in range(len(requests))}
            for _ in range(max_tokens):
                if not active:
                    break
                next_entries = []
                still = []
                for i in active:
                    token = self._sample(logit_row[i], grammars[i], rngs[i], temperature)
                    if token is None or self.eog[token]:
                        results[i].finished = token is not None
                        if token is None:
                            results[i].error = "grammar allows no token"
                        continue
                    if results[i].tokens_out == 0:
                        results[i].first_token = token
                    chunk, done = None, False
                    if requests[i].forced is not None and decision_start[i]:
                        chunk, done = self._write_decided(grammars[i], token, pieces[i], results[i], requests[i].forced)
                    decision_start[i] = chunk is not None  # after forced text the next token starts a value
                    if chunk is None:
                        llama_cpp.llama_sampler_accept(grammars[i], token)
                        pieces[i].append(self.piece(token))
                        results[i].tokens_out += 1
                        chunk = [token]
                        if requests[i].forced is not None:
                            forced_text, complete = requests[i].forced(b"".join(pieces[i]).decode("utf-8", "replace"))
                            forced_tokens, all_accepted = self._force(grammars[i], forced_text, pieces[i], results[i])
                            chunk += forced_tokens
                            done = complete and all_accepted
                            decision_start[i] = bool(forced_tokens)
                    if done:  # the grammar is complete: no need to decode or sample the end token
                        results[i].finished = True
                        continue
                    for k, chunk_token in enumerate(chunk):
                        next_entries.append((chunk_token, positions[i], sequences[i], k == len(chunk) - 1))
                        positions[i] += 1
                    decoded[i] += chunk
                    still.append(i)
                active = still
                if next_entries:
                    self._decode(next_entries)
                    wanted = [row for row, entry in enumerate(next_entries) if entry[3]]
                    logit_row = dict(zip(active, wanted))
        finally:
            for grammar in grammars:
                if grammar:
                    llama_cpp.llama_sampler_free(grammar)
        self.stats.generation_seconds += time.perf_counter() - generation_started
        for index, result in enumerate(results):
            result.text = b"".join(pieces[index]).decode("utf-8", "replace")
            self.stats.generated_tokens += result.tokens_out
        return decoded

    def _write_decided(self, grammar, token: int, pieces: list[bytes], result: GenerationResult,
                       forced: Callable[[str], tuple[str, bool]]) -> tuple[list[int] | None, bool]:
        """When the sampled ``token`` starts a word and decides it (the grammar forces the rest: e.g. ``m``
        or ``move`` when only ``move`` fits), write the word and the forced text after it in their
        *canonical* tokens (``text_tokens`` of the whole), whichever token was drawn: the model then
        goes on from the same context after every way of choosing the same word, so the probability
        of a decision is the mass of its first tokens (``LocalBackend.decision_distribution``).
        Returns (the tokens to decode, whether the answer is complete), or (None, False) if the token
        decides nothing (it is then handled as usual)."""
        piece = self.piece(token)
        before = b"".join(pieces).decode("utf-8", "replace")
        text = piece.decode("utf-8", "replace")
        forced_text, complete = forced(before + text)
        if not forced_text:
            return None, False
        canonical = self.text_tokens(text + forced_text)
        accepted = self._accept_tokens(grammar, canonical, pieces)
        if not accepted:
            return None, False
        result.tokens_out += len(accepted)
        result.tokens_forced += len(accepted) - 1
        return accepted, complete and len(accepted) == len(canonical)

    def _force(self, grammar, text: str, pieces: list[bytes], result: GenerationResult) -> tuple[list[int], bool]:
        """Feed grammar-forced ``text`` to the grammar: (its tokens, whether all were accepted).

        Stops at the first token the grammar rejects (e.g. a tokenizer that prefixes a space), leaving the
        rest to normal sampling."""
        if not text:
            return [], True
        tokens = self.tokenize(text, add_special=False)
        accepted = self._accept_tokens(grammar, tokens, pieces)
        result.tokens_forced += len(accepted)
        result.tokens_out += len(accepted)
        return accepted, len(accepted) == len(tokens)

    def _accept_tokens(self, grammar, tokens: list[int], pieces: list[bytes]) -> list[int]:
        """Advance the grammar over ``tokens`` up to the first one it rejects; returns those accepted
        (their pieces appended to ``pieces``)."""
        accepted = []
        for token in tokens:
            if not self._accepts(grammar, token):
                break
            self.llama_cpp.llama_sampler_accept(grammar, token)
            pieces.append(self.piece(token))
            accepted.append(token)
        return accepted

    def accept_text(self, grammar, text: str) -> None:
        """Advance a grammar sampler over ``text`` (ModelError if the grammar rejects it: accepting a
        rejected token would abort the process)."""
        for token in self.text_tokens(text):
            if not self._accepts(grammar, token):
                raise ModelError(f"the grammar rejects {text!r} at {self.piece(token)!r}")
            self.llama_cpp.llama_sampler_accept(grammar, token)

    def grammar_mask(self, grammar) -> np.ndarray:
        """Which tokens of the vocabulary ``grammar`` (a llama.cpp grammar sampler) allows next."""
        view = self._candidate_view
        view["id"] = np.arange(self.n_vocab)
        view["logit"] = 0.0
        view["p"] = 0.0
        full = self.llama_cpp.llama_token_data_array(self._candidates, self.n_vocab, -1, False)
        self.llama_cpp.llama_sampler_apply(grammar, ctypes.byref(full))
        return np.isfinite(np.asarray(view["logit"], dtype=np.float64))

    def _accepts(self, grammar, token: int) -> bool:
        """Whether the grammar, in its current state, allows ``token`` next."""
        self._single[0].id = token
        self._single[0].logit = 0.0
        self._single[0].p = 0.0
        single = self.llama_cpp.llama_token_data_array(self._single, 1, -1, False)
        self.llama_cpp.llama_sampler_apply(grammar, ctypes.byref(single))
        return bool(np.isfinite(self._single[0].logit))

    def _sample(self, row: int, grammar, rng: np.random.Generator, temperature: float) -> int | None:
        llama_cpp = self.llama_cpp
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx, row), shape=(self.n_vocab,))
        token = self._pick(logits, rng, temperature)
        if self._accepts(grammar, token):  # lazy check: only the chosen token is tested
            return token
        # Rejected: filter the whole vocabulary through the grammar and sample again.
        self.stats.grammar_resamples += 1
        view = self._candidate_view
        view["id"] = np.arange(self.n_vocab)
        view["logit"] = logits
        view["p"] = 0.0
        full = llama_cpp.llama_token_data_array(self._candidates, self.n_vocab, -1, False)
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(full))
        allowed = np.asarray(view["logit"], dtype=np.float64)
        if not np.isfinite(allowed).any():
            return None
        return self._pick(allowed, rng, temperature)

    @staticmethod
    def _pick(logits: np.ndarray, rng: np.random.Generator, temperature: float) -> int:
        """Greedy for temperature <= 0, else a draw from softmax(logits / temperature)."""
        if temperature <= 0:
            return int(np.argmax(logits))
        scaled = np.asarray(logits, dtype=np.float64) / temperature
        scaled -= scaled[np.isfinite(scaled)].max()
        weights = np.exp(scaled)
        weights[~np.isfinite(weights)] = 0.0
        cumulative = np.cumsum(weights)
        return int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))

    def close(self) -> None:
        llama_cpp = self.llama_cpp
        if getattr(self, "batch", None) is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass


def _common_length(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length
