"""Chatterbox in half precision on CUDA: what is cast, what stays float32, and the weights
that leaves on the GPU.

The published checkpoints are float32. With ``options.dtype`` ``float16`` or ``bfloat16``
the plugin casts, after ``from_local``, on CUDA only:

- **T3** (the speech-token language model: Llama-520M, or GPT-2 medium for Turbo; two thirds
  of the weights): its *parameters*. Its buffers stay float32 (the rotary ``inv_freq``: in
  half precision the positions of a 1000-token generation would drift). T3's conditioning
  arrives in float32 (the voice encoder's speaker embedding, the emotion value that
  ``generate`` rebuilds on every call), so a pre-hook casts it to the T3 dtype; the logits
  go back to float32 (a hook on ``speech_head``), so CFG, the repetition penalty, min-p /
  top-p and the sampling run in float32 as before.

Everything else stays float32:

- **S3Gen** (tokens to mel to waveform, 1.06 GB). Its flow-matching decoder has fp16
  plumbing, but chatterbox 0.1.7's ``S3Token2Mel.forward`` casts every tensor of the voice
  (``ref_dict``) to the flow's dtype, the prompt speech-token *ids* included: ids up to 6560
  are not exact in float16 (above 2048) or bfloat16 (above 256), so the voice prompt would be
  corrupted; ``embed_ref`` also runs the mel extractor (an STFT with n_fft 1920) in that
  dtype, and the HiFT vocoder (F0 predictor, sine source, iSTFT) receives the mels in it.
  Its speech tokenizer (S3Tokenizer, 124 M parameters) and speaker encoder (CAMPPlus) are
  fed float32 explicitly by chatterbox. Casting only the flow would save 0.22 GB, behind a
  patched path that needs a GPU to validate.
- **The voice encoder** (an LSTM, 5.7 MB; fed float32 mels from numpy).

On CPU the model stays float32 (the option is logged and ignored): half-precision matmuls
there are slow or unsupported, and there is no VRAM to save.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_DTYPE = "float32"
STORED_BYTES = 4  # the published checkpoints are float32
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def load_dtype(options: Mapping[str, Any], device: str) -> str:
    """The dtype T3 runs in on ``device``: ``options.dtype`` on CUDA, float32 elsewhere."""
    dtype = options.get("dtype") or DEFAULT_DTYPE
    return dtype if device.startswith("cuda") else DEFAULT_DTYPE


def sizing_device(options: Mapping[str, Any]) -> str:
    """The device an estimate sizes for: the configured one, ``auto`` meaning CUDA."""
    device = options.get("device") or "auto"
    return "cuda" if device == "auto" else device


def weight_bytes(variant: Any, directory: Path, options: Mapping[str, Any]) -> float:
    """The weights on the GPU: the files' sizes, T3's at the dtype it will run in (see
    :func:`load_dtype`); S3Gen, the voice encoder and the rest as stored."""
    dtype = load_dtype(options, sizing_device(options))
    return variant.weight_bytes(directory, t3_scale=DTYPE_BYTES[dtype] / STORED_BYTES)


def apply(tts: Any, options: Mapping[str, Any], device: str, name: str) -> str:
    """Cast the loaded model's T3 to ``options.dtype`` on CUDA; return the dtype it runs in."""
    wanted = options.get("dtype") or DEFAULT_DTYPE
    dtype = load_dtype(options, device)
    if wanted != dtype:
        log.info("chatterbox %s: dtype %s applies on CUDA only; float32 on %s", name, wanted,
                 device)
    if dtype != DEFAULT_DTYPE:
        cast_t3(tts.t3, dtype)
        log.info("chatterbox %s: T3 in %s; S3Gen and the voice encoder in float32", name, dtype)
    return dtype


def cast_t3(t3: Any, dtype: str) -> None:
    """T3's parameters to ``dtype`` (buffers untouched), conditioning in, logits out."""
    import torch

    target = getattr(torch, dtype)
    for param in t3.parameters():
        param.data = param.data.to(target)
    t3.cond_enc.register_forward_pre_hook(_conditioning_to(target))
    t3.speech_head.register_forward_hook(_logits_to_float32)


def _conditioning_to(target: Any):
    def hook(module: Any, args: tuple) -> tuple:
        cond, *rest = args
        cast = {f.name: getattr(cond, f.name).to(target) for f in fields(cond)
                if _is_float_tensor(getattr(cond, f.name))}
        return (replace(cond, **cast), *rest)

    return hook


def _is_float_tensor(value: Any) -> bool:
    import torch

    return torch.is_tensor(value) and value.is_floating_point()


def _logits_to_float32(module: Any, args: tuple, output: Any) -> Any:
    return output.float()
