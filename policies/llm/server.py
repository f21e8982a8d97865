"""LLM agents on OpenAI-compatible servers (vLLM, llama.cpp's llama-server, llama-cpp-python's server,
SGLang, Ollama): the same prompts, per-agent constraint and parser as the in-process engine, so every
answer is a valid action, with the generation done elsewhere.

- **Constraint.** Probed once per server at start: a GBNF ``grammar`` field (llama-server, llama-cpp-python)
  when the server honours it, else a ``json_schema`` response format (vLLM, SGLang); both come from the
  answer table (``policies.llm.answer``).
- **Concurrency.** All agents of a step are sent at once, at most ``concurrency`` in flight, spread over
  the URLs round-robin; each request carries a seed from (policy seed, step, agent slot), as in-process.
- **Failures.** The ``openai`` client retries connection errors, 5xx and 429 with exponential backoff,
  within ``timeout`` per attempt; an agent whose request still fails stays put and the failure is
  counted, like an invalid answer. After ``max_failed_steps`` steps in a row in which every request
  failed, the run stops with a :class:`ServerError` (the recording so far is kept).
- **Recording.** Prompts, completions, the server's token counts (``usage``) and latencies go into the
  ``llm_call`` events as in-process, so ``society-env replay`` reproduces a run without any server.

What is not reproducible: a server's own batching can change the last bits of its logits, so the same
seed can give another answer on another server load (the in-process engine is bit-reproducible).
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policies.llm.answer import ANSWER_PREFILL
from policies.llm.backend import AgentTurn, Answer, LanguageModel, LLMPolicyError
from policies.llm.engine import GenerationResult, ModelError
from policies.llm.policy import LLMPolicy, checked_settings
from policies.llm.prompt_config import PromptConfig

__all__ = ["ServerBackend", "ServerPolicy", "ServerError", "connect", "launch_local_server", "failure_reason"]

PROBE_GRAMMAR = 'root ::= "yes"'


class ServerError(ModelError):
    """A server that cannot be used: unreachable, not serving the model, or failing step after step."""


def _client(url: str, timeout: float, retries: int):
    try:
        import openai
    except ImportError:
        raise ServerError('LLM servers need the openai client: pip install "society-env[server]"') from None
    base = url.rstrip("/")
    return openai.OpenAI(base_url=base if base.endswith("/v1") else base + "/v1", api_key="none",
                         timeout=timeout, max_retries=retries)


@dataclass
class Connection:
    """One probed server: its client, the model asked for, and how answers are constrained there."""

    url: str
    client: Any
    model: str
    constraint: str
    """"grammar" (the server honours a GBNF ``grammar`` field: llama.cpp's servers) or "json_schema" (vLLM, SGLang)."""


def connect(url: str, server_model: str | None = None, timeout: float = 60.0, retries: int = 2) -> Connection:
    """Reach ``url``, check that it serves ``server_model`` (default: the first model it lists) and probe
    once whether it honours a GBNF grammar. Every way this can fail is a one-line :class:`ServerError`."""
    client = _client(url, timeout, retries)
    try:
        served = [model.id for model in client.models.list().data]
    except Exception as error:  # openai raises APIConnectionError, APIStatusError, ...
        raise ServerError(f"cannot reach the LLM server {url}: {failure_reason(error)}") from None
    model = server_model or (served[0] if served else None)
    if model is None or (server_model and server_model not in served):
        raise ServerError(f"the LLM server {url} does not serve model {server_model!r}; it serves: "
                          f"{', '.join(served) or 'nothing'}")
    try:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say yes."}], max_tokens=4,
            temperature=0.0, extra_body={"grammar": PROBE_GRAMMAR})
    except Exception as error:
        raise ServerError(f"the LLM server {url} failed a first request: {failure_reason(error)}") from None
    constraint = "grammar" if (reply.choices[0].message.content or "").strip() == "yes" else "json_schema"
    return Connection(url, client, model, constraint)


@dataclass
class ServerStats:
    requests: int = 0
    failed_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    """Summed request latencies (requests overlap, so this exceeds the wall time)."""
    constraint: dict[str, str] | None = None
    """URL -> "grammar" or "json_schema"."""


