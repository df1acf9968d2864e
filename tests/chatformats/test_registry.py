"""Finding formats by name: built-ins, and formats that plugins register."""

from __future__ import annotations

import pluggy
import pytest
from chatformat_support import C, merge, parse

import llmux.chatformats
from llmux import hookspecs
from llmux.chatformats import (
    ChatFormat,
    ChatFormats,
    GptOssFormat,
    PlainFormat,
    Qwen35Format,
    StreamParser,
    UnknownChatFormat,
    get_format,
)
from llmux.types import ContentDelta, Finish

hookimpl = pluggy.HookimplMarker("llmux")


class Shouty(ChatFormat):
    name = "shouty"

    def parser(self, tools=None, *, thinking=True):
        return ShoutyParser()


class ShoutyParser(StreamParser):
    def _run(self, *, final):
        if self._buf:
            self._emit(ContentDelta(self._buf.upper()))
            self._buf = ""


class ShoutyPlugin:
    @hookimpl
    def chat_formats(self, register):
        register("shouty", Shouty())


def manager(*plugins):
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(llmux.chatformats, name="llmux.chatformats")
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def test_builtins():
    assert isinstance(get_format("qwen3_5"), Qwen35Format)
    assert isinstance(get_format("gpt_oss"), GptOssFormat)
    assert isinstance(get_format("plain"), PlainFormat)
    assert merge(parse("plain", ["a<", "", "b>c"])) == [C("a<b>c"), Finish("stop")]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as info:
        get_format("qwen3")
    assert str(info.value) == (
        "unknown chat format 'qwen3' (known: gpt_oss, plain, qwen3_5); a plugin can add one "
        "through the chat_formats hook"
    )


def test_third_party_plugin_registers_a_format():
    formats = ChatFormats.from_plugin_manager(manager(ShoutyPlugin()))
    assert formats.names == ["gpt_oss", "plain", "qwen3_5", "shouty"]
    parser = formats.get("shouty").parser()
    assert parser.feed("hi") + parser.close() == [ContentDelta("HI"), Finish("stop")]
    with pytest.raises(UnknownChatFormat, match="known: gpt_oss, plain, qwen3_5, shouty"):
        formats.get("nope")


def test_duplicate_and_invalid_registrations_fail_loudly():
    class Again:
        @hookimpl
        def chat_formats(self, register):
            register("qwen3_5", Shouty())

    with pytest.raises(ValueError, match="'qwen3_5' is registered twice"):
        ChatFormats.from_plugin_manager(manager(Again()))

    class NotAFormat:
        @hookimpl
        def chat_formats(self, register):
            register("odd", object())

    with pytest.raises(TypeError, match="must be a llmux.chatformats.ChatFormat instance"):
        ChatFormats.from_plugin_manager(manager(NotAFormat()))


def test_core_plugin_manager_registers_the_builtins():
    from llmux.plugins import get_plugin_manager

    formats = ChatFormats.from_plugin_manager(get_plugin_manager(load_entry_points=False))
    assert {"gpt_oss", "plain", "qwen3_5"} <= set(formats.names)
