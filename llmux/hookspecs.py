"""The contract between the llmux core and its runtime plugins.

A runtime plugin is a module (or object) found through the ``llmux`` entry-point group.
It implements :func:`backends` to say which backend names it owns, and the four model hooks
below. The core routes each model hook call to the one plugin that owns the model's
``backend`` (see :mod:`llmux.runtime`): a plugin never has to ask "is this model mine?".

All hooks are synchronous and may block: the core always calls them in a worker thread,
never on the event loop. Heavy imports (torch, transformers, llama_cpp, ...) belong inside
the hook bodies so that discovering a plugin costs nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pluggy

from .types import (
    BackendInfo,
    Cancellation,
    ChatEvent,
    InferRequest,
    PhysicalModel,
    Speech,
    Transcription,
    VramEstimate,
)

PROJECT = "llmux"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def backends() -> list[BackendInfo]:
    """Declare the backends this plugin provides.

    Called once, at plugin discovery. Return a list of :class:`llmux.BackendInfo` (name,
    the model types served, a JSON Schema for the physical model's ``options``). A backend
    name may be owned by only one plugin.
    """


@hookspec
def chat_formats(register: Callable[[str, Any], None]) -> None:
    """Register chat formats (output parsers and history renderers) by name.

    Call ``register(name, format)`` with a :class:`llmux.chatformats.ChatFormat`. A physical
    model selects one with ``chat_format`` in models.yaml. Called for every plugin.
    """


@hookspec(firstresult=True)
def estimate_vram(model: PhysicalModel, context: int | None) -> VramEstimate | float | None:
    """Return the VRAM ``model`` needs once loaded, with ``context`` tokens of context.

    ``context`` is None for the model's own configured context. Return a
    :class:`llmux.VramEstimate` (GiB, the context it is for, and the parts), a plain float
    (GiB), or ``None`` if unknown. Read the real files (weight sizes, quantisation as it will
    sit on the device) and add what the context costs (KV cache, recurrent state, the
    activations of one prefill step). Must not load weights or touch a GPU; it is called
    several times per model (the core searches the largest context that fits the budget),
    so cache what is slow to read. Count nothing that is never loaded, and never the CUDA
    context (the budget's ``reserve_gb`` holds that). May raise
    :class:`llmux.errors.ModelLoadError` if the files are missing or unreadable.
    """


@hookspec(firstresult=True)
def measure_vram(model: PhysicalModel, handle: Any) -> float | None:
    """Return the device memory (GiB) the loaded ``handle`` holds, by the runtime's own count.

    Use the runtime's accounting (the bytes of the model's tensors on the GPU, llama.cpp's
    buffer sizes), never the whole device's free memory, which other models and the CUDA
    context move too. Return ``None`` when the model is not on a GPU or the runtime cannot
    tell. Called once after each load; must be quick and must not allocate.
    """


@hookspec(firstresult=True)
def load(model: PhysicalModel, device: str | None) -> Any:
    """Load ``model`` and return a handle the plugin will receive back in ``infer``/``unload``.

    ``device`` is ``None`` (the plugin chooses: the GPU when present) or a forced device
    (``"cpu"``/``"cuda"``) for the GPU-versus-CPU benchmark. On failure, raise; the plugin
    must free whatever it allocated before raising, because the core will not call
    ``unload`` for a load that failed. Raise :class:`llmux.errors.InsufficientVram` before
    allocating if the model cannot fit.
    """


@hookspec(firstresult=True)
def unload(model: PhysicalModel, handle: Any) -> bool | None:
    """Free everything ``load`` allocated for ``handle``.

    Drop every reference, collect garbage and release cached device memory. The core drops
    its own reference to ``handle`` right after this returns. Return value is ignored.
    """


@hookspec(firstresult=True)
def infer(
    model: PhysicalModel, handle: Any, request: InferRequest, cancel: Cancellation
) -> Iterator[ChatEvent] | Transcription | Speech | None:
    """Run ``request`` on the loaded model.

    - :class:`llmux.ChatRequest` -> an iterator of chat events: ``ReasoningDelta``,
      ``ContentDelta``, ``ToolCallDelta`` in generation order, then one ``Finish`` and one
      ``Usage``. The core pulls it from the model's own thread; yield as tokens arrive. The
      ``Usage`` ends the client's answer: work after it (saving state) does not delay the
      client, and the model stays leased until the iterator returns.
    - :class:`llmux.TranscriptionRequest` -> a :class:`llmux.Transcription`.
    - :class:`llmux.SpeechRequest` -> a :class:`llmux.Speech`.

    Structured outputs (docs/structured-outputs.md): with ``request.response_format`` set,
    the content must be JSON of that shape; with ``tool_choice`` ``"required"`` the answer
    is one or more calls of ``request.tools`` (at most one when ``parallel_tool_calls`` is
    False), with ``{"type": "function", "function": {"name": N}}`` one call of ``N``, the
    arguments following the tool's ``parameters`` and the finish reason ``tool_calls``.
    ``tool_choice: "none"`` never arrives with tools (the core removed them). Reasoning stays
    free. A runtime that samples token by token builds one
    ``llmux.structured.Vocabulary`` per loaded model and calls ``vocabulary.guide(request,
    thinking=...)``: it returns None (nothing to enforce) or a guide to mask each step's
    logits with (``allowed()``) and advance (``consume(token)``). A runtime that cannot
    enforce a constraint must raise :class:`llmux.errors.InvalidRequest`, never ignore it.

    ``cancel`` is set when the client disconnects: check it between tokens (or steps) and
    stop, returning or yielding ``Finish("cancelled")``. Raise
    :class:`llmux.errors.InvalidRequest` for input the model cannot take (an image to a
    text-only model, an unsupported language): the client gets a 400.
    """


@hookspec(firstresult=True)
def prompt_cache(model: PhysicalModel) -> dict | None:
    """Report ``model``'s prompt cache: the saved prompt states it keeps in host RAM.

    Return ``{"bytes": int, "limit": int, "entries": int}`` (bytes held, the most it may
    hold, how many states), or ``None`` when the model keeps none. Called for loaded and
    unloaded models alike (a store may outlive an unload, so that a conversation continues
    after a swap); must be quick and must not touch the model. ``GET /health`` shows it.
    """


HOOK_NAMES = (
    "backends", "chat_formats", "estimate_vram", "measure_vram", "load", "unload", "infer",
    "prompt_cache",
)
