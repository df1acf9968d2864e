"""Structured outputs on transformers: the core's guide (:mod:`llmux.structured`) applied to
the logits by a ``LogitsProcessor``.

The processor runs after the other logits processors and before the sampling warpers
(temperature, top-k, top-p), so sampling only ever chooses among allowed tokens. It reads the
token sampled at the previous step from ``input_ids``, advances the guide over it, masks the
logits to what the guide allows next, and once the answer is complete asks the generation to
stop (after the end token the mask leaves as the only choice).
"""

from __future__ import annotations

import threading
from typing import Any

from llmux.structured import Guide, Vocabulary
from llmux.types import ChatRequest


def guide_for(h: Any, request: ChatRequest, fmt: Any, *, thinking: bool) -> Guide | None:
    """The request's guide, or None when nothing is constrained (validates: may raise
    InvalidRequest before anything streams)."""
    if request.response_format is None and not _forced(request):
        return None
    return vocabulary(h, fmt).guide(request, thinking=thinking)


def _forced(request: ChatRequest) -> bool:
    return bool(request.tools) and (
        request.tool_choice == "required" or isinstance(request.tool_choice, dict))


def vocabulary(h: Any, fmt: Any) -> Vocabulary:
    """The model's llguidance vocabulary, built once per loaded model (about a second for a
    248k-token vocabulary); its end tokens are the model's EOS and the format's stop tokens."""
    with _LOCK:
        cached = getattr(h, "vocabulary", None)
        if cached is not None:
            return cached
        import llguidance.hf

        tokenizer = h.tokenizer
        ends = list(_eos(h))
        for stop in fmt.stop_sequences:
            ids = tokenizer.convert_tokens_to_ids([stop])
            if ids and ids[0] is not None and ids[0] != tokenizer.unk_token_id:
                ends.append(ids[0])
        width = h.model.get_output_embeddings().weight.shape[0]
        lltok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=width,
                                             eos_token=sorted(set(ends)))
        h.vocabulary = Vocabulary(lltok, width)
        return h.vocabulary


_LOCK = threading.Lock()


def _eos(h: Any) -> list[int]:
    eos = h.model.generation_config.eos_token_id
    if eos is None:
        eos = h.tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or ())


class GuideProcessor:
    """A ``transformers`` logits processor applying ``guide`` to a batch of one."""

    def __init__(self, guide: Guide, prompt_len: int, stop: threading.Event) -> None:
        self.guide, self.start, self.stop = guide, prompt_len, stop
        self.seen = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        step = input_ids.shape[1] - self.start
        if step > self.seen:  # the token sampled at the previous step
            self.guide.consume(int(input_ids[0, -1]))
            self.seen = step
        if self.guide.done:
            self.stop.set()  # the end token the mask allows is the last one
        allowed = torch.from_numpy(self.guide.allowed()).to(scores.device, non_blocking=True)
        return scores.masked_fill(~allowed[: scores.shape[-1]], float("-inf"))
