"""The values a runtime plugin receives and returns.

Everything here is plain data with no third-party imports, so a plugin written against it
works with every runtime the core drives, and the core never needs torch to build one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, Union

ModelType = Literal["llm", "asr", "tts"]
MODEL_TYPES: tuple[str, ...] = ("llm", "asr", "tts")


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Behaviour:
    """What a virtual model changes about its physical model, resolved from models.yaml.

    The core never edits messages; the runtime applies these through the model's own chat
    template (``thinking`` -> ``enable_thinking``, ``reasoning_effort`` -> the template's
    "Reasoning: …" line) or its synthesis / transcription call.
    """

    thinking: bool | None = None
    reasoning_effort: str | None = None  # "low" | "medium" | "high"
    system_prompt_prefix: str | None = None
    sampling: Mapping[str, Any] = field(default_factory=dict)  # defaults: temperature, ...
    language: str | None = None  # ASR / TTS default language
    voice: str | None = None  # TTS default voice
    options: Mapping[str, Any] = field(default_factory=dict)  # runtime knobs, e.g. exaggeration


@dataclass(frozen=True)
class PhysicalModel:
    """One set of weights that occupies VRAM when loaded."""

    name: str
    type: ModelType
    backend: str
    path: str  # relative to models_dir
    models_dir: Path
    # The operator's figure (models.yaml ``vram_gb``): the VRAM this model may take; llmux
    # fits the context within it. None: the size is the plugin's estimate (estimate_vram).
    vram_gb: float | None = None
    vision: bool = False
    tools: bool = False
    chat_format: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # validated by the backend's schema
    source: Mapping[str, Any] | None = None  # what scripts/download_models.sh fetches
    # The context (tokens) llmux fitted for this model on this budget: set by the core before
    # ``load``; when set, the plugin must load with this context instead of its own option.
    context: int | None = None

    @property
    def location(self) -> Path:
        """Absolute path of the weights (file or directory)."""
        return (self.models_dir / self.path).resolve()


@dataclass(frozen=True)
class VirtualModel:
    """A name clients see: a physical model plus behaviour."""

    name: str
    physical: PhysicalModel
    behaviour: Behaviour = field(default_factory=Behaviour)
    description: str = ""

    @property
    def type(self) -> ModelType:
        return self.physical.type


@dataclass(frozen=True)
class VramEstimate:
    """What ``estimate_vram`` may return: the VRAM a model needs at one context length.

    ``gb`` is the total in GiB (the unit GPU memory is counted in) with ``context`` tokens of
    context; ``context`` is None for a model without one (speech-to-text, text-to-speech).
    ``parts`` breaks ``gb`` down for logs and ``check-config`` (e.g. weights, kv_cache,
    activations); ``note`` says how the model will be loaded (e.g. "fp8 on load").
    """

    gb: float
    context: int | None = None
    parts: Mapping[str, float] = field(default_factory=dict)
    note: str = ""

    def describe(self) -> str:
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in self.parts.items())
        text = f"{self.gb:.2f} GiB" + (f" ({parts})" if parts else "")
        if self.context:
            text += f" at {self.context} tokens"
        return text + (f"; {self.note}" if self.note else "")


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class SamplingParams:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(frozen=True)
class ResponseFormat:
    """The shape the answer's content must take (OpenAI ``response_format``), validated.

    ``type`` is ``"json_object"`` (any JSON object) or ``"json_schema"`` (``schema`` is the
    JSON Schema, already compiled once by the core, so a runtime never sees one the engine
    refuses). ``strict`` False: the schema had keywords the engine cannot enforce and they
    are ignored (best effort, logged); True: every keyword is enforced.
    """

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool = True


@dataclass(frozen=True)
class ChatRequest:
    """An OpenAI chat request after validation, with the virtual model's behaviour.

    ``messages`` and ``tools`` are the OpenAI JSON as the client sent it (content may be a
    string or a list of parts, including ``image_url`` parts with data URLs). Sampling holds
    the request's values already merged over the virtual model's defaults.

    What a runtime must honour (docs/structured-outputs.md; :mod:`llmux.structured` builds
    the grammar for it from the chat format):

    - ``tool_choice`` ``"none"`` never reaches a runtime with tools: the core drops them
      (``tools`` is None, ``tool_choice`` stays ``"none"``).
    - ``tool_choice`` ``"required"``: the answer is one or more calls of the offered tools;
      ``{"type": "function", "function": {"name": N}}``: exactly one call of ``N``. Either
      way the arguments follow the tool's ``parameters`` schema and the finish reason is
      ``tool_calls``. ``"auto"`` or None: the model chooses.
    - ``response_format`` (None: free text): the content is JSON of that shape; with tools
      and ``tool_choice`` auto the model may call a tool instead. Reasoning stays free.
    """

    model: str  # the virtual model name the client asked for
    messages: Sequence[Mapping[str, Any]]
    behaviour: Behaviour = field(default_factory=Behaviour)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: Any = None
    stream: bool = False
    response_format: ResponseFormat | None = None
    parallel_tool_calls: bool = True  # False: at most one call per answer
    # The llmux.chatformats.ChatFormat named by the physical model's ``chat_format``,
    # resolved by the core (None when the model has none): render history and parse output
    # through it so every runtime speaks the same format.
    chat_format: Any = None


@dataclass(frozen=True)
class TranscriptionRequest:
    """Decoded audio: float32 mono samples (a 1-D numpy array) at ``sample_rate`` Hz."""

    samples: Any
    sample_rate: int
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str | None = None
    # The client's language, None when it sent none: then ``behaviour.language`` is the
    # runtime's fallback (a multilingual TTS may detect each sentence's language first).
    language: str | None = None
    speed: float = 1.0
    behaviour: Behaviour = field(default_factory=Behaviour)
    options: Mapping[str, Any] = field(default_factory=dict)


InferRequest = Union[ChatRequest, TranscriptionRequest, SpeechRequest]


# --------------------------------------------------------------------------- chat events


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call. The first delta of a call carries ``id`` and ``name``;
    later ones carry only ``arguments`` fragments. ``index`` counts calls from 0."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str
    detail: str | None = None  # e.g. why a malformed tool call came back as content


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # Of ``prompt_tokens``, how many the runtime did not process because it reused a cached
    # state of the same prefix (OpenAI's ``prompt_tokens_details.cached_tokens``).
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


ChatEvent = Union[ContentDelta, ReasoningDelta, ToolCallDelta, Finish, Usage]


# --------------------------------------------------------------------------- audio results


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str | None = None
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class Speech:
    """Synthesised audio: float32 mono samples (1-D numpy array) in [-1, 1]."""

    samples: Any
    sample_rate: int
    speech_tokens: int | None = None


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class BackendInfo:
    """What a plugin's ``backends`` hook declares for each backend it provides."""

    name: str
    types: frozenset[str]  # which model types it serves
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object"}
    )  # JSON Schema for the physical model's ``options``
    asr_sample_rate: int = 16000  # the rate its ASR models receive PCM at
    description: str = ""
    # How many calls (``infer``) one loaded model serves at once. The core admits no more
    # than this; further requests wait on the event loop (counting toward server.max_waiting),
    # never in a worker thread.
    parallel: int = 1


class Cancellation:
    """Set by the core when the client went away; checked by the runtime between steps.

    Thread-safe: the core sets it from the event loop, the runtime reads it in its worker
    thread. A runtime may register callbacks to interrupt blocking work early.
    """

    __slots__ = ("_event", "_callbacks", "_lock")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Any] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def is_set(self) -> bool:  # so it can stand in for a threading.Event
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Any) -> None:
        """Call ``callback()`` (from any thread) once cancellation happens."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
