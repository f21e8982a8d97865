"""Training checkpoints: one ``.npz`` file per run directory, replaced atomically after every generation.

A checkpoint holds everything a resumed run needs to continue bit-exactly:

* ``meta``: format name/version, the training configuration, the SHA-256 of the base model, the next
  generation to run and the metrics rows so far (the metrics files are rewritten from them, so they
  always agree with the checkpoint);
* ``diff``: the trained codes as a sparse diff from the base model (``current - base`` per tensor);
* the optimizer's state (:meth:`qes_trainer.qes.QESOptimizer.state_dict`): the float16 residual per code
  (``residual="full"``) or the seed-replay window.

There is no other random state: every noise vector and every episode seed derives from (seed,
generation, ...), so the generation number is the RNG state. The file is written to a temporary name,
fsynced and renamed over the old one: a run killed at any moment leaves either the previous or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from qes_trainer.qes import SparseDelta
from society_env.recording.files import atomic_file

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = "society-env-qes-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A missing, unreadable or incompatible checkpoint."""


def _flatten(meta: dict[str, Any], diff: dict[str, SparseDelta], optimizer_state: dict) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for index, (name, delta) in enumerate(diff.items()):
        arrays[f"diff_indices_{index}"] = delta.indices
        arrays[f"diff_values_{index}"] = delta.values  # int16: a Q8_0 code can move by up to 255
    names = list(diff)
    residuals = optimizer_state["residuals"]
    for name, array in residuals.items():
        arrays[f"residual_{names.index(name)}"] = array
    records = []
    for r_index, record in enumerate(optimizer_state["records"]):
        arrays[f"record_{r_index}_coefficients"] = record["coefficients"]
        for name, blocked in record["blocked"].items():
            arrays[f"record_{r_index}_blocked_{names.index(name)}"] = blocked
        records.append({"generation": record["generation"], "sigma": record["sigma"], "alpha": record["alpha"]})
    optimizer_meta = {key: optimizer_state[key] for key in ("config", "sigma", "alpha", "generation")}
    optimizer_meta["config"] = {**optimizer_meta["config"],
                                "tensors": {k: list(v) for k, v in optimizer_meta["config"]["tensors"].items()}}
    full_meta = {**meta, "format": FORMAT, "version": VERSION, "tensors": names,
                 "sizes": [delta.size for delta in diff.values()], "optimizer": optimizer_meta,
                 "records": records, "has_residual": bool(residuals)}
    arrays["meta"] = np.frombuffer(json.dumps(full_meta).encode(), dtype=np.uint8)
    return arrays


def save_checkpoint(run_dir: str | Path, meta: dict[str, Any], diff: dict[str, SparseDelta], optimizer_state: dict) -> Path:
    """Write ``run_dir/checkpoint.npz`` atomically; ``meta`` must be JSON-serialisable."""
    target = Path(run_dir) / CHECKPOINT_NAME
    with atomic_file(target) as handle:  # streamed: the residual is not copied into one bytes object
        np.savez(handle, **_flatten(meta, diff, optimizer_state))
    return target


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, SparseDelta], dict]:
    """Read a checkpoint: ``(meta, diff, optimizer_state)`` (the inverse of :func:`save_checkpoint`)."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {run_dir} (expected {CHECKPOINT_NAME}): nothing to resume")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, struct.error, zlib.error, zipfile.BadZipFile) as error:
        # a damaged file: zipfile, numpy's header parser and json raise these (ValueError: also not UTF-8)
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or corrupt: {_one_line(error)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        found = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else None
        raise CheckpointError(f"{path} is not a {FORMAT} version {VERSION} file (found {found})")
    try:
        missing = [key for key in REQUIRED_META if not isinstance(meta[key], REQUIRED_META[key])]
        if missing:
            raise TypeError(f"{missing[0]} of the wrong kind")
        names, sizes = meta["tensors"], meta["sizes"]
        diff = {name: SparseDelta(arrays[f"diff_indices_{i}"].astype(np.int64), arrays[f"diff_values_{i}"].astype(np.int16), size)
                for i, (name, size) in enumerate(zip(names, sizes))}
        optimizer = meta["optimizer"]
        state = {
            **optimizer,
            "residuals": {name: arrays[f"residual_{i}"] for i, name in enumerate(names)} if meta["has_residual"] else {},
            "records": [{**record, "coefficients": arrays[f"record_{r}_coefficients"],
                         "blocked": {name: arrays[f"record_{r}_blocked_{i}"] for i, name in enumerate(names)}}
                        for r, record in enumerate(meta["records"])],
        }
    except (KeyError, TypeError) as error:
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise CheckpointError(f"{path} is a truncated or inconsistent checkpoint ({detail}): it cannot be resumed") from None
    return meta, diff, state


REQUIRED_META: dict[str, type | tuple[type, ...]] = {
    "tensors": list, "sizes": list, "optimizer": dict, "records": list, "has_residual": bool,
}
"""What :func:`save_checkpoint` adds to ``meta`` and :func:`load_checkpoint` reads (checked, so that a
damaged file is a CheckpointError; the caller's own keys are the caller's to check)."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
