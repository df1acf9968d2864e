"""7. Structured outputs: what a JSON Schema constraint costs.

- **Engines** on a Qwen3.5-sized vocabulary (248,320 tokens, synthetic: byte tokens plus
  words with and without a leading space, numbers, punctuation runs, CJK and JSON fragments):
  llguidance (the engine llmux uses) against xgrammar, each building its mask for every
  token of the same answers (same token ids), after its own compile of the same schema.
  The per-token cost is the median over all steps; the compile is the first compile of the
  schema (xgrammar's cache cleared). xgrammar is optional (``pip install xgrammar``).
  llguidance also masks a free-text reasoning phase (Qwen3.5's ``</think>`` grammar).
- **Decode** on the tiny random-weight models of both runtimes, in process through the
  plugins' ``infer`` hook: tokens/s after the first token, unconstrained and with a schema
  whose answer is long (a string of fixed length), as a ratio (target >= 0.9x).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from .harness import Row, Section, median, ratio

VOCAB = 248_320
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "age", "tags", "address", "score", "active"],
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 6},
        "address": {"type": "object", "additionalProperties": False,
                    "required": ["city", "zip"],
                    "properties": {"city": {"type": "string"},
                                   "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "active": {"type": "boolean"},
        "kind": {"enum": ["person", "company", "other"]},
    },
}
ANSWERS = [
    {"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry", "engines"],
     "address": {"city": "London", "zip": "12345"}, "score": 0.97, "active": True,
     "kind": "person"},
    {"name": "Grace Brewster Murray Hopper", "age": 85, "tags": ["cobol", "navy"],
     "address": {"city": "New York City", "zip": "10001"}, "score": 0.5, "active": False},
]
REASONING = ("The user wants a person record. I know Ada Lovelace wrote the first program "
             "for the Analytical Engine, so age 36, London; the schema needs a zip. ") * 3


# --------------------------------------------------------------------------- vocabulary


def big_vocab(size: int = VOCAB, seed: int = 0) -> list[bytes]:
    """Byte tokens, the specials, then synthetic words until ``size`` distinct tokens."""
    rng = random.Random(seed)
    tokens = [bytes([i]) for i in range(256)]
    tokens += [b"\xff" + t.encode() for t in ("<|endoftext|>", "<|im_end|>", "</think>")]
    seen = set(tokens)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    pieces = ['{"', '":', '",', '"}', '},', '[{', '"]', ': ', ', ', '\n', '  ', '\t', '.', '0']
    while len(tokens) < size:
        kind = rng.random()
        if kind < 0.55:
            word = "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
            word = (" " if rng.random() < 0.6 else "") + (
                word.capitalize() if rng.random() < 0.2 else word)
        elif kind < 0.65:
            word = str(rng.randint(0, 99999))
        elif kind < 0.8:
            word = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 3)))
        else:
            word = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))
        token = word.encode()
        if token not in seen:
            seen.add(token)
            tokens.append(token)
    return tokens


class _Wrapper:
    """What ``llguidance.TokenizerWrapper`` reads; the byte tokenisation is never used for
    masks (the answers are tokenised greedily by llguidance itself)."""

    def __init__(self, tokens: list[bytes]) -> None:
        self.tokens, self.eos_token_id, self.bos_token_id = tokens, 257, None
        self.special_token_ids = [256, 257, 258]

    def __call__(self, text):
        return list(text if isinstance(text, bytes) else text.encode())


def _steps(llm_tokenizer, text: str) -> list[int]:
    return llm_tokenizer.greedy_tokenize(text)


def measure_llguidance(tokens: list[bytes], answers: list[str], reasoning: str) -> dict:
    import numpy as np
    from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

    from llmux.structured.schema import json_lark

    t0 = time.perf_counter()
    lltok = LLTokenizer(TokenizerWrapper(_Wrapper(tokens)))
    vocab_s = time.perf_counter() - t0
    words = np.zeros((len(tokens) + 31) // 32, dtype=np.int32)
    json_grammar = LLMatcher.grammar_from_lark(f"start: {json_lark(SCHEMA)}")
    think_grammar = LLMatcher.grammar_from_lark(
        f'start: THINK </think> "\\n\\n" {json_lark(SCHEMA)}\nTHINK: /(?s:.*)/')
    out: dict[str, Any] = {"vocabulary_s": vocab_s, "compile_s": [], "mask_us": [],
                           "reasoning_mask_us": [], "answer_ms": []}
    for answer in answers:
        t0 = time.perf_counter()
        matcher = LLMatcher(lltok, json_grammar, log_level=0)
        out["compile_s"].append(time.perf_counter() - t0)
        before = len(out["mask_us"])
        for token in _steps(lltok, answer):
            t0 = time.perf_counter()
            matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
            out["mask_us"].append((time.perf_counter() - t0) * 1e6)
            assert matcher.consume_token(token), matcher.get_error()
        out["answer_ms"].append(out["compile_s"][-1] * 1e3 + sum(out["mask_us"][before:]) / 1e3)
        matcher = LLMatcher(lltok, think_grammar, log_level=0)
        for token in _steps(lltok, reasoning):
            t0 = time.perf_counter()
            matcher.unsafe_compute_mask_ptr(words.ctypes.data, words.nbytes)
            out["reasoning_mask_us"].append((time.perf_counter() - t0) * 1e6)
            assert matcher.consume_token(token), matcher.get_error()
    return out


def measure_xgrammar(tokens: list[bytes], steps: list[list[int]]) -> dict | None:
    try:
        import xgrammar as xgr
    except ImportError:
        return None
    import numpy as np

    vocab = [t[1:] if t.startswith(b"\xff") else t for t in tokens]
    t0 = time.perf_counter()
    info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=len(tokens),
                             stop_token_ids=[257])
    compiler = xgr.GrammarCompiler(info, max_threads=1)
    vocab_s = time.perf_counter() - t0
    bitmask = np.zeros((1, (len(tokens) + 31) // 32), dtype=np.int32)
    out: dict[str, Any] = {"vocabulary_s": vocab_s, "compile_s": [], "mask_us": [],
                           "answer_ms": []}
    text = json.dumps(SCHEMA)
    for ids in steps:
        compiler.clear_cache()
        t0 = time.perf_counter()
        compiled = compiler.compile_json_schema(text, any_whitespace=False,
                                                separators=(",", ":"))
        out["compile_s"].append(time.perf_counter() - t0)
        matcher = xgr.GrammarMatcher(compiled)
        before = len(out["mask_us"])
        for token in ids:
            t0 = time.perf_counter()
            matcher.fill_next_token_bitmask(bitmask)
            out["mask_us"].append((time.perf_counter() - t0) * 1e6)
            assert matcher.accept_token(token), token
        out["answer_ms"].append(out["compile_s"][-1] * 1e3 + sum(out["mask_us"][before:]) / 1e3)
    return out


def engines(section: Section, smoke: bool) -> None:
    size = 32_768 if smoke else VOCAB
    tokens = big_vocab(size)
    answers = [json.dumps(a, separators=(",", ":")) for a in ANSWERS]
    llg = measure_llguidance(tokens, answers, REASONING)
    from llguidance import LLTokenizer, TokenizerWrapper

    lltok = LLTokenizer(TokenizerWrapper(_Wrapper(tokens)))
    xg = measure_xgrammar(tokens, [_steps(lltok, a) for a in answers])
    name = f"{size:,}-token vocabulary"
    llg_mask, llg_compile = median(llg["mask_us"]), median(llg["compile_s"])
    section.data["engines"] = {"vocabulary": size, "llguidance": _summary(llg),
                               "xgrammar": _summary(xg) if xg else "not installed"}
    section.rows.append(Row(
        "structured", f"mask per token, JSON schema, {name}: llguidance vs xgrammar",
        llg_mask, median(xg["mask_us"]) if xg else None, "xgrammar", "µs",
        ratio(llg_mask, median(xg["mask_us"])) if xg else None,
        note="" if xg else "xgrammar not installed"))
    section.rows.append(Row(
        "structured", f"schema compile, {name}: llguidance vs xgrammar", llg_compile * 1e3,
        median(xg["compile_s"]) * 1e3 if xg else None, "xgrammar", "ms",
        ratio(llg_compile, median(xg["compile_s"])) if xg else None))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    section.rows.append(Row(
        "structured", f"mask per token (mean: lazily built lexer states count), {name}",
        mean(llg["mask_us"]), mean(xg["mask_us"]) if xg else None, "xgrammar", "µs",
        ratio(mean(llg["mask_us"]), mean(xg["mask_us"])) if xg else None))
    section.rows.append(Row(
        "structured", f"compile + every mask of one ~80-token answer, {name}",
        median(llg["answer_ms"]), median(xg["answer_ms"]) if xg else None, "xgrammar", "ms",
        ratio(median(llg["answer_ms"]), median(xg["answer_ms"])) if xg else None))
    section.rows.append(Row(
        "structured", f"llguidance mask per token in free reasoning, {name}",
        median(llg["reasoning_mask_us"]), unit="µs"))


def _summary(m: dict) -> dict:
    return {"vocabulary_s": round(m["vocabulary_s"], 3),
            **{f"{k}_median": round(median(v), 6) for k, v in m.items()
               if isinstance(v, list) and v},
            **{f"{k}_mean": round(sum(v) / len(v), 6) for k, v in m.items()
               if isinstance(v, list) and v},
            **{f"{k}_p90": round(sorted(v)[int(len(v) * 0.9)], 6) for k, v in m.items()
               if isinstance(v, list) and v}}


# --------------------------------------------------------------------------- decode


LONG = {"type": "object", "additionalProperties": False, "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 0, "maxLength": 0}}}


def _requests(n: int):
    from llmux.types import Behaviour, ChatRequest, ResponseFormat, SamplingParams

    # characters = tokens of the unconstrained run, about: the JSON answer is a bit longer
    schema = json.loads(json.dumps(LONG))
    schema["properties"]["text"].update(minLength=n, maxLength=n)
    base = dict(model="bench", messages=[{"role": "user", "content": "Write."}],
                behaviour=Behaviour(thinking=False),
                sampling=SamplingParams(temperature=1.0, max_tokens=n, seed=1))
    free = ChatRequest(**base)
    constrained = ChatRequest(**base, response_format=ResponseFormat("json_schema", schema,
                                                                     "long"))
    return free, constrained


def _decode_rate(infer, request) -> tuple[float, int]:
    """Tokens per second after the first event, and the completion tokens."""
    from llmux.types import Cancellation, Usage

    first = end = None
    tokens = 0
    for event in infer(request, Cancellation()):
        now = time.perf_counter()
        first = first or now
        end = now
        if isinstance(event, Usage):
            tokens = event.completion_tokens
    return (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0, tokens


def _transformers(work: Path):
    import llmux_transformers

    from llmux.types import PhysicalModel

    from .tiny_models import qwen_checkpoint

    folder = qwen_checkpoint(work)
    model = PhysicalModel("bench-qwen", "llm", "transformers", folder.name, work,
                          vram_gb=0.5, tools=True, chat_format="qwen3_5",
                          options={"max_context": 4096})
    handle = llmux_transformers.load(model, "cpu")
    return model, handle, llmux_transformers, "qwen3_5"


def _llamacpp(work: Path):
    import llmux_llamacpp

    from llmux.types import PhysicalModel

    from .tiny_models import qwen_gguf

    path = qwen_gguf(work)
    model = PhysicalModel("bench-gguf", "llm", "llamacpp", path.parent.name, work, vram_gb=0.5,
                          tools=True, chat_format="qwen3_5",
                          options={"model_file": path.name, "n_ctx": 4096, "n_threads": 2})
    handle = llmux_llamacpp.load(model, "cpu")
    return model, handle, llmux_llamacpp, "qwen3_5"


def _llamacpp_decode_size(work: Path):
    """The llamacpp section's 159 M GGUF (plain chat format): a token is the model's work,
    as on a real model, rather than the caller's."""
    import os

    import llmux_llamacpp

    from llmux.types import PhysicalModel

    from .gguf_model import DECODE_SHAPE, build_gguf

    folder = work / "structured-159m"
    path = folder / "m.gguf"
    if not path.exists():
        build_gguf(path, DECODE_SHAPE)
    model = PhysicalModel("bench-159m", "llm", "llamacpp", folder.name, work, vram_gb=0.5,
                          chat_format="plain",
                          options={"model_file": path.name, "n_ctx": 2048,
                                   "n_threads": os.cpu_count() or 1})
    handle = llmux_llamacpp.load(model, "cpu")
    return model, handle, llmux_llamacpp, "plain"


