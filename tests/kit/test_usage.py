"""The usage rule: every sampled token counts, the end-of-sequence token that ended the
answer included (as vLLM counts), and ``length`` only when the budget ran out first."""

from __future__ import annotations

from llmux import Usage
from llmux.kit import TokenCount

EOS = 0


def generate(tokens: list[int], max_tokens: int | None) -> tuple[Usage, str]:
    """A runtime's loop over sampled tokens, counting by the kit's rule."""
    count = TokenCount(prompt=7, limit=max_tokens)
    ended = False
    for token in tokens:
        spent = count.add()
        if token == EOS:
            ended = True
            break
        if spent:
            break
    return count.usage(), count.reason(ended=ended)


def test_the_end_token_counts():
    assert generate([5, 6, EOS], None) == (Usage(7, 3), "stop")


def test_an_answer_cut_at_max_tokens_is_length():
    assert generate([5, 6, 7, 8, EOS], 3) == (Usage(7, 3), "length")


def test_an_answer_that_ends_exactly_at_max_tokens_is_stop():
    assert generate([5, 6, EOS], 3) == (Usage(7, 3), "stop")


def test_cancelled_counts_what_was_sampled():
    count = TokenCount(prompt=4, limit=10)
    count.add(2)
    assert count.reason(ended=False, cancelled=True) == "cancelled"
    assert count.usage() == Usage(4, 2) and count.usage().total_tokens == 6
