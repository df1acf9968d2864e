"""options.dtype: T3 in half precision on CUDA, S3Gen and the voice encoder in float32, CPU
always float32; the weights the estimate counts for the published file sizes; a tiny model
still speaking with its T3 cast (the cast runs on CPU here: bfloat16 has CPU kernels)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from llmux.types import Cancellation, PhysicalModel, SpeechRequest

from chatterbox_config import THIRD_PARTY_WARNINGS

pytestmark = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]

# The published checkpoints, in bytes (float32).
PUBLISHED = {
    "english": {"t3_cfg.safetensors": 2_130_000_000, "s3gen.safetensors": 1_060_000_000,
                "ve.safetensors": 5_700_000, "tokenizer.json": 25_000},
    "turbo": {"t3_turbo_v1.safetensors": 1_920_000_000,
              "s3gen_meanflow.safetensors": 1_060_000_000, "ve.safetensors": 5_700_000},
    "multilingual": {"t3_mtl23ls_v2.safetensors": 2_140_000_000, "s3gen.pt": 1_060_000_000,
                     "ve.pt": 5_700_000, "grapheme_mtl_merged_expanded_v1.json": 70_000},
}
GIB = 1024**3


def sparse_checkpoint(root, variant):
    folder = root / variant
    folder.mkdir()
    for name, size in PUBLISHED[variant].items():
        with open(folder / name, "wb") as f:
            f.truncate(size)  # sparse: only the size is read
    return folder


def model(root, variant, **options) -> PhysicalModel:
    return PhysicalModel(name=f"cb-{variant}", type="tts", backend="chatterbox", path=variant,
                         models_dir=root, options={"variant": variant, **options})


@pytest.mark.parametrize("variant, fp32, half", [
    ("english", 2.98, 1.98),
    ("turbo", 2.78, 1.89),
    ("multilingual", 2.99, 1.99),
])
def test_weights_at_the_published_sizes(tmp_path, variant, fp32, half):
    from llmux_chatterbox.precision import weight_bytes
    from llmux_chatterbox.variants import VARIANTS

    folder = sparse_checkpoint(tmp_path, variant)
    v = VARIANTS[variant]

    def gib(**options):
        return round(weight_bytes(v, folder, {"variant": variant, **options}) / GIB, 2)

    assert gib() == gib(dtype="float32") == fp32
    # T3 halves; S3Gen and the voice encoder keep their float32 size.
    t3 = PUBLISHED[variant][v.t3_file]
    assert gib(dtype="float16") == gib(dtype="bfloat16") == half
    options = {"variant": variant}
    assert weight_bytes(v, folder, {**options, "dtype": "float16"}) == weight_bytes(
        v, folder, options) - t3 / 2
    # A model pinned to the CPU stays float32 whatever the option says.
    assert gib(dtype="float16", device="cpu") == fp32
    # float32 (the default) is what the hook has always counted: the files' sizes.
    import llmux_chatterbox

    weights = weight_bytes(v, folder, {"variant": variant}) / GIB
    assert llmux_chatterbox.estimate_vram(model(tmp_path, variant), None).gb == round(
        weights * 1.1 + 0.5, 2)


def test_dtype_option_is_schema_checked():
    import jsonschema

    from llmux_chatterbox.options import OPTIONS_SCHEMA

    jsonschema.validate({"variant": "english", "dtype": "bfloat16"}, OPTIONS_SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="'half' is not one of"):
        jsonschema.validate({"variant": "english", "dtype": "half"}, OPTIONS_SCHEMA)


def param_dtypes(module) -> set[str]:
    return {str(p.dtype).removeprefix("torch.") for p in module.parameters()}


def speak(pm, handle, text="Hi there."):
    import llmux_chatterbox

    speech = llmux_chatterbox.infer(pm, handle, SpeechRequest(text=text), Cancellation())
    assert speech.samples.dtype == np.float32 and speech.samples.size > 0
    assert np.isfinite(speech.samples).all() and 0 < speech.speech_tokens <= 5
    return speech


def test_on_cpu_it_stays_float32_and_says_so(models_dir, caplog):
    import llmux_chatterbox

    pm = model(models_dir, "english", dtype="float16", max_speech_tokens=5)
    with caplog.at_level(logging.INFO, logger="llmux_chatterbox"):
        handle = llmux_chatterbox.load(pm, "cpu")
    assert "chatterbox cb-english: dtype float16 applies on CUDA only; float32 on cpu" \
        in caplog.text
    assert param_dtypes(handle.tts.t3) == param_dtypes(handle.tts.s3gen) == {"float32"}
    speak(pm, handle)
    llmux_chatterbox.unload(pm, handle)


@pytest.mark.parametrize("variant", ["english", "turbo", "multilingual"])
def test_half_precision_t3_still_speaks(models_dir, variant, caplog):
    """What load does on CUDA (``precision.apply`` with a CUDA device), run on the CPU
    model: T3's parameters in bfloat16, its rotary buffers, S3Gen and the voice encoder in
    float32, and a synthesis through the float32 conditioning and voice."""
    import llmux_chatterbox
    from llmux_chatterbox import precision

    pm = model(models_dir, variant, max_speech_tokens=5)
    handle = llmux_chatterbox.load(pm, "cpu")
    tts = handle.tts
    with caplog.at_level(logging.INFO, logger="llmux_chatterbox"):
        assert precision.apply(tts, {"dtype": "bfloat16"}, "cuda", pm.name) == "bfloat16"
    assert f"chatterbox {pm.name}: T3 in bfloat16; S3Gen and the voice encoder in float32" \
        in caplog.text
    assert param_dtypes(tts.t3) == {"bfloat16"}
    assert {str(b.dtype) for b in tts.t3.buffers()} <= {"torch.float32"}
    assert param_dtypes(tts.s3gen) == param_dtypes(tts.ve) == {"float32"}
    speak(pm, handle, "Hello there. How are you?")  # two chunks, the voice reused
    llmux_chatterbox.unload(pm, handle)
