"""The plugin's parts without the HTTP app: the integration fixes, the token cap, the
synthesis loop on a fake model, sentence splitting, options, files and the hooks."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import types
import weakref
from pathlib import Path

import numpy as np
import pytest

from llmux.errors import InvalidRequest, LlmuxError, ModelLoadError
from llmux.types import Behaviour, Cancellation, PhysicalModel, SpeechRequest

pytestmark = [
    pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:`LoRACompatibleLinear` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:`torch.backends.cuda.sdp_kernel\\(\\)` is deprecated"),
    pytest.mark.filterwarnings("ignore:'(aifc|sunau|audioop)' is deprecated:DeprecationWarning"),
]


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (torchaudio's import state is per process)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --------------------------------------------------------------------------- packaging


def test_found_through_the_entry_point_without_importing_torch():
    out = run_python(
        "import importlib.metadata as m, sys\n"
        "[ep] = [e for e in m.entry_points(group='llmux') if e.name == 'chatterbox']\n"
        "plugin = ep.load()\n"
        "print(ep.value, [b.name for b in plugin.backends()], 'torch' in sys.modules)\n"
    )
    assert out.split() == ["llmux_chatterbox", "['chatterbox']", "False"]


def test_install_script_is_executable_and_idempotent():
    script = Path(__file__).resolve().parents[1] / "install-chatterbox.sh"
    assert script.stat().st_mode & 0o111
    done = subprocess.run([str(script)], env={"PY": sys.executable, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "chatterbox-tts 0.1.7 already installed" in done.stdout


# --------------------------------------------------------------------------- fix 1


def test_fix1_torchaudio_without_its_cuda_linked_extension(tmp_path):
    # A torchaudio whose compiled extension cannot load, as PyPI's CUDA-linked wheel beside
    # a CPU torch (scripts/setup.sh may already have removed the real library files).
    import importlib.util
    import shutil

    origin = Path(importlib.util.find_spec("torchaudio").origin).parent
    copy = tmp_path / "site" / "torchaudio"
    shutil.copytree(origin, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("_torchaudio.abi3.so", "libtorchaudio.abi3.so"):
        (copy / "lib" / name).write_bytes(b"not a shared library")
    out = run_python(
        f"import sys; sys.path.insert(0, {str(copy.parent)!r})\n"
        "import torch\n"
        "try:\n"
        "    import torchaudio\n"
        "    print('plain import worked')\n"
        "except OSError:\n"
        "    print('plain import failed')\n"
        "from llmux_chatterbox.fixes import import_torchaudio\n"
        "ta = import_torchaudio()\n"
        "from torchaudio.compliance import kaldi\n"
        "import torchaudio.transforms as T\n"
        "x = torch.randn(1, 16000)\n"
        "print(ta.__file__.startswith(sys.path[0]), ta._extension._IS_TORCHAUDIO_EXT_AVAILABLE,\n"
        "      tuple(kaldi.fbank(x).shape), tuple(T.Resample(16000, 24000)(x).shape))\n"
    )
    assert out.splitlines() == ["plain import failed", "True False (98, 23) (1, 24000)"]


# --------------------------------------------------------------------------- fix 2


def test_fix2_watermarker_without_pkg_resources_names_the_fix():
    out = run_python(
        "import sys\n"
        "sys.modules['pkg_resources'] = None  # what setuptools >= 81 leaves\n"
        "from llmux_chatterbox import fixes\n"
        "fixes.import_torchaudio()\n"
        "import perth\n"
        "print(perth.PerthImplicitWatermarker)\n"
        "try:\n"
        "    fixes.check_watermarker(perth)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    first, second = out.splitlines()
    assert first == "None"  # chatterbox would fail with "'NoneType' object is not callable"
    assert second.startswith("ModelLoadError resemble-perth's watermarker could not be imported")
    assert "pip install 'setuptools<81'" in second


def test_fix2_this_environment_has_the_watermarker():
    import importlib.metadata

    from llmux_chatterbox import fixes

    fixes.apply()
    import perth

    fixes.check_watermarker(perth)
    assert int(importlib.metadata.version("setuptools").split(".")[0]) < 81


# --------------------------------------------------------------------------- fix 3


def test_fix3_turbo_loudness_stays_float32():
    from llmux_chatterbox import fixes

    fixes.apply()
    from chatterbox.tts_turbo import ChatterboxTurboTTS

    t = np.arange(24000) / 24000
    wav = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    tts = types.SimpleNamespace(
        norm_loudness=lambda w, sr: ChatterboxTurboTTS.norm_loudness(None, w, sr))
    assert tts.norm_loudness(wav, 24000).dtype == np.float64  # the bug, under numpy 2
    fixes.float32_loudness(tts)
    out = tts.norm_loudness(wav, 24000)
    assert out.dtype == np.float32
    assert not np.allclose(out, wav)  # still normalised


# --------------------------------------------------------------------------- hook leak


def test_hooks_the_alignment_analyzer_adds_are_removed():
    import torch
    from llmux_chatterbox.fixes import ANALYZER_MODULE, no_hook_leak

    def spy(*args):  # stands for AlignmentStreamAnalyzer's attention_forward_hook
        pass

    def capture(*args):  # stands for transformers' output-capturing hooks
        pass

    spy.__module__ = ANALYZER_MODULE
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    kept = model[0].register_forward_hook(spy)  # there before the call: not ours to remove
    with no_hook_leak(model):
        model[1].register_forward_hook(spy)
        model[0].register_forward_hook(spy)
        theirs = model[1].register_forward_hook(capture)
        assert len(model[0]._forward_hooks) == 2
    assert list(model[0]._forward_hooks) == [kept.id]
    assert list(model[1]._forward_hooks) == [theirs.id]


# --------------------------------------------------------------------------- offline


def test_multilingual_tokenizer_reads_cangjie_from_the_checkpoint(tmp_path):
    import chatterbox_checkpoints
    from llmux_chatterbox import fixes

    fixes.apply()
    import chatterbox.models.tokenizers.tokenizer as tokenizer_module
    from chatterbox.models.tokenizers import MTLTokenizer

    vocab = tmp_path / "grapheme_mtl_merged_expanded_v1.json"
    chatterbox_checkpoints._char_tokenizer(vocab, ["[zh]"], 2454)
    (tmp_path / "Cangjie5_TC.json").write_text(json.dumps(["你\tonf", "好\tvnd"]))
    hub = tokenizer_module.hf_hub_download
    tokenizer = fixes.local_files_only(tmp_path, lambda: MTLTokenizer(str(vocab)))
    assert tokenizer.cangjie_converter.word2cj == {"你": "onf", "好": "vnd"}
    assert tokenizer_module.hf_hub_download is hub  # restored

    (tmp_path / "Cangjie5_TC.json").unlink()  # absent: no mapping, and no network
    tokenizer = fixes.local_files_only(tmp_path, lambda: MTLTokenizer(str(vocab)))
    assert tokenizer.cangjie_converter.word2cj == {}


# --------------------------------------------------------------------------- token cap


class FakeT3:
    """T3's two sampling entry points, returning ``script`` (or endless tokens)."""

    def __init__(self, script=None):
        import torch

        self.tfmr = torch.nn.Identity()
        self.script = script
        self.calls: list[dict] = []

    def _tokens(self, n):
        import torch

        ids = self.script if self.script is not None else [i % 6561 for i in range(n)]
        return torch.tensor([ids[:n]], dtype=torch.long)

    def inference(self, **kwargs):
        self.calls.append(kwargs)
        for _ in range(2):
            self.tfmr(0)  # a forward pass per step, as the real loop makes
        return self._tokens(kwargs["max_new_tokens"])

    def inference_turbo(self, t3_cond, text_tokens, max_gen_len=1000, **kwargs):
        self.calls.append({"max_gen_len": max_gen_len, **kwargs})
        return self._tokens(max_gen_len + 1)  # one token before the loop


