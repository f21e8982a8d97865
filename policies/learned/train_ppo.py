"""PPO on the society world, CleanRL style: one readable file, hyperparameters in one dataclass, one seed.

One policy (an MLP over the numeric view) is shared by every agent of ``num_envs`` worlds stepped as
arrays by ``society_env.world.vector.SocietyVectorEnv`` (fixed slots: every slot has a row every step,
``infos["alive"]`` says which live). A slot holds one life: unborn, alive, then dead; it is never reused
within an episode. So:

- the rollout stores every slot's row, and ``alive`` marks the rows where the slot acted;
- the loss, the advantage normalisation and the statistics use only alive rows (``mask``);
- a life ends when its slot is alive at ``t`` and not at ``t + 1`` (death: a terminal, bootstrap 0),
  or when the world's episode ends (truncation at ``max_steps``: bootstrap with the value);
- a world that ends is reset at once by the vector env, from that world's own generator (world ``e`` is
  seeded with the run's first draw + ``e``).

The action is the world's ``MultiDiscrete`` vector (kind, target, amount, message): one categorical head
per component, as CleanRL's ``ppo_multidiscrete.py``. The learning curve is the mean return per agent
life (the sum of an agent's rewards from birth to death) of the lives that ended, against environment
steps (world steps x worlds), written as CSV and PNG; the trained policy is saved with its settings and
loads as ``policies.learned.ppo.PPOPolicy`` (``society-env run --policy ppo --ppo-checkpoint PATH``).

    pip install -e ".[rl]"
    python -m policies.learned.train_ppo --out runs/ppo                 # the documented run (docs/baselines.md)
    python -m policies.learned.train_ppo --total-steps 20000 --out runs/ppo-smoke
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import torch
from torch import nn

from policies.learned.ppo import ActorCritic, save_checkpoint
from society_env.world.vector import SocietyVectorEnv


@dataclass
class Args:
    preset: str = "small"
    """World preset (fixed slots are switched on)."""
    reward_mode: str = "survival"
    """The reward trained on: ``survival`` (+1 per step alive) or the preset's ``shaped`` one, under which a
    shared selfish policy learns to take energy from others (+1 per unit to the taker, -2 to the victim)
    and the mean return per life falls below random's (docs/baselines.md)."""
    reward_sharing: str = "individual"
    """Who is credited with each reward (``society_env.world.rewards.SHARING``): ``individual``, ``lineage``
    (living ancestors get a discounted share of their descendants' rewards, so a child can pay its parent)
    or ``population`` (everyone gets the step's mean)."""
    lineage_discount: float = 0.5
    """``lineage``: the share passed one generation up."""
    seed: int = 0
    """The only seed: worlds, network initialisation and sampling."""
    num_envs: int = 4
    """Worlds stepped side by side."""
    num_steps: int = 64
    """World steps per rollout (per world)."""
    total_steps: int = 160_000
    """Environment steps in total (world steps x worlds)."""
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 4
    minibatch_rows: int = 1024
    """Alive rows per minibatch."""
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 128
    threads: int = 2
    """torch CPU threads."""


def make_envs(args: Args) -> SocietyVectorEnv:
    return SocietyVectorEnv(args.num_envs, args.preset, reward_mode=args.reward_mode,
                            reward_sharing=args.reward_sharing, lineage_discount=args.lineage_discount)


def flat(observations: np.ndarray, infos: dict) -> tuple[np.ndarray, np.ndarray]:
    """(num_envs * slots, obs_size) observations and a copy of the alive mask (the env overwrites its
    arrays in the next step; the observations are copied into the rollout before that)."""
    return observations.reshape(-1, observations.shape[-1]), infos["alive"].reshape(-1).copy()


