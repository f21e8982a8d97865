"""A tiny random-weight llama GGUF written with llama.cpp's own `gguf` package: a fast test fixture.

2 layers, n_embd 64, an SPM vocabulary of the 256 byte tokens plus specials, a chatml template; the
2-D block weights are quantized (Q8_0 by default). It loads in llama.cpp in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policies.llm.local import CHATML_TEMPLATE

CHATML = CHATML_TEMPLATE
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def write_tiny_model(path: str | Path, qtype_name: str = "Q8_0", seed: int = 0, n_embd: int = 64, n_layers: int = 2,
                     n_ff: int = 128, n_head: int = 4, n_head_kv: int = 2, chat_template: str | None = CHATML) -> Path:
    import gguf

    qtype = gguf.GGMLQuantizationType[qtype_name]
    rng = np.random.default_rng(seed)
    tokens = SPECIALS + [f"<0x{b:02X}>" for b in range(256)]
    n_vocab = len(tokens)
    token_types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL,
                   gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("society-env tiny test model")
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(int(qtype) if qtype_name != "F32" else 0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types(token_types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)

    def weights(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    def add_quantized(name, data):
        if qtype_name == "F32":
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    writer.add_tensor("token_embd.weight", weights(n_vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weights(n_vocab, n_embd))
    head_dim = n_embd // n_head
    for layer in range(n_layers):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add_quantized(f"{prefix}.attn_q.weight", weights(n_embd, n_embd))
        add_quantized(f"{prefix}.attn_k.weight", weights(n_head_kv * head_dim, n_embd))
        add_quantized(f"{prefix}.attn_v.weight", weights(n_head_kv * head_dim, n_embd))
        add_quantized(f"{prefix}.attn_output.weight", weights(n_embd, n_embd))
        add_quantized(f"{prefix}.ffn_gate.weight", weights(n_ff, n_embd))
        add_quantized(f"{prefix}.ffn_up.weight", weights(n_ff, n_embd))
        add_quantized(f"{prefix}.ffn_down.weight", weights(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
