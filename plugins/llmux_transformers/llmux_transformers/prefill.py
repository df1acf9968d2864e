"""Chunked prefill: the prompt goes through the model in slices of ``prefill_chunk`` tokens
that fill the model's own cache, so every activation of the prefill (MoE and MLP
intermediates, masks, attention scores, linear-attention chunks) scales with the slice, not
with the prompt.

All but the prompt's last token are prefilled here; ``generate`` then gets the full prompt
and the cache and runs only the uncached tail (``GenerationMixin._prefill`` slices the input
ids to ``len(prompt) - cache.get_seq_length()`` when the attention mask covers the whole
prompt), so its first forward produces the first token's logits exactly as before, through
the same logits processors and streamer. A prompt of at most one slice plus one token is not
prefilled here at all: ``generate``'s own single forward is that slice.

Images (Qwen3.5 vision): the images are encoded once, before the first slice; each slice
gets the feature rows of the image tokens it holds (``mm_encoder_outputs``) and its part of
the multimodal RoPE position ids, computed once over the whole prompt by the model's own
``get_rope_index``, whose ``rope_deltas`` are left on the model for ``generate``'s tail. A
transformers without ``mm_encoder_outputs`` gets image prompts unchunked.

Prompt-prefix reuse (:mod:`.prefix_cache`): with a ``Reuse``, a prompt is always prefilled
here (however short), starting from the restored cache after the tokens it holds (before
any image: the images are encoded and placed as above), and the cache is handed to
``reuse.keep`` (snapshotted) at each of its marks, the last before ``generate`` sees it.

Within one forward (a slice, ``generate``'s own prefill, an image or audio encoder),
:func:`interruptible` checks the cancellation before every layer and raises
:class:`Interrupted`, which the caller turns into a clean end.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

DEFAULT_CHUNK = 1024
#: What ``generate`` must not see again once the prefill has consumed the images.
VISION_INPUTS = ("pixel_values", "image_grid_thw", "mm_token_type_ids")
#: The names of the layer stacks checked for a cancellation before each layer: decoder and
#: encoder ``layers``, vision ``blocks``, GPT-style ``h``.
LAYER_STACKS = ("layers", "blocks", "h")


class Interrupted(Exception):
    """Raised inside a forward once the run is cancelled (see :func:`interruptible`)."""


@contextmanager
def interruptible(model: Any, cancel: Any) -> Iterator[None]:
    """While inside, a forward of ``model`` raises :class:`Interrupted` at its next layer
    once ``cancel.cancelled``: a long prefill or encoder pass stops within a layer. Use it
    under the model's lock (the hooks are the model's, for as long as the block runs)."""
    import torch

    def check(module: Any, args: Any) -> None:
        if cancel.cancelled:
            raise Interrupted

    hooks = [
        layer.register_forward_pre_hook(check)
        for name, stack in model.named_modules()
        if isinstance(stack, torch.nn.ModuleList) and name.rpartition(".")[2] in LAYER_STACKS
        for layer in stack
    ]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def cache_argument(model: Any) -> str:
    """The name the model's forward (and ``generate``) take the cache under: ``cache`` since
    transformers 5.x renamed it, ``past_key_values`` before."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@dataclass
