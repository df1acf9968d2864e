"""The hooks: what llmux calls. Each one dispatches on the model's type: chat models to
:mod:`.chat`, speech-to-text (``asr``) models to :mod:`.asr`, each with its own handle."""

from __future__ import annotations

import logging
from typing import Any

from llmux import hookimpl
from llmux.errors import InvalidRequest, ModelLoadError
from llmux.types import BackendInfo, Cancellation, ChatRequest, PhysicalModel, TranscriptionRequest

from .asr import LANGUAGES
from .checkpoint import Checkpoint

log = logging.getLogger(__name__)

OPTIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dtype": {"enum": ["bfloat16", "float16", "float32"],
                  "description": "load dtype; default bfloat16 on CUDA, float32 on CPU"},
        "device": {"type": "string", "pattern": "^(auto|cpu|cuda(:[0-9]+)?)$",
                   "description": "where to load; default auto (CUDA when present)"},
        "max_context": {"type": "integer", "minimum": 16,
                        "description": "prompt + completion tokens; sizes the KV cache"},
        "max_vram_gb": {"type": "number", "exclusiveMinimum": 0,
                        "description": "hard cap on the weights a load may allocate"},
        "allow_dequantise": {"type": "boolean",
                             "description": "MXFP4 on CUDA without kernels: dequantise "
                                            "(if it fits) instead of failing"},
        "kernels_dir": {"type": "string",
                        "description": "local kernels cache holding the MXFP4 Triton kernels"},
        "attn_implementation": {"enum": ["eager", "sdpa", "flash_attention_2"]},
        "languages": {"type": "array", "items": {"enum": list(LANGUAGES)}, "minItems": 1,
                      "uniqueItems": True,
                      "description": "ASR: the languages offered (default: all 14)"},
    },
}


@hookimpl
def backends() -> list[BackendInfo]:
    return [BackendInfo(
        name="transformers",
        types=frozenset({"llm", "asr"}),
        options_schema=OPTIONS_SCHEMA,
        asr_sample_rate=16000,  # Cohere Transcribe's processor takes 16 kHz only
        description="HuggingFace transformers (safetensors; FP8, compressed-tensors, MXFP4)",
    )]


@hookimpl
def estimate_vram(model: PhysicalModel) -> float | None:
    from .estimate import estimate, stays_quantised_on_gpu

    ckpt = Checkpoint.open(model.location)
    if model.type == "asr":
        from .estimate import estimate_asr

        result = estimate_asr(ckpt, dtype=model.options.get("dtype", "bfloat16"))
        log.debug("%s needs %s", model.name, result.describe())
        return round(result.gib, 4)
    result = estimate(
        ckpt,
        dtype=model.options.get("dtype", "bfloat16"),
        context=model.options.get("max_context"),
        dequantise=bool(ckpt.quant_method) and not stays_quantised_on_gpu(ckpt),
    )
    log.debug("%s needs %s", model.name, result.describe())
    return round(result.gib, 4)


@hookimpl
def load(model: PhysicalModel, device: str | None) -> Any:
    if model.type not in ("llm", "asr"):
        raise ModelLoadError(f"the transformers backend cannot load {model.type} models")
    from .loading import free_memory, resolve_device

    ckpt = Checkpoint.open(model.location)
    target = resolve_device(device, model.options)
    try:
        if model.type == "asr":
            from .asr import load_asr

            return load_asr(model, ckpt, target)
        return _load_chat(model, ckpt, target)
    except BaseException:
        free_memory(target)
        raise


def _load_chat(model: PhysicalModel, ckpt: Checkpoint, device: str) -> Any:
    from .chat import ChatModel
    from .loading import check_fits, load_tokenizer, load_weights, plan

    p = plan(ckpt, device, model.options)
    check_fits(model, ckpt, p)
    tokenizer = load_tokenizer(ckpt)
    weights = load_weights(model, ckpt, p)
    vision = None
    if model.vision:
        if not ckpt.is_multimodal:
            raise ModelLoadError(f"{model.name!r} has vision: true but {ckpt.path} has no vision model")
        from .vision import load_vision

        vision = load_vision(str(ckpt.path), weights.config)
    max_context = model.options.get("max_context") or int(
        ckpt.text_config.get("max_position_embeddings") or 4096
    )
    log.info("loaded %s as %s", model.name, p.describe())
    return ChatModel(model.name, weights, tokenizer, p, max_context, vision)


@hookimpl
def unload(model: PhysicalModel, handle: Any) -> None:
    from .loading import free_memory

    with handle.lock:  # never free a model under a running generation
        device = handle.plan.device
        for attr in ("model", "tokenizer", "vision", "processor"):  # chat or ASR handle
            if hasattr(handle, attr):
                setattr(handle, attr, None)
    free_memory(device)


@hookimpl
def infer(model: PhysicalModel, handle: Any, request: Any, cancel: Cancellation):
    if isinstance(request, ChatRequest):
        from .chat import chat

        return chat(handle, request, cancel)
    if isinstance(request, TranscriptionRequest) and model.type == "asr":
        from .asr import transcribe

        return transcribe(handle, request, cancel)
    raise InvalidRequest(
        f"model {model.name!r} (transformers) cannot serve {type(request).__name__}"
    )