class ServerBackend(LanguageModel):
    """OpenAI-compatible servers behind the :class:`~policies.llm.backend.LanguageModel` interface (module
    docstring). They return text alone, so :meth:`decision_distribution` and :meth:`move_distribution`
    raise :class:`~policies.llm.backend.NoLogitsError` (the interface's default).

    Arguments: ``urls`` (one or more server base URLs), ``server_model`` (the model name to ask for;
    default: the first the server lists), ``concurrency`` (requests in flight), ``timeout`` (seconds per
    attempt), ``retries`` and ``max_failed_steps``.
    """

    chat_format = "server"

    def __init__(self, urls: str | list[str], server_model: str | None = None, concurrency: int = 8,
                 timeout: float = 60.0, retries: int = 2, max_failed_steps: int = 3):
        self.urls = [u.strip() for u in (urls.split(",") if isinstance(urls, str) else urls) if u.strip()]
        if not self.urls:
            raise LLMPolicyError("--llm-server needs at least one URL")
        if concurrency < 1 or retries < 0 or timeout <= 0 or max_failed_steps < 1:
            raise LLMPolicyError("concurrency and max_failed_steps must be at least 1, retries at least 0, timeout > 0")
        self.server_model, self.concurrency, self.timeout, self.retries = server_model, concurrency, timeout, retries
        self.max_failed_steps = max_failed_steps
        self.server_stats = ServerStats(constraint={})
        self._clients = []
        for url in self.urls:  # probe every server once
            connection = connect(url, self.server_model, self.timeout, self.retries)
            self.server_model = connection.model  # the first server's default is asked of the others too
            self.server_stats.constraint[url] = connection.constraint
            self._clients.append((url, connection.client))
        self.identity = self.label = f"server:{self.server_model}"
        self._next_client = itertools.cycle(range(len(self._clients)))
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm-server")
        self._failed_steps = 0

    # ---- agent sessions -----------------------------------------------------------------------
    def prepare(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        return messages  # the server applies its own chat template

    def reset(self) -> None:
        self._failed_steps = 0

    def generate(self, turns: Sequence[AgentTurn], max_tokens: int, temperature: float,
                 batched: bool = True) -> list[GenerationResult]:
        jobs = [self._pool.submit(self._request, turn, next(self._next_client), max_tokens, temperature)
                for turn in turns]
        results = [job.result() for job in jobs]
        if all(result.error for result in results):
            self._failed_steps += 1
            if self._failed_steps >= self.max_failed_steps:
                raise ServerError(f"every LLM server request failed {self._failed_steps} steps in a row "
                                  f"(last: {results[-1].error}); stopping")
        else:
            self._failed_steps = 0
        return results

    def _request(self, turn: AgentTurn, index: int, max_tokens: int, temperature: float) -> GenerationResult:
        url, client = self._clients[index]
        extra: dict[str, Any] = {}
        if self.server_stats.constraint[url] == "grammar":
            extra["extra_body"] = {"grammar": turn.answer.whole_grammar}
        else:
            extra["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "strict": True, "schema": turn.answer.json_schema}}
        seed = int(np.random.SeedSequence(list(turn.seed_key)).generate_state(1)[0] % (2**31 - 1))
        started = time.perf_counter()
        result = GenerationResult()
        try:
            reply = client.chat.completions.create(model=self.server_model, messages=turn.prompt,
                                                   max_tokens=max_tokens + len(ANSWER_PREFILL), temperature=temperature,
                                                   seed=seed, **extra)
            choice = reply.choices[0]
            result.text = (choice.message.content or "").strip()
            result.finished = choice.finish_reason == "stop"
            if reply.usage is not None:
                result.tokens_in, result.tokens_out = reply.usage.prompt_tokens, reply.usage.completion_tokens
        except Exception as error:
            result.error = f"server {url}: {failure_reason(error)}"
        result.seconds = time.perf_counter() - started
        stats = self.server_stats
        stats.requests += 1
        stats.failed_requests += result.error is not None
        stats.prompt_tokens += result.tokens_in
        stats.completion_tokens += result.tokens_out
        stats.seconds += result.seconds
        return result

    def costs(self, calls: int, seconds: float) -> dict[str, Any]:
        stats = self.server_stats
        return {
            "model": f"{self.server_model} on {', '.join(self.urls)}",
            "chat_format": self.chat_format,
            "constraint": dict(stats.constraint),
            "failed_requests": stats.failed_requests,
            "prompt_tokens": stats.prompt_tokens,  # the server's usage: whole prompts, whatever it reused
            "generated_tokens": stats.completion_tokens,
            "prompt_tokens_per_second": 0.0,  # not separable from a request's latency
            "generation_tokens_per_second": round(stats.completion_tokens / seconds, 1) if seconds else 0.0,
            "mean_request_seconds": round(stats.seconds / stats.requests, 4) if stats.requests else 0.0,
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- one-off chats ---------------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]], schema: dict | None, max_tokens: int, temperature: float = 0.0,
             seed: int = 0) -> Answer:
        """One conversation on the first server, under ``schema`` (as GBNF where the server honours
        grammars, else as ``response_format``)."""
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        url, client = self._clients[0]
        extra: dict[str, Any] = {}
        if schema is not None and self.server_stats.constraint[url] == "grammar":  # llama.cpp's servers
            extra = {"extra_body": {"grammar": json_schema_to_gbnf(json.dumps(schema))}}
        elif schema is not None:  # vLLM, SGLang
            extra = {"response_format": {"type": "json_schema", "json_schema": {"name": "tags", "strict": True, "schema": schema}}}
        try:
            reply = client.chat.completions.create(model=self.server_model, messages=messages, max_tokens=max_tokens,
                                                   temperature=temperature, seed=seed, **extra)
        except Exception as error:
            return Answer("", failure=f"server: {failure_reason(error)}")
        choice = reply.choices[0]
        usage = reply.usage
        return Answer((choice.message.content or "").strip(), usage.prompt_tokens if usage else 0,
                      usage.completion_tokens if usage else 0,
                      None if choice.finish_reason == "stop" or schema is None else f"answer cut off after {max_tokens} tokens")


