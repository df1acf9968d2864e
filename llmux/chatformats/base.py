"""What every chat format shares: the base classes, the tag scanner and the plain format.

A :class:`ChatFormat` knows one model family's conventions on both sides of the model:
``template_kwargs`` and ``prepare_messages`` shape what goes into the model's own chat
template, and ``parser`` returns a :class:`StreamParser` that turns the generated text back
into the core's chat events. Everything here is pure Python so that the core can use it
without torch.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Mapping, Sequence

from ..types import (
    Behaviour,
    ChatEvent,
    ContentDelta,
    Finish,
    ReasoningDelta,
    ToolCallDelta,
)
from .messages import apply_prefix, copy_messages

log = logging.getLogger(__name__)

Tools = Sequence[Mapping[str, Any]] | None


class ChatFormat:
    """One model family's chat conventions. Subclasses set :attr:`name` and override
    :meth:`parser`; the defaults pass messages through unchanged."""

    name: str = ""
    #: Strings the runtime should stop generation on (besides the model's EOS token).
    stop_sequences: tuple[str, ...] = ()
    #: Whether the parser needs special tokens kept in the decoded text
    #: (``skip_special_tokens=False``); gpt-oss harmony markers are special tokens.
    needs_special_tokens: bool = False

    def template_kwargs(self, behaviour: Behaviour) -> dict[str, Any]:
        """Extra keyword arguments for the model's chat template."""
        return {}

    def prepare_messages(
        self, messages: Sequence[Mapping[str, Any]], behaviour: Behaviour
    ) -> list[dict[str, Any]]:
        """OpenAI messages -> the messages the template expects. Never mutates the input."""
        return apply_prefix(copy_messages(messages), behaviour.system_prompt_prefix)

    def parser(self, tools: Tools = None, *, thinking: bool = True) -> "StreamParser":
        """A fresh parser for one generation. ``thinking``: the output starts inside the
        reasoning (the generation prompt pre-opened it)."""
        raise NotImplementedError

    #: The tags :meth:`grammar` writes that may be special tokens: the runtime says which
    #: are (``specials``), so a grammar asks for the token the model was trained on.
    grammar_tags: tuple[str, ...] = ()

    def grammar(self, target: Any, *, thinking: bool = True,
                specials: frozenset[str] = frozenset()) -> str:
        """The whole output as a grammar in llguidance's Lark dialect that admits only
        answers in ``target`` (a :class:`llmux.structured.Target`) in this family's syntax,
        the reasoning left free. The runtime ends generation on its end-of-turn tokens,
        which the grammar does not write. Raise ``ValueError`` when the format cannot say it.
        """
        raise ValueError(f"chat format {self.name!r} has no syntax for structured outputs")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class StreamParser:
    """Turns generated text, fed in chunks of any size, into chat events.

    ``feed`` returns the events that the text so far decides; text that might be the start
    of a tag is held back until the next chunk (or :meth:`close`) settles it. ``close``
    flushes everything and ends with exactly one :class:`Finish`.
    """

    stop_sequences: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._buf = ""
        self._out: list[ChatEvent] = []
        self._calls = 0  # tool calls started
        self._problems: list[str] = []
        self._closed = False

    # ------------------------------------------------------------------ public API

    def feed(self, text: str) -> list[ChatEvent]:
        if self._closed:
            raise RuntimeError("feed() after close()")
        if text:
            self._buf += text
            self._run(final=False)
        return self._take()

    def close(self, reason: str = "stop") -> list[ChatEvent]:
        if self._closed:
            raise RuntimeError("close() called twice")
        self._closed = True
        self._run(final=True)
        self._end(reason)
        if self._calls and reason == "stop":
            reason = "tool_calls"
        detail = "; ".join(self._problems) or None
        if detail:
            log.warning("%s output was malformed: %s", type(self).__name__, detail)
        self._out.append(Finish(reason, detail))
        return self._take()

    # ------------------------------------------------------------------ for subclasses

    def _run(self, *, final: bool) -> None:
        """Consume ``self._buf`` as far as it is decided (everything when ``final``)."""
        raise NotImplementedError

    def _end(self, reason: str) -> None:
        """Called once after the final ``_run``: finish whatever is still open."""

    def _problem(self, text: str) -> None:
        if text not in self._problems and len(self._problems) < 8:
            self._problems.append(text)

    def _emit(self, event: ChatEvent) -> None:
        """Append ``event``, merging it into the previous one of the same kind."""
        out = self._out
        if isinstance(event, (ContentDelta, ReasoningDelta)) and not event.text:
            return
        if out:
            last = out[-1]
            if type(last) is type(event):
                if isinstance(event, ContentDelta):
                    out[-1] = ContentDelta(last.text + event.text)
                    return
                if isinstance(event, ReasoningDelta):
                    out[-1] = ReasoningDelta(last.text + event.text)
                    return
                if isinstance(event, ToolCallDelta) and last.index == event.index:
                    if event.id is None and event.name is None:
                        out[-1] = ToolCallDelta(
                            last.index, last.id, last.name, last.arguments + event.arguments
                        )
                        return
        out.append(event)

    def _new_call(self, name: str) -> int:
        index = self._calls
        self._calls += 1
        self._emit(ToolCallDelta(index, new_call_id(), name))
        return index

    def _take(self) -> list[ChatEvent]:
        out, self._out = self._out, []
        return out


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class TagScanner:
    """Finds the first of a set of tags in a buffer, holding back a possible partial tag.

    Every tag must start with ``<`` and contain no other ``<``, so only the text from the
    last ``<`` can be an unfinished tag: each call costs O(len(buffer)).
    """

    __slots__ = ("tags", "_prefixes", "_longest")

    def __init__(self, *tags: str) -> None:
        for tag in tags:
            if not tag.startswith("<") or "<" in tag[1:]:
                raise ValueError(f"tag {tag!r} must start with '<' and contain no other '<'")
        self.tags = tags
        self._prefixes = {tag[:i] for tag in tags for i in range(1, len(tag))}
        self._longest = max(len(tag) for tag in tags)

    def find(self, buf: str, final: bool = False) -> tuple[int, str | None]:
        """``(i, tag)`` for the first tag at ``buf[i]``; else ``(i, None)`` where
        ``buf[:i]`` is surely text and ``buf[i:]`` might begin a tag (empty when final)."""
        best, found = -1, None
        for tag in self.tags:
            i = buf.find(tag, 0, best + len(tag) - 1 if best >= 0 else len(buf))
            if i >= 0 and (best < 0 or i < best):
                best, found = i, tag
        if found is not None:
            return best, found
        if final:
            return len(buf), None
        i = buf.rfind("<", max(0, len(buf) - self._longest))
        if i >= 0 and buf[i:] in self._prefixes:
            return i, None
        return len(buf), None


class PlainFormat(ChatFormat):
    """Everything the model generates is content: for models without special output."""

    name = "plain"

    def parser(self, tools: Tools = None, *, thinking: bool = True) -> StreamParser:
        return _PlainParser()

    def grammar(self, target: Any, *, thinking: bool = True,
                specials: frozenset[str] = frozenset()) -> str:
        if target.answer is None:
            raise ValueError("chat format 'plain' has no tool-call syntax; a call cannot be "
                             "required of this model")
        return f"start: {target.answer}\n"


class _PlainParser(StreamParser):
    def _run(self, *, final: bool) -> None:
        if self._buf:
            self._emit(ContentDelta(self._buf))
            self._buf = ""
