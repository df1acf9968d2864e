"""Fixtures: random-weight checkpoints of the three variants, built once per session, served
by the real llmux app on a real socket in a background thread, driven with ``openai``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from llmux.testing import ThreadedServer, write_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llmux_chatterbox import tiny as chatterbox_checkpoints  # noqa: E402
from chatterbox_config import KEY, models_yaml, plugin_manager  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """The three checkpoint directories and a reference clip; T3 stays shrunk all session."""
    root = tmp_path_factory.mktemp("models")
    clips = root / "clips"
    clips.mkdir()
    (root / "voices").mkdir()
    builtin = chatterbox_checkpoints.write_clip(clips / "builtin.wav", 2.0, 140.0, seed=1)
    turbo = chatterbox_checkpoints.write_clip(clips / "turbo.wav", 5.5, 140.0, seed=1)
    chatterbox_checkpoints.write_clip(root / "voices" / "narrator.wav", 5.5, 230.0, seed=2)
    with chatterbox_checkpoints.shrink_t3():
        chatterbox_checkpoints.build_all(root, builtin, turbo)
        yield root
    shutil.rmtree(root, ignore_errors=True)  # 4.4 GB; pytest keeps its last three basetemps


@pytest.fixture(scope="session")
def config(tmp_path_factory, models_dir):
    from llmux.config import load_config
    from llmux.runtime import Runtimes

    directory = tmp_path_factory.mktemp("config")
    write_config(directory, models_yaml(models_dir), [{"name": "test", "key": KEY}])
    pm = plugin_manager()
    return load_config(directory, Runtimes(pm)), pm


class Server(ThreadedServer):
    """The llmux app on 127.0.0.1 in its own event loop thread."""

    def handle(self, physical: str):
        """The plugin's handle of a loaded model (to look at its voices)."""
        from llmux.appstate import MANAGER

        return self.app[MANAGER].ledger.loaded[physical].handle


class Recorder:
    """Wraps ``llmux_chatterbox.synth.synthesize`` and keeps each returned ``Speech``."""

    def __init__(self) -> None:
        self.results: list = []
        self.requests: list = []

    def install(self):
        import llmux_chatterbox.synth as synth

        original = synth.synthesize

        def recording(*args, **kwargs):
            speech = original(*args, **kwargs)
            self.requests.append(args[2])
            self.results.append(speech)
            return speech

        synth.synthesize = recording
        return lambda: setattr(synth, "synthesize", original)

    @property
    def last(self):
        return self.results[-1]


@pytest.fixture(scope="session")
def recorder():
    rec = Recorder()
    restore = rec.install()
    yield rec
    restore()


@pytest.fixture(scope="module")
def server(config, recorder):
    """One server per test module: its models are unloaded when the module is done."""
    from llmux.app import create_app

    cfg, pm = config
    srv = Server(create_app(cfg, pm)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY,
                         max_retries=0, timeout=300)
