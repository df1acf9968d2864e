"""The ASR path's hooks called directly on the tiny ``cohere_asr``: loading with its
processor, the processor's own chunking, languages, cancellation, the lock, unload and the
VRAM estimate."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers_fixtures import ASR_LANGUAGES, speech

import llmux_transformers
from llmux import Cancellation
from llmux.errors import InvalidRequest, ModelLoadError
from llmux.types import Behaviour, PhysicalModel, TranscriptionRequest
from llmux_transformers.asr import LANGUAGES, AsrModel, chunk_bounds
from llmux_transformers.checkpoint import Checkpoint
from llmux_transformers.estimate import GiB, estimate_asr, weights_bytes

pytestmark = pytest.mark.slow


def physical(models_dir: Path, **options) -> PhysicalModel:
    return PhysicalModel(
        name="cohere-asr", type="asr", backend="transformers", path="cohere-asr",
        models_dir=models_dir, vram_gb=0.5,
        options={"languages": ASR_LANGUAGES, **options},
    )


def request(samples, language: str | None = "en", **kw) -> TranscriptionRequest:
    return TranscriptionRequest(samples=samples, sample_rate=16000, language=language,
                                behaviour=Behaviour(language="en"), **kw)


@pytest.fixture(scope="module")
def loaded(asr_dir):
    pm = physical(asr_dir)
    handle = llmux_transformers.load(pm, "cpu")  # forced, as the GPU-vs-CPU benchmark does
    yield pm, handle
    llmux_transformers.unload(pm, handle)


@pytest.fixture(scope="module")
def long_samples(speech_clips):
    from llmux.audio.decode import decode_audio

    return decode_audio(speech_clips["long"].path.read_bytes(), 16000)


def test_backend_declares_asr_at_16k():
    (info,) = llmux_transformers.backends()
    assert "asr" in info.types and info.asr_sample_rate == 16000
    assert info.options_schema["properties"]["languages"]["items"]["enum"] == list(LANGUAGES)


def test_loads_with_its_processor_on_the_forced_device(loaded):
    pm, handle = loaded
    assert isinstance(handle, AsrModel)
    assert type(handle.model).__name__ == "CohereAsrForConditionalGeneration"
    assert type(handle.processor).__name__ == "CohereAsrProcessor"
    assert handle.model.device.type == "cpu" and handle.plan.device == "cpu"
    assert handle.languages == ("en", "de")


def test_our_chunks_are_the_processors(loaded, long_samples):
    _, handle = loaded
    fe = handle.processor.feature_extractor
    bounds = chunk_bounds(long_samples, fe)
    assert len(long_samples) / 16000 > 35 and len(bounds) >= 2
    assert bounds[0][0] == 0 and bounds[-1][1] == len(long_samples)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(end - start <= 35 * 16000 for start, end in bounds)
    # the processor's own cut: the same pieces, in the same places
    theirs = fe._split_audio_chunks_energy(torch.from_numpy(long_samples))
    assert [end - start for start, end in bounds] == [len(c) for c in theirs]
    inputs = handle.processor(long_samples, sampling_rate=16000, return_tensors="pt",
                              language="en")
    assert inputs["audio_chunk_index"] == [(0, i) for i in range(len(bounds))]
    # up to 30 s the processor keeps audio whole
    assert chunk_bounds(long_samples[: 30 * 16000], fe) == [(0, 30 * 16000)]


def test_long_audio_chunks_become_segments_and_the_processor_reassembles(
        loaded, long_samples, asr_recorder):
    pm, handle = loaded
    result = llmux_transformers.infer(pm, handle, request(long_samples), Cancellation())
    bounds = chunk_bounds(long_samples, handle.processor.feature_extractor)
    assert [(s.start, s.end) for s in result.segments] == [
        (a / 16000, b / 16000) for a, b in bounds]
    texts = [asr_recorder.text(i) for i in range(len(bounds))]
    assert [s.text for s in result.segments] == texts
    assert result.text == " ".join(texts) and result.language == "en"


def test_language_reaches_the_decoder_prompt(loaded, speech_clips, asr_recorder):
    from llmux.audio.decode import decode_audio

    pm, handle = loaded
    samples = decode_audio(speech_clips["de", "wav"].path.read_bytes(), 16000)
    for given, code in (("de", "de"), ("DE", "de"), ("de-DE", "de"), (None, "en")):
        result = llmux_transformers.infer(pm, handle, request(samples, given), Cancellation())
        assert result.language == code
        assert asr_recorder.prompts[-1] == [
            "▁", "<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>",
            f"<|{code}|>", f"<|{code}|>", "<|pnc|>", "<|noitn|>", "<|notimestamp|>",
            "<|nodiarize|>"]


@pytest.mark.parametrize("language", ["fr", "xx"])
def test_unsupported_language_names_the_supported_ones(loaded, language):
    pm, handle = loaded
    with pytest.raises(InvalidRequest) as info:
        llmux_transformers.infer(pm, handle, request(np.zeros(16000, np.float32), language),
                                 Cancellation())
    assert info.value.param == "language"
    assert info.value.message == (
        f"language {language!r} is not supported by 'cohere-asr'; use one of: en, de")


def test_configured_languages_must_be_the_models(asr_dir):
    with pytest.raises(ModelLoadError, match="options.languages has tlh"):
        llmux_transformers.load(physical(asr_dir, languages=["en", "tlh"]), "cpu")


def test_cancelled_between_chunks(loaded, long_samples, asr_recorder):
    pm, handle = loaded
    cancel = Cancellation()
    asr_recorder.on_chunk = lambda req: cancel.cancel()  # the client leaves during chunk 0
    result = llmux_transformers.infer(pm, handle, request(long_samples), cancel)
    assert len(asr_recorder.requests) == 1  # no later chunk was started ...
    assert result.segments == ()  # ... and chunk 0 stopped in its encoder


def test_one_transcription_at_a_time_per_model(loaded, long_samples, asr_recorder):
    pm, handle = loaded
    held = []
    asr_recorder.on_chunk = lambda req: held.append(handle.lock.locked())
    waiting = Cancellation()
    with handle.lock:  # someone else is transcribing: a cancelled waiter returns at once
        threading.Timer(0.1, waiting.cancel).start()
        result = llmux_transformers.infer(pm, handle, request(long_samples[:16000]), waiting)
    assert result.text == "" and not asr_recorder.requests
    llmux_transformers.infer(pm, handle, request(long_samples), Cancellation())
    assert held and all(held)


def test_estimate_is_the_safetensors_plus_a_margin(asr_dir):
    ckpt = Checkpoint.open(asr_dir / "cohere-asr")
    est = estimate_asr(ckpt, dtype="bfloat16")
    assert est.weights == weights_bytes(ckpt, "bfloat16", dequantise=False)
    assert est.kv_cache > 0 and est.activations > 0.1 * est.weights
    got = llmux_transformers.estimate_vram(physical(asr_dir), None).gb
    assert got == round(est.gib, 4) and got * GiB > est.weights


def test_production_shape_estimate(tmp_path):
    """cohere-transcribe-03-2026's shapes (2 B parameters in BF16): about 4.2 GiB."""
    import json
    import struct

    config = {"model_type": "cohere_asr", "hidden_size": 1024, "num_hidden_layers": 8,
              "num_attention_heads": 8, "max_position_embeddings": 1024,
              "encoder_config": {"hidden_size": 1280, "num_hidden_layers": 48,
                                 "intermediate_size": 5120, "num_attention_heads": 8,
                                 "subsampling_factor": 8, "subsampling_conv_channels": 256,
                                 "num_mel_bins": 128}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2_000_000_000],
                               "data_offsets": [0, 0]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    est = estimate_asr(Checkpoint.open(tmp_path), dtype="bfloat16")
    assert 4.0 < est.gib < 4.5, est.describe()


def test_unload_frees_the_model(asr_dir):
    pm = physical(asr_dir)
    handle = llmux_transformers.load(pm, "cpu")
    ref = weakref.ref(handle.model)
    llmux_transformers.unload(pm, handle)
    gc.collect()
    assert ref() is None and handle.model is None and handle.processor is None
    with pytest.raises(ModelLoadError, match="unloaded"):
        llmux_transformers.infer(pm, handle, request(np.zeros(1600, np.float32)), Cancellation())


def test_a_chat_checkpoint_is_not_an_asr_model(asr_dir, tmp_path):
    import json

    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "config.json").write_text(json.dumps({"model_type": "qwen3_5"}))
    pm = PhysicalModel(name="x", type="asr", backend="transformers", path="chat",
                       models_dir=tmp_path, vram_gb=1)
    with pytest.raises(ModelLoadError, match="holds a 'qwen3_5' checkpoint"):
        llmux_transformers.load(pm, "cpu")


def test_speech_helper_is_the_cores():
    assert set(speech.FORMATS) == {"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav",
                                   "webm"}
