"""Random-weight Chatterbox checkpoints, built offline under the file names ``from_local`` reads.

The real checkpoints are ~3 GB each (fp32). These have the real architecture and file layout
but random weights and a shrunk T3 (fewer transformer layers), so the three variants load and
synthesise on two CPU cores within the test budget. A random T3 rarely samples the stop
token, so tests always cap the speech tokens.

T3 reads its transformer size from the module-level ``LLAMA_CONFIGS`` when it is constructed,
both here and inside ``from_local``: :func:`shrink_t3` must be in force for the whole session
(or, as ``scripts/make_tiny_models.py`` does, for the build: each checkpoint's
``t3_config.json`` names its size, which the plugin applies when it loads one). Used by this
plugin's tests, the tiny demo and the benchmarks; importing it is cheap (numpy, torch and
chatterbox load when something is built).
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from llmux.audio.encode import encode_audio

from .variants import MULTILINGUAL_LANGUAGES

# Multilingual's alignment analyzer hooks attention heads (12, 15), (13, 11) and (9, 2), so
# its Llama keeps 14 layers and 16 heads; English shares the config ("Llama_520M"). The
# width (1024) stays too: the perceiver resampler is built 1024 wide. Only the MLPs narrow.
# Turbo's GPT-2 has no perceiver: it narrows to 256 (its 50k-token embeddings dominate).
SHRUNK = {
    "Llama_520M": {"num_hidden_layers": 14, "intermediate_size": 256},
    "GPT2_medium": {"n_layer": 2, "n_embd": 256, "hidden_size": 256, "n_head": 4, "n_inner": 512},
}

SAMPLE_RATE = 24000
LANGUAGES = MULTILINGUAL_LANGUAGES  # one language token each in the multilingual tokenizer
SPECIALS = ["[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]", "[START]"]
CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-()äöüßéèàç")


@contextmanager
def shrink_t3():
    """Lower the T3 transformer depth for as long as the context lasts."""
    from . import fixes

    fixes.apply()  # before anything imports chatterbox
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    saved = {name: dict(LLAMA_CONFIGS[name]) for name in SHRUNK}
    for name, changes in SHRUNK.items():
        LLAMA_CONFIGS[name].update(changes)
    try:
        yield
    finally:
        for name, config in saved.items():
            LLAMA_CONFIGS[name].clear()
            LLAMA_CONFIGS[name].update(config)


def write_clip(path: Path, seconds: float, pitch: float, seed: int) -> Path:
    """A voiced, speech-like test clip: harmonics with vibrato and syllable-rate envelope."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch * (1 + 0.05 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    audio = 0.2 * voiced * envelope + 0.01 * rng.standard_normal(t.size)
    path.write_bytes(encode_audio(audio, SAMPLE_RATE, "wav"))  # 16-bit mono, as served
    return path


def _char_tokenizer(path: Path, extra: list[str], size: int) -> None:
    """A character-level ``tokenizers`` JSON with chatterbox's special tokens."""
    from tokenizers import Tokenizer, models

    tokens = SPECIALS + extra + CHARS
    assert len(tokens) <= size
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIALS + extra)
    tokenizer.save(str(path))


def _gpt2_tokenizer(directory: Path) -> None:
    """A byte-level BPE tokenizer with no merges, saved the way AutoTokenizer reads GPT-2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "model_max_length": 1024,
    }))


def turbo_config():
    """The T3 hyper-parameters ChatterboxTurboTTS.from_local builds (chatterbox-tts 0.1.7)."""
    from chatterbox.models.t3.modules.t3_config import T3Config

    hp = T3Config(text_tokens_dict_size=50276)
    hp.llama_config_name = "GPT2_medium"
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    return hp


def _state(module) -> dict:
    """A state dict safetensors accepts: contiguous tensors that share no memory."""
    out, seen = {}, set()
    for key, tensor in module.state_dict().items():
        ptr = tensor.data_ptr()
        out[key] = tensor.clone().contiguous() if ptr in seen else tensor.contiguous()
        seen.add(ptr)
    return out


def build_all(root: Path, builtin_clip: Path, turbo_clip: Path) -> dict[str, Path]:
    """Build the english, turbo and multilingual checkpoint directories under ``root``.

    Call inside :func:`shrink_t3`. The built-in voice (``conds.pt``) of each is prepared
    from ``builtin_clip`` (``turbo_clip`` for Turbo, which needs more than 5 s) by the
    library's own ``prepare_conditionals``. S3Gen's cost grows with the length of the voice
    prompt, so short clips keep every synthesis cheap.
    """
    import torch
    from safetensors.torch import save_file

    from . import fixes

    fixes.apply()
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.t3.modules.t3_config import T3Config
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import ChatterboxTTS
    from chatterbox.tts_turbo import ChatterboxTurboTTS

    torch.manual_seed(0)
    dirs = {name: root / name for name in ("english", "turbo", "multilingual")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        ve = VoiceEncoder().eval()
        s3gen = S3Gen().eval()

        # English
        d = dirs["english"]
        _char_tokenizer(d / "tokenizer.json", [], 704)
        t3 = T3().eval()
        tts = ChatterboxTTS(t3, s3gen, ve, EnTokenizer(str(d / "tokenizer.json")), "cpu")
        tts.prepare_conditionals(str(builtin_clip))
        tts.conds.save(d / "conds.pt")
        save_file(_state(ve), d / "ve.safetensors")
        save_file(_state(t3), d / "t3_cfg.safetensors")
        save_file(_state(s3gen), d / "s3gen.safetensors")
        del tts, t3

        # Multilingual: same S3Gen architecture, .pt files
        d = dirs["multilingual"]
        _char_tokenizer(d / "grapheme_mtl_merged_expanded_v1.json",
                        [f"[{code}]" for code in LANGUAGES], 2454)
        t3 = T3(T3Config.multilingual()).eval()
        # Same S3Gen, voice encoder and prompt length as English: the same built-in voice.
        shutil.copy(dirs["english"] / "conds.pt", d / "conds.pt")
        torch.save(ve.state_dict(), d / "ve.pt")
        save_file(_state(t3), d / "t3_mtl23ls_v2.safetensors")
        torch.save(s3gen.state_dict(), d / "s3gen.pt")
        del t3, s3gen

        # Turbo: GPT-2 T3 and the meanflow S3Gen
        d = dirs["turbo"]
        _gpt2_tokenizer(d)
        t3 = T3(turbo_config()).eval()
        save_file(_state(t3), d / "t3_turbo_v1.safetensors")
        s3gen = S3Gen(meanflow=True).eval()
        save_file(_state(s3gen), d / "s3gen_meanflow.safetensors")
        save_file(_state(ve), d / "ve.safetensors")
        from transformers import AutoTokenizer

        tts = ChatterboxTurboTTS(t3, s3gen, ve, AutoTokenizer.from_pretrained(d), "cpu")
        fixes.float32_loudness(tts)
        tts.prepare_conditionals(str(turbo_clip))
        tts.conds.save(d / "conds.pt")
        del tts, t3, s3gen
    # Each checkpoint says the T3 size it was built with, so that a plain load (a server, the
    # tiny demo) builds the same T3 without the shrink in force.
    for name, config in (("english", "Llama_520M"), ("multilingual", "Llama_520M"),
                         ("turbo", "GPT2_medium")):
        (dirs[name] / "t3_config.json").write_text(json.dumps({config: SHRUNK[config]}))
    return dirs
