"""A deterministic answer that follows a constraint, for runtimes without a model (echo).

It walks the same compiled grammar byte by byte, preferring whatever closes the current
value, so the answer is short, always ends, and is valid by construction.
"""

from __future__ import annotations

import functools

#: End first, then what closes a value, then a separator, then digits and letters.
_PREFERENCE = [256] + list(b'"}],:0123456789tfnabcdeghijklmopqrsuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')
MAX_BYTES = 16384


class _Bytes:
    """A vocabulary of the 256 bytes and one end token (what llguidance's wrapper reads)."""

    eos_token_id = 256
    bos_token_id = None
    special_token_ids = [256]
    tokens = [bytes([i]) for i in range(256)] + [b"\xff<eos>"]

    def __call__(self, text):
        return list(text if isinstance(text, bytes) else text.encode())


@functools.lru_cache(maxsize=1)
def _vocabulary():
    from llguidance import LLTokenizer, TokenizerWrapper

    from .guide import Vocabulary

    return Vocabulary(LLTokenizer(TokenizerWrapper(_Bytes())))


def example(lark_expression: str) -> str:
    """A short text matching ``lark_expression`` (e.g. a ``%json{...}`` from
    :func:`llmux.structured.schema.json_lark`)."""
    from .guide import Guide

    guide = Guide(_vocabulary(), f"start: {lark_expression}\n")
    out = bytearray()
    for _ in range(MAX_BYTES):
        allowed = guide.allowed()
        token = next((t for t in _PREFERENCE if allowed[t]), None)
        if token is None:
            token = int(allowed.nonzero()[0][0])
        if token == 256:
            return out.decode("utf-8", "replace")
        out.append(token)
        guide.consume(token)
    raise ValueError("no short answer follows this constraint")


def answer_for(request) -> str:
    """The shortest JSON content a ChatRequest's ``response_format`` allows."""
    from .target import target_for

    return example(target_for(request).answer)


def fitting(arguments: dict, tool) -> str:
    """``arguments`` as JSON when they fit ``tool``'s schema, else the shortest that do."""
    import json

    import jsonschema

    from .target import call_of

    try:
        jsonschema.validate(arguments, tool["function"].get("parameters") or {})
        return json.dumps(arguments)
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return example(call_of(tool).arguments_lark())
