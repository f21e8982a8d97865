"""LLM agent throughput: our batched engine vs the high-level llama-cpp-python API, same prompts, same run.

Three ways to get one constrained JSON action per agent, for consecutive steps of a small society:

* naive: each agent's full prompt through ``Llama.create_chat_completion`` with the JSON schema of its
  answer (``llm_answer.answer_json_schema``: the same answers as our grammar), one after another, with
  the KV cache cleared before each call (an API-style loop, as TerraLingua's);
* high-level, best use: the same calls without clearing, so consecutive calls reuse the shared
  system-prompt prefix (llama-cpp-python keeps the longest matching prefix);
* ours: ``LlamaCppPolicy`` (one context, one KV sequence per living agent kept across steps, shared
  prefix decoded once, all agents of a step advanced together, lazy grammar sampling).

The society runs on ours's actions; at every step the three approaches answer the same prompts (built
before ours acts), so all three pay for the same text. Each size starts a fresh episode (every approach
starts with an empty cache) and measures ``--steps`` consecutive steps of it.

``--prompt reference`` shrinks the prompt to the sizes of the measurement the performance targets were
set with (the project design notes: system prompt ~270 tokens, observation ~80, answer ~25): view
radius 2, no personality, no motivation, 30-character message and memory note. ``default`` is the
``small`` preset as users run it.

``--compare-views`` instead measures what the compact view of the ``small`` preset saves: the README's
society (``--policy llm=4,cooperator=2``, 20 steps) played with the view users had before
(``prompt_view=terralingua``, 60-character messages, 80-character memory notes) and with the preset's
compact view, episode by episode alternately on the same seeds, each with its own engine; it prints
seconds and tokens per LLM agent-step as the run summary counts them, and what the agents did (share of
moves towards visible food, food per agent-step).

Usage: python benchmarks/llm_throughput.py [--agents 1,4,8,16] [--steps 3] [--threads 2] [--prompt default]
       python benchmarks/llm_throughput.py --compare-views [--episodes 4] [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import society_env
from policies.llm.engine import LlamaEngine, disable_amx_weight_buffers
from policies.llm.answer import answer_json_schema
from policies.llm.policy import LlamaCppPolicy
from policies.llm.prompt import PromptSettings, read_options
from policies.llm.models import resolve_model

PROMPTS = {
    "default": ({}, None),  # the preset's own prompt settings
    "reference": ({"view_radius": 2}, PromptSettings(personality=False, motivation="none", message_chars=30, memory_chars=30)),
}
"""--prompt choices: (world overrides of the ``small`` preset, prompt settings)."""


def run_high_level(llama, prompts, schemas: list[dict], clear_cache: bool, max_tokens: int, temperature: float,
                   seed: int):
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


VIEWS = {
    "terralingua (before)": (("prompt_view", "terralingua"), ("prompt_message_chars", 60), ("prompt_memory_chars", 80)),
    "compact (small's default)": (),
}
"""--compare-views: world overrides of the small preset for each view."""


def compare_views(model, episodes: int, steps: int, threads: int) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--agents", default="1,4,8,16", help="comma-separated society sizes")
    parser.add_argument("--steps", type=int, default=3, help="consecutive society steps measured per size and approach")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--prompt", choices=sorted(PROMPTS), default="default",
                        help="default: the small preset's prompt; reference: the prompt sizes the targets were set with")
    parser.add_argument("--compare-views", action="store_true",
                        help="compare the small preset's compact view with the TerraLingua view (module docstring)")
    parser.add_argument("--episodes", type=int, default=4, help="--compare-views: episodes per view")
    args = parser.parse_args()
    if args.compare_views:
        compare_views(resolve_model(args.model), args.episodes, args.steps, args.threads)
        return

    from llama_cpp import Llama

    disable_amx_weight_buffers()  # as LlamaEngine does: llama.cpp's AMX kernels crash on some Xeons
    model = resolve_model(args.model)
    sizes = [int(x) for x in args.agents.split(",")]
    # One Llama object per high-level approach, so the best-use run never profits from the naive run's cache.
    naive_llama, best_llama = (Llama(str(model), n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads,
                                     verbose=False, seed=0) for _ in range(2))
    engine = LlamaEngine(model, n_ctx=1024, max_batch=max(sizes), n_threads=args.threads)
    world, settings = PROMPTS[args.prompt]
    print(f"model {model.name}, threads {args.threads}, {args.steps} steps per size, max_tokens {args.max_tokens}, "
          f"prompt {args.prompt}")
    header = f"{'agents':>6} | {'naive s/action':>14} | {'high-level s/action':>19} | {'ours s/action':>13} | " \
             f"{'ours vs naive':>13} | {'ours vs high-level':>18} | {'ours tok in/out':>15} | {'ours prompt/gen tok/s':>21}"
    print(header)
    print("-" * len(header))
    rows = []
    for agents in sizes:
        env = society_env.parallel_env("small", language=True, num_founders=agents, **world)
        policy = LlamaCppPolicy(env.config, engine=engine, temperature=args.temperature, max_tokens=args.max_tokens,
                                prompt=settings)
        observations, infos = env.reset(seed=agents)
        policy.reset(agents)
        best_llama.reset()
        naive = high = ours = 0.0
        actions = 0
        engine.stats.__init__()
        for step in range(args.steps):
            if not observations:
                break
            prompts = [policy.build_messages(agent, observation, info=infos[agent]) for agent, observation in observations.items()]
            schemas = [answer_json_schema(read_options(infos[agent]["view"], infos[agent]["energy"], env.config), env.config,
                                          policy.settings) for agent in observations]
            seconds, _ = run_high_level(naive_llama, prompts, schemas, True, args.max_tokens, args.temperature, step)
            naive += seconds
            seconds, _ = run_high_level(best_llama, prompts, schemas, False, args.max_tokens, args.temperature, step)
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
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
