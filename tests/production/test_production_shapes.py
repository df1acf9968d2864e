"""The production-shape builder: all nine models where their plugins look, sparse, with
headers the plugins' own readers parse and the published sizes (see
/work/shared/notes/production-shapes.md)."""

from __future__ import annotations

import json
import math
import re

import pytest

from benchmarks.production_shapes import build_all, production_models

pytestmark = pytest.mark.slow

GB = 10**9
GiB = 1024**3
TRANSFORMERS = ["qwen3.5-9b-fp8", "qwen3.5-4b", "gpt-oss-20b", "gpt-oss-20b-uncensored",
                "cohere-transcribe"]


def tensors(build, name):
    from llmux_transformers.checkpoint import Checkpoint

    return {t.name: t for t in Checkpoint.open(build.folder(name)).tensors}


def test_all_nine_build_sparse(production_build):
    assert set(production_build.models) == set(production_models())
    apparent = disk = 0
    for name, info in production_build.models.items():
        for file, size in info["files"].items():
            st = (production_build.folder(name) / file).stat()
            assert st.st_size == size
            apparent += size
            disk += st.st_blocks * 512
            assert st.st_blocks * 512 <= 16 * 2**20, (name, file)  # headers only
    assert apparent > 95 * GB
    assert disk < 64 * 2**20


def test_files_are_where_each_plugin_looks(production_build):
    from llmux_chatterbox.variants import VARIANTS

    for name, spec in production_models().items():
        folder = production_build.root / spec["path"]
        assert production_build.folder(name) == folder
        options = spec.get("options") or {}
        if spec["backend"] == "transformers":
            assert (folder / "config.json").is_file()
        elif spec["backend"] == "llamacpp":
            assert (folder / options["model_file"]).is_file()
            assert (folder / options["mmproj_file"]).is_file()
        else:
            variant = VARIANTS[options["variant"]]
            assert variant.missing_files(folder) == []
            assert all((folder / f).is_file() for f in variant.optional)
            for json_file in folder.glob("*.json"):
                json.loads(json_file.read_text())  # real, small JSON


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_safetensors_headers_are_valid(production_build, name):
    """safetensors itself accepts each file (contiguous offsets covering the data), the
    index maps every tensor to its shard, and transformers accepts config.json."""
    from safetensors import safe_open
    from transformers import AutoConfig

    folder = production_build.folder(name)
    found = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            found.update({key: file.name for key in f.keys()})
    assert len(found) == production_build.models[name]["tensors"]
    index = folder / "model.safetensors.index.json"
    if index.exists():
        assert json.loads(index.read_text())["weight_map"] == found
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == json.loads((folder / "config.json").read_text())["model_type"]


def test_qwen35_4b_bf16_with_vision_and_mtp(production_build):
    ts = tensors(production_build, "qwen3.5-4b")
    assert {t.dtype for t in ts.values()} == {"BF16"}
    assert sum(t.nbytes for t in ts.values()) == pytest.approx(8.68 * GiB, rel=0.01)
    assert "lm_head.weight" not in ts  # tied
    assert ts["model.language_model.embed_tokens.weight"].shape == (248320, 2560)
    assert ts["model.visual.blocks.23.mlp.linear_fc1.weight"].shape == (4096, 1024)
    assert "model.visual.blocks.24.norm1.weight" not in ts
    assert ts["model.visual.merger.linear_fc2.weight"].shape == (2560, 4096)
    assert ts["mtp.fc.weight"].shape == (2560, 5120)


