"""Images for image-text-to-text models: data URLs -> PIL (the runtime kit's
:func:`llmux.kit.decode_image`, with its pixel limit) -> pixel values and the expanded image
placeholder tokens.

The image processor comes from ``AutoImageProcessor`` (the torchvision-backed one where
torchvision is installed) and falls back to the PIL implementation
(``Qwen2VLImageProcessorPil``) where it is not: a CPU-only torch without torchvision cannot
build the Qwen3-VL processor at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from llmux.errors import InvalidRequest, ModelLoadError
from llmux.kit import decode_image

log = logging.getLogger(__name__)

IMAGE_PAD = "<|image_pad|>"


def image_parts(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``image_url`` URLs in ``messages``, in order."""
    urls = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                urls.append(url if isinstance(url, str) else "")
    return urls


@dataclass
class Vision:
    """What one loaded vision model needs to turn images into inputs."""

    processor: Any  # an image processor
    image_token_id: int
    merge_size: int

    def inputs(self, urls: list[str], cancel: Any = None
               ) -> tuple[dict[str, Any], list[int]] | None:
        """Model inputs for the images and the number of tokens each one takes; None once
        ``cancel`` is set (checked before each image and before and after the processor).
        The encoder itself runs in the model's forward, which checks it between blocks."""
        def cancelled() -> bool:
            return cancel is not None and cancel.cancelled

        images = []
        for index, url in enumerate(urls):
            if cancelled():
                return None
            images.append(decode_image(url, index))
        if cancelled():
            return None
        out = self.processor(images=images, return_tensors="pt")
        if cancelled():
            return None
        grid = out["image_grid_thw"]
        counts = [int(g.prod()) // self.merge_size**2 for g in grid]
        return {"pixel_values": out["pixel_values"], "image_grid_thw": grid}, counts

    def expand(self, ids: list[int], counts: list[int]) -> list[int]:
        """Repeat each image placeholder token to the image's token count."""
        if ids.count(self.image_token_id) != len(counts):
            raise InvalidRequest(
                f"the chat template rendered {ids.count(self.image_token_id)} image "
                f"placeholders for {len(counts)} images",
                param="messages",
            )
        out: list[int] = []
        images = iter(counts)
        for token in ids:
            if token == self.image_token_id:
                out += [token] * next(images)
            else:
                out.append(token)
        return out


def load_vision(path: str, config: Any) -> Vision:
    processor = _image_processor(path)
    vision_config = getattr(config, "vision_config", None)
    merge = getattr(vision_config, "spatial_merge_size", None) or getattr(processor, "merge_size", 2)
    token = getattr(config, "image_token_id", None)
    if token is None:
        raise ModelLoadError(f"{path}: config.json has no image_token_id")
    return Vision(processor, int(token), int(merge))


def _image_processor(path: str) -> Any:
    try:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(path)
    except (ImportError, OSError, ValueError, AttributeError) as exc:
        log.info("AutoImageProcessor failed (%s); using the PIL Qwen2-VL processor", exc)
    try:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        return Qwen2VLImageProcessorPil.from_pretrained(path)
    except (ImportError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load an image processor for {path}: {exc}") from exc
