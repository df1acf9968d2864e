"""The hooks: what llmux calls. Each one dispatches on the model's type: chat models to
:mod:`.chat`, speech-to-text (``asr``) models to :mod:`.asr`, each with its own handle."""

from __future__ import annotations

import logging
from typing import Any

from llmux import hookimpl
from llmux.errors import InvalidRequest, ModelLoadError
from llmux.types import (
    BackendInfo,
    Cancellation,
    ChatRequest,
    PhysicalModel,
    TranscriptionRequest,
    VramEstimate,
)

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
                                            "(or, with quantize: mxfp4, load unquantised) "
                                            "if it fits, instead of failing"},
        "quantize": {"enum": ["fp8", "mxfp4"],
                     "description": "quantise an unquantised checkpoint on load on CUDA: "
                                    "fp8 (fine-grained FP8, compute capability >= 8.9), "
                                    "mxfp4 (gpt-oss experts, Triton kernels); on CPU the "
                                    "model loads unquantised"},
        "quantize_keep": {"type": "array", "items": {"type": "string", "minLength": 1},
                          "uniqueItems": True,
                          "description": "modules left unquantised by quantize, besides "
                                         "lm_head (transformers' modules_to_not_convert "
                                         "patterns, e.g. model.visual, in_proj_a)"},
        "kernels_dir": {"type": "string",
                        "description": "local kernels cache holding the MXFP4 Triton kernels"},
        "attn_implementation": {"enum": ["eager", "sdpa", "flash_attention_2", "llmux_sinks"],
                                "description": "default: llmux_sinks for gpt-oss (eager "
                                               "attention with sinks in bounded memory), "
                                               "transformers' choice otherwise"},
        "prefill_chunk": {"type": "integer", "minimum": 1,
                          "description": "prompt tokens per prefill forward (default 1024); "
                                         "bounds the prefill's activations"},
        "prompt_cache_gb": {"type": "number", "minimum": 0,
                            "description": "host RAM for prompt-prefix states, kept across "
                                           "unload and load (default 1.0; 0 turns reuse "
                                           "off)"},
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
def estimate_vram(model: PhysicalModel, context: int | None) -> VramEstimate:
    from .estimate import GiB
    from .loading import configured_context, estimate_model

    est, p = estimate_model(model, context)
    used = None
    if model.type != "asr":
        used = context or configured_context(model, Checkpoint.cached(model.location))
    parts = {"weights": est.weights / GiB, "kv_cache": est.kv_cache / GiB,
             "activations": est.activations / GiB}
    return VramEstimate(round(est.gib, 4), used, parts, p.describe())


@hookimpl
def prompt_cache(model: PhysicalModel) -> dict | None:
    """The model's prompt-state snapshots (``prefix_cache``), kept across unloads."""
    from .prefix_cache import report

    return report(model.name)


@hookimpl
def measure_vram(model: PhysicalModel, handle: Any) -> float | None:
    """The bytes of the model's parameters and buffers on a CUDA device (the torch
    allocator's view of this model alone; the KV cache grows per request)."""
    from .loading import resident_bytes

    return resident_bytes(handle)


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
        return _on_compute_thread(model, ckpt, target)
    except BaseException:
        free_memory(target)
        raise


def _on_compute_thread(model: PhysicalModel, ckpt: Checkpoint, device: str) -> Any:
    """Load a chat model on the thread its generations will run on (``ChatModel.compute``):
    torch's parallel work at load (weights converted, moved) then starts the one OpenMP
    team that its generations use, instead of a second one on the caller's thread."""
    from concurrent.futures import ThreadPoolExecutor

    compute = ThreadPoolExecutor(1, thread_name_prefix=f"llmux-{model.name}-generate")
    try:
        handle = compute.submit(_load_chat, model, ckpt, device).result()
    except BaseException:
        compute.shutdown(wait=False)
        raise
    handle.compute = compute
    return handle


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
    from .loading import configured_context
    from .prefill import DEFAULT_CHUNK

    max_context = configured_context(model, ckpt)
    log.info("loaded %s as %s, %d tokens of context", model.name, p.describe(), max_context)
    from .prefix_cache import identity, store_for

    prefixes = store_for(identity(model.name, ckpt, p, model.options),
                         model.options.get("prompt_cache_gb"))
    return ChatModel(model.name, weights, tokenizer, p, max_context, vision,
                     prefill_chunk=model.options.get("prefill_chunk") or DEFAULT_CHUNK,
                     prefixes=prefixes)


@hookimpl
def unload(model: PhysicalModel, handle: Any) -> None:
    from .loading import free_memory

    with handle.lock:  # never free a model under a running generation
        device = handle.plan.device
        close = getattr(handle, "close", None)
        if close is not None:  # a chat handle: its compute thread ends
            close()
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
