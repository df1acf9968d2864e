"""Speech-to-text: Cohere Transcribe (``cohere_asr``), called as its model card says.

``processor(audio, sampling_rate=16000, return_tensors="pt", language=..., punctuation=True)``,
drop ``audio_chunk_index``, move the inputs to the model's device and dtype,
``model.generate(**inputs, max_new_tokens=...)``, then ``processor.decode(...,
audio_chunk_index=..., language=...)`` to reassemble the chunks.

Long audio is cut where the processor cuts it: up to ``max_audio_clip_s - overlap_chunk_second``
(30 s) it is one piece; beyond that, chunks of at most ``max_audio_clip_s`` (35 s), each ending
at the quietest ``min_energy_window_samples`` (0.1 s) window of its last
``overlap_chunk_second`` (5 s). :func:`chunk_bounds` computes those cuts with the feature
extractor's own parameters (the processor returns the chunks' order, not where they lie, and
the tests check the two agree), then each chunk goes through the processor and ``generate``
on its own, so a request can be cancelled between chunks and long uploads never build the
features of the whole recording at once; within a chunk, a cancellation stops the encoder and
the decoder at their next layer (:func:`.prefill.interruptible`). The chunks become the
transcription's segments: the model emits no timestamps, so chunk boundaries are the only
times there are.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from llmux import kit
from llmux.errors import InvalidRequest, ModelLoadError
from llmux.types import Cancellation, PhysicalModel, Segment, Transcription, TranscriptionRequest

from .checkpoint import Checkpoint
from .loading import Plan
from .prefill import Interrupted, interruptible

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: The 14 languages Cohere Transcribe was trained on (``CohereAsrProcessor``'s list). It
#: needs one per request: there is no language detection.
LANGUAGES = ("ar", "de", "el", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "vi", "zh")
#: Tokens allowed per second of audio in a chunk (plus a constant), under the decoder's
#: positions: generous for fast speech in any of the languages, and a bound on a decoder that
#: loops instead of ending.
TOKENS_PER_SECOND = 12
EXTRA_TOKENS = 32

#: Extension seam (the tests use it to record the decoder prompt and to end generation
#: early): each factory is called once per chunk as ``factory(request, processor,
#: prompt_ids)`` and may return a ``transformers.LogitsProcessor`` (or None).
EXTRA_LOGITS_PROCESSORS: list[Callable[[TranscriptionRequest, Any, list[int]], Any]] = []


@dataclass
class AsrModel:
    """The handle of a loaded ASR model."""

    name: str
    model: Any
    processor: Any
    plan: Plan
    languages: tuple[str, ...]
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


# --------------------------------------------------------------------------- loading


def configured_languages(model: PhysicalModel) -> tuple[str, ...]:
    """``options.languages`` (all 14 when unset), each one the model knows."""
    return kit.configured_languages(model.options.get("languages"), LANGUAGES,
                                    repr(model.name), "Cohere Transcribe")


def load_asr(model: PhysicalModel, ckpt: Checkpoint, device: str) -> AsrModel:
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    from .loading import check_fits, load_weights, plan

    if ckpt.model_type != "cohere_asr":
        raise ModelLoadError(
            f"{model.name!r} is an asr model but {ckpt.path} holds a "
            f"{ckpt.model_type or 'unknown'!r} checkpoint; the transformers backend "
            "transcribes with Cohere Transcribe (cohere_asr)"
        )
    languages = configured_languages(model)
    p = plan(ckpt, device, model.options)
    check_fits(model, ckpt, p)
    try:
        processor = AutoProcessor.from_pretrained(str(ckpt.path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the processor of {ckpt.path}: {exc}") from exc
    rate = getattr(processor.feature_extractor, "sampling_rate", None)
    if rate != SAMPLE_RATE:
        raise ModelLoadError(
            f"{ckpt.path}: the processor expects {rate} Hz audio; llmux decodes uploads to "
            f"{SAMPLE_RATE} Hz for this backend"
        )
    weights = load_weights(model, ckpt, p, auto_class=AutoModelForSpeechSeq2Seq)
    log.info("loaded %s as %s (languages %s)", model.name, p.describe(), ", ".join(languages))
    return AsrModel(model.name, weights, processor, p, languages)


# --------------------------------------------------------------------------- transcription


def language_of(h: AsrModel, request: TranscriptionRequest) -> str:
    """The request's language (already defaulted to the virtual model's by the core), as the
    model's code: ``en``, ``EN``, ``en-US`` and ``en_GB`` are all English."""
    return kit.choose_language(request.language or request.behaviour.language, h.languages,
                               repr(h.name))


def transcribe(h: AsrModel, request: TranscriptionRequest, cancel: Cancellation) -> Transcription:
    language = language_of(h, request)
    if request.sample_rate != SAMPLE_RATE:
        raise InvalidRequest(f"audio must be {SAMPLE_RATE} Hz, got {request.sample_rate} Hz")
    import numpy as np

    samples = np.ascontiguousarray(request.samples, dtype=np.float32).reshape(-1)
    if not kit.acquire(h.lock, cancel):  # one transcription per model at a time
        return Transcription(text="", language=language)
    try:
        if h.model is None:
            raise ModelLoadError(f"model {h.name!r} was unloaded")
        return _transcribe(h, request, samples, language, cancel)
    finally:
        h.lock.release()


