"""6. Prompt caching (issue #15): time to first token, turn by turn, with the prompt cache and
without, on the tiny Qwen3.5 of both runtimes (hybrid: three of four layers Gated DeltaNet).

Two conversations, as clients send them (the whole history every turn):
- ``agent``: a long system prompt with tool definitions, then turns of a user question, the
  assistant's tool call and the tool's result (OpenCode's shape);
- ``thinking``: a chat in thinking mode, whose template drops earlier turns' reasoning (so
  the next prompt diverges from the cached sequence right after the previous user message).

Each turn runs on a model with ``prompt_cache_gb: 1`` and on the same weights with
``prompt_cache_gb: 0`` (cold), interleaved; then the cached model is unloaded and loaded
again (a swap away and back) and the conversation's next turn runs. Reported: TTFT per turn
as a ratio of the cold run's, the same for the turn after the swap, and decode tokens/s with
and without the cache.
Driven in-process through the plugins' hooks (the server's own path adds the same to both).
"""

from __future__ import annotations

import time
from pathlib import Path

from .harness import Row, Section, median, ratio

TURNS_TARGET = 0.15  # turns 2..6, cached TTFT / cold TTFT
SWAP_TARGET = 0.25  # after a swap away and back
DECODE_TARGET = 0.97
TOOL = {"type": "function", "function": {
    "name": "run_shell", "description": "Run a shell command in the project and return its "
    "output. " * 4,
    "parameters": {"type": "object", "properties": {
        "command": {"type": "string", "description": "The command line."}},
        "required": ["command"]}}}


