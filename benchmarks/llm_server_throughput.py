"""LLM agents in-process vs on an OpenAI-compatible server, same model, same society, same run.

Starts llama-cpp-python's own server (``python -m llama_cpp.server``) on a loopback port with the same
GGUF and thread count, then plays the same ``small``-preset society (same seed, ``--agents`` LLM
founders, ``--steps`` steps) with ``LlamaCppPolicy`` (in-process) and with ``ServerPolicy`` (every
agent-step one HTTP chat completion with the per-agent GBNF grammar), alternating the two ``--repeats``
times so that machine noise hits both. Prints agent-steps/s, prompt and generated tokens per agent-step,
and the in-process / server ratio.

What to expect: the in-process engine keeps each agent's KV between steps and decodes the shared system
prompt once, and advances all agents of a step in one batch; llama-cpp-python's server answers one request
at a time and reuses only the longest prefix of its last prompt. A GPU server with continuous batching
(vLLM, llama-server --parallel N) is another matter: it is what the server backend is for.

Usage: python benchmarks/llm_server_throughput.py [--agents 4] [--steps 4] [--threads 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import society_env
from policies import POLICIES, PolicyAssignment, parse_policy_spec
from policies.llm.policy import LlamaCppPolicy
from policies.llm.server import ServerPolicy, launch_local_server
from policies.llm.models import resolve_model
from policies.rollout import run_episode


def play(policy, config, agents: int, steps: int, seed: int) -> dict[str, float]:
    env = society_env.SocietyEnv(config)
    entries = parse_policy_spec("llm", POLICIES)
    started = time.perf_counter()
    stats = run_episode(env, PolicyAssignment(entries, agents), {"llm": policy}, seed, steps)
    seconds = time.perf_counter() - started
    cost = policy.cost_summary()
    return {"agent_steps_per_second": stats.agent_steps / seconds, "tokens_in": cost["tokens_in_per_agent_step"],
            "tokens_out": cost["tokens_out_per_agent_step"], "failures": cost["failures"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--agents", type=int, default=4, help="LLM founders of the small-preset society")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = str(resolve_model(args.model))
    config = society_env.make_config("small", num_founders=args.agents, language=True)
    n_ctx = 2048
    process, url = launch_local_server(model, threads=args.threads, n_ctx=n_ctx * 4)
    try:
        rows = {"in-process": [], "server": []}
        for repeat in range(args.repeats):
            for name in rows:  # fresh policies, so that each measurement's token counts are its own
                if name == "in-process":
                    policy = LlamaCppPolicy(config, model=model, n_threads=args.threads, n_ctx=n_ctx,
                                            batch_size=args.agents)
                else:
                    policy = ServerPolicy(config, url)
                rows[name].append(play(policy, config, args.agents, args.steps, args.seed + repeat))
                print(f"repeat {repeat} {name:>10}: {rows[name][-1]}", flush=True)
    finally:
        process.kill()
    mean = {name: sum(r["agent_steps_per_second"] for r in runs) / len(runs) for name, runs in rows.items()}
    print(f"\n{args.agents} LLM agents, {args.steps} steps x {args.repeats}, {args.threads} threads, {model}")
    for name, runs in rows.items():
        print(f"{name:>10}: {mean[name]:.2f} agent-steps/s; tokens in/out per agent-step "
              f"{runs[-1]['tokens_in']:.0f} / {runs[-1]['tokens_out']:.0f}; failures {sum(r['failures'] for r in runs)}")
    print(f"in-process / server: {mean['in-process'] / mean['server']:.2f}x")


if __name__ == "__main__":
    main()