class ServerPolicy(LLMPolicy):
    """:class:`~policies.llm.policy.LLMPolicy` on OpenAI-compatible servers (:class:`ServerBackend`).

    Arguments: ``urls``, ``server_model``, ``concurrency``, ``timeout``, ``retries`` and
    ``max_failed_steps`` (:class:`ServerBackend`), and the policy's ``temperature``, ``max_tokens`` and
    ``prompt``. ``chat_format`` must be None (the server applies its own template); ``model``,
    ``n_threads``, ``n_gpu_layers``, ``n_ctx``, ``batch_size`` and ``batched`` are the server's business
    and ignored (so :class:`society_env.app.llm_options.LLMOptions` hands the same arguments to either).
    """

    def __init__(self, config, urls: str | list[str], server_model: str | None = None, concurrency: int = 8,
                 timeout: float = 60.0, retries: int = 2, max_failed_steps: int = 3, temperature: float = 0.7,
                 max_tokens: int | None = None, prompt: PromptConfig | str | None = None, chat_format: str | None = None,
                 **ignored: Any):
        unknown = set(ignored) - {"model", "n_ctx", "n_threads", "n_gpu_layers", "batch_size", "engine", "batched"}
        if unknown:
            raise TypeError(f"ServerPolicy got unexpected arguments: {', '.join(sorted(unknown))}")
        settings = checked_settings(config, prompt, max_tokens=max_tokens, temperature=temperature)
        if chat_format:
            raise LLMPolicyError("--chat-format is the server's business with --llm-server (it applies its own template)")
        backend = ServerBackend(urls, server_model, concurrency=concurrency, timeout=timeout, retries=retries,
                                max_failed_steps=max_failed_steps)
        super().__init__(config, backend, temperature=temperature, max_tokens=max_tokens, prompt=settings)


def launch_local_server(model: str | Path, threads: int = 1, n_ctx: int = 4096, alias: str | None = None,
                        timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``, through
    :mod:`policies.llm.server_main` for its AMX workaround) on ``model`` on a free loopback port; returns
    (the process, its base URL) once it answers ``/v1/models``. The caller stops it (``process.kill()``).
    Used by the tests and ``benchmarks/llm_decisions.py --part server``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "policies.llm.server_main", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads)]
    if alias:
        command += ["--model_alias", alias]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise ServerError(f"python -m llama_cpp.server did not start on {model} (is the server extra installed?)")


def failure_reason(error: Exception) -> str:
    """One line saying why a request failed."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]