def test_cap_bounds_the_english_and_multilingual_loop():
    from llmux_chatterbox.tokens import TokenCap

    t3 = FakeT3()
    cap = TokenCap(t3, limit=30)
    tokens = t3.inference(t3_cond=None, text_tokens=None, max_new_tokens=1000)
    assert t3.calls[-1]["max_new_tokens"] == 30
    assert tokens.shape == (1, 30) and cap.count == 30 and cap.truncated


def test_cap_bounds_the_turbo_loop():
    from llmux_chatterbox.tokens import TokenCap

    t3 = FakeT3()
    cap = TokenCap(t3, limit=30)
    tokens = t3.inference_turbo(None, None)
    assert t3.calls[-1]["max_gen_len"] == 29
    assert tokens.shape == (1, 30) and cap.count == 30


def test_cap_drops_ids_s3gen_cannot_take():
    from llmux_chatterbox.tokens import TokenCap

    # Multilingual's T3 has 8194 ids; a random (or unlucky) one samples unused ids >= 6561.
    t3 = FakeT3(script=[5, 7000, 6, 8193, 6561, 7, 6562])
    cap = TokenCap(t3, limit=100)
    tokens = t3.inference(max_new_tokens=1000)
    assert tokens.tolist() == [[5, 6, 7]] and cap.count == 3 and not cap.truncated

    t3.script = [6562]  # stopped at once: S3Gen still gets something to vocode
    tokens = t3.inference(max_new_tokens=1000)
    assert cap.count == 0 and tokens.tolist() == [[4299, 4299, 4299]]