def train(args: Args, out: Path) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    envs = make_envs(args)
    slots = envs.num_slots
    rows = args.num_envs * slots
    obs_size = envs.single_observation_space.shape[0]
    nvec = envs.single_action_space.nvec
    agent = ActorCritic(obs_size, nvec, args.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    next_obs, next_alive = flat(*envs.reset(seed=int(rng.integers(2**31))))
    life_return = np.zeros(rows)
    finished_lives: list[float] = []
    curve, env_steps, started = [], 0, time.perf_counter()
    env_seconds, env_agent_steps = 0.0, 0  # time inside the worlds' step and reset calls, living agents stepped
    iterations = args.total_steps // (args.num_steps * args.num_envs)

    obs_buf = np.zeros((args.num_steps, rows, obs_size), dtype=np.float32)
    act_buf = np.zeros((args.num_steps, rows, nvec.size), dtype=np.int64)
    logp_buf, val_buf, rew_buf = (np.zeros((args.num_steps, rows), dtype=np.float32) for _ in range(3))
    alive_buf, end_buf, next_value_buf = np.zeros((args.num_steps, rows), bool), np.zeros((args.num_steps, rows), bool), \
        np.zeros((args.num_steps, rows), dtype=np.float32)

    for iteration in range(1, iterations + 1):
        births = 0
        for step in range(args.num_steps):
            obs_buf[step], alive_buf[step] = next_obs, next_alive
            with torch.no_grad():
                action, logp, _, value = agent.act(torch.from_numpy(next_obs))
            act_buf[step], logp_buf[step], val_buf[step] = action.numpy(), logp.numpy(), value.numpy()
            env_started = time.perf_counter()
            observations, rewards, terminations, truncations, infos = envs.step(act_buf[step].reshape(envs.num_envs, slots, -1))
            env_seconds += time.perf_counter() - env_started
            env_agent_steps += int(next_alive.sum())
            env_steps += args.num_envs
            ended_world = infos["episode_ended"][:, None]  # the vector env has already reset these worlds
            world_over = np.broadcast_to(ended_world, (args.num_envs, slots)).reshape(-1)
            truncated_world = (ended_world & truncations.all(axis=1, keepdims=True)
                               & ~terminations.all(axis=1, keepdims=True)).repeat(slots, axis=1).reshape(-1)
            rew_buf[step] = rewards.reshape(-1)
            rewards = rew_buf[step]
            after_obs, after_alive = flat(observations, infos)
            # A life ends at a death (alive now, not next, or the world ended with everyone dead: a
            # terminal) or when the world is truncated at max_steps (bootstrapped with the value of the
            # state it would have gone on from, here approximated by this state's, since the reset
            # replaced it). After a reset the same slot holds a new life.
            died = next_alive & (~after_alive | world_over) & ~truncated_world
            ended = next_alive & (died | truncated_world)
            end_buf[step] = ended
            next_value_buf[step] = np.where(truncated_world & next_alive, val_buf[step], 0.0)
            births += int((after_alive & ~next_alive & ~world_over).sum())  # slots that came to life
            life_return += np.where(next_alive, rewards, 0.0)
            finished_lives += life_return[ended].tolist()
            life_return[ended | world_over] = 0.0
            next_obs, next_alive = after_obs, after_alive

        # Generalised advantage estimation per slot; dead and unborn rows carry nothing.
        with torch.no_grad():
            last_value = agent.value(torch.from_numpy(next_obs)).numpy()
        advantages = np.zeros((args.num_steps, rows), dtype=np.float32)
        gae = np.zeros(rows, dtype=np.float32)
        for t in reversed(range(args.num_steps)):
            following = last_value if t == args.num_steps - 1 else val_buf[t + 1]
            following = np.where(end_buf[t], next_value_buf[t], following)
            continues = ~end_buf[t]
            delta = rew_buf[t] + args.gamma * following - val_buf[t]
            gae = delta + args.gamma * args.gae_lambda * continues * gae
            gae = np.where(alive_buf[t], gae, 0.0)
            advantages[t] = gae
        returns = advantages + val_buf

        mask = alive_buf.reshape(-1)
        b_obs = torch.from_numpy(obs_buf.reshape(-1, obs_size)[mask])
        b_act = torch.from_numpy(act_buf.reshape(-1, nvec.size)[mask])
        b_logp = torch.from_numpy(logp_buf.reshape(-1)[mask])
        b_adv = torch.from_numpy(advantages.reshape(-1)[mask])
        b_ret = torch.from_numpy(returns.reshape(-1)[mask])
        n = b_obs.shape[0]
        for _ in range(args.update_epochs):
            order = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, args.minibatch_rows):
                idx = order[start : start + args.minibatch_rows]
                _, new_logp, entropy, new_value = agent.act(b_obs[idx], b_act[idx])
                ratio = (new_logp - b_logp[idx]).exp()
                adv = b_adv[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8) if adv.numel() > 1 else adv
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                value_loss = 0.5 * ((new_value - b_ret[idx]) ** 2).mean()
                loss = policy_loss - args.ent_coef * entropy.mean() + args.vf_coef * value_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        recent = finished_lives[-200:]
        point = {"iteration": iteration, "env_steps": env_steps, "lives_ended": len(finished_lives),
                 "mean_life_return": float(np.mean(recent)) if recent else float("nan"),
                 "alive_rows": int(n), "births_per_world_step": round(births / (args.num_steps * args.num_envs), 4),
                 "seconds": round(time.perf_counter() - started, 1),
                 "env_agent_steps_per_s": round(env_agent_steps / max(env_seconds, 1e-9))}
        curve.append(point)
        if iteration % 10 == 0 or iteration == iterations:
            print(f"iter {iteration}/{iterations}  env steps {env_steps}  lives {len(finished_lives)}  "
                  f"mean return per life (last 200) {point['mean_life_return']:.2f}  "
                  f"births/world-step {point['births_per_world_step']:.3f}  {point['seconds']:.0f} s  "
                  f"env {point['env_agent_steps_per_s']:,} agent-steps/s", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "policy.pt", agent, {"preset": args.preset, "hidden": args.hidden, "args": dataclasses.asdict(args)})
    with open(out / "curve.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(curve[0]))
        writer.writeheader()
        writer.writerows(curve)
    plot_curve(curve, out / "curve.png", args)
    (out / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2))
    return curve[-1]


def plot_curve(curve: list[dict], path: Path, args: Args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["env_steps"] for p in curve]
    fig, (returns, births) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    returns.plot(steps, [p["mean_life_return"] for p in curve])
    returns.set_ylabel("mean return per agent life\n(last 200 lives)")
    returns.set_title(f"PPO, shared policy, preset {args.preset}, {args.reward_mode} reward, "
                      f"{args.reward_sharing} credit, seed {args.seed}", fontsize=9)
    births.plot(steps, [p.get("births_per_world_step", float("nan")) for p in curve], color="tab:green")
    births.set_ylabel("births per world step")
    births.set_xlabel("environment steps (world steps x worlds)")
    for ax in (returns, births):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None) -> tuple[Args, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field in dataclasses.fields(Args):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    parser.add_argument("--out", default="runs/ppo", help="where policy.pt, curve.csv and curve.png go")
    namespace = vars(parser.parse_args(argv))
    out = Path(namespace.pop("out"))
    return Args(**namespace), out


if __name__ == "__main__":
    arguments, output = parse_args()
    print(train(arguments, output))