def _transcribe(h: AsrModel, request, samples, language: str, cancel) -> Transcription:
    import torch

    fe = h.processor.feature_extractor
    bounds = chunk_bounds(samples, fe)
    chunked = len(bounds) > 1
    rows: list[list[int]] = []
    for start, end in bounds:
        if cancel.cancelled:
            break  # the client went away: nothing reads the rest
        inputs = h.processor(
            samples[start:end], sampling_rate=SAMPLE_RATE, return_tensors="pt",
            language=language, punctuation=True,
        )
        if cancel.cancelled:
            break
        inputs.pop("audio_chunk_index", None)
        inputs = inputs.to(h.model.device, dtype=h.model.dtype)
        prompt = inputs["decoder_input_ids"][0].tolist()
        try:
            with torch.inference_mode(), interruptible(h.model, cancel):
                out = h.model.generate(**inputs, **_generation_kwargs(h, request, prompt,
                                                                       end - start, cancel))
        except Interrupted:  # cancelled inside the encoder or a decoder step
            break
        rows.append(out[0].tolist())
    texts = [t.strip() for t in h.processor.batch_decode(rows, skip_special_tokens=True)]
    segments = tuple(
        Segment(start / SAMPLE_RATE, end / SAMPLE_RATE, text)
        for (start, end), text in zip(bounds, texts)
    )
    return Transcription(text=_reassemble(h, rows, texts, chunked, language), language=language,
                         segments=segments)


def _reassemble(h: AsrModel, rows: list[list[int]], texts: list[str], chunked: bool,
                language: str) -> str:
    """The processor's own reassembly (``decode`` with ``audio_chunk_index``)."""
    if not any(texts):
        return ""  # (the processor's reassembly fails when every chunk is empty)
    if not chunked:
        return texts[0]
    pad = h.processor.tokenizer.pad_token_id
    width = max(len(r) for r in rows)
    padded = [r + [pad] * (width - len(r)) for r in rows]
    index = [(0, i) for i in range(len(rows))]
    (text,) = h.processor.decode(padded, skip_special_tokens=True, audio_chunk_index=index,
                                 language=language)
    return text.strip()


def _generation_kwargs(h: AsrModel, request, prompt: list[int], samples: int, cancel) -> dict:
    from transformers import LogitsProcessorList, StoppingCriteriaList

    positions = int(getattr(h.model.config, "max_position_embeddings", 1024) or 1024)
    wanted = EXTRA_TOKENS + math.ceil(TOKENS_PER_SECOND * samples / SAMPLE_RATE)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max(1, min(wanted, positions - len(prompt) - 1)),
        "stopping_criteria": StoppingCriteriaList([_Cancelled(cancel)]),
    }
    if request.temperature:  # OpenAI's 0 (the default) is greedy decoding
        kwargs.update(do_sample=True, temperature=float(request.temperature))
    processors = [f(request, h.processor, prompt) for f in EXTRA_LOGITS_PROCESSORS]
    processors = [p for p in processors if p is not None]
    if processors:
        kwargs["logits_processor"] = LogitsProcessorList(processors)
    return kwargs


class _Cancelled:
    """Ends ``generate`` at its next step once the request is cancelled."""

    def __init__(self, cancel: Cancellation) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.cancel.cancelled, dtype=torch.bool,
                          device=input_ids.device)


# --------------------------------------------------------------------------- chunking


def chunk_bounds(samples: Any, fe: Any) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` sample offsets of the chunks ``fe`` (a
    ``CohereAsrFeatureExtractor``) cuts ``samples`` into: its rule, with its parameters."""
    import numpy as np

    rate = fe.sampling_rate
    total = len(samples)
    if total / rate <= max(0.0, fe.max_audio_clip_s - fe.overlap_chunk_second):
        return [(0, total)]
    size = max(1, int(round(fe.max_audio_clip_s * rate)))
    context = max(1, int(round(fe.overlap_chunk_second * rate)))
    window = fe.min_energy_window_samples
    bounds, start = [], 0
    while start < total:
        if start + size >= total:
            bounds.append((start, total))
            break
        lo, hi = max(start, start + size - context), min(start + size, total)
        if hi <= lo:
            cut = start + size
        elif hi - lo <= window:
            cut = (lo + hi) // 2
        else:
            # RMS of each window-sized step; the first quietest wins, as in the processor
            segment = np.asarray(samples[lo:hi], dtype=np.float32)
            steps = range(0, len(segment) - window, window)
            rms = [float(np.sqrt(np.mean(segment[i:i + window] ** 2))) for i in steps]
            cut = lo + steps[int(np.argmin(rms))]
        cut = max(start + 1, min(cut, total))
        bounds.append((start, cut))
        start = cut
    return bounds
