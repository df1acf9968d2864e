"""The prompt, rendered with the chat template embedded in the GGUF (``tokenizer.chat_template``).

``create_chat_completion`` takes no template kwargs, so llmux renders the template itself,
the way transformers' ``apply_chat_template`` and llama.cpp's server do, with the runtime
kit's :class:`llmux.kit.ChatTemplate` (a sandboxed Jinja environment with
``raise_exception``, ``strftime_now`` and a ``tojson`` that keeps non-ASCII text). Messages
come from the chat format's ``prepare_messages``; image parts become the multimodal marker,
which mtmd replaces with the image's embeddings (and its own ``<|vision_start|>``/
``<|vision_end|>`` for Qwen models).

:func:`evaluate` runs a text prompt through the model in ``n_batch``-token slices, checking
the cancellation between them, so a long prompt stops soon after the client has gone.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from llmux import InvalidRequest
from llmux.kit import ChatTemplate  # noqa: F401  (the engine's, from here)


def evaluate(llama: Any, tokens: list[int], cancel: Any) -> int | None:
    """Evaluate ``tokens`` into ``llama``'s context, reusing the cached prefix as
    ``Llama.generate`` does, one ``n_batch`` slice at a time. Returns how many of ``tokens``
    came from the cache (not evaluated again), or None once ``cancel`` is set (what was
    evaluated stays consistent: a later prompt reuses it as a prefix).

    ``Llama.generate(tokens)`` then finds the whole prompt cached and samples at once.
    """
    if not tokens:
        return None if cancel.cancelled else 0
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
    if reuse > 0 and llama._ctx.kv_cache_seq_rm(-1, reuse, -1):
        llama.n_tokens = reuse
        llama._requires_eval = True
    else:  # recurrent state cannot be cut: start over, as generate would
        llama.reset()
        reuse = 0
    step = max(1, llama.n_batch)
    for start in range(reuse, len(tokens), step):
        if cancel.cancelled:
            return None
        llama.eval(tokens[start:start + step])
    return None if cancel.cancelled else reuse


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
