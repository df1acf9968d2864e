from __future__ import annotations

from pathlib import Path

import pytest

from llmux import ChatRequest, InvalidRequest, PhysicalModel, SpeechRequest
from llmux.kit import chat_only

MODEL = PhysicalModel(name="tiny", type="llm", backend="llamacpp", path="x",
                      models_dir=Path("/models"))


def test_a_chat_request_passes():
    request = ChatRequest(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert chat_only(MODEL, request, "llamacpp") is request


def test_anything_else_is_a_400_naming_the_model_and_backend():
    with pytest.raises(InvalidRequest) as info:
        chat_only(MODEL, SpeechRequest(text="hi"), "llamacpp")
    assert info.value.message == "model 'tiny' (llamacpp) serves chat only, not SpeechRequest"
