"""LLM decisions per second: our batched engine against the high-level llama-cpp-python API (local) and
against an OpenAI-compatible server (``--part server``), same model, same prompts, side by side in one run.

``--part local`` (default): three ways to get one constrained JSON action per agent, for consecutive steps
of a ``small`` society, printed as seconds per action and the ratios ours / naive and ours / high-level:

* naive: each agent's full prompt through ``Llama.create_chat_completion`` with the JSON schema of its
  answer (``policies.llm.answer.answer_json_schema``: the same answers as our grammar), one after another,
  with the KV cache cleared before each call (an API-style loop, as TerraLingua's);
* high-level, best use: the same calls on a second ``Llama`` that is never cleared, so consecutive calls
  reuse the shared system-prompt prefix (llama-cpp-python keeps the longest matching prefix);
* ours: ``LlamaCppPolicy`` (one context, one KV sequence per living agent kept across steps, shared
  prefix decoded once, all agents of a step advanced together, lazy grammar sampling).

The society runs on ours's actions; at every step the three approaches answer the same prompts (built
before ours acts), so all three pay for the same text. Each size starts a fresh episode (every approach
starts with an empty cache) and measures ``--steps`` consecutive steps of it. ``--prompt reference``
shrinks the prompt to the sizes the performance targets were set with (the project's design notes: system
prompt ~270 tokens, observation ~80, answer ~25): view radius 2, no personality, no motivation,
30-character message and memory note. ``default`` is the ``small`` preset as users run it.

``--part server``: the same ``small`` society (``--agents`` LLM founders, same seeds) played with
``LlamaCppPolicy`` (in-process) and with ``ServerPolicy`` against llama-cpp-python's own server
(``python -m llama_cpp.server``, started on a loopback port with the same GGUF and thread count; every
agent-step one HTTP chat completion with the per-agent GBNF grammar), alternating ``--repeats`` times so
that machine noise hits both; prints agent-steps/s, tokens per agent-step and in-process / server. The
in-process engine keeps each agent's KV between steps, decodes the shared prompt once and batches a
step's agents; llama-cpp-python's server answers one request at a time. A GPU server with continuous
batching (vLLM, llama-server --parallel N) is what the server backend is for; this part cannot show it.

``--part views``: what the compact view of the ``small`` preset saves: the README's society
(``llm=4,cooperator=2``, ``--steps`` steps) with TerraLingua's view (``prompt_view=terralingua``,
60-character messages, 80-character memory notes) and with the preset's compact view, episode by episode
alternately on the same seeds, each with its own engine; seconds and tokens per LLM agent-step as the run
summary counts them, and what the agents did (moves towards visible food, food per agent-step).

    python benchmarks/llm_decisions.py                                  # local, 1,4,8,16 agents x 3 steps (~11 min on 2 cores)
    python benchmarks/llm_decisions.py --prompt reference               # at the targets' prompt sizes (~6 min)
    python benchmarks/llm_decisions.py --part server                    # 4 agents x 4 steps x 2 repeats
    python benchmarks/llm_decisions.py --part views --episodes 4 --steps 20
    python benchmarks/llm_decisions.py --quick                          # local, 4 agents x 1 step: does it run (minutes)

The default model is the embedded SmolLM2-135M-Instruct (``policies.llm.models`` fetches it on first use).
Absolute times follow the machine's load; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import society_env
from policies import POLICIES, PolicyAssignment, parse_policy_spec
from policies.llm.answer import answer_json_schema
from policies.llm.engine import LlamaEngine, disable_amx_weight_buffers
from policies.llm.models import resolve_model
from policies.llm.policy import LlamaCppPolicy
from policies.llm.prompt import read_options
from policies.llm.prompt_config import PromptConfig
from policies.rollout import run_episode

PROMPTS = {
    "default": ({}, "small"),  # the preset's own prompt settings
    "reference": ({"view_radius": 2}, PromptConfig(personality=False, motivation="none", message_chars=30, memory_chars=30)),
}
"""--prompt choices: (world overrides of the ``small`` preset, prompt settings)."""


# ---- local: naive, high-level best use, ours ---------------------------------------------------------
def run_high_level(llama, prompts, schemas: list[dict], clear_cache: bool, max_tokens: int, temperature: float,
                   seed: int) -> tuple[float, int]:
    """Seconds and generated tokens for one action per agent through create_chat_completion, each agent's
    answer constrained by its own JSON schema (``schemas``, as ``prompts``)."""
    generated = 0
    started = time.perf_counter()
    for index, (messages, schema) in enumerate(zip(prompts, schemas)):
        if clear_cache:
            llama.reset()
        out = llama.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=temperature, seed=seed + index,
            response_format={"type": "json_object", "schema": schema},
        )
        generated += out["usage"]["completion_tokens"]
    return time.perf_counter() - started, generated


def local(model: Path, sizes: list[int], steps: int, threads: int, max_tokens: int, temperature: float,
          prompt: str) -> None:
    """Naive, high-level best use and ours on the same prompts, step by step (module docstring)."""
    from llama_cpp import Llama

    disable_amx_weight_buffers()  # as LlamaEngine does: llama.cpp's AMX kernels crash on some Xeons
    # One Llama object per high-level approach, so the best-use run never profits from the naive run's cache.
    naive_llama, best_llama = (Llama(str(model), n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                                     verbose=False, seed=0) for _ in range(2))
    engine = LlamaEngine(model, n_ctx=1024, max_batch=max(sizes), n_threads=threads)
    world, settings = PROMPTS[prompt]
    print(f"model {model.name}, threads {threads}, {steps} steps per size, max_tokens {max_tokens}, prompt {prompt}")
    header = f"{'agents':>6} | {'naive s/action':>14} | {'high-level s/action':>19} | {'ours s/action':>13} | " \
             f"{'ours vs naive':>13} | {'ours vs high-level':>18} | {'ours tok in/out':>15} | {'ours prompt/gen tok/s':>21}"
    print(header)
    print("-" * len(header))
    rows = []
    for agents in sizes:
        env = society_env.parallel_env("small", language=True, num_founders=agents, **world)
        policy = LlamaCppPolicy(env.config, engine=engine, temperature=temperature, max_tokens=max_tokens,
                                prompt=settings)
        observations, infos = env.reset(seed=agents)
        policy.reset(agents)
        best_llama.reset()
        naive = high = ours = 0.0
        actions = 0
        engine.stats.__init__()
        for step in range(steps):
            if not observations:
                break
            prompts = [policy.build_messages(agent, observation, info=infos[agent]) for agent, observation in observations.items()]
            schemas = [answer_json_schema(read_options(infos[agent]["view"], infos[agent]["energy"], env.config), env.config,
                                          policy.settings) for agent in observations]
            seconds, _ = run_high_level(naive_llama, prompts, schemas, True, max_tokens, temperature, step)
            naive += seconds
            seconds, _ = run_high_level(best_llama, prompts, schemas, False, max_tokens, temperature, step)
            high += seconds
            started = time.perf_counter()
            chosen = policy.act(observations, infos)
            ours += time.perf_counter() - started
            actions += len(observations)
            observations, _, _, _, infos = env.step(chosen)
        stats = engine.stats
        row = (agents, naive / actions, high / actions, ours / actions)
        rows.append(row)
        print(f"{agents:>6} | {row[1]:>14.3f} | {row[2]:>19.3f} | {row[3]:>13.3f} | {row[1] / row[3]:>12.2f}x | "
              f"{row[2] / row[3]:>17.2f}x | {stats.prompt_tokens / actions:>7.0f}/{stats.generated_tokens / actions:<7.0f} | "
              f"{stats.prompt_tokens / max(stats.prompt_seconds, 1e-9):>9.0f}/{stats.generated_tokens / max(stats.generation_seconds, 1e-9):<11.0f}")
    print("\nagent-steps/s of ours:", ", ".join(f"{a} agents: {1 / s:.2f}" for a, _, _, s in rows))
    print("ratios are measured side by side in this run; absolute times depend on the machine's load.")


# ---- server: in-process against llama-cpp-python's server ---------------------------------------------
def play(policy, config, agents: int, steps: int, seed: int) -> dict[str, float]:
    env = society_env.SocietyEnv(config)
    entries = parse_policy_spec("llm", POLICIES)
    started = time.perf_counter()
    stats = run_episode(env, PolicyAssignment(entries, agents), {"llm": policy}, seed, steps)
    seconds = time.perf_counter() - started
    cost = policy.cost_summary()
    return {"agent_steps_per_second": stats.agent_steps / seconds, "tokens_in": cost["tokens_in_per_agent_step"],
            "tokens_out": cost["tokens_out_per_agent_step"], "failures": cost["failures"]}


def server(model: Path, agents: int, steps: int, threads: int, repeats: int, seed: int) -> None:
    """The same society in-process and through ``python -m llama_cpp.server``, alternated (module docstring)."""
    from policies.llm.server import ServerPolicy, launch_local_server

    config = society_env.make_config("small", num_founders=agents, language=True)
    n_ctx = 2048
    process, url = launch_local_server(str(model), threads=threads, n_ctx=n_ctx * 4)
    try:
        rows = {"in-process": [], "server": []}
        for repeat in range(repeats):
            for name in rows:  # fresh policies, so that each measurement's token counts are its own
                if name == "in-process":
                    policy = LlamaCppPolicy(config, model=str(model), n_threads=threads, n_ctx=n_ctx, batch_size=agents,
                                            prompt="small")
                else:
                    policy = ServerPolicy(config, url, prompt="small")
                rows[name].append(play(policy, config, agents, steps, seed + repeat))
                print(f"repeat {repeat} {name:>10}: {rows[name][-1]}", flush=True)
    finally:
        process.kill()
    mean = {name: sum(r["agent_steps_per_second"] for r in runs) / len(runs) for name, runs in rows.items()}
    print(f"\n{agents} LLM agents, {steps} steps x {repeats}, {threads} threads, {model}")
    for name, runs in rows.items():
        print(f"{name:>10}: {mean[name]:.2f} agent-steps/s; tokens in/out per agent-step "
              f"{runs[-1]['tokens_in']:.0f} / {runs[-1]['tokens_out']:.0f}; failures {sum(r['failures'] for r in runs)}")
    print(f"in-process / server: {mean['in-process'] / mean['server']:.2f}x")


# ---- views: the compact view against TerraLingua's ------------------------------------------------------
VIEWS = {
    "terralingua (before)": ("prompt_view=terralingua", "prompt_message_chars=60", "prompt_memory_chars=80"),
    "compact (small's default)": (),
}
"""--part views: ``--set`` overrides of the small preset's prompt for each view."""


