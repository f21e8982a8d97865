"""A private, writable working copy of a GGUF model whose integer codes QES edits in place.

The trainer never touches the user's model file. It copies it (:meth:`LiveModel.create`), memory-maps the
copy writable and hands the *same path* to llama.cpp, which memory-maps it too: both mappings share the
kernel's page cache, so a code written here is what the loaded model computes with on its next
evaluation, with no reload (load it with ``use_extra_bufts=False`` so that repacked types such as Q4_0
and Q4_K read the file's bytes, and reset the KV cache after every change).

Everything here works on sparse deltas (:class:`policies.llm.gguf_codes.SparseDelta`) and touches only the
blocks that hold a nonzero delta, so a member's perturb + restore costs time proportional to the
noise's nonzeros, not to the model size. Restores are exact: the code bytes are a bijection of the codes.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from policies.llm.gguf_codes import GGUFTensors, SparseDelta, TensorView, open_gguf_tensors, select_trainable
from qes_trainer.qes import QESOptimizer, TensorSpec
from society_env.recording.files import copy_atomic

__all__ = ["LiveModel"]


class _LazyCodes(Mapping):
    """``codes[name]`` decodes one tensor's codes from the file on access (nothing is cached), so the
    optimizer's update holds one tensor's codes in memory at a time instead of the whole model's."""

    def __init__(self, file: GGUFTensors, tensors: dict[str, TensorView]):
        self._file, self._tensors = file, tensors

    def __getitem__(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        codes = tensor.codec.read_codes(tensor.raw)
        self._file.release_pages(tensor.file_offset, tensor.raw.size)
        return codes

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


class LiveModel:
    """The working copy's trainable tensors, opened writable (see the module docstring).

    ``trainable`` maps tensor name -> :class:`TensorView` (2-D block attention/MLP weights with a codec);
    ``skipped`` lists the other tensors with the reason (unsupported types also raise a warning).
    """

    def __init__(self, path: str | Path, tensors: str | None = None):
        self.path = Path(path)
        self.tensors: GGUFTensors = open_gguf_tensors(self.path, writable=True, parse_in_child=True)
        trainable, self.skipped = select_trainable(self.tensors)
        if not trainable:
            raise ValueError(f"{self.path.name} has no trainable tensors (2-D block attention/MLP weights of a "
                             f"supported quantized type: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)")
        if tensors:  # a comma-separated list of glob patterns over tensor names (qes-train --tensors)
            patterns = [pattern.strip() for pattern in tensors.split(",") if pattern.strip()]
            chosen = [t for t in trainable if any(fnmatch.fnmatchcase(t.name, pattern) for pattern in patterns)]
            if not chosen:
                raise ValueError(f"--tensors {tensors!r} matches none of the {len(trainable)} trainable tensors of "
                                 f"{self.path.name} (e.g. {trainable[0].name}, {trainable[-1].name})")
            self.skipped += [(t, "not matched by --tensors") for t in trainable if t not in chosen]
            trainable = chosen
        self.trainable: dict[str, TensorView] = {tensor.name: tensor for tensor in trainable}

    @classmethod
    def create(cls, base_model: str | Path, work_path: str | Path, tensors: str | None = None) -> "LiveModel":
        """Copy ``base_model`` to ``work_path`` (atomically) and open the copy (``tensors``: glob patterns
        restricting the trainable tensors)."""
        copy_atomic(base_model, work_path)
        return cls(work_path, tensors)

    # ---- what the optimizer sees --------------------------------------------------------------
    def specs(self) -> dict[str, TensorSpec]:
        return {name: TensorSpec(t.n_elements, t.codec.code_min, t.codec.code_max) for name, t in self.trainable.items()}

    def codes(self) -> Mapping[str, np.ndarray]:
        """A lazily decoding view for :meth:`QESOptimizer.update` (write the returned steps with :meth:`apply`)."""
        return _LazyCodes(self.tensors, self.trainable)

    @property
    def total_codes(self) -> int:
        return sum(t.n_elements for t in self.trainable.values())

    # ---- edits ----------------------------------------------------------------------------------
    def apply(self, deltas: Mapping[str, SparseDelta]) -> tuple[dict[str, SparseDelta], int]:
        """Add sparse deltas to the codes in the file, gated at each code range.

        Returns the deltas actually applied (pass them to :meth:`restore`) and how many were gated.
        """
        applied: dict[str, SparseDelta] = {}
        gated = 0
        for name, delta in deltas.items():
            if delta.nnz == 0:
                continue
            tensor = self.trainable[name]
            mask = tensor.codec.apply_delta(tensor.raw, delta.indices, delta.values)
            # llama.cpp maps the same pages: don't keep them resident a second time through our mapping.
            self.tensors.release_pages(tensor.file_offset, tensor.raw.size)
            applied[name] = SparseDelta(delta.indices[mask], delta.values[mask], delta.size)
            gated += int(delta.nnz - np.count_nonzero(mask))
        return applied, gated

    def restore(self, applied: Mapping[str, SparseDelta]) -> None:
        """Undo :meth:`apply` exactly (the negated applied deltas always stay in range)."""
        _, gated = self.apply({name: -delta for name, delta in applied.items()})
        if gated:  # cannot happen unless the file changed underneath us
            raise RuntimeError(f"restore gated {gated} codes: the working model file was modified concurrently")

    def perturb(self, optimizer: QESOptimizer, generation: int, pair: int, sign: int) -> tuple[dict[str, SparseDelta], int]:
        """Apply member ``sign * pair``'s noise of ``generation``; returns (applied deltas, boundary hits)."""
        return self.apply({name: optimizer.perturbation(generation, pair, name, sign) for name in self.trainable})

    # ---- files --------------------------------------------------------
    def flush(self) -> None:
        self.tensors.flush()

    def export(self, target: str | Path) -> None:
        """Write the current model (a complete GGUF any llama.cpp loads) to ``target`` atomically."""
        self.flush()
        copy_atomic(self.path, target)

    def close(self) -> None:
        self.tensors.close()
        self.trainable = {}
