"""Known, harmless third-party messages, silenced narrowly.

Each pattern matches one message of one transformers logger, from its start; every other
message still reaches the logs (and anything raised through ``warnings`` still reaches a
strict ``filterwarnings = error`` run: the plugin filters no ``warnings`` at all).
"""

from __future__ import annotations

import logging
import re

HARMLESS = {
    # Qwen3.5's Gated DeltaNet runs its torch reference code without these CUDA packages.
    "transformers.integrations.hub_kernels": (
        r"`\w+` is falling back to its reference PyTorch implementation because "
        r"`(causal_conv1d|flash-linear-attention)` is not installed",
    ),
    # Dequantising on a machine without the kernels: loading.plan decided that explicitly
    # (and checked that it fits) before transformers says so.
    "transformers.quantizers.quantizer_mxfp4": (
        r"MXFP4 quantization requires Triton",
        r"MXFP4 inference on CPU requires use_kernels=True",
    ),
    "transformers.quantizers.quantizer_finegrained_fp8": (
        r"Using FP8 quantized models requires a GPU or XPU",
    ),
}


class _Harmless(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


_installed = False


def install() -> None:
    """Attach the filters to the loggers that emit these messages (once per process)."""
    global _installed
    if _installed:
        return
    for name, patterns in HARMLESS.items():
        logging.getLogger(name).addFilter(_Harmless(patterns))
    _installed = True
