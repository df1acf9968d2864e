"""Device choice from what the runtime sees, and freeing memory with a stand-in torch: no
GPU needed, none touched, and the kit never imports torch."""

from __future__ import annotations

import sys
import types

import pytest

from llmux import ModelLoadError
from llmux.kit import choose_device, free_device_memory


def fake_torch(monkeypatch, cuda: bool) -> types.SimpleNamespace:
    emptied: list[bool] = []
    torch = types.SimpleNamespace(
        __version__="9.9", emptied=emptied,
        cuda=types.SimpleNamespace(is_available=lambda: cuda,
                                   empty_cache=lambda: emptied.append(True)),
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch


@pytest.mark.parametrize("cuda, device", [(True, "cuda"), (False, "cpu")])
def test_auto_is_the_gpu_when_there_is_one(cuda, device):
    assert choose_device(gpu=cuda) == device
    assert choose_device(None, "auto", gpu=cuda) == device


def test_forced_beats_configured():
    assert choose_device("cpu", "cuda", gpu=True) == "cpu"
    assert choose_device(None, "cuda:1", gpu=True) == "cuda:1"


def test_a_gpu_the_runtime_cannot_see_is_a_load_error():
    with pytest.raises(ModelLoadError, match="^device 'cuda' was asked for, but torch 9.9 "
                       "sees no CUDA device$"):
        choose_device("cuda", gpu=False, seen_by="torch 9.9")


def test_an_unknown_device_is_a_load_error():
    with pytest.raises(ModelLoadError, match="unknown device 'tpu'"):
        choose_device(None, "tpu", gpu=True)


def test_the_kit_never_imports_torch():
    from pathlib import Path

    import llmux.kit.devices as devices

    lines = Path(devices.__file__).read_text().splitlines()
    assert not [line for line in lines if line.strip().startswith(("import torch",
                                                                  "from torch"))]


def test_free_memory_empties_the_cache_for_a_gpu_only(monkeypatch):
    torch = fake_torch(monkeypatch, True)
    free_device_memory("cpu")
    assert torch.emptied == []
    free_device_memory("cuda:0")
    free_device_memory()
    assert torch.emptied == [True, True]


def test_free_memory_without_torch_imports_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    free_device_memory("cuda")
    assert "torch" not in sys.modules
