"""The plugin contract: every hook documented, routed to its owner, exercised by echo."""

from __future__ import annotations

import inspect

import pluggy
import pytest

from llmux import hookimpl, hookspecs
from llmux.builtin import echo
from llmux.errors import BackendNotInstalled
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes
from llmux.types import BackendInfo, Cancellation, ChatRequest, ContentDelta, PhysicalModel


@pytest.mark.parametrize("name", hookspecs.HOOK_NAMES)
def test_every_hook_is_documented_and_implemented_by_echo(name):
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec)
    assert doc and len(doc) > 80, f"hook {name} needs a docstring saying params, result, rule"
    if name != "chat_formats":
        assert hasattr(echo, name), f"the built-in echo runtime must exercise {name}"


class Spy:
    """A second runtime: it must never see calls for models of another backend."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def backends(self):
        return [BackendInfo("spy", frozenset({"llm"}))]

    @hookimpl
    def load(self, model, device):
        self.calls.append(("load", model.name))
        return "handle"

    @hookimpl
    def estimate_vram(self, model):
        self.calls.append(("estimate", model.name))
        return 1.0


def model(name, backend):
    return PhysicalModel(name=name, type="llm", backend=backend, path=name,
                         models_dir=__import__("pathlib").Path("/tmp"), vram_gb=1.0,
                         chat_format="plain")


def test_calls_reach_only_the_plugin_that_owns_the_backend():
    pm = get_plugin_manager(load_entry_points=False)
    spy = Spy()
    pm.register(spy, name="spy")
    runtimes = Runtimes(pm)
    assert runtimes.names == ["echo", "spy"]
    handle = runtimes.get("echo").load(model("a", "echo"))
    assert isinstance(handle, echo.EchoHandle)
    assert runtimes.get("echo").estimate_vram(model("a", "echo")).gb == 1.0
    assert spy.calls == []
    assert runtimes.get("spy").load(model("b", "spy")) == "handle"
    assert spy.calls == [("load", "b")]


def test_unknown_backend_names_the_installed_ones():
    runtimes = Runtimes(get_plugin_manager(load_entry_points=False))
    with pytest.raises(BackendNotInstalled) as info:
        runtimes.get("vllm")
    assert str(info.value) == (
        "backend 'vllm' is not provided by any installed plugin (installed: echo)"
    )


def test_a_misspelt_hookimpl_is_caught():
    pm = get_plugin_manager(load_entry_points=False)

    class Typo:
        @hookimpl
        def infers(self, model):
            return None

    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_echo_infer_stops_on_cancellation():
    m = PhysicalModel(name="c", type="llm", backend="echo", path="c",
                      models_dir=__import__("pathlib").Path("/tmp"), vram_gb=1.0,
                      chat_format="plain", options={"repeat": 1000})
    cancel = Cancellation()
    events = echo.infer(model=m, handle=None, cancel=cancel, request=ChatRequest(
        model="c", messages=[{"role": "user", "content": "a b c"}]))
    first = [next(events) for _ in range(3)]
    assert all(isinstance(e, ContentDelta) for e in first)
    cancel.cancel()
    rest = list(events)
    assert [type(e).__name__ for e in rest] == ["Finish", "Usage"]
    assert rest[0].reason == "cancelled"
    assert echo.RECORDS["c"].cancelled >= 1