def decode(section: Section, work: Path, smoke: bool) -> None:
    import dataclasses

    from llmux.chatformats import get_format

    n, runs = (48, 1) if smoke else (400, 5)
    loaders = [("transformers", "tiny Qwen3.5", _transformers, n),
               ("llama.cpp", "tiny Qwen3.5", _llamacpp, n)]
    if not smoke:
        loaders.append(("llama.cpp", "159 M llama", _llamacpp_decode_size, 96))
    for name, label, loader, tokens in loaders:
        try:
            model, handle, plugin, fmt = loader(work)
        except ImportError as exc:
            section.data[name] = f"not installed: {exc}"
            continue
        free, constrained = (dataclasses.replace(r, chat_format=get_format(fmt))
                             for r in _requests(tokens))
        try:
            def infer(request, cancel, model=model, handle=handle, plugin=plugin):
                return plugin.infer(model, handle, request, cancel)

            _decode_rate(infer, constrained)  # warm-up: builds the vocabulary once
            rates = {"free": [], "schema": []}
            compile_ms = []
            for _ in range(runs):  # interleaved, so drift hits both alike
                rates["free"].append(_decode_rate(infer, free)[0])
                t0 = time.perf_counter()
                guide = handle.vocabulary.guide(constrained, thinking=False)
                compile_ms.append((time.perf_counter() - t0) * 1e3)
                del guide
                rates["schema"].append(_decode_rate(infer, constrained)[0])
        finally:
            plugin.unload(model, handle)
        free_rate, schema_rate = median(rates["free"]), median(rates["schema"])
        section.data[f"{name}, {label}"] = {"tokens_per_s": rates, "compile_ms": compile_ms}
        section.rows.append(Row(
            "structured", f"{name} decode with a JSON schema vs without ({label})",
            schema_rate, free_rate, "no schema", "tok/s", ratio(schema_rate, free_rate),
            ">= 0.9x", None if not free_rate else ratio(schema_rate, free_rate) >= 0.9))
        section.rows.append(Row("structured", f"{name} schema compile ({label})",
                                median(compile_ms), unit="ms"))


async def run(work: Path, smoke: bool) -> Section:
    section = Section("structured")
    await asyncio.to_thread(engines, section, smoke)
    await asyncio.to_thread(decode, section, work, smoke)
    return section
