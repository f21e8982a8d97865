"""The LLM policy's options, declared once: ``society-env run`` / ``experiment`` make their ``LLM`` flags
from :class:`LLMOptions`, and ``qes-train`` / ``qes-eval`` declare theirs with
:func:`society_env.app.options.same_option` from the same fields (same flag, default and help)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from policies.llm.policy import DEFAULT_CONTEXT_TOKENS, LONG_CONTEXT_TOKENS
from policies.llm.prompt_config import PROMPT_MOTIVATIONS, PromptConfig
from society_env.world.config import SocietyConfig
from society_env.app.options import option


@dataclass(frozen=True)
class LLMOptions:
    """How the ``llm`` policy runs: the model, llama.cpp's settings, sampling and the prompt overrides
    (None = the run's prompt: its preset's and ``--set prompt_*``, see :meth:`prompt`)."""

    model: str | None = option(None, "GGUF file, or the name of a tuned model of `society-env models`", group="LLM",
                               type=str,
                               default_text="the embedded SmolLM2-135M-Instruct Q4_1, fetched on first use")
    temperature: float = option(0.7, "sampling temperature; 0 = greedy", group="LLM", minimum=0)
    n_ctx: int | None = option(None, "context tokens per agent", group="LLM", type=int, minimum=1,
                               default_text=f"{DEFAULT_CONTEXT_TOKENS}, or {LONG_CONTEXT_TOKENS} in worlds with "
                                            "artifacts or history")
    threads: int | None = option(None, "CPU threads for llama.cpp", group="LLM", type=int, minimum=1,
                                 default_text="up to 4 cores")
    n_gpu_layers: int = option(0, "layers to offload to a GPU, if llama.cpp has one", group="LLM", minimum=0)
    chat_format: str | None = option(None, "chatml, plain or a Jinja template", group="LLM", type=str,
                                     default_text="the model's own")
    batch_size: int = option(8, "agents generated together in one llama.cpp batch", group="LLM", flag="--llm-batch",
                             metavar="N", minimum=1)
    sequential: bool = option(False, "generate one agent at a time instead of batched", group="LLM", switch="on")
    max_tokens: int | None = option(None, "generation cap per answer", group="LLM", type=int, minimum=1,
                                    default_text="the longest answer the action grammar allows")
    history: int | None = option(None, "steps of history in the prompt (1 = current only)", group="LLM", type=int,
                                 minimum=1, default_text="the preset's prompt_history")
    motivation: str | None = option(None, "motivation in the system prompt", group="LLM", choices=PROMPT_MOTIVATIONS,
                                    default_text="the preset's prompt_motivation")
    personality: bool | None = option(None, "describe personality traits in the prompt", group="LLM", switch="both",
                                      default_text="the preset's prompt_personality")
    server: str | None = option(None, "generate on OpenAI-compatible servers instead of in this process (vLLM, "
                                "llama-server, python -m llama_cpp.server, SGLang, Ollama); several URLs are "
                                "balanced", group="LLM", flag="--llm-server", metavar="URL[,URL...]", type=str,
                                default_text="in-process llama.cpp")
    server_model: str | None = option(None, "model name to ask the servers for", group="LLM", flag="--llm-model",
                                      metavar="NAME", type=str, default_text="the first the server lists")
    concurrency: int = option(8, "server requests in flight at once", group="LLM", flag="--llm-concurrency",
                              metavar="N", minimum=1)
    timeout: float = option(60.0, "seconds per server request attempt (2 retries with backoff follow)", group="LLM",
                            flag="--llm-timeout", metavar="SECONDS", minimum=0.001)

    def prompt(self, run_prompt: PromptConfig) -> PromptConfig:
        """The prompt: the run's (its preset's, with ``--set prompt_*``), overridden by the options given."""
        given = {"history": self.history, "motivation": self.motivation, "personality": self.personality}
        return dataclasses.replace(run_prompt, **{name: value for name, value in given.items() if value is not None})

    def model_file(self) -> str | None:
        """``model`` as the policy gets it and a recording names it: a tuned model's name stands for its
        built GGUF (:func:`policies.llm.models.resolve_model` builds it on first use); the default stays
        ``None`` and a path stays as given. With ``server`` the model is the server's business."""
        from policies.llm.models import is_tuned_model, resolve_model

        return str(resolve_model(self.model)) if is_tuned_model(self.model) and not self.server else self.model

    def policy_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :class:`policies.llm.policy.LlamaCppPolicy` (without the prompt), or of
        :class:`policies.llm.server.ServerPolicy` with ``server``."""
        arguments = {"model": self.model_file(), "n_ctx": self.n_ctx, "n_threads": self.threads,
                     "n_gpu_layers": self.n_gpu_layers, "temperature": self.temperature, "chat_format": self.chat_format,
                     "batch_size": self.batch_size, "batched": not self.sequential, "max_tokens": self.max_tokens}
        if self.server:
            arguments.update(urls=self.server, server_model=self.server_model, concurrency=self.concurrency,
                             timeout=self.timeout)
        return arguments

    def make_policy(self, config: SocietyConfig, run_prompt: PromptConfig):
        """The ``llm`` policy these options describe in world ``config`` with the run's prompt
        ``run_prompt`` (:meth:`prompt`): in-process, or on the servers of ``server``."""
        if self.server:
            from policies.llm.server import ServerPolicy

            return ServerPolicy(config, prompt=self.prompt(run_prompt), **self.policy_arguments())
        from policies.llm.policy import LlamaCppPolicy

        return LlamaCppPolicy(config, prompt=self.prompt(run_prompt), **self.policy_arguments())

    def record(self, run_prompt: PromptConfig) -> dict[str, Any]:
        """What a recording's ``meta.json`` stores under ``llm``: the policy arguments, the effective
        prompt (``prompt``: every :class:`PromptConfig` field; recordings before it kept theirs in the
        world config's ``prompt_*`` fields) and, as before, its ``history``, ``motivation`` and
        ``personality``."""
        prompt = self.prompt(run_prompt)
        return {**self.policy_arguments(), "history": prompt.history, "motivation": prompt.motivation,
                "personality": prompt.personality, "prompt": prompt.to_dict()}
