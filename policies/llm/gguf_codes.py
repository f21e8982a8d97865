"""Read and write the integer codes of quantized GGUF tensors in place, without touching scales or mins.

Part of the LLM stack because two layers edit codes: the model registry builds tuned models from their
patches (``policies.llm.patch``), and the QES trainer (Quantized Evolution Strategies) perturbs and
updates the *integer codes* of a quantized model directly. This module turns the bytes of a quantized tensor (typically a writable view into a
``numpy.memmap`` of the whole ``.gguf`` file) into a flat integer array of codes and back, and applies
sparse integer deltas to selected codes, gated at the code range.

Conventions
-----------
* **Element order** is the order of ``gguf.quants.dequantize(raw, qtype)`` flattened (row-major over the
  dequantized tensor shape), so flat index ``k`` lives in block ``k // block_size``.
* **A code is the integer the weight is proportional to**: every supported type dequantizes as
  ``value = scale * code + bias`` with per-block (or per-sub-block) ``scale``/``bias`` read from the block
  header (see :meth:`Codec.affine`).

  - *Symmetric* types store an unsigned field ``q`` and dequantize to ``d * (q - offset)``; their code is
    the signed ``q - offset`` (so code 0 is weight 0 and ``bias`` is 0): Q8_0 ``[-128, 127]`` (the int8
    itself), Q4_0 ``[-8, 7]``, Q5_0 ``[-16, 15]``, Q6_K ``[-32, 31]``.
  - *Affine* types (with a min) use the stored unsigned field as the code: Q4_1 ``[0, 15]``,
    Q5_1 ``[0, 31]`` (``value = d * code + m``), Q4_K ``[0, 15]``, Q5_K ``[0, 31]``
    (``value = d * sc * code - dmin * mn``).

  Codes are returned as ``int16``; every code range fits.

Block layouts (little-endian; ``d``/``m``/``dmin`` are float16)
--------------------------------------------------------------
=======  =====  =====  ===========================================================================
type     elems  bytes  layout
=======  =====  =====  ===========================================================================
Q8_0     32     34     d, qs[32] int8                                   value = d * q
Q4_0     32     18     d, qs[16] nibbles                                value = d * (q - 8)
Q4_1     32     20     d, m, qs[16] nibbles                             value = d * q + m
Q5_0     32     22     d, qh[4], qs[16] nibbles                         value = d * (q - 16)
Q5_1     32     24     d, m, qh[4], qs[16] nibbles                      value = d * q + m
Q4_K     256    144    d, dmin, scales[12], qs[128]                     value = d*sc[s]*q - dmin*mn[s]
Q5_K     256    176    d, dmin, scales[12], qh[32], qs[128]             value = d*sc[s]*q - dmin*mn[s]
Q6_K     256    210    ql[128], qh[64], scales[16] int8, d              value = d*scales[e//16]*(q - 32)
=======  =====  =====  ===========================================================================

* Legacy nibbles (Q4_0/Q4_1/Q5_x): element ``j < 16`` is the low nibble of ``qs[j]``, element ``j + 16``
  the high nibble. Q5_0/Q5_1 ``qh`` is a little-endian uint32 whose bit ``j`` is bit 4 of element ``j``.
* Q4_K/Q5_K: 8 sub-blocks ``s`` of 32 elements; ``qs`` is 4 chunks of 32 bytes, chunk ``c`` holds
  sub-block ``2c`` in its low nibbles and ``2c + 1`` in its high nibbles. Q5_K ``qh[i]`` bit ``s`` is bit
  4 of element ``32 s + i``. The 6-bit ``sc``/``mn`` are packed in ``scales[12]`` (not touched here).
* Q6_K: two halves of 128 elements; half ``h`` uses ``ql[64h : 64h + 64]`` (low nibbles for elements
  ``0..63`` of the half, high nibbles for ``64..127``) and ``qh[32h : 32h + 32]`` (2-bit fields at shifts
  0, 2, 4, 6 for the four runs of 32 elements of the half).

In every supported type the code bits fill one contiguous byte range of the block (``code_bytes``), and
those bytes are a bijection of the block's codes: writing codes rewrites exactly that range and never
the scale/min bytes. All layouts are verified against ``gguf.quants.dequantize`` in
``tests/test_qes_codecs.py``. Other types (F32/F16/BF16, Q2_K, Q3_K, IQ*, TQ*, ...) are unsupported and
raise :class:`UnsupportedTensorType`.

llama.cpp memory-maps the model file, so writes into a writable memmap of the file are seen by a loaded
model, except for tensors that llama.cpp repacks into extra CPU buffers at load (Q4_0, Q4_K, ... on
x86/ARM): load with ``use_extra_bufts=False`` for those. Call ``engine.reset()`` after weight changes.
"""

