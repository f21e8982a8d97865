"""QES codecs: the integer codes of quantized GGUF tensors, checked against llama.cpp's own `gguf.quants`."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import GGUFReader  # noqa: E402

from policies.llm.gguf_codes import (  # noqa: E402
    CODECS, UnsupportedTensorType, UnsupportedTensorTypeWarning, codec_for, open_gguf_tensors, select_trainable,
)
from tests.tiny_gguf import write_tiny_model  # noqa: E402

LEGACY = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]  # gguf.quants.quantize can make these
K_QUANTS = ["Q4_K", "Q5_K", "Q6_K"]  # dequantize only: tested on random blocks
FLOAT_FIELDS = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2],
                "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}  # byte offsets of fp16 d / m / dmin
SOURCES = [(name, "quantized") for name in LEGACY] + [(name, "random") for name in LEGACY + K_QUANTS]
TRAINABLE = {f"blk.{i}.{kind}.weight" for i in range(2)
             for kind in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}


def make_raw(name: str, source: str, rows: int = 6, cols: int = 512, seed: int = 0) -> np.ndarray:
    """A (rows, bytes per row) uint8 tensor: quantized normal data, or random blocks with finite fp16 scales."""
    qtype = T[name]
    rng = np.random.default_rng(seed)
    if source == "quantized":
        return gguf.quants.quantize((rng.standard_normal((rows, cols)) * 0.5).astype(np.float32), qtype)
    codec = CODECS[qtype]
    blocks = rng.integers(0, 256, size=(rows * cols // codec.block_size, codec.block_bytes), dtype=np.uint8)
    for offset in FLOAT_FIELDS[name]:
        values = rng.uniform(-0.1, 0.1, size=(blocks.shape[0], 1)).astype(np.float16)
        blocks[:, offset:offset + 2] = values.view(np.uint8)
    return blocks.reshape(rows, -1)


def dequantize(raw: np.ndarray, name: str) -> np.ndarray:
    return gguf.quants.dequantize(raw, T[name]).reshape(-1)


def header_mask(name: str, raw: np.ndarray) -> np.ndarray:
    """True on every byte that is not a code byte (scales, mins, sub-block scales)."""
    codec = CODECS[T[name]]
    mask = np.ones((raw.size // codec.block_bytes, codec.block_bytes), dtype=bool)
    mask[:, codec.code_bytes[0]:codec.code_bytes[1]] = False
    return mask.reshape(raw.shape)


def block_f16(raw: np.ndarray, name: str, offset: int) -> np.ndarray:
    codec = CODECS[T[name]]
    blocks = raw.reshape(-1, codec.block_bytes)
    field = np.ascontiguousarray(blocks[:, offset:offset + 2]).view(np.float16).astype(np.float32)
    return np.repeat(field[:, 0], codec.block_size)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- codecs on arrays ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,source", SOURCES)
def test_read_codes_match_dequantize(name, source):
    raw = make_raw(name, source)
    codec = CODECS[T[name]]
    codes = codec.read_codes(raw)
    assert codes.dtype == np.int16 and codes.shape == (raw.size // codec.block_bytes * codec.block_size,)
    assert codec.code_min <= codes.min() and codes.max() <= codec.code_max
    if source == "random":  # random bytes reach every code value
        assert codes.min() == codec.code_min and codes.max() == codec.code_max
    scale, bias = codec.affine(raw)
    np.testing.assert_allclose(scale * codes + bias, dequantize(raw, name), rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_codes_follow_the_documented_formulas(name):
    raw = make_raw(name, "quantized")
    codes = CODECS[T[name]].read_codes(raw).astype(np.float32)
    d = block_f16(raw, name, 0)
    if name in ("Q4_1", "Q5_1"):
        expected = d * codes + block_f16(raw, name, 2)  # codes are the stored q in [0, 15] / [0, 31]
    else:
        expected = d * codes  # codes are q - offset (Q4_0: nibble - 8, Q5_0: q - 16, Q8_0: the int8)
    np.testing.assert_allclose(dequantize(raw, name), expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name,source", SOURCES)
def test_round_trip_is_byte_identical_and_codes_are_a_bijection(name, source):
    raw = make_raw(name, source)
    original = raw.copy()
    codec = CODECS[T[name]]
    codec.write_codes(raw, codec.read_codes(raw))
    assert np.array_equal(raw, original)

    new_codes = np.random.default_rng(1).integers(codec.code_min, codec.code_max + 1, size=codec.read_codes(raw).size)
    codec.write_codes(raw, new_codes)
    assert np.array_equal(codec.read_codes(raw), new_codes)
    assert np.array_equal(raw[header_mask(name, raw)], original[header_mask(name, raw)])


@pytest.mark.parametrize("name,source", SOURCES)
def test_changing_one_code_changes_exactly_one_weight(name, source):
    raw = make_raw(name, source)
    codec = CODECS[T[name]]
    scale, _ = codec.affine(raw)
    rng = np.random.default_rng(2)
    for _ in range(5):
        before_bytes, before = raw.copy(), dequantize(raw, name)
        codes = codec.read_codes(raw)
        k = int(rng.choice(np.flatnonzero(scale != 0)))
        delta = 1 if codes[k] < codec.code_max else -1
        codes[k] += delta
        codec.write_codes(raw, codes)
        after = dequantize(raw, name)
        changed = np.flatnonzero(after != before)
        assert changed.tolist() == [k]
        if name in LEGACY:  # the block's d, straight from its bytes
            d = block_f16(before_bytes, name, 0)[k]
        else:  # K-quants: d * sub-block scale
            d = scale[k]
        assert after[k] - before[k] == pytest.approx(d * delta, rel=1e-3)
        assert np.array_equal(raw[header_mask(name, raw)], before_bytes[header_mask(name, raw)])
        assert np.count_nonzero(raw != before_bytes) <= 2  # a nibble/int8 byte and perhaps a high-bit byte


@pytest.mark.parametrize("name", LEGACY + K_QUANTS)
def test_apply_delta_gates_at_the_code_range(name):
    raw = make_raw(name, "random")
    codec = CODECS[T[name]]
    codes = codec.read_codes(raw)
    lo, hi = codec.code_min, codec.code_max
    idx = np.array([3, 40, 77, 130, 300, 301])
    codes[idx] = [hi, lo, hi, lo, 0 if lo < 0 else 5, 1]
    codec.write_codes(raw, codes)
    before_bytes, before = raw.copy(), codec.read_codes(raw)

    deltas = np.array([1, -1, -3, 2, hi - lo + 1, -1])
    applied = codec.apply_delta(raw, idx, deltas)
    assert applied.tolist() == [False, False, True, True, False, True]
    after = codec.read_codes(raw)
    expected = before.copy()
    expected[idx[applied]] += deltas[applied]
    assert np.array_equal(after, expected)
    assert np.array_equal(raw[header_mask(name, raw)], before_bytes[header_mask(name, raw)])

    # a fully gated call writes nothing; repeated / out-of-range indices are refused
    assert not codec.apply_delta(raw, np.array([3]), np.array([1])).any()
    assert np.array_equal(codec.read_codes(raw), after)
    with pytest.raises(ValueError, match="unique"):
        codec.apply_delta(raw, np.array([5, 5]), np.array([1, 1]))
    with pytest.raises(IndexError):
        codec.apply_delta(raw, np.array([after.size]), np.array([1]))


def test_write_codes_writes_into_the_given_buffer_and_refuses_copies():
    codec = CODECS[T.Q8_0]
    file_like = np.zeros(1000, dtype=np.uint8)
    view = file_like[100:100 + 4 * 34]
    codec.write_codes(view, np.arange(128) - 64)
    assert np.array_equal(codec.read_codes(file_like[100:100 + 4 * 34]), np.arange(128) - 64)
    assert not file_like[:100].any() and not file_like[100 + 4 * 34:].any()
    with pytest.raises(ValueError, match="contiguous"):
        codec.write_codes(np.zeros(2 * 68, dtype=np.uint8)[::2], np.zeros(64))
    read_only = np.zeros(34, dtype=np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        codec.write_codes(read_only, np.zeros(32))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        codec.write_codes(np.zeros(34, dtype=np.uint8), np.full(32, 128))


def test_codec_for_names_unsupported_types():
    assert codec_for(T.Q5_1) is CODECS[T.Q5_1]
    assert codec_for(int(T.Q8_0)) is CODECS[T.Q8_0]
    for qtype in (T.F16, T.Q2_K, T.IQ4_XS):
        with pytest.raises(UnsupportedTensorType, match=qtype.name):
            codec_for(qtype)


# ---- GGUF files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LEGACY)
def test_writes_through_the_memmap_reach_the_file_and_restore_it(tmp_path, name):
    path = write_tiny_model(tmp_path / f"tiny_{name}.gguf", qtype_name=name)
    original_hash = sha256(path)
    file_bytes = path.read_bytes()

    with open_gguf_tensors(path, writable=True) as tensors:
        reader = GGUFReader(path)
        for tensor, reader_tensor in zip(tensors, reader.tensors):
            assert tensor.name == reader_tensor.name
            assert tensor.raw.dtype == np.uint8 and tensor.raw.size == reader_tensor.n_bytes
            assert tensor.raw.tobytes() == file_bytes[tensor.file_offset:tensor.file_offset + tensor.raw.size]
            if tensor.tensor_type != T.F32:  # quantized: the reader's own view holds the same bytes
                assert reader_tensor.data.tobytes() == tensor.raw.tobytes()
        tensor = tensors["blk.1.ffn_down.weight"]
        assert tensor.tensor_type == T[name] and tensor.shape == (64, 128)
        codec = tensor.codec
        before = dequantize(tensor.raw.copy(), name)
        old = codec.read_codes(tensor.raw)
        k = 1000
        delta = 1 if old[k] < codec.code_max else -1
        assert codec.apply_delta(tensor.raw, np.array([k]), np.array([delta])).all()
        tensors.flush()
    assert sha256(path) != original_hash

    with open_gguf_tensors(path, writable=False) as tensors:
        raw = tensors["blk.1.ffn_down.weight"].raw
        assert codec.read_codes(raw)[k] == old[k] + delta
        assert np.flatnonzero(dequantize(raw, name) != before).tolist() == [k]
        with pytest.raises(ValueError, match="read-only"):
            codec.write_codes(raw, old)

    with open_gguf_tensors(path, writable=True) as tensors:
        codec.write_codes(tensors["blk.1.ffn_down.weight"].raw, old)
    assert sha256(path) == original_hash


def test_select_trainable_picks_the_block_attention_and_mlp_weights(tmp_path):
    path = write_tiny_model(tmp_path / "tiny.gguf", qtype_name="Q8_0")
    with open_gguf_tensors(path) as tensors:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            trainable, skipped = select_trainable(tensors)
    assert {t.name for t in trainable} == TRAINABLE and len(trainable) == 14
    assert all(len(t.shape) == 2 and t.tensor_type == T.Q8_0 for t in trainable)
    reasons = {t.name: reason for t, reason in skipped}
    assert set(reasons) == {"token_embd.weight", "output.weight", "output_norm.weight"} | {
        f"blk.{i}.{norm}.weight" for i in range(2) for norm in ("attn_norm", "ffn_norm")}
    assert set(reasons.values()) == {"not a block attention/MLP weight"}


def test_select_trainable_warns_about_unsupported_types(tmp_path):
    path = write_tiny_model(tmp_path / "tiny_f16.gguf", qtype_name="F16")
    with open_gguf_tensors(path) as tensors:
        with pytest.warns(UnsupportedTensorTypeWarning, match=r"blk\.0\.attn_q\.weight \(F16\)"):
            trainable, skipped = select_trainable(tensors)
    assert trainable == []
    assert {t.name for t, reason in skipped if reason == "unsupported type F16"} == TRAINABLE


# ---- a live llama.cpp model sees the edits -----------------------------------------------------------

def _last_logits(engine, tokens: list[int]) -> np.ndarray:
    engine.reset()
    engine._decode([(t, i, 0, i == len(tokens) - 1) for i, t in enumerate(tokens)])
    logits = engine.llama_cpp.llama_get_logits_ith(engine.ctx, len(tokens) - 1)
    return np.ctypeslib.as_array(logits, shape=(engine.n_vocab,)).copy()


@pytest.mark.parametrize("name,use_extra_bufts", [("Q8_0", True), ("Q4_1", True), ("Q5_0", True), ("Q5_1", True), ("Q4_0", False)])
def test_live_llama_cpp_model_sees_code_edits(tmp_path, name, use_extra_bufts):
    pytest.importorskip("llama_cpp")
    from policies.llm.engine import LlamaEngine

    path = write_tiny_model(tmp_path / f"live_{name}.gguf", qtype_name=name)
    engine = LlamaEngine(path, n_ctx=256, max_batch=1, n_threads=1, use_extra_bufts=use_extra_bufts)
    try:
        tokens = engine.tokenize("hello world", add_special=False)
        base = _last_logits(engine, tokens)
        with open_gguf_tensors(path, writable=True) as tensors:
            raw = tensors["blk.0.ffn_down.weight"].raw
            codec = CODECS[T[name]]
            old = codec.read_codes(raw)
            rng = np.random.default_rng(0)
            idx = rng.choice(old.size, size=old.size // 4, replace=False)
            middle = (codec.code_min + codec.code_max) / 2
            assert codec.apply_delta(raw, idx, np.where(old[idx] < middle, 3, -3)).all()
            tensors.flush()
            edited = _last_logits(engine, tokens)
            codec.write_codes(raw, old)
            tensors.flush()
        restored = _last_logits(engine, tokens)
    finally:
        engine.close()
    assert np.abs(edited - base).max() > 1e-3
    assert np.array_equal(restored, base)
