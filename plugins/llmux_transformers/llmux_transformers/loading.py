"""Loading a checkpoint: device, dtype, the quantised loading path, the fit check, and
freeing it all again.

The quantisation plan is decided here, explicitly, before anything is allocated: for FP8 and
MXFP4 checkpoints the plugin passes transformers a ``quantization_config`` with
``dequantize`` set to what it decided, so transformers never falls back to dequantising on
its own; for ``options.quantize`` (an unquantised checkpoint quantised on load) it passes
the config only where the kernels run, and loads unquantised, saying so, where they do not.
The size of what will really be allocated is checked against the device first, and the
estimate (:func:`estimate_model`) sizes the very same plan.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, replace
from typing import Any, Mapping

from llmux.errors import InsufficientVram, ModelLoadError
from llmux.kit import choose_device, free_device_memory
from llmux.types import PhysicalModel

from . import cuda_kernels
from . import estimate as sizes
from .checkpoint import TORCH_DTYPE_BYTES, Checkpoint
from .cuda_kernels import KERNELS_DIR_ENV, MXFP4_KERNELS
from .estimate import DEFAULT_KEEP, Estimate, GiB, estimate, estimate_asr, weights_bytes

log = logging.getLogger(__name__)

FP8_CAPABILITY = (8, 9)  # fine-grained FP8 kernels (Ada, Hopper, Blackwell)
# The GPU an estimate sizes for when it cannot look (check-config, a CPU-only machine): the
# production RTX 5070 Ti, FP8-capable, with the MXFP4 kernels installed.
SIZED_CAPABILITY = (12, 0)


@dataclass(frozen=True)
class Plan:
    """How a checkpoint will be loaded on one device."""

    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str  # "bfloat16" | "float16" | "float32"
    method: str | None  # the checkpoint's quant_method
    dequantise: bool  # transformers turns the quantised weights into ``dtype``
    why: str = ""  # why it dequantises, or why options.quantize is not applied
    quantize: str | None = None  # transformers quantises on load: "fp8" | "mxfp4"
    keep: tuple[str, ...] = ()  # options.quantize_keep: modules left in ``dtype``

    def describe(self) -> str:
        if self.quantize:
            return f"{self.dtype} quantised to {self.quantize} on load on {self.device}"
        if not self.method:
            unquantised = f" (not quantised: {self.why})" if self.why else ""
            return f"{self.dtype} on {self.device}{unquantised}"
        if self.dequantise:
            return f"{self.method} dequantised to {self.dtype} on {self.device} ({self.why})"
        return f"{self.method} on {self.device}"

    def weights_bytes(self, ckpt: Checkpoint) -> float:
        """The weights as this plan puts them on the device."""
        return weights_bytes(ckpt, self.dtype, dequantise=self.dequantise,
                             quantize=self.quantize, keep=self.keep)


def resolve_device(forced: str | None, options: Mapping[str, Any]) -> str:
    """``forced``, else ``options.device``, else the GPU when torch sees one (the kit's
    :func:`llmux.kit.choose_device`)."""
    import torch

    return choose_device(forced, options.get("device"), gpu=torch.cuda.is_available(),
                         seen_by=f"torch {torch.__version__}")


def resolve_dtype(device: str, options: Mapping[str, Any]) -> str:
    dtype = options.get("dtype") or ("float32" if device == "cpu" else "bfloat16")
    if dtype not in TORCH_DTYPE_BYTES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {sorted(TORCH_DTYPE_BYTES)}")
    return dtype


def plan(ckpt: Checkpoint, device: str, options: Mapping[str, Any], *,
         probe: bool = True) -> Plan:
    """How ``ckpt`` loads on ``device``. ``probe=False`` sizes without looking at the GPU:
    a CUDA device is taken to be the production one (:data:`SIZED_CAPABILITY`, kernels
    installed)."""
    dtype = resolve_dtype(device, options)
    method = ckpt.quant_method
    cuda = device.startswith("cuda")
    wanted = options.get("quantize")
    if wanted and not method:
        return _quantize_on_load(ckpt, device, dtype, wanted, options, probe)
    if wanted and wanted != method:
        raise ModelLoadError(
            f"{ckpt.path.name}: options.quantize: {wanted} quantises an unquantised checkpoint "
            f"on load, but this one is stored as {method}; remove the option"
        )
    if method == "fp8":
        if not cuda:
            return Plan(device, dtype, method, True, "FP8 kernels need a CUDA GPU")
        if _probe_capability(device, probe) < FP8_CAPABILITY:
            return Plan(device, dtype, method, True, "FP8 needs compute capability 8.9 or newer")
        missing = cuda_kernels.fp8_missing(device, options) if probe else None
        if missing:
            return Plan(device, dtype, method, True, f"FP8 needs {missing}")
    elif method == "compressed-tensors":
        if probe and importlib.util.find_spec("compressed_tensors") is None:
            raise ModelLoadError(
                f"{ckpt.path.name} is a compressed-tensors checkpoint: install the extra "
                "`pip install 'llmux-transformers[compressed-tensors]'`"
            )
    elif method == "mxfp4":
        if not cuda:
            return Plan(device, dtype, method, True, "no MXFP4 kernels on CPU")
        missing = cuda_kernels.mxfp4_missing(device, options) if probe else None
        if missing:
            if not options.get("allow_dequantise"):
                raise ModelLoadError(
                    f"{ckpt.path.name}: MXFP4 on CUDA needs {missing}. {_MXFP4_FIX}, or set "
                    "options.allow_dequantise: true to load it dequantised if that fits"
                )
            return Plan(device, dtype, method, True, missing)
    return Plan(device, dtype, method, False)


_MXFP4_FIX = (
    f"Install triton and `kernels`, pre-fetch {MXFP4_KERNELS} (scripts/download_models.sh) "
    f"and point options.kernels_dir or ${KERNELS_DIR_ENV} at it"
)


def _quantize_on_load(ckpt: Checkpoint, device: str, dtype: str, wanted: str,
                      options: Mapping[str, Any], probe: bool) -> Plan:
    """``options.quantize`` on an unquantised checkpoint: quantised on load where
    transformers' kernels run; elsewhere unquantised in ``dtype``, with the reason (the fit
    check then refuses it, with the numbers, unless it fits)."""
    keep = tuple(options.get("quantize_keep") or ())
    name = ckpt.path.name
    if wanted == "fp8" and ckpt.experts_format:
        raise ModelLoadError(
            f"{name}: options.quantize: fp8 is for dense models; {name} has MoE experts "
            "(for gpt-oss use quantize: mxfp4)"
        )
    if wanted == "mxfp4" and ckpt.model_type != "gpt_oss":
        raise ModelLoadError(
            f"{name}: options.quantize: mxfp4 quantises gpt-oss experts only (transformers' "
            f"Mxfp4HfQuantizer); {name} is {ckpt.model_type or 'unknown'!r} "
            "(use quantize: fp8 on a GPU of compute capability 8.9 or newer)"
        )
    if not device.startswith("cuda"):
        if probe:
            log.info("%s: options.quantize: %s applies on CUDA only; loading %s unquantised "
                     "on %s", name, wanted, dtype, device)
        return Plan(device, dtype, None, False, f"no {wanted.upper()} kernels on CPU")
    if wanted == "fp8":
        capability = _probe_capability(device, probe)
        if capability < FP8_CAPABILITY:
            why = (f"FP8 needs compute capability 8.9 or newer; {device} has "
                   f"{capability[0]}.{capability[1]}")
        else:
            missing = cuda_kernels.fp8_missing(device, options) if probe else None
            why = f"FP8 needs {missing}" if missing else ""
        if why:
            if probe:
                log.warning("%s: options.quantize: fp8 not applied: %s", name, why)
            return Plan(device, dtype, None, False, why)
        return Plan(device, dtype, None, False, quantize="fp8", keep=keep)
    missing = cuda_kernels.mxfp4_missing(device, options) if probe else None
    if missing:
        unquantised = weights_bytes(ckpt, dtype, dequantise=False) / GiB
        quantised = weights_bytes(ckpt, dtype, dequantise=False, quantize="mxfp4",
                                  keep=keep) / GiB
        if not options.get("allow_dequantise"):
            raise ModelLoadError(
                f"{name} stores its experts in {ckpt.experts_format}: its weights take "
                f"{unquantised:.2f} GiB in {dtype}, {quantised:.2f} GiB with MXFP4 experts, "
                f"but quantising them on load on CUDA needs {missing}. {_MXFP4_FIX}; or use a "
                "checkpoint stored in MXFP4 (the openai/gpt-oss-20b layout, *_blocks/*_scales "
                "experts) or a GGUF of it on the llamacpp backend; or set "
                "options.allow_dequantise: true to load it unquantised if that fits"
            )
        log.warning("%s: options.quantize: mxfp4 not applied: needs %s", name, missing)
        return Plan(device, dtype, None, False, f"MXFP4 needs {missing}")
    return Plan(device, dtype, None, False, quantize="mxfp4", keep=keep)


def _probe_capability(device: str, probe: bool) -> tuple[int, int]:
    return cuda_kernels.capability(device) if probe else SIZED_CAPABILITY


# --------------------------------------------------------------------------- the fit check


def budget(model: PhysicalModel, device: str) -> tuple[float, str]:
    """The most bytes a load may allocate on ``device``, and where that limit comes from:
    the device's free memory (the GPU's, or the machine's on CPU), or
    ``options.max_vram_gb`` if that is lower."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        limit, source = free, f"{free / GiB:.2f} GiB free on {device}"
    else:
        limit = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        source = f"{limit / GiB:.2f} GiB of free memory"
    cap = model.options.get("max_vram_gb")
    if cap is not None and cap * GiB < limit:
        return cap * GiB, f"options.max_vram_gb = {cap}"
    return limit, source


