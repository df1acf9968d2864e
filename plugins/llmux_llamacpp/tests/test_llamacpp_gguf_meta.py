"""The fast GGUF metadata reader (gguf_meta.py) behind the VRAM estimate: the same values as
``gguf.GGUFReader``, long arrays skipped (length only), results cached per file version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llamacpp_fixtures import MODEL_FILE

from llmux import ModelLoadError
from llmux_llamacpp import gguf_meta, vram
from llmux_llamacpp.gguf_meta import ArrayInfo, read_header, read_metadata


def reference_metadata(path: Path) -> dict[str, Any]:
    """What ``vram.metadata`` returned when it read the file with ``gguf.GGUFReader``."""
    import gguf

    reader = gguf.GGUFReader(path)
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key not in (
            "tokenizer.ggml.model", "tokenizer.ggml.pre"
        ) or key.startswith("GGUF."):
            continue
        out[key] = field.contents()
    field = reader.fields.get("tokenizer.ggml.tokens")
    out["_n_vocab"] = len(field.data) if field is not None else 0
    return out


def same(a: Any, b: Any) -> bool:
    """Equal values of the same Python types (bool stays bool, float stays float)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_meta_matches_gguf_reader_on_the_tiny_model(tiny_dir):
    import gguf

    path = tiny_dir / MODEL_FILE
    expected = reference_metadata(path)
    got = vram.metadata(path)
    assert got.keys() == expected.keys()
    for key in expected:
        assert same(got[key], expected[key]), key
    assert got["_n_vocab"] > 300
    assert got["qwen35.attention.recurrent_layers"] == [True, False]

    # The whole KV section (the tiny vocabulary is under the array limit): every field.
    reader = gguf.GGUFReader(path)
    fields = read_metadata(path)
    assert list(fields) == [k for k in reader.fields if not k.startswith("GGUF.")]
    for key, value in fields.items():
        assert same(value, reader.fields[key].contents()), key
    header = read_header(path)
    assert (header.version, header.tensor_count, header.kv_count) == (
        3, len(reader.tensors), len(fields))


@pytest.fixture(scope="module")
def big_vocab(tmp_path_factory) -> Path:
    """A GGUF with a 300,000-string vocabulary, a long numeric array, a string that outruns
    the reader's 1 MiB window, and keys after all of them; one tiny tensor."""
    import gguf

    path = tmp_path_factory.mktemp("gguf-meta") / "big-vocab.gguf"
    w = gguf.GGUFWriter(str(path), "qwen35")
    w.add_uint32("qwen35.block_count", 2)
    w.add_token_list([f"tok{i}" for i in range(300_000)])
    w.add_token_types([1] * 300_000)
    w.add_array("llmux.long_strings", ["x" * 10, "y" * (3 << 20)] + ["z"] * 2000)
    w.add_string("tokenizer.ggml.pre", "qwen35")
    w.add_array("qwen35.attention.recurrent_layers", [True, False])
    w.add_float32("qwen35.rope.freq_base", 10000.0)
    w.add_string("general.name", "after the vocabulary")
    w.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_meta_skips_long_arrays_keeping_their_length(big_vocab):
    fields = read_metadata(big_vocab)
    assert fields["tokenizer.ggml.tokens"] == ArrayInfo(gguf_meta.STRING, 300_000)
    assert fields["tokenizer.ggml.token_type"] == ArrayInfo(5, 300_000)  # INT32
    assert fields["llmux.long_strings"] == ArrayInfo(gguf_meta.STRING, 2002)
    # Everything after the skipped arrays is read from the right offsets.
    assert fields["tokenizer.ggml.pre"] == "qwen35"
    assert fields["qwen35.attention.recurrent_layers"] == [True, False]
    assert fields["qwen35.rope.freq_base"] == 10000.0
    assert fields["general.name"] == "after the vocabulary"
    assert fields["qwen35.block_count"] == 2

    meta = vram.metadata(big_vocab)
    assert meta["_n_vocab"] == 300_000
    assert not any(isinstance(v, list) and len(v) > gguf_meta.MAX_ARRAY for v in meta.values())
    assert meta == {  # gguf.GGUFReader takes ~20 s on this file: the values are spelled out
        "general.architecture": "qwen35", "qwen35.block_count": 2,
        "llmux.long_strings": ArrayInfo(gguf_meta.STRING, 2002), "tokenizer.ggml.pre": "qwen35",
        "qwen35.attention.recurrent_layers": [True, False], "qwen35.rope.freq_base": 10000.0,
        "general.name": "after the vocabulary", "_n_vocab": 300_000,
    }


def test_meta_is_cached_per_file_version(big_vocab, tmp_path, monkeypatch):
    calls = []
    real = vram.read_metadata
    monkeypatch.setattr(vram, "read_metadata", lambda p: calls.append(p) or real(p))
    vram._metadata.cache_clear()
    path = tmp_path / "m.gguf"
    path.write_bytes(big_vocab.read_bytes())
    first = vram.metadata(path)
    first["general.name"] = "changed by a caller"
    assert vram.metadata(path)["general.name"] == "after the vocabulary"
    assert len(calls) == 1
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a new version of the file
    vram.metadata(path)
    assert len(calls) == 2


def test_meta_of_a_non_gguf_is_a_load_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(20))
    with pytest.raises(ModelLoadError, match="not a readable GGUF file"):
        vram.metadata(bad)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(8)
                          + (5).to_bytes(8, "little"))
    with pytest.raises(ModelLoadError, match="end of file"):
        vram.metadata(truncated)
    with pytest.raises(ModelLoadError, match="not a readable GGUF file"):
        vram.metadata(tmp_path / "missing.gguf")
