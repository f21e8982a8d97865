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
from society_env.files import atomic_file

CHECKPOINT_FILE = "checkpoint.pkl"
FORMAT = "society-env-run-checkpoint"
VERSION = 1
"""Bumped whenever what a checkpoint holds changes; other versions are refused with a clear error."""
MOVED_MODULES = {"society_env.app.runner": "policies.rollout"}
"""Where the classes of older checkpoints live now (the episode loop moved below the app layer)."""


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