def test_qwen35_9b_block_wise_fp8(production_build):
    from transformers import Qwen3_5ForConditionalGeneration

    ts = tensors(production_build, "qwen3.5-9b-fp8")
    config = json.loads((production_build.folder("qwen3.5-9b-fp8") / "config.json").read_text())
    q = config["quantization_config"]
    assert (q["quant_method"], q["fmt"], q["weight_block_size"]) == ("fp8", "e4m3", [128, 128])
    fp8 = {n for n, t in ts.items() if t.dtype == "F8_E4M3"}
    # 24 Gated DeltaNet layers x (qkv, z, out) + 8 attention layers x 4 + 32 MLPs x 3
    assert len(fp8) == 24 * 3 + 8 * 4 + 32 * 3
    for n in fp8:
        rows, cols = ts[n].shape
        scale = ts[n.removesuffix("weight") + "weight_scale_inv"]
        assert (scale.dtype, scale.shape) == ("F32", (math.ceil(rows / 128), math.ceil(cols / 128)))
    assert ts["model.language_model.layers.0.linear_attn.in_proj_qkv.weight"].dtype == "F8_E4M3"
    for bf16 in ("model.language_model.layers.0.linear_attn.in_proj_a.weight",
                 "model.language_model.layers.0.linear_attn.in_proj_b.weight",
                 "model.language_model.layers.0.linear_attn.A_log",
                 "model.language_model.layers.0.linear_attn.conv1d.weight",
                 "model.language_model.embed_tokens.weight", "lm_head.weight",
                 "model.visual.blocks.26.attn.qkv.weight", "mtp.layers.0.mlp.up_proj.weight"):
        assert ts[bf16].dtype == "BF16", bf16
    assert {ts[n].dtype for n in ts if "visual" in n or n.startswith("mtp.")} == {"BF16"}
    assert ts["mtp.fc.weight"].shape == (4096, 8192)
    assert ts["mtp.layers.0.self_attn.q_proj.weight"].shape == (8192, 4096)
    # the mtp.* head is in the files, and it is exactly what transformers does not load
    ignored = Qwen3_5ForConditionalGeneration._keys_to_ignore_on_load_unexpected
    unloaded = {n for n in ts if any(re.search(p, n) for p in ignored)}
    assert unloaded == {n for n in ts if n.startswith("mtp.")} and len(unloaded) == 15
    loaded = sum(t.nbytes for n, t in ts.items() if n not in unloaded)
    assert loaded == pytest.approx(11.09 * GiB, rel=0.01)


def test_gpt_oss_20b_mxfp4_as_published(production_build):
    folder = production_build.folder("gpt-oss-20b")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert [s.name for s in shards] == [f"model-0000{i}-of-00002.safetensors" for i in range(3)]
    for shard, published in zip(shards, (4.79, 4.80, 4.17)):
        assert shard.stat().st_size == pytest.approx(published * GB, rel=0.01)
    assert sum(s.stat().st_size for s in shards) == pytest.approx(13.76 * GB, rel=0.01)
    ts = tensors(production_build, "gpt-oss-20b")
    assert ts["model.layers.0.mlp.experts.gate_up_proj_blocks"].shape == (32, 5760, 90, 16)
    assert ts["model.layers.0.mlp.experts.gate_up_proj_scales"].shape == (32, 5760, 90)
    assert ts["model.layers.23.mlp.experts.down_proj_blocks"].shape == (32, 2880, 90, 16)
    assert {t.dtype for n, t in ts.items() if "_blocks" in n or "_scales" in n} == {"U8"}
    assert {t.dtype for n, t in ts.items() if not n.endswith(("_blocks", "_scales"))} == {"BF16"}
    q = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert q["quant_method"] == "mxfp4" and "lm_head" in q["modules_to_not_convert"]


def test_gpt_oss_20b_uncensored_bf16(production_build):
    ts = tensors(production_build, "gpt-oss-20b-uncensored")
    assert {t.dtype for t in ts.values()} == {"BF16"}
    assert sum(t.nbytes for t in ts.values()) == pytest.approx(41.8 * GB, rel=0.01)
    assert ts["model.layers.0.mlp.experts.gate_up_proj"].shape == (32, 2880, 5760)
    assert ts["model.layers.0.mlp.experts.gate_up_proj_bias"].shape == (32, 5760)
    assert ts["model.layers.0.mlp.experts.down_proj"].shape == (32, 2880, 2880)
    config = json.loads((production_build.folder("gpt-oss-20b-uncensored") / "config.json")
                        .read_text())
    assert "quantization_config" not in config


def test_cohere_transcribe(production_build):
    from transformers import CohereAsrForConditionalGeneration

    ts = tensors(production_build, "cohere-transcribe")
    ignored = CohereAsrForConditionalGeneration._keys_to_ignore_on_load_unexpected
    loaded = [t for n, t in ts.items() if not any(re.search(p, n) for p in ignored)]
    assert len(loaded) == len(ts) - 2  # the featurizer's filterbank and window
    params = sum(t.numel for t in loaded if t.dtype != "I64")
    assert params == pytest.approx(2.07e9, rel=0.005)
    assert {t.dtype for t in loaded} == {"BF16", "I64"}  # I64: batch-norm step counters
    assert (production_build.folder("cohere-transcribe") / "processor_config.json").is_file()


