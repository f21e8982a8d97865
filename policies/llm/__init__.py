"""The LLM stack: the prompt (``prompt``), the answer format and its grammar (``answer``), one interface for
every language model (``backend``: ``LanguageModel``) with its two implementations, a GGUF in this process
(``local``, over batched constrained generation in llama.cpp, ``engine``) and OpenAI-compatible servers
(``server``, and the launcher ``server_main``), the model registry (``models``: the default, the tuned
models built from their patches, ``patch``, and paths; the GGUF code layer they share with the trainer,
``gguf_codes``) and the one policy that drives agents with a backend (``policy``). Needs the ``llm`` extra.
See docs/llm-agents.md."""
