"""A typed facade over the plugin manager: the rest of the core never touches pluggy.

Each backend is owned by exactly one plugin. Model hooks are dispatched through a hook
caller that contains only that plugin, so a call reaches the owner and nobody else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import pluggy

from .errors import BackendNotInstalled, LlmuxError
from .types import (
    BackendInfo,
    Cancellation,
    ChatEvent,
    InferRequest,
    PhysicalModel,
    VramEstimate,
)

log = logging.getLogger(__name__)

# First-party backends and the distribution that provides each, for install hints.
KNOWN_BACKENDS = {
    "transformers": "llmux-transformers (pip install -e plugins/llmux_transformers)",
    "llamacpp": "llmux-llamacpp (pip install -e plugins/llmux_llamacpp)",
    "chatterbox": "llmux-chatterbox (pip install -e plugins/llmux_chatterbox)",
}


def install_hint(backend: str, installed: list[str]) -> str:
    names = ", ".join(sorted(installed)) or "none"
    hint = f"backend {backend!r} is not provided by any installed plugin (installed: {names})"
    if backend in KNOWN_BACKENDS:
        hint += f"; install {KNOWN_BACKENDS[backend]}"
    return hint


@dataclass(frozen=True)
class Backend:
    """One backend, bound to the plugin that owns it."""

    info: BackendInfo
    plugin_name: str
    _hooks: Any  # an object with one subset hook caller per model hook

    @property
    def name(self) -> str:
        return self.info.name

    def estimate_vram(self, model: PhysicalModel, context: int | None = None) -> VramEstimate | None:
        """The plugin's estimate at ``context`` (None: configured), as a VramEstimate."""
        value = self._hooks.estimate_vram(model=model, context=context)
        if value is None or isinstance(value, VramEstimate):
            return value
        return VramEstimate(float(value), context)

    def measure_vram(self, model: PhysicalModel, handle: Any) -> float | None:
        value = self._hooks.measure_vram(model=model, handle=handle)
        return None if value is None else float(value)

    def prompt_cache(self, model: PhysicalModel) -> dict | None:
        """The plugin's report of ``model``'s prompt cache (bytes, limit, entries), if any."""
        return self._hooks.prompt_cache(model=model)

    def load(self, model: PhysicalModel, device: str | None = None) -> Any:
        handle = self._hooks.load(model=model, device=device)
        if handle is None:
            raise LlmuxError(f"plugin {self.plugin_name!r} returned no handle for {model.name!r}")
        return handle

    def unload(self, model: PhysicalModel, handle: Any) -> None:
        self._hooks.unload(model=model, handle=handle)

    def infer(
        self, model: PhysicalModel, handle: Any, request: InferRequest, cancel: Cancellation
    ) -> Iterator[ChatEvent] | Any:
        return self._hooks.infer(model=model, handle=handle, request=request, cancel=cancel)


class _Hooks:
    def __init__(self, pm: pluggy.PluginManager, owner: object):
        others = [p for p in pm.get_plugins() if p is not owner]
        for name in ("estimate_vram", "measure_vram", "load", "unload", "infer",
                     "prompt_cache"):
            setattr(self, name, pm.subset_hook_caller(name, remove_plugins=others))


class Runtimes:
    """The installed backends, discovered once from the plugin manager."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self._backends: dict[str, Backend] = {}
        for impl in pm.hook.backends.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                infos = impl.function() or []
            except Exception as exc:
                log.error("plugin %r: backends() failed: %s", plugin_name, exc)
                continue
            hooks = _Hooks(pm, impl.plugin)
            for info in infos:
                if info.name in self._backends:
                    log.error(
                        "backend %r of plugin %r ignored: already provided by %r",
                        info.name, plugin_name, self._backends[info.name].plugin_name,
                    )
                    continue
                self._backends[info.name] = Backend(info, plugin_name, hooks)

    @property
    def names(self) -> list[str]:
        return sorted(self._backends)

    def has(self, backend: str) -> bool:
        return backend in self._backends

    def get(self, backend: str) -> Backend:
        try:
            return self._backends[backend]
        except KeyError:
            raise BackendNotInstalled(install_hint(backend, self.names)) from None

    def __iter__(self):
        return iter(self._backends.values())
