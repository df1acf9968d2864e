"""Splitting input into the pieces one ``generate()`` call synthesises well.

Chatterbox is trained on utterances of a sentence or a few; long input drifts, repeats or
stops early, and one bound on speech tokens per call would cut it. So the input is split
into sentences, and neighbouring sentences are packed into chunks of at most ``max_chars``
characters (fewer calls, more natural prosody). A sentence longer than that is split at
clause punctuation, then between words. For the multilingual model, only neighbours of one
language share a chunk (:func:`split_by_language`, languages from :mod:`.language`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import groupby

MAX_CHUNK_CHARS = 250

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"')\]»”’])\s+|(?<=[。！？；])")
_CJK_END = ("。", "！", "？", "；", "，", "、", "：")
_CLAUSE_END = re.compile(r"(?<=[,;:，、；：])\s*")


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, whitespace normalised; empty for blank input."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def split_sentences(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """The chunks to synthesise, in order; empty for blank input."""
    return _pack([p for s in sentences(text) for p in _split_long(s, max_chars)], max_chars)


def split_by_language(text: str, languages: Callable[[Sequence[str]], list[str]],
                      max_chars: int = MAX_CHUNK_CHARS) -> list[tuple[str, str]]:
    """``(language, chunk)`` in order: ``languages`` names one language per sentence, and
    neighbouring sentences are packed as by :func:`split_sentences` while their language
    stays the same (a long sentence's pieces keep the sentence's language)."""
    found = sentences(text)
    out: list[tuple[str, str]] = []
    for language, group in groupby(zip(languages(found), found), key=lambda pair: pair[0]):
        pieces = [p for _, s in group for p in _split_long(s, max_chars)]
        out.extend((language, chunk) for chunk in _pack(pieces, max_chars))
    return out


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Join neighbours while they fit (no space after CJK punctuation)."""
    chunks: list[str] = []
    for piece in pieces:
        glue = "" if chunks and chunks[-1].endswith(_CJK_END) else " "
        if chunks and len(chunks[-1]) + len(glue) + len(piece) <= max_chars:
            chunks[-1] += glue + piece
        else:
            chunks.append(piece)
    return chunks


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    for clause in filter(None, (c.strip() for c in _CLAUSE_END.split(sentence))):
        while len(clause) > max_chars:
            cut = clause.rfind(" ", 0, max_chars + 1)
            cut = cut if cut > 0 else max_chars
            out.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        if clause:
            out.append(clause)
    # Re-join clauses that fit together, so a long sentence is not cut at every comma.
    return _pack(out, max_chars)
