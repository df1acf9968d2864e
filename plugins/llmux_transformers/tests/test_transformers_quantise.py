"""Sizing what really sits on the GPU: tensors the model class never loads, quantisation on
load (``options.quantize``: FP8 for Qwen3.5, MXFP4 for BF16 gpt-oss), the plans on CPU and on
CUDA devices with and without the kernels, the fit check, and the figures at the production
shapes. The CUDA cases fake the device the way test_transformers_hooks.py does (the
capability and the kernel probe); the FP8 on-load path is checked against what transformers
really allocates, on CPU, with its CUDA check faked."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from unittest import mock

import pytest
import torch
from transformers_fixtures import PHYSICAL

import llmux_transformers
from llmux import Cancellation, ChatRequest, InsufficientVram, ModelLoadError, SamplingParams
from llmux.chatformats import get_format
from llmux.types import PhysicalModel
from llmux_transformers import cuda_kernels, estimate, loading
from llmux_transformers.checkpoint import UNLOADED_TENSORS, Checkpoint
from llmux_transformers.estimate import GiB, weights_bytes

pytestmark = pytest.mark.slow


def physical(models_dir: Path, name: str, **options) -> PhysicalModel:
    _, fmt, vision = PHYSICAL.get(name, (None, "qwen3_5", False))
    return PhysicalModel(name=name, type="llm", backend="transformers", path=name,
                         models_dir=models_dir, vision=vision, tools=True, chat_format=fmt,
                         options={"max_context": 256, **options})


def on_cuda(monkeypatch, capability=(12, 0), kernels_missing=None, fp8_missing=None):
    """A CUDA device of ``capability`` as loading.plan sees it, with or without the kernels."""
    monkeypatch.setattr(cuda_kernels, "capability", lambda device: capability)
    monkeypatch.setattr(cuda_kernels, "mxfp4_missing", lambda device, options: kernels_missing)
    monkeypatch.setattr(cuda_kernels, "fp8_missing", lambda device, options: fp8_missing)


def limit(monkeypatch, gib: float):
    monkeypatch.setattr(loading, "budget", lambda model, device: (gib * GiB, "a test limit"))


def copy_model(models_dir: Path, name: str, to: Path, **config_changes) -> Path:
    shutil.copytree(models_dir / name, to)
    config = json.loads((to / "config.json").read_text())
    config.update(config_changes)
    (to / "config.json").write_text(json.dumps(config))
    return to


def param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def generate(pm: PhysicalModel, handle, n: int = 3):
    request = ChatRequest(model=pm.name, messages=[{"role": "user", "content": "Hi"}],
                          sampling=SamplingParams(max_tokens=n, temperature=0),
                          chat_format=get_format(pm.chat_format))
    return list(llmux_transformers.infer(pm, handle, request, Cancellation()))


# --------------------------------------------------------------------------- never loaded


def test_unloaded_tensors_are_those_the_loading_class_ignores():
    """The table in checkpoint.py is the ``_keys_to_ignore_on_load_unexpected`` of the class
    llmux loads each model type with (image-text-to-text for multimodal types)."""
    import transformers
    from transformers.models.auto import modeling_auto as auto

    mappings = (auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
                auto.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
                auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    for model_type, patterns in UNLOADED_TENSORS.items():
        name = next(m[model_type] for m in mappings if model_type in m)
        cls = getattr(transformers, name)
        assert tuple(cls._keys_to_ignore_on_load_unexpected) == patterns, name


def test_the_mtp_head_is_neither_counted_nor_loaded(models_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_model(models_dir, "qwen-vision", tmp_path / "qwen-mtp")
    weights = load_file(folder / "model.safetensors")
    layer = "model.language_model.layers.1."  # the full-attention layer, as Qwen3.5's MTP
    mtp = {"mtp.layers.0." + k[len(layer):]: v.clone() for k, v in weights.items()
           if k.startswith(layer)}
    mtp["mtp.fc.weight"] = torch.randn(64, 128, dtype=torch.bfloat16)
    mtp["mtp.norm.weight"] = torch.ones(64, dtype=torch.bfloat16)
    save_file({**weights, **mtp}, folder / "model.safetensors", metadata={"format": "pt"})

    with_mtp, plain = Checkpoint.open(folder), Checkpoint.open(models_dir / "qwen-vision")
    assert len(with_mtp.tensors) == len(plain.tensors) + len(mtp)
    assert [t.name for t in with_mtp.loaded_tensors] == [t.name for t in plain.tensors]
    for dtype in ("float32", "bfloat16"):
        assert weights_bytes(with_mtp, dtype, dequantise=False) == weights_bytes(
            plain, dtype, dequantise=False)
    # transformers really leaves them out: what it allocates is what the estimate says.
    loaded = loading.load_weights(physical(tmp_path, "qwen-mtp"), with_mtp,
                                  loading.Plan("cpu", "float32", None, False))
    assert not any(n.startswith("mtp") for n, _ in loaded.named_parameters())
    assert param_bytes(loaded) == weights_bytes(with_mtp, "float32", dequantise=False)


def test_only_the_files_the_index_names_are_counted(models_dir, tmp_path):
    folder = copy_model(models_dir, "qwen-text", tmp_path / "indexed")
    names = [t.name for t in Checkpoint.open(folder).tensors]
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {n: "model.safetensors" for n in names}}))
    shutil.copy(folder / "model.safetensors", folder / "consolidated.safetensors")
    ckpt = Checkpoint.open(folder)
    assert ckpt.files == [folder / "model.safetensors"]
    assert weights_bytes(ckpt, "bfloat16", dequantise=False) == weights_bytes(
        Checkpoint.open(models_dir / "qwen-text"), "bfloat16", dequantise=False)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="lacks model.safetensors"):
        Checkpoint.open(folder).tensors


# --------------------------------------------------------------------------- FP8 on load


@pytest.fixture(scope="module")
def tied_qwen(tmp_path_factory, tokenizer) -> Path:
    """Qwen3.5 text with tied embeddings, as the 4B."""
    import tiny_checkpoints
    from transformers import Qwen3_5ForCausalLM

    folder = tmp_path_factory.mktemp("tied") / "qwen-tied"
    config = tiny_checkpoints.qwen_text_config(tokenizer)
    config.tie_word_embeddings = True
    Qwen3_5ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name, keep", [
    ("qwen-vision", ()),
    ("qwen-text", ()),
    ("qwen-tied", ()),
    ("qwen-vision", ("model.visual", "in_proj_a", "in_proj_b")),
])
def test_fp8_on_load_is_sized_as_transformers_allocates(models_dir, tied_qwen, monkeypatch,
                                                        name, keep):
    """transformers' FP8 quantisation on load, run on CPU with its CUDA check faked (it
    converts the weights with plain torch): the estimate is exactly the bytes of the
    parameters it leaves, for the default modules and for options.quantize_keep. The block is
    32 here so that the tiny shapes divide (production: 128)."""
    monkeypatch.setattr(estimate, "FP8_BLOCK", 32)
    folder = tied_qwen if name == "qwen-tied" else models_dir / name
    ckpt = Checkpoint.open(folder)
    on_cuda(monkeypatch)
    p = loading.plan(ckpt, "cuda", {"quantize": "fp8", "quantize_keep": list(keep)})
    assert p == loading.Plan("cuda", "bfloat16", None, False, quantize="fp8", keep=keep)
    with mock.patch("torch.cuda.is_available", lambda: True), \
            mock.patch("torch.cuda.get_device_capability", lambda *a: (12, 0)):
        loaded = loading.load_weights(physical(folder.parent, folder.name), ckpt,
                                      loading.Plan("cpu", "bfloat16", None, False,
                                                   quantize="fp8", keep=keep))
    assert param_bytes(loaded) == p.weights_bytes(ckpt)
    assert p.weights_bytes(ckpt) < weights_bytes(ckpt, "bfloat16", dequantise=False)
    fp8 = {n for n, t in loaded.named_parameters() if t.dtype == torch.float8_e4m3fn}
    assert any(".mlp.down_proj." in n for n in fp8)
    assert not any("lm_head" in n or "embed" in n or "in_proj_a" in n for n in fp8)
    assert any("visual" in n for n in fp8) == (name == "qwen-vision" and not keep)


def test_is_kept_is_transformers_rule():
    from transformers.quantizers.quantizers_utils import should_convert_module

    names = ["lm_head", "model.visual.blocks.0.attn.qkv", "model.visual.merger.linear_fc1",
             "model.language_model.layers.0.linear_attn.in_proj_a",
             "model.layers.11.self_attn.q_proj", "model.layers.1.mlp.experts"]
    patterns = ["lm_head", "model.visual", "visual", "in_proj_a", "model.layers.1",
                "model.layers.*.self_attn", "mlp.experts", "merger"]
    for name in names:
        for pattern in patterns:
            assert estimate.is_kept(name, (pattern,)) == (
                not should_convert_module(name, [pattern])), (name, pattern)


def test_quantize_fp8_plans(models_dir, monkeypatch, caplog):
    ckpt = Checkpoint.open(models_dir / "qwen-text")
    options = {"quantize": "fp8"}
    # CPU: unquantised in the load dtype, and a log line that says so.
    with caplog.at_level(logging.INFO, logger="llmux_transformers.loading"):
        p = loading.plan(ckpt, "cpu", options)
    assert p == loading.Plan("cpu", "float32", None, False, "no FP8 kernels on CPU")
    assert "options.quantize: fp8 applies on CUDA only; loading float32 unquantised on cpu" \
        in caplog.text
    assert p.weights_bytes(ckpt) == weights_bytes(ckpt, "float32", dequantise=False)
    # An FP8 GPU: quantised on load.
    on_cuda(monkeypatch, (12, 0))
    p = loading.plan(ckpt, "cuda", options)
    assert p.describe() == "bfloat16 quantised to fp8 on load on cuda"
    qc = loading.quantization_config(ckpt, p)
    assert (type(qc).__name__, qc.dequantize, qc.modules_to_not_convert, qc.weight_block_size) \
        == ("FineGrainedFP8Config", False, None, (128, 128))
    keep = loading.plan(ckpt, "cuda", {**options, "quantize_keep": ["in_proj_a"]})
    assert loading.quantization_config(ckpt, keep).modules_to_not_convert == [
        "lm_head", "in_proj_a"]
    # A GPU without FP8: unquantised, refused with the numbers unless that fits.
    on_cuda(monkeypatch, (8, 6))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llmux_transformers.loading"):
        p = loading.plan(ckpt, "cuda", options)
    assert p.describe() == ("bfloat16 on cuda (not quantised: FP8 needs compute capability "
                            "8.9 or newer; cuda has 8.6)")
    assert "options.quantize: fp8 not applied" in caplog.text
    assert loading.quantization_config(ckpt, p) is None
    pm = physical(models_dir, "qwen-text", **options)
    need = weights_bytes(ckpt, "bfloat16", dequantise=False)
    limit(monkeypatch, need / GiB / 2)
    with pytest.raises(InsufficientVram) as info:
        loading.check_fits(pm, ckpt, p)
    assert str(info.value).startswith(
        f"model 'qwen-text' would take {need / GiB:.2f} GiB for its weights loaded as "
        "bfloat16 on cuda (not quantised: FP8 needs compute capability 8.9 or newer; "
        "cuda has 8.6), over its limit of")
    limit(monkeypatch, need / GiB * 2)
    assert loading.check_fits(pm, ckpt, p) == need


def test_fp8_without_its_kernel(models_dir, monkeypatch):
    """FP8Linear runs the kernels-community/finegrained-fp8 hub kernel, fetched at the first
    forward: offline and not cached, a pre-quantised checkpoint is dequantised (if that
    fits) and quantize: fp8 is not applied, each saying why, before anything is allocated."""
    missing = "the kernels-community/finegrained-fp8 kernels in the local cache (offline)"
    on_cuda(monkeypatch, fp8_missing=missing)
    fp8 = Checkpoint.open(models_dir / "qwen-fp8")
    assert loading.plan(fp8, "cuda", {}).describe() == (
        f"fp8 dequantised to bfloat16 on cuda (FP8 needs {missing})")
    plain = Checkpoint.open(models_dir / "qwen-text")
    assert loading.plan(plain, "cuda", {"quantize": "fp8"}).describe() == (
        f"bfloat16 on cuda (not quantised: FP8 needs {missing})")
    # Sizing never probes: it assumes the production GPU with its kernels.
    est, p = loading.estimate_model(physical(models_dir, "qwen-text", quantize="fp8"))
    assert p.quantize == "fp8" and est.weights == p.weights_bytes(plain)


def test_the_fp8_kernel_probe_names_what_is_missing(monkeypatch):
    from transformers.utils import import_utils

    monkeypatch.setattr(import_utils, "is_kernels_available", lambda: False)
    assert cuda_kernels.fp8_missing("cuda", {}) == "the `kernels` package"


def test_quantize_refuses_what_it_cannot_do(models_dir, monkeypatch):
    on_cuda(monkeypatch)
    fp8 = Checkpoint.open(models_dir / "qwen-fp8")
    # Already FP8: the option changes nothing; another format is a mistake.
    assert loading.plan(fp8, "cuda", {"quantize": "fp8"}) == loading.plan(fp8, "cuda", {})
    with pytest.raises(ModelLoadError, match="quantize: mxfp4 quantises an unquantised "
                                             "checkpoint on load, but this one is stored as fp8"):
        loading.plan(fp8, "cuda", {"quantize": "mxfp4"})
    with pytest.raises(ModelLoadError, match="mxfp4 quantises gpt-oss experts only"):
        loading.plan(Checkpoint.open(models_dir / "qwen-text"), "cuda", {"quantize": "mxfp4"})
    with pytest.raises(ModelLoadError, match="fp8 is for dense models.*use quantize: mxfp4"):
        loading.plan(Checkpoint.open(models_dir / "gpt-oss"), "cuda", {"quantize": "fp8"})


def test_options_schema_takes_quantize():
    import jsonschema

    from llmux_transformers.plugin import OPTIONS_SCHEMA

    jsonschema.validate({"quantize": "fp8", "quantize_keep": ["model.visual"]}, OPTIONS_SCHEMA)
    for bad in ({"quantize": "int4"}, {"quantize_keep": "lm_head"}, {"quantize_keep": [""]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, OPTIONS_SCHEMA)


# --------------------------------------------------------------------------- gpt-oss in BF16


def mxfp4_bytes(ckpt: Checkpoint) -> float:
    """Experts as FP4 + a scale byte per 32, their biases float32, the rest bfloat16."""
    total = 0.0
    for t in ckpt.tensors:
        if t.name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            total += t.numel / 2 + t.numel / 32
        elif t.name.endswith(("experts.gate_up_proj_bias", "experts.down_proj_bias")):
            total += t.numel * 4
        else:
            total += t.numel * 2
    return total


def test_gpt_oss_unquantised_is_read_from_its_files(models_dir, tmp_path):
    dense = Checkpoint.open(models_dir / "gpt-oss")
    assert (dense.experts_format, dense.quant_method) == ("F32", None)  # saved from torch
    mxfp4 = Checkpoint.open(models_dir / "gpt-oss-mxfp4")
    assert (mxfp4.experts_format, mxfp4.quant_method) == ("mxfp4", "mxfp4")
    # A fine-tune saved in BF16 that kept the original's quantization_config.
    stale = Checkpoint.open(copy_model(models_dir, "gpt-oss", tmp_path / "stale",
                                       quantization_config={"quant_method": "mxfp4"}))
    assert (stale.experts_format, stale.quant_method, stale.stale_quantization) == (
        "F32", None, True)
    assert weights_bytes(stale, "bfloat16", dequantise=False) == weights_bytes(
        dense, "bfloat16", dequantise=False)


def test_gpt_oss_bf16_quantised_to_mxfp4_on_load(models_dir, tmp_path, monkeypatch):
    ckpt = Checkpoint.open(copy_model(models_dir, "gpt-oss", tmp_path / "stale",
                                      quantization_config={"quant_method": "mxfp4"}))
    options = {"quantize": "mxfp4"}
    on_cuda(monkeypatch)
    p = loading.plan(ckpt, "cuda", options)
    assert p.describe() == "bfloat16 quantised to mxfp4 on load on cuda"
    assert p.weights_bytes(ckpt) == mxfp4_bytes(ckpt)
    qc = loading.quantization_config(ckpt, p)
    assert (type(qc).__name__, qc.dequantize, qc.modules_to_not_convert) == (
        "Mxfp4Config", False, None)
    # The estimate the hook reports sizes the same plan.
    est, sized = loading.estimate_model(physical(tmp_path, "stale", **options))
    assert sized == p and est.weights == mxfp4_bytes(ckpt)


def test_gpt_oss_bf16_without_the_kernels_is_refused_with_the_numbers(models_dir, monkeypatch):
    ckpt = Checkpoint.open(models_dir / "gpt-oss")
    on_cuda(monkeypatch, kernels_missing="triton >= 3.4")
    with pytest.raises(ModelLoadError) as info:
        loading.plan(ckpt, "cuda", {"quantize": "mxfp4"})
    bf16 = weights_bytes(ckpt, "bfloat16", dequantise=False) / GiB
    assert str(info.value).startswith(
        f"gpt-oss stores its experts in F32: its weights take {bf16:.2f} GiB in bfloat16, "
        f"{mxfp4_bytes(ckpt) / GiB:.2f} GiB with MXFP4 experts, but quantising them on load "
        "on CUDA needs triton >= 3.4. Install triton and `kernels`")
    assert "openai/gpt-oss-20b layout" in str(info.value)
    assert "GGUF of it on the llamacpp backend" in str(info.value)
    # allow_dequantise: unquantised, if that fits.
    p = loading.plan(ckpt, "cuda", {"quantize": "mxfp4", "allow_dequantise": True})
    assert p.describe() == "bfloat16 on cuda (not quantised: MXFP4 needs triton >= 3.4)"
    limit(monkeypatch, bf16 / 2)
    with pytest.raises(InsufficientVram, match="use a quantised checkpoint"):
        loading.check_fits(physical(models_dir, "gpt-oss"), ckpt, p)
    # Without the option, the refusal names it.
    with pytest.raises(InsufficientVram, match="set options.quantize: mxfp4 to quantise its "
                                               "experts on load"):
        loading.check_fits(physical(models_dir, "gpt-oss"), ckpt, loading.plan(ckpt, "cuda", {}))


def test_gpt_oss_bf16_with_quantize_runs_unquantised_on_cpu(models_dir, tmp_path, caplog):
    """On CPU the BF16 checkpoint (here with a stale MXFP4 quantization_config, which the
    plugin drops) loads and generates unquantised."""
    copy_model(models_dir, "gpt-oss", tmp_path / "gpt-oss",
               quantization_config={"quant_method": "mxfp4"})
    pm = physical(tmp_path, "gpt-oss", quantize="mxfp4")
    with caplog.at_level(logging.INFO, logger="llmux_transformers"):
        handle = llmux_transformers.load(pm, "cpu")
    assert handle.plan == loading.Plan("cpu", "float32", None, False, "no MXFP4 kernels on CPU")
    assert "options.quantize: mxfp4 applies on CUDA only" in caplog.text
    assert "config.json says mxfp4 but the experts are F32" in caplog.text
    assert getattr(handle.model, "hf_quantizer", None) is None
    assert generate(pm, handle)[-1].completion_tokens == 3
    llmux_transformers.unload(pm, handle)


# --------------------------------------------------------------------------- the fit check


def test_the_fit_check_is_the_device_not_vram_gb(models_dir, monkeypatch):
    """A model whose configured vram_gb is far below its weights still loads when the GPU
    has room (vram_gb is the operator's figure for the scheduler, not a load limit);
    options.max_vram_gb and the GPU's free memory are the limits."""
    ckpt = Checkpoint.open(models_dir / "qwen-text")
    p = loading.Plan("cuda", "bfloat16", None, False)
    need = p.weights_bytes(ckpt)
    free = [10 * GiB]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free[0], 16 * GiB))
    honest = PhysicalModel(name="qwen-text", type="llm", backend="transformers",
                           path="qwen-text", models_dir=models_dir, vram_gb=need / GiB / 10)
    assert loading.check_fits(honest, ckpt, p) == need
    capped = PhysicalModel(**{**honest.__dict__, "options": {"max_vram_gb": need / GiB / 2}})
    with pytest.raises(InsufficientVram, match=r"over its limit of .* \(options.max_vram_gb"):
        loading.check_fits(capped, ckpt, p)
    free[0] = need / 2
    with pytest.raises(InsufficientVram, match=r"GiB free on cuda\)"):
        loading.check_fits(honest, ckpt, p)


