"""The prompt, rendered with the chat template embedded in the GGUF (``tokenizer.chat_template``).

``create_chat_completion`` takes no template kwargs, so llmux renders the template itself,
the way transformers' ``apply_chat_template`` and llama.cpp's server do, with the runtime
kit's :class:`llmux.kit.ChatTemplate` (a sandboxed Jinja environment with
``raise_exception``, ``strftime_now`` and a ``tojson`` that keeps non-ASCII text). Messages
come from the chat format's ``prepare_messages``; image parts become the multimodal marker,
which mtmd replaces with the image's embeddings (and its own ``<|vision_start|>``/
``<|vision_end|>`` for Qwen models).

:func:`evaluate` runs a text prompt through the model in ``n_batch``-token slices, checking
the cancellation between them, so a long prompt stops soon after the client has gone; it
starts from the longest reusable prefix (the context's own, or a saved checkpoint of
:mod:`.checkpoints`) and saves checkpoints at the positions :func:`boundaries` finds.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from llmux import ChatRequest, InvalidRequest
from llmux.kit import ChatTemplate  # noqa: F401  (the engine's, from here)


def evaluate(llama: Any, tokens: list[int], cancel: Any, store: Any = None,
             marks: Sequence[int] = (), cuttable: bool = False) -> int | None:
    """Evaluate ``tokens`` into ``llama``'s context, one ``n_batch`` slice at a time,
    reusing the longer of: the prefix still in the context (cut back as ``Llama.generate``
    does; hybrid/recurrent state cannot be cut, only continued) and the longest checkpoint
    in ``store`` (a :class:`.checkpoints.Store`) that is a prefix of ``tokens``. Returns how
    many of ``tokens`` were reused (not evaluated again), or None once ``cancel`` is set
    (what was evaluated stays consistent: a later prompt reuses it as a prefix).

    With a store, a model whose state cannot be cut back (recurrent, hybrid) saves it at
    each of ``marks`` passed and at the prompt's last token but one (a restored prompt
    evaluates at least one token, for its logits): each such stop costs the prefill one
    more forward. A ``cuttable`` model (attention only) splits nothing: it restores the
    saved state closest to ``tokens`` and cuts it back to their common prefix; its state is
    saved after the answer (:func:`save_answer`), off the path to the first token.
    ``Llama.generate(tokens)`` then finds the whole prompt cached and samples at once.
    """
    if not tokens:
        return None if cancel.cancelled else 0
    from .checkpoints import capture

    cached = llama.n_tokens
    prefix = 0
    for a, b in zip(llama.input_ids[:cached].tolist(), tokens):
        if a != b:
            break
        prefix += 1
    if prefix == len(tokens) == cached and not llama._requires_eval:
        return None if cancel.cancelled else prefix
    # A fully cached prompt is cut by a token, whose evaluation brings the logits back.
    reuse = prefix - 1 if prefix == len(tokens) else prefix
    if cuttable:
        reuse = _resume_cut(llama, tokens, reuse, store)
    else:
        reuse = _resume(llama, tokens, reuse, store)
    stops = sorted({m for m in marks if 0 < m < len(tokens)} | {len(tokens) - 1}
                   if store is not None and not cuttable else ())
    step = max(1, llama.n_batch)
    pos = reuse
    for stop in [*stops, len(tokens)]:
        if stop < pos:
            continue
        while pos < stop:
            if cancel.cancelled:
                return None
            end = min(pos + step, stop)
            llama.eval(tokens[pos:end])
            pos = end
        if stop < len(tokens) and stop > 0 and tokens[:stop] not in store:
            store.put(tokens[:stop], capture(llama))
    return None if cancel.cancelled else reuse


def _resume_cut(llama: Any, tokens: list[int], reuse: int, store: Any) -> int:
    """A cuttable context at the longest reusable prefix of ``tokens``: its own, or a saved
    state restored and cut back to the prefix it shares with ``tokens``."""
    from .checkpoints import restore

    hit = store.closest(tokens, len(tokens) - 1) if store is not None else None
    if hit is not None and hit[0] > reuse:
        length, saved, data = hit
        if restore(llama, saved, data) and llama._ctx.kv_cache_seq_rm(-1, length, -1):
            llama.n_tokens = length
            llama._requires_eval = True
            return length
        store.discard(saved)
        llama.reset()
        return 0
    if reuse > 0 and (reuse == llama.n_tokens or llama._ctx.kv_cache_seq_rm(-1, reuse, -1)):
        llama.n_tokens = reuse
        llama._requires_eval = True
        return reuse
    llama.reset()
    return 0


def save_answer(llama: Any, store: Any) -> None:
    """Save a cuttable context's state after an answer (prompt and generated tokens): a
    later prompt sharing any prefix of it restores it and cuts it back."""
    from .checkpoints import capture

    n = llama.n_tokens
    if store is not None and n > 1:
        store.put(llama.input_ids[:n].tolist(), capture(llama))


def _resume(llama: Any, tokens: list[int], reuse: int, store: Any) -> int:
    """Put ``llama``'s context at the longest reusable prefix of ``tokens``: the ``reuse``
    tokens in the context, or a checkpoint; returns its length (0: evaluate all)."""
    from .checkpoints import restore

    hit = store.longest(tokens, len(tokens) - 1) if store is not None else None
    if hit is not None and hit[0] > reuse:
        if restore(llama, tokens[:hit[0]], hit[1]):
            return hit[0]
        store.discard(tokens[:hit[0]])  # refused: the context was cleared
        return 0
    if reuse > 0 and (reuse == llama.n_tokens or llama._ctx.kv_cache_seq_rm(-1, reuse, -1)):
        llama.n_tokens = reuse
        llama._requires_eval = True
        return reuse
    if hit is not None and restore(llama, tokens[:hit[0]], hit[1]):
        return hit[0]  # the context could not be cut back (recurrent state)
    if hit is not None:
        store.discard(tokens[:hit[0]])
    llama.reset()  # start over, as generate would
    return 0


def boundaries(render: Callable[..., str], tokenize: Callable[..., list[int]],
               messages: list[dict[str, Any]], prompt: str, tokens: list[int],
               system_min: int = 256) -> list[int]:
    """Where checkpoints pay off in ``tokens`` (``prompt`` tokenized): the end of the
    history (the prompt before its generation prompt: in thinking mode the next turn's
    prompt drops this turn's reasoning and diverges after it) and, when it holds
    ``system_min`` tokens or more, the end of the leading system/tools block (a new
    conversation with the same system prompt). ``render(messages, add_generation_prompt=...)``
    renders the prompt text, ``tokenize(text, bos)`` tokenizes it."""
    texts = []
    try:
        texts.append(render(messages, add_generation_prompt=False))
        if len(messages) > 1 and messages[0].get("role") == "system":
            # a user message nothing else starts with: the common prefix ends at its text
            probe = [messages[0], {"role": "user", "content": "\u2063"}]
            texts.append(render(probe, add_generation_prompt=False))
    except Exception:  # a template that refuses a shorter conversation: no marks from it
        pass
    marks = []
    for i, text in enumerate(texts):
        n = _position(tokenize, prompt, tokens, _common(text, prompt))
        if n and (i == 0 or n >= system_min):
            marks.append(n)
    return marks


def _position(tokenize: Callable[..., list[int]], prompt: str, tokens: list[int],
              chars: int) -> int:
    """How many of ``tokens`` the first ``chars`` characters of ``prompt`` make: the rest
    alone is tokenized (short) and must be the tokens' tail; else the head is tokenized."""
    tail = tokenize(prompt[chars:], False) if chars < len(prompt) else []
    n = len(tokens) - len(tail)
    if 0 <= n and tokens[n:] == tail:
        return n
    return _common(tokenize(prompt[:chars], True), tokens)


def _common(a: Sequence, b: Sequence) -> int:
    """The length of the common prefix of two strings or lists (binary search, C compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def image_urls(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``image_url`` URLs in message order; images outside user messages are refused
    (the Qwen3.5 template refuses them in system messages too)."""
    urls = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "image_url":
                if message.get("role") != "user":
                    raise InvalidRequest(
                        f"messages[{i}]: images are accepted in user messages only",
                        param="messages",
                    )
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, Mapping) else image
                if not isinstance(url, str):
                    raise InvalidRequest(f"messages[{i}]: image_url has no url",
                                         param="messages")
                urls.append(url)
    return urls


def with_markers(messages: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    """Image parts -> text parts holding ``marker`` (the messages are already copies)."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [
                {"type": "text", "text": marker}
                if isinstance(p, Mapping) and p.get("type") == "image_url" else p
                for p in content
            ]
    return messages


def tools_of(request: ChatRequest):
    """The tools the model may call: none with ``tool_choice: "none"``."""
    return None if request.tool_choice == "none" else request.tools


def chat_format(request: ChatRequest):
    if request.chat_format is not None:
        return request.chat_format
    from llmux.chatformats import PlainFormat

    return PlainFormat()
