"""The test configuration: three chatterbox models (one per variant) beside an echo chat and
an echo ASR model, and a plugin manager with this plugin only. A module of its own (not
conftest.py), so the test modules can import it under a name no other plugin's tests use."""

from __future__ import annotations

from pathlib import Path

KEY = "sk-llmux-chatterbox-test-0000000"
CAPS = {"chatterbox": 25, "chatterbox-turbo": 40, "chatterbox-multilingual": 25}
LANGUAGES = ["de", "en", "fr"]  # the multilingual model's configured subset


def models_yaml(models_dir: Path) -> dict:
    physical = {
        "chatterbox": {"variant": "english"},
        "chatterbox-turbo": {"variant": "turbo", "voices": {"narrator": "voices/narrator.wav"}},
        "chatterbox-multilingual": {"variant": "multilingual", "languages": LANGUAGES},
    }
    return {
        "models_dir": str(models_dir),
        "vram": {"budget_gb": 3, "reserve_gb": 0.5},  # room for one model at a time
        "physical": {
            **{name: {"type": "tts", "backend": "chatterbox", "path": options["variant"],
                      "vram_gb": 1.5,
                      "options": {**options, "max_speech_tokens": CAPS[name], "device": "cpu"}}
               for name, options in physical.items()},
            "chat": {"type": "llm", "backend": "echo", "path": "chat", "vram_gb": 0.1,
                     "chat_format": "plain"},
            "asr": {"type": "asr", "backend": "echo", "path": "asr", "vram_gb": 0.1},
        },
        "virtual": {
            "Chatterbox": {"physical": "chatterbox", "behaviour": {"voice": "default"}},
            "Chatterbox-Turbo": {"physical": "chatterbox-turbo",
                                 "behaviour": {"voice": "default"}},
            "Chatterbox-Multilingual": {"physical": "chatterbox-multilingual",
                                        "behaviour": {"voice": "default", "language": "de"}},
            "chat": {"physical": "chat"},
            "asr": {"physical": "asr"},
        },
    }


def plugin_manager():
    """llmux's built-ins plus this plugin only (other installed plugins stay out)."""
    import llmux_chatterbox

    from llmux.testing import plugin_manager as built_ins_and

    return built_ins_and(chatterbox=llmux_chatterbox)


# Known third-party deprecations inside chatterbox's model code (torch, transformers,
# diffusers), raised in llmux's worker threads while the tests run; librosa.load asks
# audioread for its backends, which import aifc, sunau and audioop.
THIRD_PARTY_WARNINGS = (
    "ignore:`LoRACompatibleLinear` is deprecated:FutureWarning",
    "ignore:`past_key_values` is deprecated:FutureWarning",
    "ignore:`torch.backends.cuda.sdp_kernel\\(\\)` is deprecated",
    "ignore:pkg_resources is deprecated:UserWarning",
    "ignore:'(aifc|sunau|audioop)' is deprecated:DeprecationWarning",
)
