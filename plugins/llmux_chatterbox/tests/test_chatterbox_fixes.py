"""The plugin's integration fixes for chatterbox-tts beside llmux's torch, transformers and
numpy (llmux_chatterbox.fixes), its packaging, and a checkpoint's own T3 size."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from llmux.errors import ModelLoadError

from chatterbox_config import THIRD_PARTY_WARNINGS

pytestmark = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]


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
