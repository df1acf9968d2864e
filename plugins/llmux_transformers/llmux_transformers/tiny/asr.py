"""A tiny random-weight ``cohere_asr`` checkpoint, built offline in about a second.

The folder loads like the real ``CohereLabs/cohere-transcribe-03-2026`` does: ``config.json``
+ safetensors for ``AutoModelForSpeechSeq2Seq``, ``processor_config.json`` + the feature
extractor + a ``tokenizers`` tokenizer for ``AutoProcessor``. The tokenizer carries every
token ``CohereAsrProcessor.get_decoder_prompt_ids`` asks for, for all 14 languages, with the
same special ids the real config uses (pad 2, eos 3, bos 4). torch and transformers are
imported by the builders, not by this module.
"""

from __future__ import annotations

import string
from pathlib import Path

from ..asr import LANGUAGES  # the 14 the real model knows
SPECIALS = ["<unk>", "<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>"]
PROMPT_TOKENS = [
    "<|startofcontext|>", "<|emo:undefined|>", "<|pnc|>", "<|nopnc|>", "<|itn|>", "<|noitn|>",
    "<|timestamp|>", "<|notimestamp|>", "<|diarize|>", "<|nodiarize|>",
    *(f"<|{code}|>" for code in LANGUAGES),
]
CORPUS = """\
Hello, this is a test of the speech recognition model. The quick brown fox jumps over
the lazy dog. Guten Tag, das ist ein Test der Spracherkennung. Der schnelle braune Fuchs
springt über den faulen Hund. One two three four five six seven eight nine ten.
Eins zwei drei vier fünf sechs sieben acht neun zehn. 0123456789 !?.,;:'"()-
"""
ALPHABET = string.ascii_letters + string.digits + ".,;:!?'\"()-äöüßÄÖÜ"
MEL_BINS = 16


def build_tokenizer():
    """A SentencePiece-style unigram-free BPE (``▁`` marks word starts, as in the real one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIALS + PROMPT_TOKENS, show_progress=False,
        initial_alphabet=["▁", *ALPHABET],
    )
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    assert tok.token_to_id("▁") is not None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|endoftext|>",
        bos_token="<|startoftranscript|>",
    )


def build_cohere_asr(folder: Path, *, seed: int = 0) -> Path:
    """Write the checkpoint (model, processor, tokenizer) into ``folder``."""
    import torch
    from transformers import (
        CohereAsrConfig,
        CohereAsrFeatureExtractor,
        CohereAsrForConditionalGeneration,
        CohereAsrProcessor,
    )

    tokenizer = build_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in ("<pad>", "<|endoftext|>")}
    assert ids == {"<pad>": 2, "<|endoftext|>": 3}, ids
    config = CohereAsrConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
        pad_token_id=2, eos_token_id=3, bos_token_id=4, decoder_start_token_id=4,
        encoder_config={
            "model_type": "parakeet_encoder", "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 64, "num_mel_bins": MEL_BINS,
            "subsampling_conv_channels": 8, "conv_kernel_size": 3,
        },
    )
    torch.manual_seed(seed)
    model = CohereAsrForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = 3
    model.generation_config.pad_token_id = 2
    model.save_pretrained(folder)
    processor = CohereAsrProcessor(CohereAsrFeatureExtractor(feature_size=MEL_BINS), tokenizer)
    processor.save_pretrained(folder)
    return folder


if __name__ == "__main__":  # python -m llmux_transformers.tiny.asr DIR: build one to look at
    import sys

    print(build_cohere_asr(Path(sys.argv[1])))