def _system(chars: int) -> str:
    rule = ("You are a coding agent. Read files before editing them, keep changes small, run "
            "the tests after each change and report what you did. ")
    return (rule * (chars // len(rule) + 1))[:chars]


def _turns(turns: int, chars: int, ask, reply) -> list[list[dict]]:
    """The messages of each turn: a long system prompt, then ``ask(t)`` and ``reply(t)``."""
    history = [{"role": "system", "content": _system(chars)}]
    out = []
    for t in range(turns):
        history.append({"role": "user", "content": ask(t)})
        out.append(list(history))
        history += reply(t)
    return out


def agent_turns(turns: int, chars: int) -> list[list[dict]]:
    def reply(t: int) -> list[dict]:
        call = {"id": f"call_{t}", "type": "function",
                "function": {"name": "run_shell", "arguments": f'{{"command": "ls src{t}"}}'}}
        return [{"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": f"call_{t}",
                 "content": f"main.py util.py test_{t}.py"}]

    return _turns(turns, chars, lambda t: f"Step {t}: list the files in src{t}.", reply)


def thinking_turns(turns: int, chars: int) -> list[list[dict]]:
    return _turns(turns, chars, lambda t: f"Question {t}: why is the sky blue?",
                         lambda t: [{"role": "assistant",
                                     "content": f"Answer {t}: Rayleigh scattering."}])


def _request(messages, thinking: bool, tools, max_tokens: int):
    from llmux.chatformats import get_format
    from llmux.types import Behaviour, ChatRequest, SamplingParams

    return ChatRequest(model="bench", messages=messages, tools=tools,
                       chat_format=get_format("qwen3_5"), behaviour=Behaviour(thinking=thinking),
                       sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0))


def _once(plugin, model, handle, request) -> dict:
    from llmux.types import Cancellation, Usage

    t0 = time.perf_counter()
    first = last = None
    usage = None
    for event in plugin.infer(model, handle, request, Cancellation()):
        now = time.perf_counter()
        if isinstance(event, Usage):
            usage = event
        elif first is None:
            first = now
        last = now
    tokens = usage.completion_tokens if usage else 0
    return {"ttft_ms": ((first or last) - t0) * 1000,
            "decode_tps": (tokens - 1) / (last - first) if first and tokens > 1 and last > first
            else None,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "cached_tokens": usage.cached_tokens if usage else None}


def _transformers(work: Path, gb: float):
    import llmux_transformers

    from llmux.types import PhysicalModel

    from .tiny_models import qwen_checkpoint

    folder = qwen_checkpoint(work)
    model = PhysicalModel(f"prefix-qwen-{gb:g}", "llm", "transformers", folder.name, work,
                          vram_gb=0.5, tools=True, chat_format="qwen3_5",
                          options={"max_context": 16384, "prompt_cache_gb": gb})
    return llmux_transformers, model


def _llamacpp(work: Path, gb: float):
    import llmux_llamacpp

    from llmux.types import PhysicalModel

    from .tiny_models import qwen_gguf

    path = qwen_gguf(work)
    model = PhysicalModel(f"prefix-gguf-{gb:g}", "llm", "llamacpp", path.parent.name, work,
                          vram_gb=0.5, tools=True, chat_format="qwen3_5",
                          options={"model_file": path.name, "n_ctx": 16384, "n_threads": 2,
                                   "prompt_cache_gb": gb})
    return llmux_llamacpp, model


def _conversation(section: Section, name: str, loader, work: Path, turns, thinking: bool,
                  tools, max_tokens: int) -> None:
    plugin, warm = loader(work, 1.0)
    _, cold = loader(work, 0.0)
    handles = {"warm": plugin.load(warm, "cpu"), "cold": plugin.load(cold, "cpu")}
    models = {"warm": warm, "cold": cold}
    rows = []
    try:
        hello = _request([{"role": "user", "content": "Hi."}], thinking, tools, 2)
        for key in ("cold", "warm"):  # first-forward costs, in a prompt nothing else shares
            _once(plugin, models[key], handles[key], hello)
        for messages in turns[:-1]:
            request = _request(messages, thinking, tools, max_tokens)
            got = {k: _once(plugin, models[k], handles[k], request) for k in ("cold", "warm")}
            rows.append(got)
        plugin.unload(warm, handles.pop("warm"))  # swap away and back
        handles["warm"] = plugin.load(warm, "cpu")
        last = _request(turns[-1], thinking, tools, max_tokens)  # the turn after the swap
        swapped = _once(plugin, warm, handles["warm"], last)
        swap_cold = _once(plugin, cold, handles["cold"], last)
    finally:
        for key, handle in handles.items():
            plugin.unload(models[key], handle)
    section.data[name] = {"turns": rows, "after_swap": {"warm": swapped, "cold": swap_cold}}
    later = [ratio(r["warm"]["ttft_ms"], r["cold"]["ttft_ms"]) for r in rows[1:]]
    worst = max(later) if later else None
    prompt = rows[-1]["cold"]["prompt_tokens"]
    section.rows.append(Row(
        "prefix", f"{name}: TTFT turns 2-{len(rows)}, cached / cold (worst turn)",
        max(r["warm"]["ttft_ms"] for r in rows[1:]), None, "the same turn without cache",
        "ms", worst, f"<= {TURNS_TARGET}x", None if worst is None else worst <= TURNS_TARGET,
        f"per turn: {', '.join(f'{x:.2f}' for x in later)}; last prompt {prompt} tokens, "
        f"{rows[-1]['warm']['cached_tokens']} cached"))
    r = ratio(swapped["ttft_ms"], swap_cold["ttft_ms"])
    section.rows.append(Row(
        "prefix", f"{name}: TTFT after a swap away and back, cached / cold",
        swapped["ttft_ms"], swap_cold["ttft_ms"], "the same turn without cache", "ms", r,
        f"<= {SWAP_TARGET}x", None if r is None else r <= SWAP_TARGET,
        f"{swapped['cached_tokens']} of {swapped['prompt_tokens']} tokens cached"))
    warm_tps = median(x["warm"]["decode_tps"] for x in rows if x["warm"]["decode_tps"])
    cold_tps = median(x["cold"]["decode_tps"] for x in rows if x["cold"]["decode_tps"])
    d = ratio(warm_tps, cold_tps)
    section.rows.append(Row(
        "prefix", f"{name}: decode tok/s with cache / without", warm_tps, cold_tps,
        "without cache", "tok/s", d, f">= {DECODE_TARGET}x",
        None if d is None else d >= DECODE_TARGET))


def _run(section: Section, work: Path, smoke: bool) -> None:
    turns, chars, max_tokens = (2, 400, 4) if smoke else (6, 18000, 48)
    # one turn more than measured in a row: the turn after the swap away and back
    conversations = {"agent": (agent_turns(turns + 1, chars), False, [TOOL]),
                     "thinking": (thinking_turns(turns + 1, chars), True, None)}
    for runtime, loader in (("llama.cpp", _llamacpp), ("transformers", _transformers)):
        for kind, (history, thinking, tools) in conversations.items():
            name = f"{runtime} {kind}"
            try:
                _conversation(section, name, loader, work, history, thinking, tools,
                              max_tokens)
            except ImportError as exc:
                section.data[name] = f"not installed: {exc}"


async def run(work: Path, smoke: bool) -> Section:
    import asyncio

    section = Section("prefix")
    await asyncio.to_thread(_run, section, work, smoke)
    return section
