"""Chat templates (the Jinja source in a model's ``tokenizer_config.json`` or GGUF), rendered
the way transformers' ``apply_chat_template`` renders them.

:func:`environment` is set up as transformers sets up its own: an
``ImmutableSandboxedEnvironment`` (a template can read what it is given but cannot call
``list.append``, reach ``__class__`` or any attribute starting with ``_``), ``trim_blocks``
and ``lstrip_blocks``, the ``loopcontrols`` extension (``{% break %}``), ``{% generation %}``
blocks (rendered as their body), a ``tojson`` filter that keeps non-ASCII text, and the
``raise_exception`` and ``strftime_now`` globals templates call. jinja2 is imported only
when a template is built; a runtime that uses this depends on ``jinja2`` itself.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping, Sequence

from ..errors import InvalidRequest


def environment() -> Any:
    """A new sandboxed Jinja environment, configured as transformers' chat templates'."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.loopcontrols", _generation_extension()],
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


class ChatTemplate:
    """One compiled chat template. A syntax error raises ``jinja2.TemplateSyntaxError`` here
    (at load); a template that refuses the messages (its ``raise_exception``) or tries
    something the sandbox forbids is an :class:`InvalidRequest` from :meth:`render`."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2

        self._error = jinja2.TemplateError
        self.template = environment().from_string(source)
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: Sequence[Mapping[str, Any]],
               tools: Sequence[Mapping[str, Any]] | None = None, *,
               add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text; ``kwargs`` are the chat format's ``template_kwargs``."""
        try:
            return self.template.render(
                messages=messages, tools=list(tools) if tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token, eos_token=self.eos_token, **kwargs,
            )
        except self._error as exc:
            raise InvalidRequest(f"the chat template rejected the messages: {exc}",
                                 param="messages") from exc


def raise_exception(message: str) -> None:
    import jinja2

    raise jinja2.TemplateError(message)


def strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None,
           separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=None)
def _generation_extension() -> type:
    """``{% generation %}...{% endgeneration %}`` (transformers marks the assistant's tokens
    with it for training masks): rendered as its body."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return Generation
