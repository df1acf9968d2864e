"""llmux: one process, one small GPU, many models, one OpenAI-compatible API.

What a runtime plugin imports: ``hookimpl``, the request/event types, the errors and
``kit``, the shared runtime plumbing (stop strings, images, devices, languages, ...).
"""

import pluggy

from . import kit
from .errors import (
    InsufficientVram,
    InvalidRequest,
    LlmuxError,
    ModelLoadError,
)
from .types import (
    BackendInfo,
    Behaviour,
    Cancellation,
    ChatEvent,
    ChatRequest,
    ContentDelta,
    Finish,
    PhysicalModel,
    ReasoningDelta,
    SamplingParams,
    Segment,
    Speech,
    SpeechRequest,
    ToolCallDelta,
    Transcription,
    TranscriptionRequest,
    Usage,
    VirtualModel,
    VramEstimate,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("llmux")

__all__ = [
    "BackendInfo", "Behaviour", "Cancellation", "ChatEvent", "ChatRequest", "ContentDelta",
    "Finish", "InsufficientVram", "InvalidRequest", "LlmuxError", "ModelLoadError",
    "PhysicalModel", "ReasoningDelta", "SamplingParams", "Segment", "Speech", "SpeechRequest",
    "ToolCallDelta", "Transcription", "TranscriptionRequest", "Usage", "VirtualModel",
    "VramEstimate", "hookimpl", "kit",
]
