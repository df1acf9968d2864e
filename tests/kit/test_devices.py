"""Device choice, driven with a stand-in torch: no GPU needed, none touched."""

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
def test_auto_is_the_gpu_when_there_is_one(monkeypatch, cuda, device):
    fake_torch(monkeypatch, cuda)
    assert choose_device() == device
    assert choose_device(None, "auto") == device


def test_forced_beats_configured(monkeypatch):
    fake_torch(monkeypatch, True)
    assert choose_device("cpu", "cuda") == "cpu"
    assert choose_device(None, "cuda:1") == "cuda:1"


def test_a_gpu_torch_cannot_see_is_a_load_error(monkeypatch):
    fake_torch(monkeypatch, False)
    with pytest.raises(ModelLoadError, match="^device 'cuda' was asked for, but torch sees no "
                       r"CUDA device \(torch 9.9\)$"):
        choose_device("cuda")


def test_an_unknown_device_is_a_load_error(monkeypatch):
    fake_torch(monkeypatch, True)
    with pytest.raises(ModelLoadError, match="unknown device 'tpu'"):
        choose_device(None, "tpu")


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
