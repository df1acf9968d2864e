"""The plugin's hooks and files without the HTTP app: options through load_config, the
VRAM estimate from the real files, load failures, unload, one synthesis at a time."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from llmux.errors import InvalidRequest, LlmuxError, ModelLoadError
from llmux.types import Cancellation, PhysicalModel, SpeechRequest

from chatterbox_config import THIRD_PARTY_WARNINGS
from chatterbox_fakes import fake_handle, physical

pytestmark = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]


# --------------------------------------------------------------------------- hooks and files


def test_options_schema_through_load_config(tmp_path):
    import yaml
    from chatterbox_config import plugin_manager

    from llmux.config import load_config
    from llmux.errors import ConfigError
    from llmux.runtime import Runtimes

    def entry(options):
        return {"type": "tts", "backend": "chatterbox", "path": "x", "vram_gb": 2,
                "options": options}

    (tmp_path / "models.yaml").write_text(yaml.safe_dump({
        "models_dir": str(tmp_path),
        "physical": {"ok": entry({"variant": "turbo", "voices": {"a": "a.wav"}}),
                     "bad": entry({"variant": "large", "languages": ["de", "xx"],
                                   "max_speech_tokens": 0})},
        "virtual": {"ok": {"physical": "ok"}},
    }))
    (tmp_path / "api_keys.yaml").write_text(yaml.safe_dump({"keys": [{"name": "k",
                                                                      "key": "k" * 24}]}))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, Runtimes(plugin_manager()))
    assert info.value.errors == [
        "models.yaml::$.physical.bad.options.languages[1]: 'xx' is not one of "
        "['ar', 'da', 'de', 'el', 'en', 'es', 'fi', 'fr', 'he', 'hi', 'it', 'ja', 'ko', 'ms', "
        "'nl', 'no', 'pl', 'pt', 'ru', 'sv', 'sw', 'tr', 'zh']",
        "models.yaml::$.physical.bad.options.max_speech_tokens: 0 is less than the minimum of 1",
        "models.yaml::$.physical.bad.options.variant: 'large' is not one of "
        "['english', 'multilingual', 'turbo']",
    ]


def test_estimate_vram_reads_the_real_file_sizes(tmp_path):
    import llmux_chatterbox
    from llmux_chatterbox.variants import GIB

    model = physical(tmp_path, "turbo")
    folder = tmp_path / "turbo"
    with pytest.raises(ModelLoadError, match="checkpoint directory of 'cb-turbo' not found"):
        llmux_chatterbox.estimate_vram(model, None).gb
    folder.mkdir()
    sizes = {"ve.safetensors": 6, "t3_turbo_v1.safetensors": 1700, "conds.pt": 1}
    for name, mb in sizes.items():
        with open(folder / name, "wb") as f:
            f.truncate(mb * 2**20)  # sparse: the size is what counts
    with pytest.raises(ModelLoadError, match="lacks s3gen_meanflow.safetensors in"):
        llmux_chatterbox.estimate_vram(model, None).gb
    with pytest.raises(ModelLoadError, match="lacks s3gen_meanflow.safetensors in"):
        llmux_chatterbox.load(model, None)
    with open(folder / "s3gen_meanflow.safetensors", "wb") as f:
        f.truncate(1060 * 2**20)
    with open(folder / "unrelated.bin", "wb") as f:
        f.truncate(5000 * 2**20)
    weights = (6 + 1700 + 1 + 1060) * 2**20 / GIB
    assert llmux_chatterbox.estimate_vram(model, None).gb == round(weights * 1.1 + 0.5, 2)


def test_a_failed_load_is_a_load_error(tmp_path):
    import llmux_chatterbox

    model = physical(tmp_path, "english")
    (tmp_path / "english").mkdir()
    for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"):
        (tmp_path / "english" / name).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="loading 'cb-english' \\(english\\) failed"):
        llmux_chatterbox.load(model, None)
    with pytest.raises(ModelLoadError, match="torch .* sees no CUDA device"):
        llmux_chatterbox.load(model, "cuda")


def test_load_and_unload_free_the_model(models_dir):
    import llmux_chatterbox

    model = PhysicalModel(name="t", type="tts", backend="chatterbox", path="turbo",
                          models_dir=models_dir, vram_gb=1,
                          options={"variant": "turbo", "max_speech_tokens": 5})
    handle = llmux_chatterbox.load(model, None)
    assert handle.device == "cpu" and type(handle.tts).__name__ == "ChatterboxTurboTTS"
    speech = llmux_chatterbox.infer(model, handle, SpeechRequest(text="Hi."), Cancellation())
    assert 0 < speech.speech_tokens <= 5
    with pytest.raises(InvalidRequest, match="text-to-speech model"):
        llmux_chatterbox.infer(model, handle, object(), Cancellation())
    alive = weakref.ref(handle.tts)
    t3 = weakref.ref(handle.tts.t3)
    llmux_chatterbox.unload(model, handle)
    gc.collect()
    assert alive() is None and t3() is None
    with pytest.raises(LlmuxError, match="unloaded"):
        llmux_chatterbox.infer(model, handle, SpeechRequest(text="Hi."), Cancellation())


def test_one_synthesis_at_a_time_per_model(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path)
    handle = fake_handle(model)
    inside, peak = [0], [0]
    original = handle.tts.generate

    def generate(text, **kwargs):
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        threading.Event().wait(0.02)
        inside[0] -= 1
        return original(text, **kwargs)

    handle.tts.generate = generate
    threads = [threading.Thread(target=synthesize, args=(
        handle, model, SpeechRequest(text="Hi."), Cancellation())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and len(handle.tts.generated) == 4


