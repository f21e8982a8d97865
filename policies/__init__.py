"""Policies that drive agents of the society world.

Every policy follows :class:`policies.base.Policy`: ``reset(seed)`` and a batched
``act(observations, infos) -> actions``. Build one by name with :func:`make_policy`.
"""

from __future__ import annotations

from typing import Any, Callable

from policies.assignment import PolicyAssignment, PolicySpecError, parse_policy_spec
from policies.base import Policy, make_action
from policies.scripted.cooperator import CooperatorPolicy
from policies.scripted.forager import ForagerPolicy
from policies.scripted.raider import RaiderPolicy
from policies.scripted.random_policy import RandomPolicy
from society_env.world.config import SocietyConfig

def _llm_policy(config: SocietyConfig, **options: Any) -> Policy:
    from policies.llm.policy import LlamaCppPolicy  # imported lazily: needs llama-cpp-python

    return LlamaCppPolicy(config, **options)


def _torch_policy(name: str, class_name: str) -> Callable[..., Policy]:
    """The constructor of ``policies.learned.ppo.<class_name>``, imported when first used (it needs torch)."""

    def build(config: SocietyConfig, **options: Any) -> Policy:
        try:
            from policies.learned import ppo
        except ImportError:
            raise PolicySpecError(f'the {name} policy needs torch: pip install "society-env[rl]"') from None
        return getattr(ppo, class_name)(config, **options)

    return build


POLICIES: dict[str, Callable[..., Policy]] = {
    "random": RandomPolicy,
    "forager": ForagerPolicy,
    "cooperator": CooperatorPolicy,
    "raider": RaiderPolicy,
    "llm": _llm_policy,
    "ppo": _torch_policy("ppo", "PPOPolicy"),
    "learned": _torch_policy("learned", "LearnedPolicy"),
}
"""Policy constructors by name; each takes the world config (plus policy-specific keyword options)."""


def make_policy(name: str, config: SocietyConfig, **options: Any) -> Policy:
    if name not in POLICIES:
        raise PolicySpecError(f"unknown policy {name!r}; known policies: {', '.join(POLICIES)}")
    return POLICIES[name](config, **options)


__all__ = [
    "POLICIES",
    "CooperatorPolicy",
    "ForagerPolicy",
    "Policy",
    "PolicyAssignment",
    "PolicySpecError",
    "RaiderPolicy",
    "RandomPolicy",
    "make_action",
    "make_policy",
    "parse_policy_spec",
]