@pytest.mark.parametrize(("name", "file", "published"), [
    ("chatterbox", "t3_cfg.safetensors", 2.13e9),
    ("chatterbox", "s3gen.safetensors", 1.06e9),
    ("chatterbox", "ve.safetensors", 5.7e6),
    ("chatterbox-turbo", "t3_turbo_v1.safetensors", 1.92e9),
    ("chatterbox-turbo", "s3gen_meanflow.safetensors", 1.06e9),
    ("chatterbox-multilingual", "t3_mtl23ls_v2.safetensors", 2.14e9),
    ("chatterbox-multilingual", "s3gen.pt", 1.06e9),
    ("chatterbox-multilingual", "ve.pt", 5.7e6),
])
def test_chatterbox_published_sizes(production_build, name, file, published):
    path = production_build.folder(name) / file
    assert path.stat().st_size == pytest.approx(published, rel=0.01)
    if file.endswith(".safetensors"):
        from llmux_transformers.checkpoint import read_header

        assert {t.dtype for t in read_header(path)} <= {"F32", "I64"}


def test_chatterbox_t3_shapes(production_build):
    from llmux_transformers.checkpoint import read_header

    english = {t.name: t for t in read_header(
        production_build.folder("chatterbox") / "t3_cfg.safetensors")}
    assert english["tfmr.layers.29.mlp.gate_proj.weight"].shape == (4096, 1024)  # Llama_520M
    turbo = {t.name: t for t in read_header(
        production_build.folder("chatterbox-turbo") / "t3_turbo_v1.safetensors")}
    assert turbo["tfmr.h.23.attn.c_attn.weight"].shape == (1024, 3072)  # GPT-2 medium
    assert turbo["tfmr.wte.weight"].shape == (50276, 1024)


def test_qwen35_gguf_and_mmproj(production_build):
    import gguf

    from llmux_llamacpp.vram import metadata

    spec = production_models()["qwen3.5-9b-fp8-uncensored"]
    folder = production_build.folder("qwen3.5-9b-fp8-uncensored")
    model = folder / spec["options"]["model_file"]
    assert model.stat().st_size == pytest.approx(9.5 * GB, rel=0.01)
    reader = gguf.GGUFReader(model)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == 248320
    vocab = [bytes(tokens.parts[i]).decode() for i in tokens.data[248044:248047]]
    assert vocab == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 240_000
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.ffn_down.weight"] == "Q8_0"
    assert types["blk.0.ssm_conv1d.weight"] == types["blk.3.attn_q_norm.weight"] == "F32"
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}  # ggml order
    assert shapes["blk.3.attn_q.weight"] == (4096, 8192)
    assert shapes["token_embd.weight"] == (4096, 248320)
    # The plugin's reader (llmux_llamacpp.vram.metadata) is GGUFReader too, and reading the
    # full vocabulary takes it ~30 s here: the same values, read once, from ``reader``.
    meta = {key: field.contents() for key, field in reader.fields.items()
            if not key.startswith("tokenizer.ggml.") and not key.startswith("GGUF.")}
    assert meta["general.architecture"] == "qwen35"
    assert (meta["qwen35.block_count"], meta["qwen35.embedding_length"],
            meta["qwen35.attention.head_count_kv"], meta["qwen35.ssm.inner_size"],
            meta["qwen35.full_attention_interval"]) == (32, 4096, 4, 4096, 4)
    assert sum(meta["qwen35.attention.recurrent_layers"]) == 24
    assert "{%" in meta["tokenizer.chat_template"]
    assert reader.fields["tokenizer.ggml.pre"].contents() == "qwen35"
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == 248046

    mmproj = folder / spec["options"]["mmproj_file"]
    assert mmproj.stat().st_size == pytest.approx(0.92 * GB, rel=0.01)
    proj = metadata(mmproj)
    assert proj["clip.projector_type"] == "qwen3vl_merger"
    assert (proj["clip.vision.block_count"], proj["clip.vision.embedding_length"],
            proj["clip.vision.projection_dim"]) == (27, 1152, 4096)
    kinds = {t.tensor_type.name for t in gguf.GGUFReader(mmproj).tensors}
    assert kinds == {"BF16", "F16", "F32"}


def test_only_some_and_unknown_names(tmp_path):
    built = build_all(tmp_path, only="chatterbox-turbo")
    assert list(built) == ["chatterbox-turbo"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chatterbox-turbo"]
    with pytest.raises(ValueError, match="unknown model.*'nope'"):
        build_all(tmp_path, only=["nope"])
