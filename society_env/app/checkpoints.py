"""Run checkpoints: ``society-env run`` writes ``RUN_DIR/checkpoint.pkl`` every ``--checkpoint-every``
steps, and ``run --resume RUN_DIR`` (or ``experiment --resume OUT``) continues from the last one.

A checkpoint holds the run's command-line options, its :class:`~policies.rollout.RunState` (the
world with its generator, each policy's state, the statistics) and the byte length of each recording
file at that step. Resuming cuts the recording files back to those lengths, so what a killed run wrote
after its last checkpoint is replayed, not duplicated: the finished recording is the uninterrupted
run's (its deterministic files byte for byte; tested by SIGKILL). The file is replaced atomically, so a
kill while writing leaves the previous checkpoint; it is removed when the run completes.

It is a pickle: load only checkpoints you wrote yourself, as with any pickle.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from society_env import __version__
from policies.rollout import RunState
from society_env.app.errors import UserError
from society_env.recording.files import atomic_file

CHECKPOINT_FILE = "checkpoint.pkl"
FORMAT = "society-env-run-checkpoint"
VERSION = 1
"""Bumped whenever what a checkpoint holds changes; other versions are refused with a clear error."""
MOVED_MODULES = {
    "society_env.app.runner": "policies.rollout",
    "society_env.config": "society_env.world.config",
    "society_env.encodings": "society_env.world.encodings",
    "society_env.names": "society_env.world.names",
    "society_env.outcome": "society_env.world.outcome",
    "society_env.rewards": "society_env.world.rewards",
    "society_env.state": "society_env.world.state",
    "society_env.kernels": "society_env.world.kernels",
    "society_env.rules": "society_env.world.rules",
    "society_env.artifacts": "society_env.world.artifacts",
    "society_env.observations": "society_env.world.observations",
    "society_env.text_view": "society_env.world.text_view",
    "society_env.env": "society_env.world.env",
    "society_env.vector": "society_env.world.vector",
    "society_env.render": "society_env.world.render",
    "society_env.threads": "society_env.world.threads",
    "society_env.recording": "society_env.recording.format",
    "society_env.files": "society_env.recording.files",
    "society_env.options": "society_env.app.options",
    "policies.llm_options": "society_env.app.llm_options",
    "policies.random_policy": "policies.scripted.random_policy",
    "policies.forager": "policies.scripted.forager",
    "policies.cooperator": "policies.scripted.cooperator",
    "policies.raider": "policies.scripted.raider",
    "policies.perception": "policies.scripted.perception",
    "policies.llm_answer": "policies.llm.answer",
    "policies.llm_engine": "policies.llm.engine",
    "policies.llm_policy": "policies.llm.policy",
    "policies.llm_prompt": "policies.llm.prompt",
    "policies.llm_server": "policies.llm.server",
    "policies.models": "policies.llm.models",
    "policies.llama_server_main": "policies.llm.server_main",
    "policies.ppo": "policies.learned.ppo",
}
"""Where the classes of older checkpoints live now (the episode loop moved below the app layer; the
world, recording, option, scripted, LLM and learned modules moved into their layer folders)."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(MOVED_MODULES.get(module, module), name)


@dataclass
class RunCheckpoint:
    options: dict[str, Any]
    """The run's options (``run_options``): a resumed run takes them from here, not from the command line."""
    state: RunState
    recording: dict[str, int]
    """Byte length of each recording stream (``events``, ``snapshots``, ``actions``) at this step."""


def save_checkpoint(run_dir: Path, checkpoint: RunCheckpoint) -> None:
    with atomic_file(Path(run_dir) / CHECKPOINT_FILE) as file:
        pickle.dump({"format": FORMAT, "version": VERSION, "society_env": __version__, "checkpoint": checkpoint},
                    file, protocol=pickle.HIGHEST_PROTOCOL)


def load_checkpoint(run_dir: Path) -> RunCheckpoint:
    """The checkpoint in ``run_dir``; a ``UserError`` of one line when it is missing, damaged or from
    another checkpoint version."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        if (Path(run_dir) / "summary.json").exists():
            raise UserError(f"{run_dir} holds a complete run (summary.json): nothing to resume")
        if not Path(run_dir).is_dir():
            raise UserError(f"{run_dir} does not exist: nothing to resume")
        raise UserError(f"{run_dir} has no {CHECKPOINT_FILE}: the run stopped before its first checkpoint "
                        "(or was not checkpointed); start it again")
    try:
        with open(path, "rb") as file:
            saved = _Unpickler(file).load()
    except Exception as error:  # truncated or overwritten files raise several kinds
        raise UserError(f"{path} is damaged ({type(error).__name__}: {error}); it cannot be resumed") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UserError(f"{path} is not a society-env run checkpoint")
    if saved.get("version") != VERSION:
        raise UserError(f"{path} is a version {saved.get('version')} checkpoint (society-env "
                        f"{saved.get('society_env')}); this society-env {__version__} resumes version {VERSION} only")
    return saved["checkpoint"]


def remove_checkpoint(run_dir: Path) -> None:
    (Path(run_dir) / CHECKPOINT_FILE).unlink(missing_ok=True)