def check_fits(model: PhysicalModel, ckpt: Checkpoint, p: Plan) -> float:
    """Raise :class:`InsufficientVram` before allocating if the weights cannot fit."""
    need = p.weights_bytes(ckpt)
    limit, source = budget(model, p.device)
    if need > limit:
        raise InsufficientVram(
            f"model {model.name!r} would take {need / GiB:.2f} GiB for its weights loaded as "
            f"{p.describe()}, over its limit of {limit / GiB:.2f} GiB ({source}); "
            f"{_remedy(ckpt, p)}"
        )
    return need


def _remedy(ckpt: Checkpoint, p: Plan) -> str:
    if p.method is None and p.quantize is None and not p.why:
        if ckpt.model_type == "gpt_oss":
            return "set options.quantize: mxfp4 to quantise its experts on load"
        return ("set options.quantize: fp8 to quantise it on load (CUDA, compute capability "
                "8.9 or newer), or use a quantised checkpoint")
    return "use a quantised checkpoint that runs quantised here, or raise the limit"


# --------------------------------------------------------------------------- sizing


def estimate_model(model: PhysicalModel, context: int | None = None) -> tuple[Estimate, Plan]:
    """What ``model`` needs on the GPU with ``context`` tokens (default: its
    ``max_context``), and the plan that estimate is for: the plan ``load`` makes on the
    configured device (``auto``: CUDA), sized without touching a GPU
    (``plan(probe=False)``). Speech-to-text models get :func:`estimate_asr`."""
    ckpt = Checkpoint.cached(model.location)
    device = model.options.get("device") or "auto"
    p = plan(ckpt, "cuda" if device == "auto" else device, model.options, probe=False)
    if model.type == "asr":
        result = estimate_asr(ckpt, dtype=p.dtype)
    else:
        result = estimate(ckpt, dtype=p.dtype, context=context or configured_context(model, ckpt),
                          dequantise=p.dequantise,
                          prefill_chunk=model.options.get("prefill_chunk"),
                          attn_implementation=model.options.get("attn_implementation"))
    return replace(result, weights=p.weights_bytes(ckpt)), p


