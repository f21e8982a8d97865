"""The LLM stack: the prompt (``prompt``), the answer format and its grammar (``answer``), batched
constrained generation in llama.cpp (``engine``), OpenAI-compatible servers (``server``, and the launcher
``server_main``), the model registry (``models``) and the policy that drives agents with them (``policy``).
Needs the ``llm`` extra. See docs/llm-agents.md."""
