"""Chat formats by name: the built-ins, and those plugins register through the
``chat_formats`` hook."""

from __future__ import annotations

from typing import Any, Iterable

from .base import ChatFormat


class UnknownChatFormat(KeyError):
    """No chat format has this name; the message lists the known ones."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        self.message = (
            f"unknown chat format {name!r} (known: {', '.join(sorted(known)) or 'none'}); "
            "a plugin can add one through the chat_formats hook"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ChatFormats:
    """A read-only registry of chat formats by name."""

    def __init__(self) -> None:
        self._formats: dict[str, ChatFormat] = {}

    @classmethod
    def from_plugin_manager(cls, pm: Any) -> "ChatFormats":
        """Collect every plugin's ``chat_formats(register)`` registrations."""
        registry = cls()
        pm.hook.chat_formats(register=registry.register)
        return registry

    def register(self, name: str, chat_format: ChatFormat) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a chat format name must be a non-empty string, not {name!r}")
        if not isinstance(chat_format, ChatFormat):
            raise TypeError(
                f"chat format {name!r} must be a llmux.chatformats.ChatFormat instance, "
                f"not {type(chat_format).__name__}"
            )
        if name in self._formats:
            raise ValueError(
                f"chat format {name!r} is registered twice ({self._formats[name]!r} and "
                f"{chat_format!r}); give one of them another name"
            )
        self._formats[name] = chat_format

    def get(self, name: str) -> ChatFormat:
        try:
            return self._formats[name]
        except KeyError:
            raise UnknownChatFormat(name, self._formats) from None

    @property
    def names(self) -> list[str]:
        return sorted(self._formats)

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def __len__(self) -> int:
        return len(self._formats)
