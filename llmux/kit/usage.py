"""Token accounting: one rule for ``Usage`` that every runtime follows.

- ``prompt_tokens``: the prompt as the model evaluated it, image tokens included.
- ``completion_tokens``: every token the model sampled for this answer: reasoning, tool-call
  and content tokens, tokens whose text a stop string cut off, **and the end-of-sequence
  token that ended the answer** (``<|im_end|>``, ``<|return|>``, ...). That is vLLM's count
  (its output token ids keep the EOS, and ``max_tokens`` counts it), and what the model
  really generated: an answer that ends by itself at ``max_tokens`` has used them all.
- A cancelled answer, or one cut at ``max_tokens``, counts what was sampled before it ended.
- ``cached_tokens``: the prompt tokens the runtime did not evaluate because it reused the
  state of the same prefix (a previous request's KV cache); never more than the prompt.

:class:`TokenCount` keeps the counts and decides ``length`` against the budget.
"""

from __future__ import annotations

from ..types import Usage


class TokenCount:
    """One answer's counts. Call :meth:`add` for every sampled token, the end-of-sequence
    token too, before deciding whether it ends the answer."""

    __slots__ = ("prompt", "completion", "limit", "cached")

    def __init__(self, prompt: int = 0, limit: int | None = None) -> None:
        self.prompt = prompt  # tokens evaluated for the prompt
        self.completion = 0  # tokens sampled so far
        self.limit = limit  # the most tokens this answer may sample (None: no limit)
        self.cached = 0  # prompt tokens served from a reused state of the same prefix

    def add(self, n: int = 1) -> bool:
        """Count ``n`` sampled tokens; True once the budget (``limit``) is spent."""
        self.completion += n
        return self.spent

    @property
    def spent(self) -> bool:
        return self.limit is not None and self.completion >= self.limit

    def reason(self, *, ended: bool, cancelled: bool = False) -> str:
        """The finish reason: ``cancelled``; ``stop`` when the answer ``ended`` (its end
        token or a stop string); ``length`` when the budget ran out first; else ``stop``."""
        if cancelled:
            return "cancelled"
        if not ended and self.spent:
            return "length"
        return "stop"

    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt, completion_tokens=self.completion,
                     cached_tokens=min(self.cached, self.prompt))
