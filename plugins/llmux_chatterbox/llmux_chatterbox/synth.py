"""A loaded Chatterbox model and one synthesis: voice, language, chunks, cap, join."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmux import kit
from llmux.errors import InvalidRequest, LlmuxError
from llmux.types import Cancellation, PhysicalModel, Speech, SpeechRequest

from . import precision
from .language import identifier, plan
from .options import Knobs
from .tokens import Cancelled, TokenCap
from .variants import Variant

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000  # S3Gen's output rate
PAUSE_SECONDS = 0.15  # silence between chunks
DEFAULT_VOICE = "default"  # the checkpoint's built-in voice (conds.pt)


@dataclass(eq=False)
class Handle:
    """What ``load`` returns: the model, its token cap and the voices prepared so far."""

    variant: Variant
    tts: Any
    device: str
    cap: TokenCap
    directory: Path
    models_dir: Path
    voices: dict[str, str]  # configured name -> clip path as written in models.yaml
    conditionals: dict[str, Any] = field(default_factory=dict)  # voice name -> Conditionals
    # generate() keeps the voice in tts.conds and the cap's counters: one synthesis at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, model: PhysicalModel, variant: Variant, tts: Any, device: str) -> "Handle":
        """The handle of a freshly loaded model, its T3 cast to ``options.dtype`` on CUDA
        first (:mod:`.precision`)."""
        precision.apply(tts, model.options, device, model.name)
        handle = cls(variant, tts, device, TokenCap(tts.t3), model.location, model.models_dir,
                     dict(model.options.get("voices") or {}))
        languages = variant.supported_languages(model.options.get("languages"))
        if variant.name == "multilingual" and len(languages) > 1:
            identifier(languages)  # the language detector, loaded now, not on the first request
        if tts.conds is not None:
            handle.conditionals[DEFAULT_VOICE] = tts.conds
        for name in handle.voices:
            if handle.clip_path(name) is None:
                log.warning("chatterbox model %s: clip of voice %r not found: %s",
                            model.name, name, handle.voices[name])
        return handle

    def close(self) -> None:
        with self.lock:
            self.conditionals.clear()
            self.tts = None
            self.cap = None  # it and T3 refer to each other: gc frees both

    # ---------------------------------------------------------------- voices

    def voice_names(self) -> list[str]:
        builtin = [DEFAULT_VOICE] if DEFAULT_VOICE in self.conditionals else []
        return list(dict.fromkeys(builtin + sorted(self.voices)))

    def clip_path(self, name: str) -> Path | None:
        """A configured clip, looked up in the checkpoint directory, then in models_dir."""
        for base in (self.directory, self.models_dir):
            path = (base / self.voices[name]).resolve()
            if path.is_file():
                return path
        return None

    def select_voice(self, voice: str | None, exaggeration: float) -> None:
        """Put the conditionals of ``voice`` in place, preparing a clip on first use."""
        name = voice or DEFAULT_VOICE
        if name not in self.conditionals:
            if name not in self.voices:
                raise InvalidRequest(
                    f"unknown voice {name!r}; this model's voices are: "
                    f"{', '.join(self.voice_names()) or '(none configured)'} "
                    "(OpenAI voice names such as 'alloy' use the model's default voice)",
                    param="voice",
                )
            self.conditionals[name] = self._prepare(name, exaggeration)
        self.tts.conds = self.conditionals[name]

    def _prepare(self, name: str, exaggeration: float) -> Any:
        clip = self.clip_path(name)
        if clip is None:
            raise LlmuxError(f"the reference clip of voice {name!r} is missing: "
                             f"{self.voices[name]} (relative to {self.directory} "
                             f"or {self.models_dir})")
        if self.variant.min_clip_seconds:
            import librosa

            seconds = librosa.get_duration(path=str(clip))
            if seconds <= self.variant.min_clip_seconds:
                raise LlmuxError(
                    f"the reference clip of voice {name!r} lasts {seconds:.1f} s; Chatterbox "
                    f"{self.variant.name} needs more than {self.variant.min_clip_seconds:g} s"
                )
        started = time.perf_counter()
        self.tts.prepare_conditionals(str(clip), exaggeration=exaggeration)
        log.info("chatterbox: voice %r prepared from %s in %.1f s", name, clip,
                 time.perf_counter() - started)
        return self.tts.conds


def synthesize(handle: Handle, model: PhysicalModel, request: SpeechRequest,
               cancel: Cancellation) -> Speech:
    import numpy as np

    knobs = Knobs.merge(model.options, request.behaviour.options, request.options)
    chunks = plan(handle.variant, model.options.get("languages"), request)
    if not chunks:
        raise InvalidRequest("'input' has no text to speak", param="input")
    kwargs = {k: getattr(knobs, k) for k in handle.variant.knobs}

    pause = np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces: list[Any] = []
    tokens = 0
    if not kit.acquire(handle.lock, cancel):  # cancelled while another synthesis ran
        return Speech(samples=np.zeros(0, dtype=np.float32), sample_rate=SAMPLE_RATE,
                      speech_tokens=0)
    try:
        if handle.tts is None:
            raise LlmuxError("this chatterbox model was unloaded")
        handle.select_voice(request.voice, knobs.exaggeration)
        handle.cap.limit = knobs.max_speech_tokens
        for number, (language, chunk) in enumerate(chunks, 1):
            if cancel.is_set():
                break
            if language is not None:
                kwargs["language_id"] = language
                log.debug("chatterbox: chunk %d/%d (%d chars) in language %r", number,
                          len(chunks), len(chunk), language)
            try:
                with handle.cap.cancellable(cancel):
                    wav = handle.tts.generate(chunk, **kwargs)
            except Cancelled:
                break
            if pieces:
                pieces.append(pause)
            pieces.append(wav.reshape(-1).numpy().astype(np.float32, copy=False))
            tokens += handle.cap.count
    finally:
        handle.lock.release()
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return Speech(samples=samples, sample_rate=SAMPLE_RATE, speech_tokens=tokens)