def test_cap_stops_sampling_when_cancelled():
    from llmux_chatterbox.tokens import Cancelled, TokenCap

    t3 = FakeT3()
    cap = TokenCap(t3, limit=10)
    cancel = Cancellation()
    with cap.cancellable(cancel):
        t3.inference(max_new_tokens=10)
        cancel.cancel()
        with pytest.raises(Cancelled):
            t3.inference(max_new_tokens=10)
    t3.inference(max_new_tokens=10)  # outside a request the hook does nothing


# --------------------------------------------------------------------------- synthesis


class FakeTTS:
    """The surface of a Chatterbox model that synthesize() uses; 960 samples per token."""

    def __init__(self, tokens_per_call: int = 12):
        self.t3 = FakeT3(script=list(range(1, tokens_per_call + 1)) + [6562])
        self.conds = types.SimpleNamespace(name="builtin")
        self.generated: list[tuple[str, dict, object]] = []
        self.prepared: list[str] = []

    def generate(self, text, **kwargs):
        import torch

        tokens = self.t3.inference(max_new_tokens=1000)
        self.generated.append((text, kwargs, self.conds))
        return torch.full((1, tokens.shape[1] * 960), 0.1)

    def prepare_conditionals(self, path, exaggeration=0.5):
        self.prepared.append(path)
        self.conds = types.SimpleNamespace(name=Path(path).stem)


def physical(tmp_path: Path, variant="english", **options) -> PhysicalModel:
    return PhysicalModel(name=f"cb-{variant}", type="tts", backend="chatterbox", path=variant,
                         models_dir=tmp_path, vram_gb=1,
                         options={"variant": variant, **options})


def fake_handle(model: PhysicalModel, tts=None):
    from llmux_chatterbox.synth import Handle
    from llmux_chatterbox.variants import VARIANTS

    return Handle.create(model, VARIANTS[model.options["variant"]], tts or FakeTTS(), "cpu")


def test_sentences_are_synthesised_one_chunk_at_a_time_and_joined(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path, max_speech_tokens=50, temperature=0.6)
    handle = fake_handle(model)
    text = ("One sentence that is long enough to fill a chunk by itself, or nearly so, because "
            "it keeps going and going with more and more words in it until it is quite long, "
            "longer than most sentences that people write or say in one breath. "
            "Two more sentences follow it here. They share a chunk.")
    speech = synthesize(handle, model, SpeechRequest(text=text, behaviour=Behaviour(
        options={"exaggeration": 0.7})), Cancellation())
    assert [t for t, _, _ in handle.tts.generated] == [
        text[:text.index("Two")].strip(), "Two more sentences follow it here. They share a chunk."]
    assert handle.tts.generated[0][1] == {"exaggeration": 0.7, "cfg_weight": 0.5,
                                          "temperature": 0.6}
    assert speech.speech_tokens == 24 and speech.sample_rate == 24000
    assert speech.samples.dtype == np.float32
    assert len(speech.samples) == 24 * 960 + int(0.15 * 24000)  # joined with a pause
    assert handle.tts.t3.calls[-1]["max_new_tokens"] == 50


def test_cancel_between_sentences_returns_what_was_made(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path)
    handle = fake_handle(model)
    cancel = Cancellation()
    original = handle.tts.generate

    def generate_then_cancel(text, **kwargs):
        wav = original(text, **kwargs)
        cancel.cancel()
        return wav

    handle.tts.generate = generate_then_cancel
    text = "First sentence here. " + "x" * 240 + ". Third one."
    speech = synthesize(handle, model, SpeechRequest(text=text), cancel)
    assert len(handle.tts.generated) == 1 and speech.speech_tokens == 12


