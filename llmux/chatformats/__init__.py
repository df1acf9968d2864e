"""Chat formats: how a model family's output maps to OpenAI fields, and how OpenAI history
maps to what its chat template reads. Pure Python, shared by every runtime.

A physical model names its format with ``chat_format`` in models.yaml; the core resolves it
through :class:`ChatFormats` (built-ins plus what plugins register with the
``chat_formats`` hook) and hands it to the runtime as ``ChatRequest.chat_format``.
"""

from __future__ import annotations

from typing import Callable

from .. import hookimpl
from .base import ChatFormat, PlainFormat, StreamParser, TagScanner
from .gpt_oss import GptOssFormat, HarmonyParser
from .qwen3_5 import Qwen35Format, Qwen35Parser
from .registry import ChatFormats, UnknownChatFormat


def _builtins() -> dict[str, ChatFormat]:
    return {"qwen3_5": Qwen35Format(), "gpt_oss": GptOssFormat(), "plain": PlainFormat()}


def get_format(name: str) -> ChatFormat:
    """A built-in format by name (formats from plugins: use :class:`ChatFormats`)."""
    formats = _builtins()
    try:
        return formats[name]
    except KeyError:
        raise UnknownChatFormat(name, formats) from None


@hookimpl
def chat_formats(register: Callable[[str, ChatFormat], None]) -> None:
    for name, chat_format in _builtins().items():
        register(name, chat_format)


__all__ = [
    "ChatFormat", "ChatFormats", "GptOssFormat", "HarmonyParser",
    "PlainFormat", "Qwen35Format", "Qwen35Parser", "StreamParser", "TagScanner",
    "UnknownChatFormat", "get_format",
]
