"""The ``echo`` backend: a deterministic runtime for all three model types.

It goes through exactly the hooks a real runtime uses, so tests, the demo configuration and
the gateway benchmark exercise the real core. Its options (models.yaml ``options``):

- ``load_seconds`` / ``unload_seconds``: how long load and unload block (default 0);
- ``fail_load``: every load raises (to test failure handling);
- ``reply``: the chat answer (default: echoes the last user message);
- ``repeat``: how many times the reply is streamed (default 1; a long stream for tests);
- ``token_delay``: seconds between tokens (default 0);
- ``fail_after``: the runtime raises an unexpected error (a RuntimeError whose text must never
  reach the client) after this many chat tokens;
- ``reasoning``: emit reasoning before the answer when the behaviour thinks (default true);
- ``transcript``: the ASR text (default: describes the audio received);
- ``seconds_per_char``: TTS audio length per input character (default 0.06);
- ``context``, ``weights_gb``, ``kv_gb_per_1k_tokens``: a size that grows with the context
  (``weights_gb + kv_gb_per_1k_tokens x context / 1024``) instead of the fixed ``vram_gb``,
  so the core's context fitting can be exercised; a prompt (counted in words) over the
  fitted context is refused like a real runtime refuses it.

Tools: a model with ``tools`` capability calls a tool only when the request asks for one, so a
client that offers tools with every request (Open WebUI offers its built-in tools with every
chat) still gets ordinary answers. On a user turn it calls

- the named tool when ``tool_choice`` is ``{"type": "function", "function": {"name": ...}}``;
- with ``tool_choice: "required"``, the tool the last user message names, else the first
  tool offered;
- with ``tool_choice`` ``"auto"`` or absent, the tool the last user message names (its
  function name, case-sensitive, as a whole word: "Use get_weather." calls ``get_weather``);
  the earliest named in the message wins. A message that names no offered tool is echoed.

``tool_choice: "none"`` never calls. A call is one :class:`ToolCallDelta` with the name, then
the arguments (an example value of each required parameter's type; every parameter when the
schema marks none required; when that does not fit the schema, the shortest arguments the
schema's constraint allows) in two pieces, and the finish reason ``tool_calls``.
``response_format``: the answer is the shortest JSON the schema's constraint allows
(:mod:`llmux.structured.walk`), streamed word by word, once. After a ``tool`` message the
answer is "The tool returned: ...".

Every load, unload, request and cancellation is counted in :data:`RECORDS`, so tests can
assert what happened inside the runtime.

The backend declares :data:`PARALLEL` parallel slots per loaded model (a real runtime
declares 1); tests set it lower, before the application is built, to exercise the core's
per-model concurrency.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import hookimpl
from ..structured.walk import answer_for, fitting
from ..errors import InvalidRequest, ModelLoadError
from ..types import (
    BackendInfo,
    Cancellation,
    ChatRequest,
    ContentDelta,
    Finish,
    PhysicalModel,
    ReasoningDelta,
    Segment,
    Speech,
    SpeechRequest,
    ToolCallDelta,
    Transcription,
    TranscriptionRequest,
    Usage,
    VramEstimate,
)

SAMPLE_RATE = 24000
PARALLEL = 64  # calls one loaded echo model serves at once (BackendInfo.parallel)
FAILURE_DETAIL = "echo runtime failure (simulated; secret detail /srv/weights/key=abc)"
OPTIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "load_seconds": {"type": "number", "minimum": 0},
        "unload_seconds": {"type": "number", "minimum": 0},
        "fail_load": {"type": "boolean"},
        "reply": {"type": "string"},
        "repeat": {"type": "integer", "minimum": 1},
        "token_delay": {"type": "number", "minimum": 0},
        "fail_after": {"type": "integer", "minimum": 0},
        "reasoning": {"type": "boolean"},
        "transcript": {"type": "string"},
        "seconds_per_char": {"type": "number", "exclusiveMinimum": 0},
        "languages": {"type": "array", "items": {"type": "string"}},
        "context": {"type": "integer", "minimum": 16},
        "weights_gb": {"type": "number", "minimum": 0},
        "kv_gb_per_1k_tokens": {"type": "number", "minimum": 0},
    },
}


@dataclass
class EchoRecord:
    """What happened to one physical model in this process."""

    loads: int = 0
    unloads: int = 0
    requests: int = 0
    cancelled: int = 0
    tokens: int = 0
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self) -> None:
        with self.lock:
            self.requests += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self, cancelled: bool, tokens: int) -> None:
        with self.lock:
            self.active -= 1
            self.tokens += tokens
            self.cancelled += cancelled


RECORDS: dict[str, EchoRecord] = {}


def record(name: str) -> EchoRecord:
    return RECORDS.setdefault(name, EchoRecord())


@dataclass
class EchoHandle:
    model: PhysicalModel
    loaded_at: float


@hookimpl
def backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            name="echo",
            types=frozenset({"llm", "asr", "tts"}),
            options_schema=OPTIONS_SCHEMA,
            description="deterministic built-in runtime for tests and the demo",
            parallel=PARALLEL,
        )
    ]


@hookimpl
def estimate_vram(model: PhysicalModel, context: int | None) -> VramEstimate | float | None:
    opts = model.options
    if "weights_gb" not in opts:
        return model.vram_gb
    context = context or opts.get("context", 4096)
    kv = opts.get("kv_gb_per_1k_tokens", 0.0) * context / 1024
    return VramEstimate(opts["weights_gb"] + kv, context,
                        {"weights": opts["weights_gb"], "kv_cache": kv})


@hookimpl
def measure_vram(model: PhysicalModel, handle: Any) -> float | None:
    return None  # echo holds no device memory


@hookimpl
def prompt_cache(model: PhysicalModel) -> dict | None:
    return None  # echo evaluates no prompt, so it keeps no prompt state


@hookimpl
def load(model: PhysicalModel, device: str | None) -> EchoHandle:
    time.sleep(model.options.get("load_seconds", 0))
    if model.options.get("fail_load"):
        raise ModelLoadError(f"echo model {model.name!r} is configured to fail its load")
    record(model.name).loads += 1
    return EchoHandle(model, time.time())


@hookimpl
def unload(model: PhysicalModel, handle: EchoHandle) -> None:
    time.sleep(model.options.get("unload_seconds", 0))
    record(model.name).unloads += 1


@hookimpl
def infer(model: PhysicalModel, handle: EchoHandle, request: Any, cancel: Cancellation):
    if isinstance(request, ChatRequest):
        return _chat(model, request, cancel)
    if isinstance(request, TranscriptionRequest):
        return _transcribe(model, request)
    if isinstance(request, SpeechRequest):
        return _speak(model, request)
    raise InvalidRequest(f"echo cannot serve {type(request).__name__}")


# --------------------------------------------------------------------------- chat


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content or []
    return " ".join(p.get("text", "") for p in parts if p.get("type") == "text")


def _count_images(messages) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if p.get("type") == "image_url"
    )


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []


def _chat(model: PhysicalModel, request: ChatRequest, cancel: Cancellation) -> Iterator:
    images = _count_images(request.messages)
    if images and not model.vision:
        raise InvalidRequest(
            f"model {request.model!r} does not accept images", param="messages"
        )
    context = model.context or model.options.get("context")
    prompt_tokens = _prompt_tokens(request, images)
    if context and prompt_tokens >= context:
        raise InvalidRequest(
            f"the prompt is {prompt_tokens} tokens; model {request.model!r} takes at most "
            f"{context} tokens of context", param="messages", code="context_length_exceeded")
    return _generate(model, request, cancel, images)


def _prompt_tokens(request: ChatRequest, images: int) -> int:
    words = sum(len(_text_of(m.get("content")).split()) + 4 for m in request.messages)
    return words + 16 * images


def _generate(model, request: ChatRequest, cancel: Cancellation, images: int) -> Iterator:
    rec = record(model.name)
    rec.enter()
    opts = model.options
    delay = opts.get("token_delay", 0)
    prompt_tokens = _prompt_tokens(request, images)
    limit = request.sampling.max_tokens
    fail_after = opts.get("fail_after")
    produced = 0
    cancelled = False
    finish = "stop"
    tool = _chosen_tool(model, request)
    try:
        for event in _script(model, request, tool):
            if cancel.cancelled:
                cancelled, finish = True, "cancelled"
                break
            if limit is not None and produced >= limit:
                finish = "length"
                break
            if fail_after is not None and produced >= fail_after:
                raise RuntimeError(FAILURE_DETAIL)
            if delay:
                cancel.wait(delay)
            produced += 1
            yield event
        else:
            if tool is not None:
                finish = "tool_calls"
        yield Finish(finish)
        yield Usage(prompt_tokens, produced)
    finally:
        rec.leave(cancelled or cancel.cancelled, produced)


def _script(model: PhysicalModel, request: ChatRequest, tool: dict | None) -> Iterator:
    """The deterministic events of one answer, one per token; ``tool`` is the tool to call."""
    behaviour = request.behaviour
    last = request.messages[-1] if request.messages else {}
    if model.options.get("reasoning", True) and (
        behaviour.thinking or behaviour.reasoning_effort
    ):
        effort = f" at {behaviour.reasoning_effort} effort" if behaviour.reasoning_effort else ""
        for word in _words(f"Reasoning{effort} about the request."):
            yield ReasoningDelta(word)
    if tool is not None:
        fn = tool["function"]
        yield ToolCallDelta(0, id="call_echo0", name=fn["name"])
        args = fitting(_example_arguments(fn.get("parameters") or {}), tool)
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            yield ToolCallDelta(0, arguments=piece)
        return
    if request.response_format is not None:
        for word in _words(answer_for(request)):
            yield ContentDelta(word)
        return
    if last.get("role") == "tool":
        reply = f"The tool returned: {_text_of(last.get('content'))}"
    else:
        reply = model.options.get("reply") or _text_of(last.get("content")) or "(empty)"
    for _ in range(model.options.get("repeat", 1)):
        for word in _words(reply):
            yield ContentDelta(word)


def _chosen_tool(model: PhysicalModel, request: ChatRequest) -> dict | None:
    """The tool this answer calls, or None: only when the request asks for one."""
    last = request.messages[-1] if request.messages else {}
    choice = request.tool_choice
    tools = request.tools or []
    if not (tools and model.tools) or choice == "none" or last.get("role") != "user":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool.get("function", {}).get("name") == wanted:
                return tool
    named = _named_tool(tools, _text_of(last.get("content")))
    if named is not None:
        return named
    return tools[0] if choice == "required" else None


def _named_tool(tools: list[dict], text: str) -> dict | None:
    """The offered tool whose function name ``text`` mentions first, as a whole word."""
    best, best_at = None, len(text) + 1
    for tool in tools:
        name = tool.get("function", {}).get("name")
        if not name:
            continue
        found = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)
        if found and found.start() < best_at:
            best, best_at = tool, found.start()
    return best


_EXAMPLES = {"string": "echo", "integer": 1, "number": 1.5, "boolean": True,
             "array": [], "object": {}, "null": None}


def _example_arguments(schema: dict) -> dict:
    props = schema.get("properties", {})
    return {
        name: _EXAMPLES.get(props.get(name, {}).get("type", "string"), "echo")
        for name in schema.get("required", list(props))
    }


# --------------------------------------------------------------------------- audio


def _transcribe(model: PhysicalModel, request: TranscriptionRequest) -> Transcription:
    rec = record(model.name)
    rec.enter()
    try:
        languages = model.options.get("languages")
        language = request.language or request.behaviour.language or "en"
        if languages and language not in languages:
            raise InvalidRequest(
                f"language {language!r} is not supported by {model.name!r} "
                f"(supported: {', '.join(languages)})",
                param="language",
            )
        duration = len(request.samples) / request.sample_rate
        text = model.options.get("transcript") or (
            f"{duration:.2f} seconds of audio in {language}"
        )
        chunk = 30.0
        segments, start = [], 0.0
        while start < duration or not segments:
            end = min(duration, start + chunk)
            segments.append(Segment(start, end, text if not segments else ""))
            start = end
            if end >= duration:
                break
        return Transcription(text=text, language=language, segments=tuple(segments))
    finally:
        rec.leave(False, 0)


def _speak(model: PhysicalModel, request: SpeechRequest) -> Speech:
    import numpy as np

    rec = record(model.name)
    rec.enter()
    try:
        seconds = max(0.2, len(request.text) * model.options.get("seconds_per_char", 0.06))
        t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
        pitch = 220.0 + 20.0 * (sum(map(ord, request.voice or "")) % 10)
        samples = (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
        return Speech(samples=samples, sample_rate=SAMPLE_RATE, speech_tokens=len(request.text))
    finally:
        rec.leave(False, 0)