from __future__ import annotations

import json
import mmap
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader

__all__ = [
    "SparseDelta", "DELTA_DTYPE", "Codec", "CODECS", "codec_for", "UnsupportedTensorType", "UnsupportedTensorTypeWarning",
    "TensorView", "TensorInfo", "GGUFTensors", "open_gguf_tensors", "read_tensor_table", "select_trainable", "TRAINABLE_WEIGHTS",
]

CODE_DTYPE = np.int16
DELTA_DTYPE = np.int16


@dataclass(frozen=True)
class SparseDelta:
    """An integer delta on a flat vector of ``size`` codes: sorted unique ``indices``, nonzero ``values``."""

    indices: np.ndarray  # int64
    values: np.ndarray  # int16
    size: int

    @property
    def nnz(self) -> int:
        return int(self.indices.size)

    def __neg__(self) -> "SparseDelta":
        return SparseDelta(self.indices, -self.values, self.size)

    def to_dense(self) -> np.ndarray:
        dense = np.zeros(self.size, dtype=DELTA_DTYPE)
        dense[self.indices] = self.values
        return dense

    def __add__(self, other: "SparseDelta") -> "SparseDelta":
        """The sum of two deltas on the same vector (entries that cancel are dropped)."""
        if other.size != self.size:
            raise ValueError(f"cannot add deltas of sizes {self.size} and {other.size}")
        dense = self.to_dense()
        dense[other.indices] += other.values
        return SparseDelta.from_dense(dense)

    @staticmethod
    def from_dense(dense: np.ndarray) -> "SparseDelta":
        indices = np.flatnonzero(dense)
        return SparseDelta(indices.astype(np.int64), dense[indices].astype(DELTA_DTYPE), int(dense.size))


class UnsupportedTensorType(ValueError):
    """No QES codec exists for this GGML tensor type."""


class UnsupportedTensorTypeWarning(UserWarning):
    """Tensors that would be trained are skipped because their type has no codec."""


# ---- bit-packing helpers ---------------------------------------------------------------------------

def _f16(header: np.ndarray, start: int) -> np.ndarray:
    """The float16 at byte ``start`` of each block, as float32 of shape (n_blocks, 1)."""
    return np.ascontiguousarray(header[:, start:start + 2]).view(np.float16).astype(np.float32)


def _unpack_nibbles(qs: np.ndarray, chunk: int) -> np.ndarray:
    """(n, bytes) -> (n, 2 * bytes): per chunk of ``chunk`` bytes, all low nibbles then all high nibbles."""
    q = qs.reshape(qs.shape[0], -1, 1, chunk)
    return np.concatenate([q & 0x0F, q >> 4], axis=2).reshape(qs.shape[0], -1)


def _pack_nibbles(q: np.ndarray, chunk: int) -> np.ndarray:
    """Inverse of :func:`_unpack_nibbles`; ``q`` holds values in [0, 15]."""
    q = q.astype(np.uint8).reshape(q.shape[0], -1, 2, chunk)
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(q.shape[0], -1)