def compare_views(model: Path, episodes: int, steps: int, threads: int) -> None:
    """The README society with both views, alternating episodes on the same seeds (module docstring)."""
    from collections import Counter

    from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, behaviour_summary

    evaluators = {}
    for label, overrides in VIEWS.items():
        settings = FitnessSettings(preset="small", policy="llm=4,cooperator=2", max_steps=steps, overrides=overrides)
        engine = LlamaEngine(model, n_ctx=settings.context_tokens(), max_batch=8, n_threads=threads)
        evaluators[label] = FitnessEvaluator(settings, engine)
    results = {label: [] for label in VIEWS}
    for seed in range(episodes):
        for label, evaluator in evaluators.items():
            results[label].append(evaluator.play(seed))
    print(f"model {model.name}, threads {threads}, {episodes} episodes x {steps} steps, policy llm=4,cooperator=2")
    header = f"{'view':>26} | {'s/agent-step':>12} | {'tokens in':>9} | {'tokens out':>10} | {'in+out':>6} | " \
             f"{'towards food':>12} | {'food/agent-step':>15} | {'agent-steps':>11}"
    print(header)
    print("-" * len(header))
    for label, evaluator in evaluators.items():
        costs = evaluator.llm.cost_summary()
        behaviour = behaviour_summary(results[label])
        counts = Counter()
        for result in results[label]:
            counts.update(result.behaviour)
        print(f"{label:>26} | {costs['seconds_per_agent_step']:>12.3f} | {costs['tokens_in_per_agent_step']:>9.1f} | "
              f"{costs['tokens_out_per_agent_step']:>10.1f} | "
              f"{costs['tokens_in_per_agent_step'] + costs['tokens_out_per_agent_step']:>6.1f} | "
              f"{counts['towards_food']:>4}/{counts['food_in_view']:<4} {behaviour['towards_food_share']:.2f} | "
              f"{behaviour['food_per_agent_step']:>15.3f} | {costs['agent_steps']:>11}")
    print("both views measured in this run, alternating episodes; absolute times depend on the machine's load.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("local", "server", "views"), default="local",
                        help="local: naive / high-level / ours (default); server: in-process / server; views: compact / "
                             "TerraLingua view")
    parser.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--agents", default=None,
                        help="local: comma-separated society sizes (default 1,4,8,16); server: LLM founders (default 4)")
    parser.add_argument("--steps", type=int, default=None,
                        help="consecutive society steps measured (default: local 3, server 4, views 20)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96, help="local: answer length bound (default 96)")
    parser.add_argument("--temperature", type=float, default=0.7, help="local: sampling temperature (default 0.7)")
    parser.add_argument("--prompt", choices=sorted(PROMPTS), default="default",
                        help="local: default = the small preset's prompt; reference = the prompt sizes the targets were set with")
    parser.add_argument("--repeats", type=int, default=2, help="server: alternations of the two backends (default 2)")
    parser.add_argument("--episodes", type=int, default=4, help="views: episodes per view (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="server: the first episode's seed")
    parser.add_argument("--quick", action="store_true",
                        help="a check that the part runs: local 4 agents x 1 step; server 2 agents x 2 steps x 1 repeat; "
                             "views 1 episode x 4 steps")
    args = parser.parse_args(argv)
    model = resolve_model(args.model)
    if args.part == "local":
        sizes = [int(x) for x in (args.agents or ("4" if args.quick else "1,4,8,16")).split(",") if x]
        local(model, sizes, args.steps or (1 if args.quick else 3), args.threads, args.max_tokens, args.temperature,
              args.prompt)
    elif args.part == "server":
        server(model, int(args.agents or (2 if args.quick else 4)), args.steps or (2 if args.quick else 4), args.threads,
               1 if args.quick else args.repeats, args.seed)
    else:
        compare_views(model, 1 if args.quick else args.episodes, args.steps or (4 if args.quick else 20), args.threads)


if __name__ == "__main__":
    main()
