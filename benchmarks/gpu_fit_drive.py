"""What ``benchmarks.gpu_fit`` does to each production model once it is built: the files the
sparse builder cannot write (Chatterbox's voice, Qwen's vision token ids for the stand-in
tokenizer), the estimate for the plan this machine runs, and one request at the model's
limit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

NEW_TOKENS = 2
TEMPLATE_MARGIN = 96  # tokens the chat template adds around the prompt, and then some


def write_conds(folder: Path, prompt_len: int) -> None:
    """A built-in voice (``conds.pt``) of the shapes ``prepare_conditionals`` makes from a
    10 s clip: the sparse builder cannot write a pickle."""
    import torch
    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from chatterbox.tts import Conditionals

    g = torch.Generator().manual_seed(0)
    tokens = 250  # 10 s at S3's 25 tokens/s; the mel prompt is twice as long (50 frames/s)
    t3 = T3Cond(speaker_emb=torch.randn(1, 256, generator=g),
                cond_prompt_speech_tokens=torch.randint(0, 6561, (1, prompt_len), generator=g),
                emotion_adv=0.5 * torch.ones(1, 1, 1))
    gen = {"prompt_token": torch.randint(0, 6561, (1, tokens), generator=g),
           "prompt_token_len": torch.tensor([tokens]),
           "prompt_feat": torch.randn(1, 2 * tokens, 80, generator=g) * 0.1,
           "prompt_feat_len": None,
           "embedding": torch.randn(1, 192, generator=g) * 0.1}
    Conditionals(t3, gen).save(folder / "conds.pt")


def stand_in_ids(folder: Path) -> None:
    """Point a Qwen3.5 config's vision token ids at the stand-in tokenizer's (the sparse
    builder writes a small trained vocabulary, not Qwen's 248,320 tokens): an image prompt
    then finds its placeholders. No size changes."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, token in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                       ("vision_start_token_id", "<|vision_start|>"),
                       ("vision_end_token_id", "<|vision_end|>")):
        config[key] = tok.convert_tokens_to_ids(token)
    path.write_text(json.dumps(config, indent=2))


def estimate_here(pm, context: int | None, device: str) -> tuple[float, str]:
    """The estimate for the plan this machine runs (``plan(probe=True)``: the kernels that
    are really here), and that plan in words; for other backends, their own estimate."""
    if pm.backend != "transformers":
        return None, ""
    from llmux_transformers.checkpoint import Checkpoint
    from llmux_transformers.estimate import estimate, estimate_asr
    from llmux_transformers.loading import plan

    ckpt = Checkpoint.cached(pm.location)
    p = plan(ckpt, device, pm.options, probe=True)
    if pm.type == "asr":
        est = estimate_asr(ckpt, dtype=p.dtype)
    else:
        est = estimate(ckpt, dtype=p.dtype, context=context, dequantise=p.dequantise,
                       prefill_chunk=pm.options.get("prefill_chunk"),
                       attn_implementation=pm.options.get("attn_implementation"))
    est = replace(est, weights=p.weights_bytes(ckpt))
    return est.gib, p.describe()


def _image_part(side: int = 768) -> dict:
    import base64
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def chat_request(pm, handle, tokens: int):
    """A chat request whose prompt fills ``tokens`` (the template's own tokens aside), with
    one image for a vision model (768 pixels square, 576 tokens; 256, 64 tokens, when the
    context is short)."""
    from llmux import ChatRequest, SamplingParams
    from llmux.chatformats import get_format

    side = (768 if tokens >= 4096 else 256) if pm.vision else 0
    budget = tokens - TEMPLATE_MARGIN - NEW_TOKENS - (side // 32) ** 2
    unit = "the quick brown fox jumps over the lazy dog near 1234 riverbank stones. "
    per_unit = len(handle.tokenizer(unit * 64)["input_ids"]) / 64
    text = unit * max(1, int(budget / per_unit))
    ids = handle.tokenizer(text)["input_ids"]
    if len(ids) > budget:
        text = handle.tokenizer.decode(ids[:budget])
    content: Any = [_image_part(side), {"type": "text", "text": text}] if side else text
    return ChatRequest(model=pm.name, messages=[{"role": "user", "content": content}],
                       sampling=SamplingParams(max_tokens=NEW_TOKENS, temperature=0),
                       chat_format=get_format(pm.chat_format) if pm.chat_format else None)


def exercise(pm, backend, handle, context: int | None, args) -> dict:
    """Drive the model once at its limit; what was asked and what came back."""
    import numpy as np

    from llmux import Cancellation, SpeechRequest, TranscriptionRequest

    if pm.type == "llm":
        request = chat_request(pm, handle, context)
        events = list(backend.infer(pm, handle, request, Cancellation()))
        usage = next((getattr(e, "prompt_tokens", None) for e in events
                      if getattr(e, "prompt_tokens", None)), None)
        return {"asked": f"chat, {context} tokens of context"
                         + (" with an image" if pm.vision else ""),
                "prompt_tokens": usage, "events": len(events)}
    if pm.type == "asr":
        rate = 16000
        audio_s = args.audio_seconds
        samples = (np.random.default_rng(0).standard_normal(int(audio_s * rate))
                   * 0.05).astype(np.float32)
        result = backend.infer(pm, handle, TranscriptionRequest(samples, rate, "en"),
                               Cancellation())
        return {"asked": f"{audio_s:g} s of audio",
                "text_chars": len(getattr(result, "text", "") or "")}
    text = ("The production check reads a long sentence aloud, so that the speech tokens and "
            "the vocoder's frames reach the length a real answer has, and then it stops.")
    # The weights read as zeros: no stop token is likely, so T3 samples up to its limit
    # (1000 tokens, 40 s of audio: the worst case; the dry run stops at 25).
    limit = {"max_speech_tokens": 25} if args.cpu_only else {}
    result = backend.infer(pm, handle, SpeechRequest(text=text, options=limit), Cancellation())
    audio = getattr(result, "audio", None)
    return {"asked": f"speech, {len(text)} characters",
            "audio_samples": None if audio is None else len(audio)}
