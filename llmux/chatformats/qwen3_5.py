"""Qwen3.5: ChatML with a pre-opened ``<think>`` and Qwen3-Coder style XML tool calls.

The generation prompt ends in ``<|im_start|>assistant\\n<think>\\n`` (thinking) or
``<think>\\n\\n</think>\\n\\n`` (not), so the output is::

    reasoning\\n</think>\\n\\ncontent or calls<|im_end|>

and a call is ``<tool_call>\\n<function=NAME>\\n<parameter=P>\\nVALUE\\n</parameter>\\n
</function>\\n</tool_call>``. ``<tool_call>`` followed by ``<function=`` also ends the
reasoning (as in vLLM). Parameter values are typed by the tool's JSON schema.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..types import Behaviour, ContentDelta, ReasoningDelta, ToolCallDelta
from .base import ChatFormat, StreamParser, TagScanner, Tools
from .messages import apply_prefix, copy_messages, merge_leading_system, pop_reasoning
from .params import convert, tool_properties


class Qwen35Format(ChatFormat):
    name = "qwen3_5"
    stop_sequences = ("<|im_end|>",)

    def template_kwargs(self, behaviour: Behaviour) -> dict[str, Any]:
        # Qwen3.5 4B/9B think unless told not to.
        return {"enable_thinking": behaviour.thinking is not False}

    def prepare_messages(
        self, messages: Sequence[Mapping[str, Any]], behaviour: Behaviour
    ) -> list[dict[str, Any]]:
        out = copy_messages(messages)
        for m in out:
            if m.get("role") == "developer":  # the template knows no developer role
                m["role"] = "system"
            elif m.get("role") == "assistant":
                reasoning = pop_reasoning(m)
                if m.get("content") is None:
                    m["content"] = ""
                if reasoning:
                    m["reasoning_content"] = reasoning
        merge_leading_system(out, "system")
        return apply_prefix(out, behaviour.system_prompt_prefix)

    def parser(self, tools: Tools = None, *, thinking: bool = True) -> StreamParser:
        return Qwen35Parser(tools, thinking=thinking)

    grammar_tags = ("</think>", "<tool_call>", "</tool_call>")

    def grammar(self, target: Any, *, thinking: bool = True,
                specials: frozenset[str] = frozenset()) -> str:
        from .qwen3_5_grammar import grammar

        return grammar(target, thinking=thinking, specials=specials)


_END = ("<|im_end|>", "<|endoftext|>")
_WS = " \t\r\n"
(START, REASONING, CONTENT, PROBE, FUNC_NAME, PARAMS, PARAM_NAME, PARAM_VALUE, AFTER_FUNC,
 DONE) = range(10)
_KIND = {REASONING: ReasoningDelta, CONTENT: ContentDelta}


class Qwen35Parser(StreamParser):
    stop_sequences = Qwen35Format.stop_sequences

    def __init__(self, tools: Tools = None, *, thinking: bool = True) -> None:
        super().__init__()
        self._props = tool_properties(tools)
        self._thinking = thinking
        call = ("<tool_call>",) if tools else ()
        self._in_reasoning = TagScanner("</think>", *call, *_END)
        self._in_content = TagScanner(*call, *_END)
        self._in_params = TagScanner("<parameter=", "</function>", "</tool_call>", *_END)
        self._in_value = TagScanner(
            "</parameter>", "<parameter=", "</function>", "</tool_call>", *_END
        )
        self._state = START
        self._nl = ""  # newlines held back at the end of the reasoning or content
        self._skip = ""  # characters dropped from the start of the next text
        self._origin = CONTENT  # the state a <tool_call> interrupted
        self._raw = ""  # the call's text so far, returned if it is not a call after all
        self._raw_nl = ""
        self._name = ""  # the current call's name, parameters, index
        self._spec: Mapping[str, Any] = {}
        self._nparams = 0
        self._index = -1
        self._param = ""
        self._value: list[str] = []
        self._steps = (  # indexed by state
            self._start, self._text, self._text, self._probe, self._function_name,
            self._params, self._param_name, self._param_value, self._after_function, self._done,
        )

    # ------------------------------------------------------------------ the machine

    def _run(self, *, final: bool) -> None:
        steps = self._steps
        while steps[self._state](final):
            pass

    def _start(self, final: bool) -> bool:
        if self._buf.startswith("<think>"):  # a template that does not pre-open it
            self._buf = self._buf[len("<think>"):]
            self._state, self._skip = REASONING, "\n"
            return True
        if not final and "<think>".startswith(self._buf):
            return False
        self._state = REASONING if self._thinking else CONTENT
        return True

    def _text(self, final: bool) -> bool:
        scanner = self._in_reasoning if self._state == REASONING else self._in_content
        i, tag = scanner.find(self._buf, final)
        self._sink(self._buf[:i])
        if tag is None:
            self._buf = self._buf[i:]
            return False
        self._buf = self._buf[i + len(tag):]
        if tag == "</think>":
            self._state, self._nl, self._skip = CONTENT, "", "\n"
        elif tag == "<tool_call>":
            self._origin, self._state, self._raw = self._state, PROBE, tag
        else:
            self._state, self._nl = DONE, ""
        return True

    def _sink(self, text: str) -> None:
        """Reasoning or content text: newlines at either end wait until more text comes."""
        if self._skip:
            text = text.lstrip(self._skip)
            if not text:
                return
            self._skip = ""
        text = self._nl + text
        body = text.rstrip("\n")
        self._nl = text[len(body):]
        if body:
            self._emit(_KIND[self._state](body))

    def _probe(self, final: bool) -> bool:
        stripped = self._buf.lstrip()
        self._raw += self._buf[: len(self._buf) - len(stripped)]
        self._buf = stripped
        if stripped.startswith("<function="):
            self._buf = stripped[len("<function="):]
            self._raw += "<function="
            self._raw_nl, self._nl = self._nl, ""
            self._state = FUNC_NAME
            return True
        if not final and "<function=".startswith(stripped):
            return False
        if self._origin == CONTENT:
            self._problem("<tool_call> without <function=...> kept as text")
        self._state = self._origin
        self._sink(self._raw)
        return True

    def _function_name(self, final: bool) -> bool:
        i = self._buf.find(">")
        name = self._buf if i < 0 else self._buf[:i]
        if _bad_name(name, closed=i >= 0) or (final and i < 0):
            self._problem("malformed <function=...> in a tool call; kept as text")
            self._state, self._nl = self._origin, self._raw_nl
            self._sink(self._raw)
            return True
        if i < 0:
            return False
        self._buf = self._buf[i + 1:]
        self._name = name.strip()
        self._spec = self._props.get(self._name, {})
        if self._name not in self._props:
            self._problem(f"unknown function {self._name!r} called; arguments kept as text")
        self._index, self._nparams = self._new_call(self._name), 0
        self._state = PARAMS
        return True

    def _params(self, final: bool) -> bool:
        i, tag = self._in_params.find(self._buf, final)
        if self._buf[:i].strip():
            self._problem(f"text outside <parameter> in tool call {self._name!r} ignored")
        if tag is None:
            self._buf = self._buf[i:]
            return False
        self._buf = self._buf[i + len(tag):]
        self._after_tag(tag)
        return True

    def _param_name(self, final: bool) -> bool:
        i = self._buf.find(">")
        name = self._buf if i < 0 else self._buf[:i]
        if _bad_name(name, closed=i >= 0) or (final and i < 0):
            self._problem(f"malformed <parameter= in tool call {self._name!r} ignored")
            self._state = PARAMS
            return True
        if i < 0:
            return False
        self._buf = self._buf[i + 1:]
        self._param, self._value = name.strip(), []
        self._state = PARAM_VALUE
        return True

    def _param_value(self, final: bool) -> bool:
        i, tag = self._in_value.find(self._buf, final)
        if i:
            self._value.append(self._buf[:i])
        if tag is None:
            self._buf = self._buf[i:]
            return False
        self._buf = self._buf[i + len(tag):]
        self._end_param()
        self._after_tag(tag)
        return True

    def _after_tag(self, tag: str) -> None:
        """Inside a call, after ``tag`` (a parameter's value, if any, is finished)."""
        if tag == "<parameter=":
            self._state = PARAM_NAME
            return
        if tag == "</parameter>":
            self._state = PARAMS
            return
        self._end_call()
        if tag == "</function>":
            self._state = AFTER_FUNC
        elif tag == "</tool_call>":
            self._between()
        else:
            self._problem(f"tool call {self._name!r} not closed before the end of the turn")
            self._state = DONE

    def _after_function(self, final: bool) -> bool:
        self._buf = stripped = self._buf.lstrip()
        if stripped.startswith("</tool_call>"):
            self._buf = stripped[len("</tool_call>"):]
        elif not final and "</tool_call>".startswith(stripped):
            return False
        self._between()
        return True

    def _between(self) -> None:
        # Whitespace between (and after) calls is dropped; other text is content.
        self._state, self._nl, self._skip = CONTENT, "", _WS

    def _done(self, final: bool) -> bool:
        self._buf = ""
        return False

    def _end(self, reason: str) -> None:
        if self._state in (PARAMS, PARAM_NAME, PARAM_VALUE):
            if self._state == PARAM_VALUE:
                self._end_param()
            self._end_call()
            self._problem(f"tool call {self._name!r} was cut off before </function>")
        self._nl = ""  # trailing newlines of the reasoning or content are dropped

    # ------------------------------------------------------------------ arguments

    def _end_param(self) -> None:
        raw = "".join(self._value)
        self._value = []
        if raw.startswith("\n"):
            raw = raw[1:]
        if raw.endswith("\n"):
            raw = raw[:-1]
        if self._name in self._props:
            value, problem = convert(raw, self._spec.get(self._param))
            if problem:
                self._problem(f"{self._name}({self._param}): {problem}")
        else:
            value = raw
        sep = "{" if self._nparams == 0 else ", "
        self._nparams += 1
        text = f"{sep}{json.dumps(self._param, ensure_ascii=False)}: "
        text += json.dumps(value, ensure_ascii=False)
        self._emit(ToolCallDelta(self._index, arguments=text))

    def _end_call(self) -> None:
        self._emit(ToolCallDelta(self._index, arguments="}" if self._nparams else "{}"))


def _bad_name(name: str, *, closed: bool) -> bool:
    """A function or parameter name (the text up to ``>``) that cannot be one."""
    return len(name) > 128 or "<" in name or "\n" in name or (closed and not name.strip())
