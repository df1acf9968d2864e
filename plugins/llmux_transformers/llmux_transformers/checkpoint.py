"""What a checkpoint folder says about itself, read without torch: its config, its
quantisation and the dtype and shape of every tensor (from the safetensors headers).

This is what :mod:`.estimate` sizes and what :mod:`.loading` decides the loading path from,
so ``check-config`` and ``load`` can never disagree about a model.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache
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

# Tensors a checkpoint holds that the class llmux loads it with never loads, by model_type:
# that class's ``_keys_to_ignore_on_load_unexpected`` (transformers 5.x; a test checks the
# table against the installed classes). Qwen3.5's multi-token-prediction head (``mtp.*``,
# ~0.45 GiB on the 9B) has no module in transformers; the text-only class drops the vision
# tower; Cohere Transcribe's featurizer is recomputed by its processor.
UNLOADED_TENSORS = {
    "qwen3_5": (r"^mtp.*",),  # Qwen3_5ForConditionalGeneration
    "qwen3_5_text": (r"^mtp.*", r"^model.visual.*"),  # Qwen3_5ForCausalLM
    "qwen3_5_moe": (r"^mtp.*",),
    "qwen3_5_moe_text": (r"^mtp.*", r"^model.visual.*"),
    "qwen3_next": (r"^mtp.*",),
    "cohere_asr": (r"preprocessor\.featurizer\..*",),
}
# The expert tensors of gpt-oss as transformers keeps them, (experts, in, out) in a float
# dtype; MXFP4 checkpoints store each as ``*_blocks`` and ``*_scales`` instead.
EXPERT_SUFFIXES = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


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

    @classmethod
    def cached(cls, path: Path) -> "Checkpoint":
        """:meth:`open`, kept while the folder and its ``config.json`` are unchanged: the
        estimate is asked for many context lengths, and a 9B's headers are read once."""
        try:
            stamp = (path.stat().st_mtime_ns, (path / "config.json").stat().st_mtime_ns)
        except OSError:
            return cls.open(path)
        return _cached(cls, path, stamp)

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
        """How the weights are stored, as transformers names it: ``config.json``'s
        ``quant_method``, unless the tensors say otherwise (see :attr:`stale_quantization`)."""
        q = self.quantization
        if not q or self.stale_quantization:
            return None
        return str(q.get("quant_method"))

    @property
    def stale_quantization(self) -> bool:
        """``config.json`` says MXFP4 but the experts are float tensors: a fine-tune saved in
        BF16 that kept the original's ``quantization_config``. transformers would look for
        ``*_blocks``; the plugin loads it without that config."""
        q = self.quantization
        return bool(q) and q.get("quant_method") == "mxfp4" and self.experts_format not in (
            None, "mxfp4")

    @cached_property
    def experts_format(self) -> str | None:
        """How the MoE experts are stored: ``"mxfp4"`` (``*_blocks``/``*_scales``), the
        safetensors dtype of the float expert tensors (``"BF16"``), or None (no experts)."""
        for t in self.tensors:
            if t.name.endswith(tuple(s + "_blocks" for s in EXPERT_SUFFIXES)):
                return "mxfp4"
            if t.name.endswith(EXPERT_SUFFIXES):
                return t.dtype
        return None

    @cached_property
    def files(self) -> list[Path]:
        """The safetensors files transformers reads: those the index names when there is
        one (a folder may hold other copies), else every ``*.safetensors`` at the top (never
        subfolders such as gpt-oss's ``original/`` and ``metal/``)."""
        index = self.path / "model.safetensors.index.json"
        if index.is_file():
            try:
                names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                raise ModelLoadError(f"cannot read {index}: {exc}") from None
            missing = [n for n in names if not (self.path / n).is_file()]
            if missing:
                raise ModelLoadError(f"{self.path} lacks {', '.join(missing)} (named by "
                                     f"{index.name}); fetch the model again")
            return [self.path / n for n in names]
        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"no *.safetensors files in {self.path}")
        return files

    @cached_property
    def tensors(self) -> list[Tensor]:
        """Every tensor in :attr:`files`."""
        out: list[Tensor] = []
        for file in self.files:
            out += read_header(file)
        return out

    @property
    def unloaded_patterns(self) -> tuple[str, ...]:
        return UNLOADED_TENSORS.get(self.model_type, ())

    @cached_property
    def loaded_tensors(self) -> list[Tensor]:
        """The tensors the model class loads: :attr:`tensors` less the ones it ignores."""
        patterns = self.unloaded_patterns
        if not patterns:
            return self.tensors
        skip = re.compile("|".join(f"({p})" for p in patterns))
        return [t for t in self.tensors if not skip.search(t.name)]


@lru_cache(maxsize=64)
def _cached(cls: type[Checkpoint], path: Path, stamp: tuple[int, int]) -> Checkpoint:
    return cls.open(path)


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
