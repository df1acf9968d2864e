"""Loading a checkpoint: device, dtype, the quantised loading path, the fit check, and
freeing it all again.

The quantisation plan is decided here, explicitly, before anything is allocated: for FP8 and
MXFP4 the plugin passes transformers a ``quantization_config`` with ``dequantize`` set to
what it decided, so transformers never falls back to dequantising on its own, and the size
of what will really be allocated is checked against the budget first.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

from llmux.errors import InsufficientVram, ModelLoadError
from llmux.types import PhysicalModel

from .checkpoint import TORCH_DTYPE_BYTES, Checkpoint
from .estimate import GiB, weights_bytes

log = logging.getLogger(__name__)

VRAM_TOLERANCE = 1.25  # a load may use up to this multiple of the configured vram_gb
MXFP4_KERNELS = "kernels-community/gpt-oss-triton-kernels"
KERNELS_DIR_ENV = "LLMUX_KERNELS_DIR"


@dataclass(frozen=True)
class Plan:
    """How a checkpoint will be loaded on one device."""

    device: str  # "cpu", "cuda", "cuda:1"
    dtype: str  # "bfloat16" | "float16" | "float32"
    method: str | None  # the checkpoint's quant_method
    dequantise: bool  # transformers turns the quantised weights into ``dtype``
    why: str = ""  # why it dequantises

    def describe(self) -> str:
        if not self.method:
            return f"{self.dtype} on {self.device}"
        if self.dequantise:
            return f"{self.method} dequantised to {self.dtype} on {self.device} ({self.why})"
        return f"{self.method} on {self.device}"


def resolve_device(forced: str | None, options: Mapping[str, Any]) -> str:
    import torch

    want = forced or options.get("device") or "auto"
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {want!r} was asked for but torch {torch.__version__} sees no CUDA GPU"
        )
    if want != "cpu" and not want.startswith("cuda"):
        raise ModelLoadError(f"unknown device {want!r}: use 'cpu', 'cuda' or 'cuda:N'")
    return want


def resolve_dtype(device: str, options: Mapping[str, Any]) -> str:
    dtype = options.get("dtype") or ("float32" if device == "cpu" else "bfloat16")
    if dtype not in TORCH_DTYPE_BYTES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {sorted(TORCH_DTYPE_BYTES)}")
    return dtype


def plan(ckpt: Checkpoint, device: str, options: Mapping[str, Any]) -> Plan:
    dtype = resolve_dtype(device, options)
    method = ckpt.quant_method
    cuda = device.startswith("cuda")
    if method == "fp8":
        if not cuda:
            return Plan(device, dtype, method, True, "FP8 kernels need a CUDA GPU")
        if _capability(device) < (8, 9):
            return Plan(device, dtype, method, True, "FP8 needs compute capability 8.9 or newer")
    elif method == "compressed-tensors":
        if importlib.util.find_spec("compressed_tensors") is None:
            raise ModelLoadError(
                f"{ckpt.path.name} is a compressed-tensors checkpoint: install the extra "
                "`pip install 'llmux-transformers[compressed-tensors]'`"
            )
    elif method == "mxfp4":
        if not cuda:
            return Plan(device, dtype, method, True, "no MXFP4 kernels on CPU")
        missing = mxfp4_kernels_missing(device, options)
        if missing:
            if not options.get("allow_dequantise"):
                raise ModelLoadError(
                    f"{ckpt.path.name}: MXFP4 on CUDA needs {missing}. Install triton and "
                    f"`kernels`, pre-fetch {MXFP4_KERNELS} (scripts/download_models.sh) and "
                    f"point options.kernels_dir or ${KERNELS_DIR_ENV} at it, or set "
                    "options.allow_dequantise: true to load it dequantised if that fits"
                )
            return Plan(device, dtype, method, True, missing)
    return Plan(device, dtype, method, False)


def _capability(device: str) -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability(torch.device(device))


def mxfp4_kernels_missing(device: str, options: Mapping[str, Any]) -> str | None:
    """What transformers' MXFP4 CUDA path lacks here, or None when it will run quantised.

    transformers fetches the Triton kernels with ``kernels.get_kernel`` at load time; here
    they are looked up in the local kernel cache (``options.kernels_dir``,
    ``$LLMUX_KERNELS_DIR`` or ``$KERNELS_CACHE``, else the HuggingFace cache), offline.
    """
    if _capability(device) < (7, 5):
        return "a GPU of compute capability 7.5 or newer"
    from transformers.utils.import_utils import is_kernels_available, is_triton_available

    if not is_triton_available("3.4.0"):
        return "triton >= 3.4"
    if not is_kernels_available():
        return "the `kernels` package"
    where = options.get("kernels_dir") or os.environ.get(KERNELS_DIR_ENV)
    if where:
        os.environ["KERNELS_CACHE"] = str(where)
    try:
        from kernels import get_kernel

        get_kernel(MXFP4_KERNELS, version=1)
    except Exception as exc:  # not cached: the hub is not reachable in production
        return f"the {MXFP4_KERNELS} kernels in the local cache ({exc})"
    return None


# --------------------------------------------------------------------------- the fit check


def budget(model: PhysicalModel, device: str) -> tuple[float, str]:
    """The most bytes a load may allocate on ``device``, and where that limit comes from."""
    cap = model.options.get("max_vram_gb")
    if cap is not None:
        return cap * GiB, f"options.max_vram_gb = {cap}"
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        limit = model.vram_gb * VRAM_TOLERANCE * GiB
        if free < limit:
            return free, f"{free / GiB:.2f} GiB free on {device}"
        return limit, f"vram_gb {model.vram_gb} x {VRAM_TOLERANCE}"
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return pages, f"{pages / GiB:.2f} GiB of free memory"


def check_fits(model: PhysicalModel, ckpt: Checkpoint, p: Plan) -> float:
    """Raise :class:`InsufficientVram` before allocating if the weights cannot fit."""
    need = weights_bytes(ckpt, p.dtype, dequantise=p.dequantise)
    limit, source = budget(model, p.device)
    if need > limit:
        raise InsufficientVram(
            f"model {model.name!r} would take {need / GiB:.2f} GiB for its weights loaded as "
            f"{p.describe()}, over its limit of {limit / GiB:.2f} GiB ({source}); use a "
            "quantised checkpoint that runs quantised here, or raise the limit"
        )
    return need


# --------------------------------------------------------------------------- loading


def quantization_config(ckpt: Checkpoint, p: Plan) -> Any:
    """The loading attributes for the checkpoint's own quantisation config, or None."""
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
    if model.options.get("attn_implementation"):
        kwargs["attn_implementation"] = model.options["attn_implementation"]
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


def load_tokenizer(ckpt: Checkpoint) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(ckpt.path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {ckpt.path}: {exc}") from exc


def free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
