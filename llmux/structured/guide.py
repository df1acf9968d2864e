"""The runtime's side: one loaded model's vocabulary, and the guide of one generation.

A runtime builds a :class:`Vocabulary` once per loaded model from the engine's tokenizer
(``llguidance.hf.from_tokenizer``, ``llguidance.llamacpp.lltokenizer_from_vocab``) with the
model's end-of-turn tokens as its end tokens; per request, :meth:`Vocabulary.guide` returns a
:class:`Guide` (or None when nothing is constrained). In the token loop: ``allowed()`` before
sampling (mask the logits to it), ``consume(token)`` after; ``done`` once the answer is
complete and only an end token may follow.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import InvalidRequest
from .schema import SchemaError
from .target import target_for

log = logging.getLogger("llmux.structured")


class Vocabulary:
    """An ``llguidance.LLTokenizer`` and the logits width of the model it belongs to."""

    def __init__(self, tokenizer: Any, n_vocab: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.n_vocab = max(n_vocab or 0, tokenizer.vocab_size)
        self._specials: dict[tuple[str, ...], frozenset[str]] = {}

    def specials(self, tags: tuple[str, ...]) -> frozenset[str]:
        """Which of ``tags`` are single special tokens in this vocabulary."""
        found = self._specials.get(tags)
        if found is None:
            tok = self.tokenizer
            found = frozenset(
                tag for tag in tags
                if len(ids := tok.tokenize_str(tag, parse_special=True)) == 1
                and tok.is_special_token(ids[0])
            )
            self._specials[tags] = found
        return found

    def guide(self, request: Any, *, thinking: bool = True) -> "Guide | None":
        """The guide of ``request`` (a ChatRequest), None when nothing is constrained.
        A target the model's chat format cannot express is an :class:`InvalidRequest`."""
        target = target_for(request)
        if target is None:
            return None
        fmt = request.chat_format
        if fmt is None:
            from ..chatformats import PlainFormat

            fmt = PlainFormat()
        param = "response_format" if target.answer is not None else "tool_choice"
        try:
            text = fmt.grammar(target, thinking=thinking, specials=self.specials(fmt.grammar_tags))
        except (ValueError, SchemaError) as exc:
            raise InvalidRequest(str(exc), param=param) from None
        return Guide(self, text, param)


class Guide:
    """One generation's constraint over the tokens the model generates."""

    def __init__(self, vocabulary: Vocabulary, grammar: str, param: str = "response_format"):
        import numpy as np
        from llguidance import LLMatcher

        started = time.perf_counter()
        self.grammar = grammar
        self.matcher = LLMatcher(vocabulary.tokenizer, LLMatcher.grammar_from_lark(grammar),
                                 log_level=0)
        error = self.matcher.get_error()
        if error:
            raise InvalidRequest(f"the constraint cannot be compiled: {error}", param=param)
        self.compile_s = time.perf_counter() - started
        self.n_vocab = vocabulary.n_vocab
        self._words = np.zeros((vocabulary.n_vocab + 31) // 32, dtype=np.int32)
        self.failed = False

    @property
    def done(self) -> bool:
        """The answer is complete: only an end token may follow."""
        return self.matcher.is_stopped()

    def consume(self, token: int) -> bool:
        """Advance over a generated token; False (and logged once) if it broke the grammar,
        which only a runtime that sampled outside the mask can cause."""
        if self.failed:
            return False
        if not self.matcher.consume_token(int(token)):
            self.failed = True
            log.error("a token outside the constraint was generated: %s",
                      self.matcher.get_error())
            return False
        return True

    def bitmask(self) -> Any:
        """The next token's mask: int32 words, bit ``i % 32`` of word ``i // 32`` set when
        token ``i`` is allowed."""
        words = self._words
        self.matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
        return words

    def allowed(self) -> Any:
        """The next token's mask as a numpy bool array of ``n_vocab`` entries."""
        import numpy as np

        bits = np.unpackbits(self.bitmask().view(np.uint8), bitorder="little")
        return bits[: self.n_vocab].view(np.bool_)
