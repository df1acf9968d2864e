"""Whether transformers' quantised CUDA paths will really run here: the GPU's compute
capability, Triton, and the hub kernels (looked up offline in the local kernel cache: the
hub is not reachable in production). :mod:`.loading` plans a load with these answers.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

MXFP4_CAPABILITY = (7, 5)  # transformers' MXFP4 Triton path
MXFP4_KERNELS = "kernels-community/gpt-oss-triton-kernels"
KERNELS_DIR_ENV = "LLMUX_KERNELS_DIR"


def capability(device: str) -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability(torch.device(device))


def mxfp4_missing(device: str, options: Mapping[str, Any]) -> str | None:
    """What transformers' MXFP4 CUDA path lacks here, or None when it will run quantised.

    transformers fetches the Triton kernels with ``kernels.get_kernel`` at load time; here
    they are looked up in the local kernel cache (``options.kernels_dir``,
    ``$LLMUX_KERNELS_DIR`` or ``$KERNELS_CACHE``, else the HuggingFace cache), offline.
    """
    if capability(device) < MXFP4_CAPABILITY:
        return "a GPU of compute capability 7.5 or newer"
    from transformers.utils.import_utils import is_triton_available

    if not is_triton_available("3.4.0"):
        return "triton >= 3.4"
    return _hub_kernel_missing(MXFP4_KERNELS, 1, options)


def fp8_missing(device: str, options: Mapping[str, Any]) -> str | None:
    """What transformers' fine-grained FP8 CUDA path lacks here, or None.

    Its ``FP8Linear`` runs a hub kernel (``kernels-community/finegrained-fp8``, fetched with
    ``kernels`` at the first forward, not at load; DeepGEMM, when present, is preferred and
    falls back to it). Without it, generation fails offline: so it is looked up in the local
    kernel cache before loading, as for MXFP4."""
    from transformers.integrations.hub_kernels import _HUB_KERNEL_MAPPING

    kernel = _HUB_KERNEL_MAPPING["finegrained-fp8"]
    return _hub_kernel_missing(kernel["repo_id"], kernel.get("version"), options)


def _hub_kernel_missing(repo: str, version: int | None, options: Mapping[str, Any]) -> str | None:
    from transformers.utils.import_utils import is_kernels_available

    if not is_kernels_available():
        return "the `kernels` package"
    where = options.get("kernels_dir") or os.environ.get(KERNELS_DIR_ENV)
    if where:
        os.environ["KERNELS_CACHE"] = str(where)
    try:
        from kernels import get_kernel

        get_kernel(repo, version=version)
    except Exception as exc:  # not cached: the hub is not reachable in production
        return f"the {repo} kernels in the local cache ({exc})"
    return None