# --------------------------------------------------------------------------- production shapes


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Path:
    """Header-only checkpoints at the production shapes (sparse files, seconds to write)."""
    import production_checkpoints as pc

    root = tmp_path_factory.mktemp("production")
    pc.qwen35(root / "qwen3.5-9b-fp8", "9b", fp8=True)
    pc.qwen35(root / "qwen3.5-4b", "4b")
    pc.gpt_oss_20b(root / "gpt-oss-20b")
    pc.gpt_oss_20b(root / "gpt-oss-20b-uncensored", mxfp4=False, stale_config=True)
    return root


def gib(ckpt: Checkpoint, **kwargs) -> float:
    return round(weights_bytes(ckpt, "bfloat16", **kwargs) / GiB, 2)


def test_weights_at_the_production_shapes(production):
    q9 = Checkpoint.open(production / "qwen3.5-9b-fp8")
    every = sum(t.nbytes for t in q9.tensors) / GiB
    mtp = sum(t.nbytes for t in q9.tensors if t.name.startswith("mtp.")) / GiB
    assert (round(every, 2), round(mtp, 2)) == (11.54, 0.45)  # what was counted before
    assert gib(q9, dequantise=False) == 11.09

    q4 = Checkpoint.open(production / "qwen3.5-4b")
    assert round(sum(t.nbytes for t in q4.tensors) / 1e9, 2) == 9.32  # the files, GB
    assert gib(q4, dequantise=False) == 8.46
    assert gib(q4, dequantise=False, quantize="fp8") == 4.83
    assert gib(q4, dequantise=False, quantize="fp8",
               keep=("model.visual", "in_proj_a", "in_proj_b")) == 5.14

    oss = Checkpoint.open(production / "gpt-oss-20b")
    assert round(sum(t.nbytes for t in oss.tensors) / 1e9, 2) == 13.76  # 4.79 + 4.80 + 4.17
    assert gib(oss, dequantise=False) == 12.83
    bf16 = Checkpoint.open(production / "gpt-oss-20b-uncensored")
    assert round(sum(t.nbytes for t in bf16.tensors) / 1e9, 2) == 41.83
    assert (bf16.experts_format, bf16.quant_method) == ("BF16", None)
    assert gib(bf16, dequantise=False) == 38.96
    assert gib(bf16, dequantise=False, quantize="mxfp4") == 12.83


def test_estimate_model_sizes_the_plan_of_the_production_config(production):
    def sized(name, **options):
        pm = PhysicalModel(name=name, type="llm", backend="transformers", path=name,
                           models_dir=production, options={"max_context": 32768, **options})
        est, p = loading.estimate_model(pm)
        return round(est.weights / GiB, 2), p.describe()

    assert sized("qwen3.5-9b-fp8") == (11.09, "fp8 on cuda")
    assert sized("qwen3.5-4b") == (8.46, "bfloat16 on cuda")
    assert sized("qwen3.5-4b", quantize="fp8") == (
        4.83, "bfloat16 quantised to fp8 on load on cuda")
    assert sized("gpt-oss-20b") == (12.83, "mxfp4 on cuda")
    assert sized("gpt-oss-20b-uncensored", quantize="mxfp4") == (
        12.83, "bfloat16 quantised to mxfp4 on load on cuda")
    assert sized("gpt-oss-20b-uncensored") == (38.96, "bfloat16 on cuda")
