"""Structured outputs on llama.cpp: the core's guide (:mod:`llmux.structured`), the same
llguidance grammar the transformers runtime applies, as the first stage of llama.cpp's
sampler chain (``Llama.generate(logits_processor=...)``).

llama-cpp-python hands a custom stage the candidates in token-id order, before penalties,
top-k, top-p and temperature, so sampling only ever chooses among allowed tokens. The token
loop (:meth:`.engine.Engine._loop`) advances the guide over each token it receives.
"""

from __future__ import annotations

import threading
from typing import Any

from llmux.structured import Guide, Vocabulary
from llmux.types import ChatRequest

_LOCK = threading.Lock()


def guide_for(engine: Any, request: ChatRequest, fmt: Any, *, thinking: bool) -> Guide | None:
    """The request's guide, or None when nothing is constrained (validates: may raise
    InvalidRequest before anything streams)."""
    forced = bool(request.tools) and (
        request.tool_choice == "required" or isinstance(request.tool_choice, dict))
    if request.response_format is None and not forced:
        return None
    return vocabulary(engine, fmt).guide(request, thinking=thinking)


def vocabulary(engine: Any, fmt: Any) -> Vocabulary:
    """The model's llguidance vocabulary, built once per loaded model; its end tokens are
    the model's EOS/EOT and the chat format's single-token stop sequences."""
    with _LOCK:
        cached = getattr(engine, "vocabulary", None)
        if cached is not None:
            return cached
        import llama_cpp

        vocab = engine.vocab
        ends = {llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab)}
        for stop in fmt.stop_sequences:
            ids = engine.llama.tokenize(stop.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                ends.add(ids[0])
        ends.discard(-1)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        engine.vocabulary = Vocabulary(_lltokenizer(engine, n_vocab, sorted(ends)), n_vocab)
        return engine.vocabulary


def _lltokenizer(engine: Any, n_vocab: int, ends: list[int]) -> Any:
    """``llguidance.llamacpp.lltokenizer_from_vocab`` without its deprecated llama.cpp call:
    control tokens, and user-defined ones that look like tags, are special (0xFF prefix)."""
    import ctypes

    import llama_cpp
    from llguidance import LLTokenizer

    vocab = engine.vocab
    control, user = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL, llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    tokens = []
    for token in range(n_vocab):
        piece = engine._piece(token, True)
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if attr & control or (attr & user and piece.startswith(b"<") and piece.endswith(b">")):
            piece = b"\xff" + piece
        tokens.append(piece)
    tokenize = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    return LLTokenizer.from_llamacpp(tokens=tokens, vocab_ptr=vocab, tokenize_fptr=tokenize,
                                     eos_token=ends, slices=None)


class GuideStage:
    """A llama-cpp-python logits processor: the logits outside the guide's mask -> -inf."""

    def __init__(self, guide: Guide) -> None:
        self.guide = guide

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        allowed = self.guide.allowed()
        n = min(len(scores), len(allowed))
        scores[:n][~allowed[:n]] = float("-inf")
        scores[n:] = float("-inf")
        return scores