class Prefill:
    """One prompt's chunked prefill; :meth:`run` it in the generation thread."""

    model: Any
    input_ids: Any  # (1, prompt) on the model's device
    chunk: int
    vision: dict[str, Any]  # pixel_values, image_grid_thw, mm_token_type_ids (or empty)
    image_token_id: int | None
    cache_arg: str
    start: Any = None  # a cache already holding the first ``done`` prompt tokens (reuse)
    done: int = 0
    marks: tuple[int, ...] = ()  # positions to hand the cache to ``keep`` at (snapshots)
    keep: Callable[[int, Any], None] | None = None

    @property
    def tokens(self) -> int:
        """How many prompt tokens the cache will hold: all but the last."""
        return self.input_ids.shape[1] - 1

    def run(self, cancel: Any) -> Any | None:
        """Fill and return a new cache with the first :attr:`tokens` prompt tokens, or None
        when ``cancel`` was set (checked before the images are encoded and before every
        slice). Call under inference mode."""
        from transformers import DynamicCache

        if cancel.cancelled:
            return None
        model = self.model
        cache = self.start
        if cache is None:
            cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        ids = self.input_ids[:, : self.tokens]
        positions = self._positions()
        images, image_mask = self._image_rows()
        used = 0  # image rows handed to earlier slices
        for start, stop in self._slices():
            if cancel.cancelled:
                return None
            kwargs: dict[str, Any] = {self.cache_arg: cache}
            if positions is not None:
                kwargs["position_ids"] = positions[..., start:stop]
            if images is not None:
                count = int(image_mask[:, start:stop].sum())
                if count:
                    kwargs["mm_encoder_outputs"] = {"image": _pooled(images[used:used + count])}
                    used += count
            model(input_ids=ids[:, start:stop], use_cache=True, logits_to_keep=1, **kwargs)
            if stop in self.marks and self.keep is not None and not cancel.cancelled:
                self.keep(stop, cache)
        return cache

    def _slices(self) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each forward: ``chunk`` tokens from ``done`` on, a slice
        also ending at each mark."""
        ends = sorted({m for m in self.marks if self.done < m < self.tokens} | {self.tokens})
        start = self.done
        for end in ends:
            for first in range(start, end, self.chunk):
                yield first, min(end, first + self.chunk)
            start = end

    def _positions(self) -> Any | None:
        """The multimodal RoPE position ids ``(4, 1, prompt)`` of a Qwen3.5-style model
        (text row, then T/H/W), with its ``rope_deltas`` set for ``generate``; None for
        models that count positions from the cache themselves."""
        import torch

        inner = getattr(self.model, "model", None)
        if not hasattr(inner, "get_rope_index") or not hasattr(inner, "rope_deltas"):
            return None
        ids = self.input_ids
        text = torch.arange(ids.shape[1], device=ids.device).view(1, 1, -1)
        if self.vision:
            vision, deltas = inner.get_rope_index(
                ids, mm_token_type_ids=self.vision["mm_token_type_ids"],
                image_grid_thw=self.vision["image_grid_thw"],
            )
        else:  # a text prompt: no stale deltas from an earlier image prompt
            vision = text.expand(3, 1, -1)
            deltas = torch.zeros(1, 1, dtype=torch.long, device=ids.device)
        inner.rope_deltas = deltas
        return torch.cat([text, vision.to(ids.device)], dim=0)

    def _image_rows(self) -> tuple[Any | None, Any | None]:
        """The encoded images, one row per image token in prompt order, and the image-token
        mask; (None, None) for a text prompt."""
        import torch

        if not self.vision:
            return None, None
        out = self.model.model.get_image_features(
            self.vision["pixel_values"], self.vision["image_grid_thw"], return_dict=True
        )
        return torch.cat(list(out.pooler_output), dim=0), self.input_ids == self.image_token_id


def _pooled(rows: Any) -> Any:
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return BaseModelOutputWithPooling(pooler_output=[rows])


def plan(model: Any, inputs: dict[str, Any], chunk: int,
         image_token_id: int | None, reuse: Any = None) -> Prefill | None:
    """The prefill of ``inputs`` (``generate``'s keyword arguments), or None when
    ``generate`` should prefill by itself: a prompt of at most one slice plus its last
    token, chunking off (``chunk`` < 1), or an image prompt this transformers cannot
    chunk. With ``reuse`` (a model with a prefix store) always a prefill, from the restored
    cache on (in one slice when chunking is off), unless it is such an image prompt."""
    input_ids = inputs["input_ids"]
    vision = {k: inputs[k] for k in VISION_INPUTS if k in inputs}
    if vision and "mm_encoder_outputs" not in inspect.signature(model.forward).parameters:
        return None
    if reuse is not None:
        tokens = input_ids.shape[1] - 1
        return Prefill(model, input_ids, chunk if chunk >= 1 else max(tokens, 1), vision,
                       image_token_id, cache_argument(model), reuse.cache, reuse.tokens,
                       tuple(reuse.marks), reuse.keep)
    if chunk < 1 or input_ids.shape[1] - 1 <= chunk:
        return None
    return Prefill(model, input_ids, chunk, vision, image_token_id, cache_argument(model))
