"""What a checkpoint folder says about itself, read without torch: its config, its
quantisation and the dtype and shape of every tensor (from the safetensors headers).

This is what :mod:`.estimate` sizes and what :mod:`.loading` decides the loading path from,
so ``check-config`` and ``load`` can never disagree about a model.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import cached_property
from math import prod
from pathlib import Path
from typing import Any, Mapping

from llmux.errors import ModelLoadError

# Bytes per element of each safetensors dtype.
DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
    "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1,
    "BOOL": 1, "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
TORCH_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> float:
        return self.numel * DTYPE_BYTES.get(self.dtype, 2)


@dataclass(frozen=True)
class Checkpoint:
    """A HuggingFace checkpoint folder."""

    path: Path

    @classmethod
    def open(cls, path: Path) -> "Checkpoint":
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is not a transformers checkpoint (no config.json); "
                "fetch the model with scripts/download_models.sh"
            )
        return cls(path)

    @cached_property
    def config(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {self.path / 'config.json'}: {exc}") from None

    @property
    def model_type(self) -> str:
        return self.config.get("model_type", "")

    @property
    def text_config(self) -> Mapping[str, Any]:
        """The language model's config (the top level for text-only models)."""
        return self.config.get("text_config") or self.config

    @property
    def is_multimodal(self) -> bool:
        """Saved as an image-text-to-text model (``*ForConditionalGeneration``)."""
        archs = self.config.get("architectures") or []
        return "vision_config" in self.config or any("ConditionalGeneration" in a for a in archs)

    @property
    def quantization(self) -> Mapping[str, Any] | None:
        q = self.config.get("quantization_config") or self.text_config.get("quantization_config")
        return q if isinstance(q, Mapping) else None

    @property
    def quant_method(self) -> str | None:
        q = self.quantization
        return str(q.get("quant_method")) if q else None

    @cached_property
    def tensors(self) -> list[Tensor]:
        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"no *.safetensors files in {self.path}")
        out: list[Tensor] = []
        for file in files:
            out += read_header(file)
        return out


def read_header(file: Path) -> list[Tensor]:
    """The tensors of one safetensors file, from its JSON header alone."""
    try:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise ModelLoadError(f"cannot read safetensors header of {file}: {exc}") from None
    return [
        Tensor(name, info["dtype"], tuple(info["shape"]))
        for name, info in header.items()
        if name != "__metadata__"
    ]
