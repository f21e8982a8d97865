"""A policy trained by ``policies/learned/train_ppo.py``: one MLP over the numeric view, shared by all its agents.

Needs torch (``pip install "society-env[rl]"``). The checkpoint (``policy.pt``) holds the network's
weights, the observation size and action components it was trained for, and its training settings;
loading it into a world with another observation or action layout is a ``ValueError`` naming both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from policies.base import SavedState, make_action
from policies.learned.trained import BEST_TRAINED, resolve_checkpoint
from society_env.world.config import SocietyConfig
from society_env.world.observations import numeric_action_space, observation_size

CHECKPOINT_FORMAT = "society-env-ppo-policy"


class ActorCritic(nn.Module):
    """Two tanh layers shared by a categorical head per action component and a value head."""

    def __init__(self, obs_size: int, nvec: np.ndarray, hidden: int = 128):
        super().__init__()
        self.obs_size, self.nvec = int(obs_size), [int(n) for n in nvec]
        self.body = nn.Sequential(nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.logits = nn.Linear(hidden, sum(self.nvec))
        self.critic = nn.Linear(hidden, 1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.body(obs)).squeeze(-1)

    def act(self, obs: torch.Tensor, action: torch.Tensor | None = None, generator: torch.Generator | None = None,
            greedy: bool = False):
        """(action, its log-probability, entropy, value); ``action`` given: its log-probability."""
        hidden = self.body(obs)
        heads = [Categorical(logits=part) for part in torch.split(self.logits(hidden), self.nvec, dim=-1)]
        if action is None:
            if greedy:
                action = torch.stack([head.probs.argmax(-1) for head in heads], dim=-1)
            else:
                action = torch.stack([torch.multinomial(head.probs, 1, generator=generator).squeeze(-1)
                                      for head in heads], dim=-1)
        logp = sum(head.log_prob(action[..., k]) for k, head in enumerate(heads))
        entropy = sum(head.entropy() for head in heads)
        return action, logp, entropy, self.critic(hidden).squeeze(-1)


def save_checkpoint(path: Path, model: ActorCritic, settings: dict[str, Any]) -> None:
    from society_env.recording.files import atomic_file

    with atomic_file(path) as file:
        torch.save({"format": CHECKPOINT_FORMAT, "obs_size": model.obs_size, "nvec": model.nvec,
                    "state_dict": model.state_dict(), "settings": settings}, file)


def load_model(path: str | Path) -> tuple[ActorCritic, dict[str, Any]]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no PPO checkpoint at {path}") from None
    except Exception as error:
        raise ValueError(f"{path} is not a readable PPO checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a society-env PPO checkpoint")
    model = ActorCritic(saved["obs_size"], np.array(saved["nvec"]), saved["settings"].get("hidden", 128))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved["settings"]


class PPOPolicy(SavedState):
    """Acts for its agents with a PPO network trained by ``policies/learned/train_ppo.py`` (``checkpoint``: its
    policy.pt), sampling each action component from the network (``greedy``: the most likely one)."""

    name = "ppo"
    state_fields = ("generator_state",)

    def __init__(self, config: SocietyConfig, checkpoint: str | Path | None = None, greedy: bool = False):
        if checkpoint is None:
            raise ValueError("the ppo policy needs a checkpoint: --ppo-checkpoint PATH (policies/learned/train_ppo.py "
                             "writes policy.pt) or the name of a shipped learned policy (society-env models)")
        self.config, self.greedy = config, greedy
        checkpoint = resolve_checkpoint(checkpoint)
        self.model, self.settings = load_model(checkpoint)
        nvec = numeric_action_space(config).nvec.tolist()
        if self.model.obs_size != observation_size(config) or self.model.nvec != nvec:
            raise ValueError(f"{checkpoint} was trained for observations of {self.model.obs_size} numbers and actions "
                             f"{self.model.nvec}; this world has {observation_size(config)} and {nvec} "
                             f"(train on a world with the same view radius and action layout, e.g. preset "
                             f"{self.settings.get('preset')!r})")
        self.generator = torch.Generator().manual_seed(0)

    @property
    def generator_state(self) -> torch.Tensor:
        return self.generator.get_state()

    @generator_state.setter
    def generator_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the sampling; ``None``: fresh entropy, as the scripted policies do."""
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed) % 2**63)

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        if not observations:
            return {}
        agents = list(observations)
        obs = np.stack([np.asarray(o["observation"] if isinstance(o, dict) else o, dtype=np.float32)
                        for o in observations.values()])
        with torch.no_grad():
            actions = self.model.act(torch.from_numpy(obs), generator=self.generator, greedy=self.greedy)[0].numpy()
        return {agent: make_action(self.config, *vector.tolist()) for agent, vector in zip(agents, actions)}


class LearnedPolicy(PPOPolicy):
    """``--policy learned``: a shipped learned policy (:mod:`policies.learned.trained`) by name, the best
    one (``BEST_TRAINED``) unless ``checkpoint`` names another or gives a path."""

    name = "learned"

    def __init__(self, config: SocietyConfig, checkpoint: str | Path | None = None, greedy: bool = False):
        super().__init__(config, BEST_TRAINED if checkpoint is None else checkpoint, greedy)