def _unpack_bit_fields(qh: np.ndarray, bits: int, chunk: int) -> np.ndarray:
    """(n, bytes) -> (n, bytes * 8 // bits): per chunk of ``chunk`` bytes, the fields at shift 0, then at
    shift ``bits``, ... (so field ``f`` of byte ``i`` of chunk ``c`` is element ``c*chunk*per + f*chunk + i``)."""
    per = 8 // bits
    shifts = (np.arange(per, dtype=np.uint8) * bits).reshape(1, 1, per, 1)
    q = qh.reshape(qh.shape[0], -1, 1, chunk) >> shifts
    return (q & ((1 << bits) - 1)).reshape(qh.shape[0], -1)


def _pack_bit_fields(q: np.ndarray, bits: int, chunk: int) -> np.ndarray:
    """Inverse of :func:`_unpack_bit_fields`; ``q`` holds values in [0, 2**bits)."""
    per = 8 // bits
    shifts = (np.arange(per, dtype=np.uint8) * bits).reshape(1, 1, per, 1)
    q = q.astype(np.uint8).reshape(q.shape[0], -1, per, chunk) << shifts
    return np.bitwise_or.reduce(q, axis=2).reshape(q.shape[0], -1)


def _k_scale_min(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unpack the 8 six-bit sub-block scales and mins of Q4_K/Q5_K from their 12 bytes."""
    s = scales.reshape(scales.shape[0], 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc, mn


# ---- codecs ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Codec:
    """Reads/writes the codes of one GGML block type; see the module docstring for layouts."""

    qtype: GGMLQuantizationType
    block_size: int
    block_bytes: int
    code_bytes: tuple[int, int]  # [start, stop) byte range of the code bits inside a block
    code_min: int
    code_max: int

    # -- per-type pieces (overridden) --
    def _decode(self, code_bytes: np.ndarray) -> np.ndarray:
        """(n_blocks, n_code_bytes) uint8 -> (n_blocks, block_size) codes."""
        raise NotImplementedError

    def _encode(self, codes: np.ndarray) -> np.ndarray:
        """(n_blocks, block_size) codes in range -> (n_blocks, n_code_bytes) uint8."""
        raise NotImplementedError

    def _block_affine(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n_blocks, block_bytes) -> per-element (scale, bias), each (n_blocks, block_size) float32."""
        raise NotImplementedError

    # -- public API --
    def n_blocks(self, raw: np.ndarray) -> int:
        if raw.dtype != np.uint8 or raw.size % self.block_bytes:
            raise ValueError(f"{self.qtype.name}: expected uint8 bytes, a multiple of {self.block_bytes} "
                             f"(got {raw.dtype}, {raw.size} bytes)")
        return raw.size // self.block_bytes

    def blocks(self, raw: np.ndarray, writable: bool = False) -> np.ndarray:
        """``raw`` as a (n_blocks, block_bytes) *view* (never a copy, so writes reach ``raw``)."""
        n = self.n_blocks(raw)
        if not raw.flags.c_contiguous:
            raise ValueError(f"{self.qtype.name}: tensor bytes must be C-contiguous to be edited in place")
        if writable and not raw.flags.writeable:
            raise ValueError(f"{self.qtype.name}: tensor bytes are read-only (open the file writable)")
        return raw.reshape(n, self.block_bytes)

    def read_codes(self, raw: np.ndarray) -> np.ndarray:
        """All codes of the tensor, flat, in dequantized element order (int16)."""
        start, stop = self.code_bytes
        return self._decode(self.blocks(raw)[:, start:stop]).astype(CODE_DTYPE).reshape(-1)

    def write_codes(self, raw: np.ndarray, codes: np.ndarray) -> None:
        """Write all codes (flat, dequantized order) into ``raw`` in place; scale/min bytes are untouched."""
        blocks = self.blocks(raw, writable=True)
        codes = np.asarray(codes)
        if codes.size != blocks.shape[0] * self.block_size:
            raise ValueError(f"{self.qtype.name}: expected {blocks.shape[0] * self.block_size} codes, got {codes.size}")
        self._check_range(codes)
        start, stop = self.code_bytes
        blocks[:, start:stop] = self._encode(codes.reshape(-1, self.block_size).astype(np.int32))

    def affine(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-element float32 ``(scale, bias)`` with ``dequantize == scale * code + bias`` (flat order)."""
        scale, bias = self._block_affine(self.blocks(raw))
        return scale.reshape(-1), bias.reshape(-1)

    def apply_delta(self, raw: np.ndarray, indices: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """Add integer ``deltas`` to the codes at flat element ``indices``, in place.

        A delta whose result would leave ``[code_min, code_max]`` is skipped (gated). Only the blocks that
        hold an applied delta are rewritten, and only their code bytes. ``indices`` must be unique.
        Returns a bool mask (same length as ``indices``) of the deltas that were applied.
        """
        blocks = self.blocks(raw, writable=True)
        indices = np.asarray(indices).reshape(-1)
        deltas = np.asarray(deltas).reshape(-1)
        self._check_sparse(indices, deltas, blocks.shape[0] * self.block_size)
        block_ids, row = np.unique(indices // self.block_size, return_inverse=True)
        column = indices % self.block_size
        start, stop = self.code_bytes
        codes = self._decode(blocks[block_ids, start:stop]).astype(np.int32)
        new = codes[row, column] + deltas.astype(np.int32)
        applied = (new >= self.code_min) & (new <= self.code_max)
        codes[row[applied], column[applied]] = new[applied]
        touched = np.unique(row[applied])
        if touched.size:
            blocks[block_ids[touched], start:stop] = self._encode(codes[touched])
        return applied

    # -- checks --
    def _check_range(self, codes: np.ndarray) -> None:
        if codes.size and (codes.min() < self.code_min or codes.max() > self.code_max):
            raise ValueError(f"{self.qtype.name}: codes must lie in [{self.code_min}, {self.code_max}] "
                             f"(got [{codes.min()}, {codes.max()}])")

    @staticmethod
    def _check_sparse(indices: np.ndarray, deltas: np.ndarray, n_elements: int) -> None:
        if indices.shape != deltas.shape:
            raise ValueError(f"indices and deltas differ in length ({indices.size} vs {deltas.size})")
        if not (np.issubdtype(indices.dtype, np.integer) and np.issubdtype(deltas.dtype, np.integer)):
            raise TypeError("indices and deltas must be integer arrays")
        if indices.size and (indices.min() < 0 or indices.max() >= n_elements):
            raise IndexError(f"element indices must lie in [0, {n_elements})")
        if np.unique(indices).size != indices.size:
            raise ValueError("indices must be unique (sum the deltas of repeated indices first)")


@dataclass(frozen=True)
class Q8_0Codec(Codec):
    """d, qs[32] int8; code = the int8."""

    def _decode(self, code_bytes: np.ndarray) -> np.ndarray:
        return code_bytes.view(np.int8)

    def _encode(self, codes: np.ndarray) -> np.ndarray:
        return codes.astype(np.int8).view(np.uint8)

    def _block_affine(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = np.broadcast_to(_f16(blocks, 0), (blocks.shape[0], self.block_size))
        return scale, np.zeros_like(scale)


@dataclass(frozen=True)
class LegacyCodec(Codec):
    """Q4_0/Q4_1/Q5_0/Q5_1: d[, m][, qh[4]], qs[16]; stored q = code + offset."""

    offset: int = 0  # stored unsigned field minus code (8 for Q4_0, 16 for Q5_0, 0 with a min)
    has_min: bool = False
    high_bit: bool = False  # Q5_x: a qh word before the nibbles

    def _decode(self, code_bytes: np.ndarray) -> np.ndarray:
        q = _unpack_nibbles(code_bytes[:, -16:], chunk=16).astype(np.int16)
        if self.high_bit:
            q |= np.unpackbits(code_bytes[:, :4], axis=-1, bitorder="little").astype(np.int16) << 4
        return q - self.offset

    def _encode(self, codes: np.ndarray) -> np.ndarray:
        q = (codes + self.offset).astype(np.uint8)
        qs = _pack_nibbles(q & 0x0F, chunk=16)
        if not self.high_bit:
            return qs
        qh = np.packbits(q >> 4, axis=-1, bitorder="little")
        return np.concatenate([qh, qs], axis=-1)

    def _block_affine(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shape = (blocks.shape[0], self.block_size)
        scale = np.broadcast_to(_f16(blocks, 0), shape)
        # value = d * (q - offset) [+ m] = d * code + bias
        bias = np.broadcast_to(_f16(blocks, 2), shape) if self.has_min else np.zeros(shape, np.float32)
        return scale, bias


@dataclass(frozen=True)
class KCodec(Codec):
    """Q4_K / Q5_K: d, dmin, scales[12], [qh[32],] qs[128]; code = stored q."""

    high_bit: bool = False

    def _decode(self, code_bytes: np.ndarray) -> np.ndarray:
        q = _unpack_nibbles(code_bytes[:, -128:], chunk=32).astype(np.int16)
        if self.high_bit:
            q |= _unpack_bit_fields(code_bytes[:, :32], bits=1, chunk=32).astype(np.int16) << 4
        return q

    def _encode(self, codes: np.ndarray) -> np.ndarray:
        q = codes.astype(np.uint8)
        qs = _pack_nibbles(q & 0x0F, chunk=32)
        if not self.high_bit:
            return qs
        return np.concatenate([_pack_bit_fields(q >> 4, bits=1, chunk=32), qs], axis=-1)

    def _block_affine(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sc, mn = _k_scale_min(blocks[:, 4:16])
        scale = _f16(blocks, 0) * sc.astype(np.float32)  # (n, 8) per sub-block
        bias = -(_f16(blocks, 2) * mn.astype(np.float32))
        return np.repeat(scale, 32, axis=1), np.repeat(bias, 32, axis=1)


@dataclass(frozen=True)
class Q6_KCodec(Codec):
    """ql[128], qh[64], scales[16] int8, d; code = q - 32."""

    def _decode(self, code_bytes: np.ndarray) -> np.ndarray:
        low = _unpack_nibbles(code_bytes[:, :128], chunk=64).astype(np.int16)
        high = _unpack_bit_fields(code_bytes[:, 128:192], bits=2, chunk=32).astype(np.int16)
        return (low | (high << 4)) - 32

    def _encode(self, codes: np.ndarray) -> np.ndarray:
        q = (codes + 32).astype(np.uint8)
        return np.concatenate([_pack_nibbles(q & 0x0F, chunk=64), _pack_bit_fields(q >> 4, bits=2, chunk=32)], axis=-1)

    def _block_affine(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sub = np.ascontiguousarray(blocks[:, 192:208]).view(np.int8).astype(np.float32)
        scale = np.repeat(_f16(blocks, 208) * sub, 16, axis=1)
        return scale, np.zeros_like(scale)


_T = GGMLQuantizationType
CODECS: dict[GGMLQuantizationType, Codec] = {
    _T.Q8_0: Q8_0Codec(_T.Q8_0, 32, 34, (2, 34), -128, 127),
    _T.Q4_0: LegacyCodec(_T.Q4_0, 32, 18, (2, 18), -8, 7, offset=8),
    _T.Q4_1: LegacyCodec(_T.Q4_1, 32, 20, (4, 20), 0, 15, has_min=True),
    _T.Q5_0: LegacyCodec(_T.Q5_0, 32, 22, (2, 22), -16, 15, offset=16, high_bit=True),
    _T.Q5_1: LegacyCodec(_T.Q5_1, 32, 24, (4, 24), 0, 31, has_min=True, high_bit=True),
    _T.Q4_K: KCodec(_T.Q4_K, 256, 144, (16, 144), 0, 15),
    _T.Q5_K: KCodec(_T.Q5_K, 256, 176, (16, 176), 0, 31, high_bit=True),
    _T.Q6_K: Q6_KCodec(_T.Q6_K, 256, 210, (0, 192), -32, 31),
}


def codec_for(tensor_type: GGMLQuantizationType | int) -> Codec:
    """The codec of a GGML type; raises :class:`UnsupportedTensorType` naming the type otherwise."""
    try:
        qtype = GGMLQuantizationType(tensor_type)
    except ValueError:
        raise UnsupportedTensorType(f"unknown GGML tensor type {tensor_type!r}") from None
    codec = CODECS.get(qtype)
    if codec is None:
        supported = ", ".join(t.name for t in CODECS)
        raise UnsupportedTensorType(f"no QES codec for tensor type {qtype.name} (supported: {supported})")
    return codec


# ---- GGUF files ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorView:
    """One tensor of an opened GGUF file. ``shape`` is the dequantized numpy shape (rows, cols);
    ``raw`` is a flat uint8 view of the tensor's bytes inside the file's memmap."""

    name: str
    tensor_type: GGMLQuantizationType
    shape: tuple[int, ...]
    n_elements: int
    file_offset: int
    raw: np.ndarray

    @property
    def codec(self) -> Codec:
        return codec_for(self.tensor_type)


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor lives in a GGUF file (what :func:`read_tensor_table` returns)."""

    name: str
    tensor_type: int
    shape: tuple[int, ...]  # dequantized numpy shape (rows, cols)
    n_elements: int
    data_offset: int  # absolute byte offset in the file
    n_bytes: int


def read_tensor_table(path: str | Path) -> list[TensorInfo]:
    """The tensors of a GGUF file, parsed by ``gguf.GGUFReader``."""
    reader = GGUFReader(path, mode="r")
    return [TensorInfo(t.name, int(t.tensor_type), tuple(int(n) for n in reversed(t.shape.tolist())), int(t.n_elements),
                       int(t.data_offset), int(t.n_bytes)) for t in reader.tensors]


_TABLE_SCRIPT = ("import dataclasses, json, sys; from policies.llm.gguf_codes import read_tensor_table; "
                 "json.dump([dataclasses.astuple(t) for t in read_tensor_table(sys.argv[1])], sys.stdout)")


def _read_tensor_table_in_child(path: Path) -> list[TensorInfo]:
    # GGUFReader builds ~10^5 small numpy objects for a 49k-token vocabulary (a ~175 MB peak); once freed,
    # Python's allocator keeps ~70 MB of it resident as fragmented arenas. A long-lived process (the
    # trainer) parses in a short-lived child and keeps only the table.
    process = subprocess.run([sys.executable, "-c", _TABLE_SCRIPT, str(path)], capture_output=True, text=True)
    if process.returncode != 0:
        raise ValueError(process.stderr.strip().splitlines()[-1] if process.stderr.strip() else "parse failed")
    return [TensorInfo(name, kind, tuple(shape), *rest) for name, kind, shape, *rest in json.loads(process.stdout)]


class GGUFTensors:
    """The tensors of a GGUF file as byte views into one ``numpy.memmap`` of the file."""

    def __init__(self, path: str | Path, writable: bool, parse_in_child: bool = False):
        self.path = Path(path)
        self.writable = writable
        try:
            table = _read_tensor_table_in_child(self.path) if parse_in_child else read_tensor_table(self.path)
        except ValueError as error:  # gguf raises ValueError for a bad magic/version
            raise ValueError(f"{self.path} is not a readable GGUF file: {error}") from None
        self.data = np.memmap(self.path, mode="r+" if writable else "r")
        self.tensors = [self._view(info) for info in table]
        self._by_name = {t.name: t for t in self.tensors}

    def _view(self, info: TensorInfo) -> TensorView:
        raw = self.data[info.data_offset:info.data_offset + info.n_bytes]
        if raw.size != info.n_bytes:
            raise ValueError(f"{self.path} is truncated: tensor {info.name} ends past the end of the file")
        return TensorView(info.name, GGMLQuantizationType(info.tensor_type), info.shape, info.n_elements,
                          info.data_offset, raw)

    def __getitem__(self, name: str) -> TensorView:
        return self._by_name[name]

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def flush(self) -> None:
        """Write dirty pages of the memmap back to the file."""
        if self.writable:
            self.data.flush()

    def release_pages(self, start: int = 0, length: int = 0) -> None:
        """Drop this process's page-table entries for ``[start, start + length)`` of the file mapping
        (the whole file if ``length`` is 0) with ``MADV_DONTNEED``.

        The data stays in the kernel's page cache (dirty pages of a shared file mapping are kept and
        written back), so nothing is lost and the next access refaults it cheaply; but pages touched
        here stop counting twice in the resident set of a process that also has llama.cpp map the file.
        """
        if length:
            page = mmap.PAGESIZE
            first = start // page * page
            length = -(-(start + length - first) // page) * page
            self.data._mmap.madvise(mmap.MADV_DONTNEED, first, min(length, len(self.data._mmap) - first))
        else:
            self.data._mmap.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        self.flush()
        self.tensors, self._by_name = [], {}
        self.data = None  # drop the memmap (it is unmapped once no view is left)

    def __enter__(self) -> "GGUFTensors":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_gguf_tensors(path: str | Path, writable: bool = False, parse_in_child: bool = False) -> GGUFTensors:
    """Open a GGUF file's tensors as byte views into a memmap (``mode="r+"`` when ``writable``).

    Writes into ``tensor.raw`` of a writable file reach the file (call ``flush()``) and, because
    llama.cpp memory-maps the same file, a loaded model (see the module docstring for repacked types).
    ``parse_in_child`` parses the header in a short-lived process (saves ~70 MB of resident memory in
    a long-lived one, costs ~1 s).
    """
    return GGUFTensors(path, writable, parse_in_child)


# ---- trainable tensors -----------------------------------------------------------------------------

TRAINABLE_WEIGHTS = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
_BLOCK_WEIGHT = re.compile(r"^blk\.\d+\.(?P<kind>[a-z_]+)\.weight$")


def _skip_reason(tensor: TensorView) -> str | None:
    match = _BLOCK_WEIGHT.match(tensor.name)
    if not match or match.group("kind") not in TRAINABLE_WEIGHTS:
        return "not a block attention/MLP weight"
    if len(tensor.shape) != 2:
        return f"not 2-D (shape {tensor.shape})"
    if tensor.tensor_type not in CODECS:
        return f"unsupported type {tensor.tensor_type.name}"
    return None


def select_trainable(tensors: Iterable[TensorView]) -> tuple[list[TensorView], list[tuple[TensorView, str]]]:
    """Split tensors into the trainable 2-D block attention/MLP weights and the skipped ones (with reasons).

    token_embd, output, norms and biases are never trainable. Block weights whose type has no codec are
    skipped and reported with an :class:`UnsupportedTensorTypeWarning` naming them and their types.
    """
    trainable: list[TensorView] = []
    skipped: list[tuple[TensorView, str]] = []
    for tensor in tensors:
        reason = _skip_reason(tensor)
        if reason is None:
            trainable.append(tensor)
        else:
            skipped.append((tensor, reason))
    unsupported = [f"{t.name} ({t.tensor_type.name})" for t, reason in skipped if reason.startswith("unsupported type")]
    if unsupported:
        warnings.warn(f"{len(unsupported)} attention/MLP weight tensor(s) skipped, no QES codec for their type: "
                      + ", ".join(unsupported), UnsupportedTensorTypeWarning, stacklevel=2)
    return trainable, skipped
