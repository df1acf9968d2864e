"""llmux runtime plugin for HuggingFace transformers (entry point ``transformers``).

Importing this package costs nothing: torch and transformers are imported inside the hooks.
"""

from .plugin import (
    backends,
    estimate_vram,
    infer,
    load,
    measure_vram,
    prompt_cache,
    unload,
)

__all__ = ["backends", "estimate_vram", "infer", "load", "measure_vram", "prompt_cache",
           "unload"]