def test_cancel_during_sampling_stops_the_chunk(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path)
    handle = fake_handle(model)
    cancel = Cancellation()
    # The client leaves after T3's first step; the cap's pre-hook stops the second.
    handle.tts.t3.tfmr.register_forward_hook(lambda *args: cancel.cancel())
    speech = synthesize(handle, model, SpeechRequest(text="Hello."), cancel)
    assert speech.speech_tokens == 0 and len(speech.samples) == 0
    assert handle.tts.generated == []


def test_voices(tmp_path):
    from llmux_chatterbox.synth import synthesize

    (tmp_path / "english").mkdir()
    (tmp_path / "english" / "near.wav").write_bytes(b"RIFF")  # beside the weights
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "far.wav").write_bytes(b"RIFF")  # under models_dir
    model = physical(tmp_path, voices={"near": "near.wav", "far": "voices/far.wav",
                                       "lost": "missing.wav"})
    handle = fake_handle(model)

    def say(voice):
        synthesize(handle, model, SpeechRequest(text="Hi.", voice=voice), Cancellation())
        return handle.tts.generated[-1][2].name

    assert say(None) == say("default") == "builtin"
    assert say("near") == "near" and say("far") == "far"
    assert say("near") == "near" and len(handle.tts.prepared) == 2  # prepared once
    assert say("default") == "builtin"
    with pytest.raises(InvalidRequest) as info:
        say("nobody")
    assert info.value.message.startswith(
        "unknown voice 'nobody'; this model's voices are: default, far, lost, near")
    assert info.value.param == "voice"
    with pytest.raises(LlmuxError, match="the reference clip of voice 'lost' is missing"):
        say("lost")


def test_turbo_needs_a_clip_over_five_seconds(tmp_path):
    import chatterbox_checkpoints
    from llmux_chatterbox.synth import synthesize

    (tmp_path / "turbo").mkdir()
    chatterbox_checkpoints.write_clip(tmp_path / "short.wav", 3.0, 200.0, seed=0)
    model = physical(tmp_path, "turbo", voices={"short": "short.wav"})
    handle = fake_handle(model)
    with pytest.raises(LlmuxError, match="lasts 3.0 s; Chatterbox turbo needs more than 5 s"):
        synthesize(handle, model, SpeechRequest(text="Hi.", voice="short"), Cancellation())
    synthesize(handle, model, SpeechRequest(text="Hi."), Cancellation())
    assert handle.tts.generated[-1][1] == {"temperature": 0.8}  # Turbo's only knob


def test_languages(tmp_path):
    from llmux_chatterbox.synth import synthesize
    from llmux_chatterbox.variants import VARIANTS

    english, multi = VARIANTS["english"], VARIANTS["multilingual"]
    assert english.check_language(None, None) is None
    assert english.check_language("en-US", None) is None
    with pytest.raises(InvalidRequest, match="Chatterbox english speaks English only, not 'de'"):
        english.check_language("de", None)
    assert multi.check_language("de_DE", None) == "de"
    assert multi.check_language(None, None) == "en"
    assert multi.check_language(None, ["fr", "de"]) == "fr"
    with pytest.raises(InvalidRequest) as info:
        multi.check_language("xx", None)
    assert len(info.value.message.split("use one of: ")[1].split(", ")) == 23
    with pytest.raises(InvalidRequest, match="use one of: fr, de$"):
        multi.check_language("es", ["fr", "de"])

    model = physical(tmp_path, "multilingual")
    handle = fake_handle(model)
    synthesize(handle, model, SpeechRequest(text="Hallo.", language="de"), Cancellation())
    assert handle.tts.generated[-1][1]["language_id"] == "de"


def test_knobs_merge_and_validate():
    from llmux_chatterbox.options import Knobs

    knobs = Knobs.merge({"max_speech_tokens": 300, "temperature": 0.5},
                        {"temperature": 0.7, "max_speech_tokens": 2000}, {"cfg_weight": 0.2})
    assert knobs == Knobs(max_speech_tokens=300, exaggeration=0.5, cfg_weight=0.2,
                          temperature=0.7)  # a later layer never raises the cap
    assert Knobs.merge({}).max_speech_tokens == 1000
    with pytest.raises(InvalidRequest, match="'temperature' must be a number between"):
        Knobs.merge({}, {"temperature": "hot"})


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize("text, chunks", [
    ("", []),
    ("  Hello   world  ", ["Hello world"]),
    ("One. Two! Three?", ["One. Two! Three?"]),
    ("Ein Satz. \"Zitat.\" Noch einer…  Ende", ["Ein Satz. \"Zitat.\" Noch einer… Ende"]),
    ("你好。今天好吗？", ["你好。今天好吗？"]),
    ("Wait... what?! (Really.) Yes", ["Wait... what?! (Really.) Yes"]),
])
def test_short_text_stays_one_chunk(text, chunks):
    from llmux_chatterbox.text import split_sentences

    assert split_sentences(text) == chunks