def configured_context(model: PhysicalModel, ckpt: Checkpoint) -> int:
    """The context ``model`` loads with: the one llmux fitted, else ``options.max_context``,
    else the checkpoint's ``max_position_embeddings``."""
    return int(model.context or model.options.get("max_context")
               or ckpt.text_config.get("max_position_embeddings") or 4096)


# --------------------------------------------------------------------------- loading


def quantization_config(ckpt: Checkpoint, p: Plan) -> Any:
    """The loading attributes for the checkpoint's own quantisation config, or the config
    that quantises it on load, or None."""
    # transformers keeps lm_head (and tied or output embeddings) by default; a list of
    # its own replaces that default, so lm_head is named along with options.quantize_keep.
    keep = [*DEFAULT_KEEP, *p.keep] if p.keep else None
    if p.quantize == "fp8":
        from transformers import FineGrainedFP8Config

        block = sizes.FP8_BLOCK
        return FineGrainedFP8Config(weight_block_size=(block, block), modules_to_not_convert=keep)
    if p.quantize == "mxfp4":
        from transformers import Mxfp4Config

        return Mxfp4Config(modules_to_not_convert=keep)
    if p.method == "fp8":
        from transformers import FineGrainedFP8Config

        return FineGrainedFP8Config(dequantize=p.dequantise)
    if p.method == "mxfp4":
        from transformers import Mxfp4Config

        return Mxfp4Config(dequantize=p.dequantise)
    return None


