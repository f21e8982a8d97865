"""The learned policies shipped in the package: PPO networks trained by ``policies.learned.train_ppo``, each
a ``policy.pt`` of a few hundred kB in ``policies/learned/trained/``, run by name:

    society-env run --preset small --policy learned=6                 # the best of them (BEST)
    society-env run --preset small --policy learned=6 --ppo-checkpoint small-population
    society-env models                                                # lists them

Each entry says how it was trained (the command reproduces it) and where it is measured (docs/baselines.md).
A path to any ``policy.pt`` works wherever a name does. No torch is needed to list them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TRAINED_DIRECTORY = Path(__file__).resolve().parent / "trained"


@dataclass(frozen=True)
class TrainedPolicy:
    name: str
    preset: str
    """The world it was trained on (its observation layout: it runs on presets with the same view)."""
    command: str
    """The training command that made it."""
    description: str

    @property
    def path(self) -> Path:
        return TRAINED_DIRECTORY / f"{self.name}.pt"

    @property
    def shipped(self) -> bool:
        return self.path.is_file()


def _trained(name: str, sharing: str, description: str) -> TrainedPolicy:
    return TrainedPolicy(name, "small", f"python -m policies.learned.train_ppo --preset small --reward-mode survival "
                                        f"--reward-sharing {sharing} --total-steps 600000 --threads 1 --seed 0",
                         description)


TRAINED_POLICIES: dict[str, TrainedPolicy] = {policy.name: policy for policy in (
    _trained("small-lineage", "lineage", "PPO, one policy shared by every agent, survival reward with lineage credit "
                                         "(ancestors share their descendants' rewards)"),
    _trained("small-population", "population", "PPO, one policy shared by every agent, survival reward shared by the "
                                               "whole population (everyone gets the mean)"),
)}
BEST_TRAINED = "small-lineage"
"""What ``--policy learned`` runs without ``--ppo-checkpoint``: the best measured (docs/baselines.md)."""


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The ``policy.pt`` of a shipped learned policy's name, or the path given; ``ValueError`` naming the
    shipped ones when a name is not shipped."""
    entry = TRAINED_POLICIES.get(str(checkpoint))
    if entry is None:
        return Path(checkpoint)
    if not entry.shipped:
        shipped = [name for name, policy in TRAINED_POLICIES.items() if policy.shipped]
        raise ValueError(f"the learned policy {entry.name!r} is not shipped in this package "
                         f"(shipped: {', '.join(shipped) or 'none'})")
    return entry.path
