"""llmux runtime plugin ``chatterbox``: Resemble AI's Chatterbox text-to-speech.

One backend, three variants chosen by the ``variant`` option (english, turbo, multilingual),
each loaded from its local checkpoint directory with the library's own ``from_local`` --
never from the hub. torch and chatterbox are imported on the first load, so discovering this
plugin costs nothing. See README.md for the options and the install.
"""

from __future__ import annotations

import logging
from typing import Any

from llmux import BackendInfo, InvalidRequest, ModelLoadError, hookimpl
from llmux.kit import choose_device, free_device_memory
from llmux.types import Cancellation, PhysicalModel, SpeechRequest, VramEstimate

from .options import OPTIONS_SCHEMA
from .variants import GIB, VARIANTS

log = logging.getLogger(__name__)

BACKEND = "chatterbox"
# Beyond the weights: activations, T3's KV cache (CFG doubles the batch) and the CUDA
# allocator's slack, measured well under this for 1000-token generations.
VRAM_MARGIN_GB = 0.5
VRAM_MARGIN_FRACTION = 0.1


@hookimpl
def backends() -> list[BackendInfo]:
    return [BackendInfo(
        name=BACKEND,
        types=frozenset({"tts"}),
        options_schema=OPTIONS_SCHEMA,
        description="Resemble AI Chatterbox TTS (english, turbo, multilingual)",
    )]


def _variant(model: PhysicalModel):
    return VARIANTS[model.options["variant"]]


def _check_files(model: PhysicalModel) -> None:
    variant = _variant(model)
    if not model.location.is_dir():
        raise ModelLoadError(
            f"checkpoint directory of {model.name!r} not found: {model.location} "
            "(fetch it with scripts/download_models.sh)"
        )
    missing = variant.missing_files(model.location)
    if missing:
        raise ModelLoadError(
            f"{model.name!r} ({variant.name}) lacks {', '.join(missing)} in {model.location} "
            "(fetch them with scripts/download_models.sh)"
        )


@hookimpl
def estimate_vram(model: PhysicalModel, context: int | None) -> VramEstimate:
    """Weights at the dtype they run in on CUDA, plus a margin for synthesis (no context)."""
    from .precision import load_dtype, sizing_device, weight_bytes

    _check_files(model)
    weights_gb = weight_bytes(_variant(model), model.location, model.options) / GIB
    margin = weights_gb * VRAM_MARGIN_FRACTION + VRAM_MARGIN_GB
    dtype = load_dtype(model.options, sizing_device(model.options))
    return VramEstimate(round(weights_gb + margin, 2), None,
                        {"weights": weights_gb, "working_memory": margin}, f"T3 in {dtype}")


@hookimpl
def measure_vram(model: PhysicalModel, handle: Any) -> float | None:
    """The bytes of the loaded modules' tensors on CUDA."""
    import torch

    tts = getattr(handle, "tts", None)
    seen, total = set(), 0
    for module in vars(tts).values() if tts is not None else ():
        if isinstance(module, torch.nn.Module):
            for t in [*module.parameters(), *module.buffers()]:
                if t.device.type == "cuda" and t.data_ptr() not in seen:
                    seen.add(t.data_ptr())
                    total += t.numel() * t.element_size()
    return total / GIB if seen else None


@hookimpl
def load(model: PhysicalModel, device: str | None) -> Any:
    from .synth import Handle

    _check_files(model)
    variant = _variant(model)
    import torch

    where = choose_device(device, model.options.get("device"), gpu=torch.cuda.is_available(),
                          seen_by=f"torch {torch.__version__}")
    tts = None
    try:
        tts = variant.load(model.location, where)
        handle = Handle.create(model, variant, tts, where)
    except ModelLoadError:
        del tts
        free_device_memory()
        raise
    except Exception as exc:
        del tts
        free_device_memory()
        raise ModelLoadError(f"loading {model.name!r} ({variant.name}) failed: {exc}") from exc
    log.info("chatterbox %s loaded on %s from %s", variant.name, where, model.location)
    return handle


@hookimpl
def unload(model: PhysicalModel, handle: Any) -> None:
    handle.close()
    free_device_memory()


@hookimpl
def infer(model: PhysicalModel, handle: Any, request: Any, cancel: Cancellation):
    from .synth import synthesize

    if not isinstance(request, SpeechRequest):
        raise InvalidRequest(f"{model.name!r} is a text-to-speech model: use /v1/audio/speech")
    return synthesize(handle, model, request, cancel)