def test_long_text_is_split_at_sentences_then_clauses_then_words():
    from llmux_chatterbox.text import split_sentences

    four, two = "你好。" * 4, "你好。" * 2
    assert split_sentences("你好。" * 10, max_chars=12) == [four, four, two]

    sentences = [f"Sentence number {i} says something of moderate length." for i in range(12)]
    chunks = split_sentences(" ".join(sentences), max_chars=120)
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(chunks) == " ".join(sentences)
    assert all(c.endswith(".") for c in chunks)  # cut between sentences

    clauses = ", ".join(["a clause of some words"] * 12) + "."
    chunks = split_sentences(clauses, max_chars=100)
    assert all(len(c) <= 100 for c in chunks) and all(c.endswith((",", ".")) for c in chunks)
    assert " ".join(chunks) == clauses

    words = " ".join(["word"] * 100)
    chunks = split_sentences(words, max_chars=50)
    assert all(len(c) <= 50 for c in chunks) and " ".join(chunks) == words


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
        llmux_chatterbox.estimate_vram(model)
    folder.mkdir()
    sizes = {"ve.safetensors": 6, "t3_turbo_v1.safetensors": 1700, "conds.pt": 1}
    for name, mb in sizes.items():
        with open(folder / name, "wb") as f:
            f.truncate(mb * 2**20)  # sparse: the size is what counts
    with pytest.raises(ModelLoadError, match="lacks s3gen_meanflow.safetensors in"):
        llmux_chatterbox.estimate_vram(model)
    with pytest.raises(ModelLoadError, match="lacks s3gen_meanflow.safetensors in"):
        llmux_chatterbox.load(model, None)
    with open(folder / "s3gen_meanflow.safetensors", "wb") as f:
        f.truncate(1060 * 2**20)
    with open(folder / "unrelated.bin", "wb") as f:
        f.truncate(5000 * 2**20)
    weights = (6 + 1700 + 1 + 1060) * 2**20 / GIB
    assert llmux_chatterbox.estimate_vram(model) == round(weights * 1.1 + 0.5, 2)


def test_a_failed_load_is_a_load_error(tmp_path):
    import llmux_chatterbox

    model = physical(tmp_path, "english")
    (tmp_path / "english").mkdir()
    for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"):
        (tmp_path / "english" / name).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="loading 'cb-english' \\(english\\) failed"):
        llmux_chatterbox.load(model, None)
    with pytest.raises(ModelLoadError, match="torch sees no CUDA device"):
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


# --------------------------------------------------------------------------- t3_config.json


def test_a_checkpoint_names_its_t3_size_for_its_own_load_only(tmp_path):
    import llmux_chatterbox.fixes as fixes
    from llmux_chatterbox.t3size import T3_CONFIG_FILE, t3_size

    fixes.apply()
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    before = dict(LLAMA_CONFIGS["GPT2_medium"])
    (tmp_path / T3_CONFIG_FILE).write_text(json.dumps({"GPT2_medium": {"n_layer": 3}}))
    with t3_size(tmp_path):
        assert LLAMA_CONFIGS["GPT2_medium"]["n_layer"] == 3
        assert LLAMA_CONFIGS["GPT2_medium"]["n_embd"] == before["n_embd"]
    assert LLAMA_CONFIGS["GPT2_medium"] == before  # restored for every other load

    with t3_size(tmp_path / "no-such-file"):  # a production checkpoint: nothing changes
        assert LLAMA_CONFIGS["GPT2_medium"] == before

    (tmp_path / T3_CONFIG_FILE).write_text(json.dumps({"Llama_9B": {"n_layer": 3}}))
    with pytest.raises(ModelLoadError, match="unknown T3 configs"):
        with t3_size(tmp_path):
            pass
    (tmp_path / T3_CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        with t3_size(tmp_path):
            pass
