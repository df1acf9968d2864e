"""The CLI, check-config and serve (until a model loads) never import a heavy runtime.

Run in fresh interpreters with every installed plugin discovered and the production config
loaded, so this means more with each plugin that lands.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import REPO

HEAVY = ("torch", "transformers", "llama_cpp", "chatterbox", "torchaudio", "librosa")

PRELUDE = """
import sys
HEAVY = %r
def heavy():
    return sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)
""" % (HEAVY,)


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_help_is_light():
    assert run("""
        from llmux.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        print(heavy())
    """) == "[]"


def test_check_config_on_the_production_config_is_light():
    assert run("""
        from llmux.cli import main
        code = main(["check-config", "config"])
        print(heavy())
    """) == "[]"


def test_serve_until_the_first_load_is_light():
    assert run("""
        import asyncio, dataclasses, json, urllib.request
        from aiohttp import web
        from llmux.app import create_app
        from llmux.config import load_config
        from llmux.plugins import get_plugin_manager
        from llmux.runtime import Runtimes

        async def main():
            pm = get_plugin_manager()
            config = load_config("config", Runtimes(pm))
            config = dataclasses.replace(
                config, server=dataclasses.replace(config.server, preload=()))
            runner = web.AppRunner(create_app(config, pm))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            key = config.keys[0].key
            def get(path):
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Authorization": f"Bearer {key}"})
                return json.load(urllib.request.urlopen(req))
            models = await asyncio.to_thread(get, "/v1/models")
            health = await asyncio.to_thread(get, "/health")
            assert len(models["data"]) == 16 and health["loaded"] == []
            await runner.cleanup()
        asyncio.run(main())
        print(heavy())
    """) == "[]"
