"""A trained model as a small patch: the sparse code diff of a QES run against its base GGUF.

A fine-tuned model differs from its base in a few thousand integer codes, so shipping or sharing it as a
whole GGUF (98 MB for the default model) is wasteful. A patch (``.qespatch``, a compressed ``.npz``)
holds only what is needed to rebuild it exactly (the trainer writes patches, the model registry
``policies.llm.models`` builds tuned models from them, so the format lives in the LLM stack):

* ``meta`` (JSON): format name and version, the base model's file name, size and SHA-256, the SHA-256
  of the model the patch builds, the training configuration (the recipe) and how many generations made it;
* per tensor ``indices_<k>`` / ``values_<k>``: the positions (flat code index) and the code changes.

:func:`apply_patch` refuses a base whose SHA-256 is not the patch's, and checks the SHA-256 of what it
built before it renames it into place: a patch either rebuilds its model bit for bit or writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from policies.llm.gguf_codes import SparseDelta, open_gguf_tensors, select_trainable
from society_env.recording.files import atomic_file, copy_atomic

__all__ = ["PATCH_SUFFIX", "PatchError", "write_patch", "read_patch", "check_base", "apply_patch", "sha256_of"]

FORMAT = "society-env-model-patch"
VERSION = 1
PATCH_SUFFIX = ".qespatch"


class PatchError(ValueError):
    """A patch that cannot be read, or that does not belong to the base model it is applied to."""


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_sha256 = sha256_of


def write_patch(path: str | Path, base_model: str | Path, diff: Mapping[str, SparseDelta], result_model: str | Path,
                meta: Mapping[str, Any] | None = None) -> Path:
    """Write the patch that turns ``base_model`` into ``result_model`` (``diff``: codes - base codes per
    tensor, as a QES checkpoint holds it) atomically to ``path``; ``meta`` adds e.g. the recipe."""
    base_model, result_model, path = Path(base_model), Path(result_model), Path(path)
    changed = {name: delta for name, delta in diff.items() if delta.nnz}
    header = {**dict(meta or {}), "format": FORMAT, "version": VERSION,
              "base": {"name": base_model.name, "size": base_model.stat().st_size, "sha256": _sha256(base_model)},
              "result_sha256": _sha256(result_model), "tensors": list(changed),
              "sizes": [delta.size for delta in changed.values()]}
    arrays: dict[str, np.ndarray] = {"meta": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for k, delta in enumerate(changed.values()):
        arrays[f"indices_{k}"] = delta.indices.astype(np.int64)
        arrays[f"values_{k}"] = delta.values.astype(np.int16)
    with atomic_file(path) as handle:
        np.savez_compressed(handle, **arrays)
    return path


class _Inconsistent(Exception):
    """A structural check of :func:`read_patch` failed (turned into a :class:`PatchError`)."""


def _require(condition: bool) -> None:
    if not condition:
        raise _Inconsistent


def read_patch(path: str | Path) -> tuple[dict[str, Any], dict[str, SparseDelta]]:
    """``(meta, diff)`` of a patch file; :class:`PatchError` naming the file for anything unreadable.

    Everything is checked here (structure, types, index ranges) so that :func:`apply_patch` never meets
    a malformed diff: a damaged patch is one line, not a traceback from zlib or numpy."""
    path = Path(path)
    if not path.is_file():
        raise PatchError(f"no model patch at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, struct.error, zlib.error, zipfile.BadZipFile,
            UnicodeDecodeError) as error:
        raise PatchError(f"{path} is not a readable model patch (truncated or corrupt: {error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        found = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else None
        raise PatchError(f"{path} is not a {FORMAT} version {VERSION} file (found {found})")
    try:
        base, names, sizes = meta["base"], meta["tensors"], meta["sizes"]
        _require(all(isinstance(base[key], str) for key in ("name", "sha256")) and isinstance(base["size"], int))
        _require(isinstance(meta["result_sha256"], str) and len(names) == len(sizes))
        diff = {}
        for k, (name, size) in enumerate(zip(names, sizes)):
            indices, values = arrays[f"indices_{k}"], arrays[f"values_{k}"]
            _require(indices.ndim == values.ndim == 1 and indices.size == values.size)
            _require(np.issubdtype(indices.dtype, np.integer) and np.issubdtype(values.dtype, np.integer))
            _require(indices.size == 0 or (0 <= indices.min() and indices.max() < size))
            diff[str(name)] = SparseDelta(indices.astype(np.int64), values.astype(np.int16), int(size))
    except (KeyError, TypeError, _Inconsistent) as error:
        detail = f" (missing {error})" if isinstance(error, KeyError) else ""
        raise PatchError(f"{path} is a truncated or inconsistent model patch{detail}") from None
    return meta, diff


def check_base(patch: str | Path, meta: Mapping[str, Any], base_model: str | Path) -> None:
    """:class:`PatchError` unless ``base_model`` is the base the patch (its ``meta``, from :func:`read_patch`)
    was made for, by SHA-256."""
    digest = _sha256(Path(base_model))
    if digest != meta["base"]["sha256"]:
        raise PatchError(f"{patch} was made for {meta['base']['name']} (SHA-256 {meta['base']['sha256'][:12]}...), "
                         f"not for {base_model} (SHA-256 {digest[:12]}...)")


def apply_patch(patch: str | Path, base_model: str | Path, target: str | Path) -> Path:
    """Build the patched model at ``target`` from ``base_model``: check the base's SHA-256, apply the code
    diff to a temporary copy, check the result's SHA-256, rename it into place. Nothing is written at
    ``target`` unless every check passed."""
    meta, diff = read_patch(patch)
    base_model, target = Path(base_model), Path(target)
    check_base(patch, meta, base_model)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    scratch = Path(scratch)
    try:
        copy_atomic(base_model, scratch)
        if diff:
            _apply_codes(patch, base_model, scratch, diff)
        built = _sha256(scratch)
        if built != meta["result_sha256"]:
            raise PatchError(f"{patch} built a model with SHA-256 {built[:12]}..., expected {meta['result_sha256'][:12]}...")
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    return target


def _apply_codes(patch: str | Path, base_model: Path, scratch: Path, diff: Mapping[str, SparseDelta]) -> None:
    """Add the patch's code changes to the trainable tensors of ``scratch`` (a copy of ``base_model``), in
    place; :class:`PatchError` if a tensor does not fit or a code would leave its range."""
    tensors = open_gguf_tensors(scratch, writable=True, parse_in_child=True)
    try:
        trainable = {tensor.name: tensor for tensor in select_trainable(tensors)[0]}
        wrong = [name for name, delta in diff.items() if name not in trainable or trainable[name].n_elements != delta.size]
        if wrong:
            raise PatchError(f"{patch} does not fit {base_model}: no trainable tensor {wrong[0]} of "
                             f"{diff[wrong[0]].size} codes")
        gated = 0
        for name, delta in diff.items():
            if delta.nnz:
                tensor = trainable[name]
                gated += int(delta.nnz - np.count_nonzero(tensor.codec.apply_delta(tensor.raw, delta.indices, delta.values)))
        tensors.flush()
    finally:
        tensors.close()
    if gated:
        raise PatchError(f"{patch} does not fit {base_model}: {gated} codes would leave their range")
