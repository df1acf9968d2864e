"""Plugin discovery: built-ins plus every distribution in the ``llmux`` entry-point group.

``LLMUX_LOAD_PLUGINS`` (comma-separated entry-point names) narrows which installed plugins
load; an empty value loads none but the built-ins. ``LLMUX_TRACE_PLUGINS=1`` logs every hook
call.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os

import pluggy

from . import hookspecs

log = logging.getLogger(__name__)

DEFAULT_PLUGINS = ("llmux.builtin.echo", "llmux.chatformats")


def get_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """Build a fresh manager: specs, built-in plugins, then installed plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        module = importlib.import_module(name)
        pm.register(module, name=name)
    if load_entry_points:
        _load_entry_points(pm)
    pm.check_pending()
    if os.environ.get("LLMUX_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda message: log.info("hook: %s", message.rstrip()))
        pm.enable_tracing()
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    wanted = os.environ.get("LLMUX_LOAD_PLUGINS")
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the server down
            log.error("plugin %r (%s) failed to import: %s", ep.name, ep.value, exc)
            continue
        pm.register(plugin, name=ep.name)
        log.debug("plugin %r loaded from %s", ep.name, ep.value)
