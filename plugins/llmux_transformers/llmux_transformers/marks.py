"""Where a prompt's state is worth a snapshot besides its end (:mod:`.prefix_cache`): the
message boundaries the next request is likely to share while diverging after them.

- The end of the conversation before the generation prompt: Qwen3.5's template renders an
  earlier assistant turn as ``<|im_start|>assistant\\n`` + its answer, with its reasoning
  dropped, while the generation prompt is ``<|im_start|>assistant\\n<think>\\n``; the next
  turn's prompt leaves this one's right after the last message, so the state at the end of
  the prompt is never its prefix, and this one is.
- The end of the leading system (tools) block: another conversation with the same system
  prompt and tools. A template that will not render a system message alone (Qwen3.5 wants a
  user query) renders it with an empty user message, and the mark is where that rendering
  and the prompt part (inside the user message's header, still shared by any conversation
  with this system block).

Each mark comes from the model's own template, rendered without the generation prompt, and
counts only where its tokens are the prompt's (a template that renders differently there, or
tokens that merge across the boundary, give no mark). A mark is only a place to snapshot:
the snapshot is keyed by the exact tokens before it, so a wrong guess costs memory, never
correctness.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)

LEADING = ("system", "developer")


def prompt_marks(tokenizer: Any, messages: list, tools: Any, kwargs: dict,
                 ids: list[int]) -> list[int]:
    """The positions in ``ids`` (the rendered prompt) after the leading system block and
    after the last message, where found, ascending. Cheap on long prompts: the conversation
    end is found by tokenizing only the generation prompt, the system block's tokens are
    remembered (it repeats, turn after turn)."""
    marks = set()
    end = _conversation_end(tokenizer, messages, tools, kwargs, ids)
    if end:
        marks.add(end)
    if len(messages) > 1 and _role(messages[0]) in LEADING:
        system = _tokens(tokenizer, _render(tokenizer, messages[:1], tools, kwargs))
        if system and len(system) < len(ids) and ids[:len(system)] == list(system):
            marks.add(len(system))
        else:
            probe = [messages[0], {"role": "user", "content": ""}]
            marks.add(_common(_tokens(tokenizer, _render(tokenizer, probe, tools, kwargs)), ids))
    marks.discard(0)
    return sorted(marks)


def _conversation_end(tokenizer: Any, messages: list, tools: Any, kwargs: dict,
                      ids: list[int]) -> int | None:
    """Where the generation prompt starts: the prompt's text is the conversation's plus the
    generation prompt, whose tokens are the prompt's last ones."""
    base = _render(tokenizer, messages, tools, kwargs)
    full = _render(tokenizer, messages, tools, kwargs, generation_prompt=True)
    if base is None or full is None or not full.startswith(base) or len(full) == len(base):
        return None
    tail = tokenizer(full[len(base):], add_special_tokens=False)["input_ids"]
    if 0 < len(tail) < len(ids) and ids[-len(tail):] == tail:
        return len(ids) - len(tail)
    return None


def _common(a: tuple[int, ...] | None, b: list[int]) -> int:
    n = 0
    for x, y in zip(a or (), b):
        if x != y:
            break
        n += 1
    return n


def _role(message: Any) -> str | None:
    return message.get("role") if isinstance(message, dict) else getattr(message, "role", None)


def _render(tokenizer: Any, messages: list, tools: Any, kwargs: dict,
            generation_prompt: bool = False) -> str | None:
    try:
        return tokenizer.apply_chat_template(
            messages, tools=list(tools) if tools else None, tokenize=False,
            add_generation_prompt=generation_prompt, **kwargs,
        )
    except Exception as exc:  # a template that needs more (e.g. a user message): no mark
        log.debug("no prompt mark: %s", exc)
        return None


#: Per tokenizer (gone with it), the tokens of the last few system blocks.
_SEEN: "weakref.WeakKeyDictionary[Any, OrderedDict[str, tuple[int, ...]]]" = \
    weakref.WeakKeyDictionary()
_SEEN_PER_TOKENIZER = 8
_SEEN_LOCK = threading.Lock()


def _tokens(tokenizer: Any, text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    with _SEEN_LOCK:
        seen = _SEEN.setdefault(tokenizer, OrderedDict())
        if text in seen:
            seen.move_to_end(text)
            return seen[text]
    ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    with _SEEN_LOCK:
        seen[text] = ids
        while len(seen) > _SEEN_PER_TOKENIZER:
            seen.popitem(last=False)
    return ids
