"""A random-weight llama GGUF with a real (trained) byte-level BPE tokenizer.

The benchmark serves the same file three ways, so only its size matters: large enough that
decoding is real work (50–300 tokens/s on a 2-core machine at the default shape), small
enough to build in about a second. Special tokens and non-ASCII byte tokens get zero rows in
the output matrix, so greedy decoding never ends early on EOS and never emits half a UTF-8
character: every run produces exactly ``max_tokens`` tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = """\
The quick brown fox jumps over the lazy dog. Benchmarks measure what a system costs.
A gateway forwards requests to models and streams tokens back to the client as events.
Time to first token, decode tokens per second, and the swap cost of evicting a model.
One process owns the GPU; the scheduler loads and unloads models by a VRAM budget.
Hello there! How are you today? Tell me a story about a small robot and a big cat.
0123456789 !?.,;:'"()[]{}<>=+-*/_|#@$%& user assistant system tool function call
"""


@dataclass(frozen=True)
class Shape:
    hidden: int = 768
    layers: int = 8
    ffn: int = 2048
    heads: int = 12
    kv_heads: int = 4
    vocab: int = 1024
    context: int = 2048
    quant: str = "Q8_0"  # or F32 / F16


# The size users compared llmux with llama.cpp on (issue #18): 156 M parameters, Q8_0, about
# 120 tok/s on 2 cores; big enough that a token is the model's work, not the caller's.
DECODE_SHAPE = Shape(hidden=1024, layers=14, ffn=2816, heads=16, kv_heads=4)
SMOKE_SHAPE = Shape(hidden=64, layers=2, ffn=128, heads=4, kv_heads=2, vocab=400,
                    context=512, quant="F32")


def train_tokenizer(vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer)
    return tok


def _byte_level_ascii() -> set[str]:
    """The byte-level BPE characters (GPT-2's byte-to-unicode map) of the ASCII bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return {mapping[b] for b in range(128)}


def build_gguf(path: Path, shape: Shape = Shape(), seed: int = 0) -> dict:
    """Write the GGUF to ``path``; return a description (shape, parameters, bytes)."""
    import gguf
    import numpy as np

    tok = train_tokenizer(shape.vocab)
    vocab = tok.get_vocab()
    n_vocab = len(vocab)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = _merges(tok)
    specials = {vocab[s] for s in SPECIALS}
    ascii_chars = _byte_level_ascii()
    # Output rows that greedy decoding must never choose: specials and any token holding a
    # non-ASCII byte (which would leave half a UTF-8 character in the stream).
    banned = [i for i, t in enumerate(tokens)
              if i in specials or any(ch not in ascii_chars for ch in t)]

    rng = np.random.default_rng(seed)
    h, f, nh, nkv = shape.hidden, shape.ffn, shape.heads, shape.kv_heads
    head_dim = h // nh
    qtype = getattr(gguf.GGMLQuantizationType, shape.quant)

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("llmux-bench-random")
    w.add_context_length(shape.context)
    w.add_embedding_length(h)
    w.add_block_count(shape.layers)
    w.add_feed_forward_length(f)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type({"F32": 0, "F16": 1, "Q8_0": 7}[shape.quant])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if i in specials else gguf.TokenType.NORMAL
                       for i in range(n_vocab)])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|endoftext|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_pad_token_id(vocab["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    params = 0

    def tensor(name: str, rows: int, cols: int, scale: float | None = None, quant=True):
        nonlocal params
        data = (rng.standard_normal((rows, cols), dtype=np.float32)
                * (scale if scale is not None else cols ** -0.5))
        if name == "output.weight":
            data[banned] = 0.0
        params += data.size
        if quant and qtype not in (gguf.GGMLQuantizationType.F32,):
            if qtype == gguf.GGMLQuantizationType.F16:
                w.add_tensor(name, data.astype(np.float16))
            else:
                w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data)

    def norm(name: str):
        nonlocal params
        params += h
        w.add_tensor(name, np.ones(h, dtype=np.float32))

    tensor("token_embd.weight", n_vocab, h, scale=1.0)
    for i in range(shape.layers):
        norm(f"blk.{i}.attn_norm.weight")
        tensor(f"blk.{i}.attn_q.weight", h, h)
        tensor(f"blk.{i}.attn_k.weight", nkv * head_dim, h)
        tensor(f"blk.{i}.attn_v.weight", nkv * head_dim, h)
        tensor(f"blk.{i}.attn_output.weight", h, h)
        norm(f"blk.{i}.ffn_norm.weight")
        tensor(f"blk.{i}.ffn_gate.weight", f, h)
        tensor(f"blk.{i}.ffn_up.weight", f, h)
        tensor(f"blk.{i}.ffn_down.weight", h, f)
    norm("output_norm.weight")
    tensor("output.weight", n_vocab, h, scale=1.0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"path": str(path), "shape": asdict(shape), "vocab": n_vocab, "params": params,
            "bytes": path.stat().st_size, "banned_output_tokens": len(banned)}


def _merges(tok) -> list[str]:
    import json

    model = json.loads(tok.to_str())["model"]
    return [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]


if __name__ == "__main__":  # python -m benchmarks.gguf_model OUT.gguf
    import sys
    import time

    t0 = time.perf_counter()
    info = build_gguf(Path(sys.argv[1]))
    print(info, f"{time.perf_counter() - t0:.2f} s")
