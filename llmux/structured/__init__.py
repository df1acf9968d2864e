"""Structured outputs and enforced tool choice by constrained decoding.

One translation for every runtime: :mod:`.schema` turns a JSON Schema into the engine's
grammar (llguidance) and refuses what it cannot enforce; :mod:`.target` says what a request
constrains; the chat format writes the family's syntax around it
(:meth:`llmux.chatformats.ChatFormat.grammar`); :mod:`.guide` applies it token by token in
a runtime. llguidance is imported on first use, never at ``import llmux``.
See docs/structured-outputs.md.
"""

from .guide import Guide, Vocabulary
from .request import check_calls, parse_response_format
from .schema import SchemaError, json_lark
from .target import Call, Target, target_for

__all__ = [
    "Call", "Guide", "SchemaError", "Target", "Vocabulary", "check_calls", "json_lark",
    "parse_response_format", "target_for",
]
