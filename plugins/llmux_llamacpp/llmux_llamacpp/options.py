"""The ``options`` a ``llamacpp`` physical model takes in models.yaml, and what they mean."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from llmux import ModelLoadError, PhysicalModel

DEFAULT_N_CTX = 4096
DEFAULT_PROMPT_CACHE_GB = 1.0

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model_file"],
    "properties": {
        "model_file": {
            "type": "string", "minLength": 1,
            "description": "The GGUF file, relative to the model's path (or absolute).",
        },
        "mmproj_file": {
            "type": "string", "minLength": 1,
            "description": "The vision projector GGUF (mmproj); enables image input.",
        },
        "n_gpu_layers": {
            "type": "integer", "minimum": -1,
            "description": "Layers offloaded to the GPU: -1 all (default), 0 none.",
        },
        "n_ctx": {
            "type": "integer", "minimum": 64,
            "description": f"Context length in tokens (default {DEFAULT_N_CTX}).",
        },
        "n_batch": {"type": "integer", "minimum": 1, "description": "Prompt batch (512)."},
        "n_ubatch": {"type": "integer", "minimum": 1, "description": "Physical batch (512)."},
        "n_threads": {"type": "integer", "minimum": 1, "description": "CPU threads."},
        "flash_attn": {"type": "boolean", "description": "Use flash attention."},
        "use_mmap": {"type": "boolean", "description": "mmap the weights (default true)."},
        "seed": {"type": "integer", "minimum": 0, "description": "Default sampling seed."},
        "top_k": {"type": "integer", "minimum": 0, "description": "Top-k sampling (40)."},
        "min_p": {"type": "number", "minimum": 0, "maximum": 1, "description": "Min-p (0.05)."},
        "repeat_penalty": {"type": "number", "minimum": 0, "description": "(1.0: off)."},
        "grammar": {
            "type": "string", "minLength": 1,
            "description": "A GBNF grammar every generation must follow.",
        },
        "prompt_cache_gb": {
            "type": "number", "minimum": 0,
            "description": "Host RAM for saved prompt states (checkpoints) of this model, "
                           f"kept across unloads (default {DEFAULT_PROMPT_CACHE_GB}; 0: off).",
        },
        "prompt_checkpoint_every": {
            "type": "integer", "minimum": 0,
            "description": "Also save a prompt state every this many tokens of a prompt "
                           "(default 0: only at the ends of the prompt, its history and its "
                           "system block).",
        },
    },
}


@dataclass(frozen=True)
class Settings:
    """A physical model's options, resolved to absolute paths and defaults."""

    model_path: Path
    mmproj_path: Path | None
    n_gpu_layers: int
    n_ctx: int
    llama_kwargs: Mapping[str, Any]
    sampling: Mapping[str, Any]  # top_k, min_p, repeat_penalty, seed defaults
    grammar: str | None
    device: str | None = None  # "cpu"/"cuda" when the caller forced one
    prompt_cache_bytes: int = int(DEFAULT_PROMPT_CACHE_GB * 1024**3)
    checkpoint_every: int = 0  # tokens; 0: no periodic checkpoints


def settings(model: PhysicalModel, device: str | None = None) -> Settings:
    """Resolve ``model.options``; ``device`` "cpu"/"cuda" overrides ``n_gpu_layers``."""
    opts = model.options
    n_gpu_layers = int(opts.get("n_gpu_layers", -1))
    if device == "cpu":
        n_gpu_layers = 0
    elif device == "cuda":
        n_gpu_layers = -1
    elif device is not None:
        raise ModelLoadError(f"llamacpp: unknown device {device!r} (use 'cpu' or 'cuda')")
    kwargs = {k: opts[k] for k in ("n_batch", "n_ubatch", "n_threads", "flash_attn", "use_mmap")
              if k in opts}
    if "seed" in opts:
        kwargs["seed"] = opts["seed"]
    sampling = {k: opts[k] for k in ("top_k", "min_p", "repeat_penalty", "seed") if k in opts}
    mmproj = opts.get("mmproj_file")
    return Settings(
        model_path=_resolve(model, opts["model_file"]),
        mmproj_path=_resolve(model, mmproj) if mmproj else None,
        n_gpu_layers=n_gpu_layers,
        # the context llmux fitted to the budget, else the configured one
        n_ctx=int(model.context or opts.get("n_ctx", DEFAULT_N_CTX)),
        llama_kwargs=kwargs,
        sampling=sampling,
        grammar=opts.get("grammar"),
        device=device,
        prompt_cache_bytes=int(float(opts.get("prompt_cache_gb", DEFAULT_PROMPT_CACHE_GB))
                               * 1024**3),
        checkpoint_every=int(opts.get("prompt_checkpoint_every", 0)),
    )


def _resolve(model: PhysicalModel, name: str) -> Path:
    path = Path(name)
    if not path.is_absolute():
        base = model.location
        path = (base if base.is_dir() else base.parent) / path
    if not path.is_file():
        raise ModelLoadError(
            f"model {model.name!r}: {path} does not exist; download it with "
            "scripts/download_models.sh or fix options in models.yaml"
        )
    return path
