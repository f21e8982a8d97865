"""One run's specification, declared once: what ``society-env run`` and ``experiment`` take.

Each field is an :func:`~society_env.app.options.option`: its flag, help, default, bound and whether
``--resume`` may give it live here, and the commands build their flags from it (``experiment`` replaces
the preset and seed by its own lists). The LLM flags are :class:`society_env.app.llm_options.LLMOptions`. A
script runs the same thing without a command line::

    from society_env.app import RunSpec, run
    summary = run(RunSpec(preset="small", policy="forager=2,raider=2", steps=50, out="runs/mine"))

``qes-train`` / ``qes-eval`` declare their episode options in ``qes_trainer`` (below this layer) with
the same names: ``--preset``, ``--policy``, ``--set``, ``--steps`` (``--max-steps`` still works there).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from society_env.app.llm_options import LLMOptions
from society_env.world.config import PRESETS
from policies.learned.trained import BEST_TRAINED, TRAINED_POLICIES
from society_env.app.options import given_options, option, resumable_flags

__all__ = ["RunSpec", "SAVED_OPTIONS_OF_OLDER_RUNS"]

POLICY_HELP = ("policy assignment as NAME=SHARE,...: shares of the founders per policy; newborns inherit their "
               "parent's policy. Policies: random, forager, cooperator, raider (a 'scripted:' prefix is accepted), "
               "llm, ppo (with --ppo-checkpoint), learned (a shipped learned policy: society-env models)")


@dataclass(frozen=True)
class RunSpec:
    """Everything one recorded run depends on, plus where it goes and how it is shown."""

    preset: str = option("small", "world preset", group="run", choices=tuple(sorted(PRESETS)))
    policy: str = option("forager", POLICY_HELP, group="run")
    overrides: tuple[str, ...] = option((), "override a SocietyConfig field or, as prompt_FIELD, a field of the LLM "
                                        "prompt (repeatable), e.g. --set width=20 --set prompt_view=compact",
                                        group="run", flag="--set", metavar="FIELD=VALUE", append=True,
                                        default_text="none", parse=tuple)
    seed: int = option(0, "the run's only seed (env and policies)", group="run")
    steps: int | None = option(None, "steps to run", group="run", type=int, minimum=1,
                               default_text="the preset's max_steps")
    ppo_checkpoint: str | None = option(None, "policy.pt written by policies/learned/train_ppo.py, or the name of a "
                                        "shipped learned policy (" + ", ".join(TRAINED_POLICIES) + "), for the agents "
                                        "of policy 'ppo' or 'learned' (needs the rl extra)", group="run", type=str,
                                        metavar="PATH|NAME", default_text=f"none; 'learned' runs {BEST_TRAINED}")
    checkpoint_every: int = option(50, "write a checkpoint every K steps (0: never); --resume continues from the "
                                   "last one", group="output", metavar="K", minimum=0)
    out: str | None = option(None, "output directory", group="output", type=str,
                             default_text="runs/PRESET__POLICY__SEED__TIME")
    force: bool = option(False, "replace the recording already in --out (written beside it and renamed into place "
                         "when complete; default: refuse an occupied --out)", group="output", switch="on")
    resume: str | None = option(None, "continue the killed run in DIR from its last checkpoint, with the options it "
                                "was started with", group="output", type=str, metavar="DIR", default_text="none",
                                resumable=True)
    render: str = option("none", "print the grid every step", group="output", choices=("none", "ansi"),
                         resumable=True)
    quiet: bool = option(False, "no progress bar and no summary table", group="output", switch="on", resumable=True)
    llm: LLMOptions = field(default_factory=LLMOptions)

    NOT_SAVED = ("out", "force", "resume", "render", "quiet")
    """Fields that do not change what a run computes, so its checkpoint does not keep them."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunSpec":
        """The spec of a parsed command line (options not given keep the dataclass default)."""
        return cls(**given_options(args, cls), llm=LLMOptions(**given_options(args, LLMOptions)))

    def saved(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON-friendly): every field but :attr:`NOT_SAVED`."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self.NOT_SAVED}
        data["overrides"] = list(self.overrides)
        data["llm"] = dataclasses.asdict(self.llm)
        return data

    @classmethod
    def from_saved(cls, data: dict[str, Any], **shown: Any) -> "RunSpec":
        """Inverse of :meth:`saved` (also reads the options older checkpoints saved: the command line's
        argparse names), with ``shown`` (e.g. ``quiet``) set on top."""
        data = dict(data)
        if "llm" not in data:  # an older checkpoint: one flat dict of argparse destinations
            llm_names = {f.name for f in dataclasses.fields(LLMOptions)}
            data["llm"] = {name: data.pop(name) for name in list(data) if name in llm_names}
            data["overrides"] = data.pop("set", [])
            data = {name: value for name, value in data.items() if name in SAVED_OPTIONS_OF_OLDER_RUNS}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown run option(s) {', '.join(unknown)}")
        llm = LLMOptions(**data.pop("llm"))
        return cls(**{**data, "overrides": tuple(data.get("overrides", ())), **shown}, llm=llm)

    @staticmethod
    def resume_help(what: str = "run") -> str:
        """The ``--resume`` help text, naming the options a resume may be given (from the declarations)."""
        return (f"continue the killed {what} in DIR from its last checkpoint, with the options it was started with "
                f"(only {' and '.join(resumable_flags(RunSpec))} may be given)")


SAVED_OPTIONS_OF_OLDER_RUNS = ("preset", "seed", "policy", "steps", "overrides", "checkpoint_every",
                               "ppo_checkpoint", "llm")
"""The options an older checkpoint's flat dict holds that a spec keeps (the others said how it was shown)."""