def load_weights(model: PhysicalModel, ckpt: Checkpoint, p: Plan, auto_class: Any = None) -> Any:
    """``from_pretrained`` with the planned device, dtype and quantisation; ``auto_class``
    defaults to the chat classes (causal LM, or image-text-to-text for multimodal)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    from . import noise

    noise.install()

    cls = auto_class or (
        AutoModelForImageTextToText if ckpt.is_multimodal else AutoModelForCausalLM
    )
    kwargs: dict[str, Any] = {"dtype": getattr(torch, p.dtype), "device_map": p.device}
    qc = quantization_config(ckpt, p)
    if qc is not None:
        kwargs["quantization_config"] = qc
    if ckpt.stale_quantization:
        kwargs["config"] = _without_quantization(ckpt)
    from .attention import implementation_for  # gpt-oss: llmux_sinks unless the option says

    if attn := implementation_for(ckpt.config, model.options):
        kwargs["attn_implementation"] = attn
    try:
        loaded = cls.from_pretrained(str(ckpt.path), **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        free_memory(p.device)
        raise ModelLoadError(f"cannot load {model.name!r} from {ckpt.path}: {exc}") from exc
    loaded.eval()
    quantizer = getattr(loaded, "hf_quantizer", None)
    if quantizer is not None and qc is not None:
        done = bool(getattr(quantizer.quantization_config, "dequantize", False))
        if done != p.dequantise:
            log.warning("%s: transformers changed the plan (dequantise=%s)", model.name, done)
    return loaded


def _without_quantization(ckpt: Checkpoint) -> Any:
    """The checkpoint's config less the ``quantization_config`` its tensors contradict."""
    from transformers import AutoConfig

    log.info("%s: config.json says %s but the experts are %s: loading them as stored",
             ckpt.path.name, ckpt.quantization.get("quant_method"), ckpt.experts_format)
    config = AutoConfig.from_pretrained(str(ckpt.path))
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is not None and hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
    return config


def load_tokenizer(ckpt: Checkpoint) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(ckpt.path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {ckpt.path}: {exc}") from exc


def resident_bytes(handle: Any) -> float | None:
    """GiB of ``handle``'s model (and vision tower) tensors on a CUDA device; None on CPU."""
    seen, total = set(), 0
    for attr in ("model", "vision"):
        module = getattr(getattr(handle, attr, None), "model", None) if attr == "vision" else \
            getattr(handle, attr, None)
        if module is None or not hasattr(module, "parameters"):
            continue
        for t in [*module.parameters(), *module.buffers()]:
            if t.device.type != "cuda" or t.data_ptr() in seen:
                continue
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total / GiB if seen else None


def free_memory(device: str) -> None:
    """Garbage and, on a GPU, torch's cached memory (the kit's
    :func:`llmux.kit.free_device_memory`)."""
    free_device_memory(device)
