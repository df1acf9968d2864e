"""The llamacpp benchmark's in-process baselines, each in a process of its own.

llama.cpp's CPU backend reads its OpenMP settings (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``,
``OMP_NUM_THREADS``) from the environment once, when libgomp loads; a setting made in the
benchmark's own process would reach its baseline too. So the baseline runs the way a user's
script does: a process of its own, started with :func:`library_env` (the caller's
environment without any OpenMP variable: the libraries' defaults), every llama.cpp call on
its main thread.

Run as ``python -m benchmarks.llama_worker MODEL N_CTX N_THREADS``. It answers one JSON line
for each JSON line on stdin; the first line it writes says what it runs with.
- ``{"way": "direct", "tag", "max_tokens"}``: ``create_chat_completion(stream=True)``;
- ``{"way": "floor", "tag", "max_tokens"}``: a bare ``Llama.generate`` loop over the same
  prompt tokens (no template, no detokenizing, no chunk dicts): the least any caller pays;
- ``{"way": "prompt_tokens", "tag"}``: the usage ``create_chat_completion`` reports;
- ``{"way": "breakdown", "tag"}``: the model's own work before the first token, part by
  part (llmux's template rendering, tokenisation, prompt evaluation, first sample).
"""

from __future__ import annotations

import json
import os
import sys
import time

from llmux import openmp

PROMPT = "Tell me a story about a small robot and a big cat, in three short paragraphs."


def library_env(base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) without any OpenMP variable."""
    return openmp.without(os.environ if base is None else base)


def process_env(pid: int) -> dict | None:
    """The environment process ``pid`` was started with (Linux), None where unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def messages(tag: str) -> list[dict]:
    # A different first word each round: llama.cpp reuses the cached prefix of the previous
    # prompt, so each round's prompt is fresh; within a round every way gets the same one.
    return [{"role": "user", "content": f"{tag}. {PROMPT}"}]


def chatml(tag: str) -> str:
    """What the benchmark GGUF's embedded template (``gguf_model.CHATML``) renders."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
                   for m in messages(tag)) + "<|im_start|>assistant\n"


def result(t0: float, stamps: list[float], tokens: int, finish: str | None) -> dict:
    if not stamps:
        raise RuntimeError("no content was generated")
    span = stamps[-1] - stamps[0]
    return {"ttft": stamps[0] - t0,
            "decode_tps": (tokens - 1) / span if span > 0 else float("inf"),
            "total": stamps[-1] - t0, "tokens": tokens, "finish": finish}


def direct(llm, tag: str, max_tokens: int) -> dict:
    stamps: list[float] = []
    finish = None
    t0 = time.perf_counter()
    for chunk in llm.create_chat_completion(messages(tag), max_tokens=max_tokens,
                                            temperature=0, repeat_penalty=1.0, stream=True):
        choice = chunk["choices"][0]
        if choice["delta"].get("content"):
            stamps.append(time.perf_counter())
        finish = choice.get("finish_reason") or finish
    return result(t0, stamps, max_tokens, finish)


def floor(llm, tag: str, max_tokens: int) -> dict:
    stamps: list[float] = []
    t0 = time.perf_counter()
    tokens = llm.tokenize(chatml(tag).encode(), add_bos=False, special=True)
    for _ in llm.generate(tokens, temp=0, repeat_penalty=1.0):
        stamps.append(time.perf_counter())
        if len(stamps) >= max_tokens:
            break
    return result(t0, stamps, max_tokens, "length")


def breakdown(llm, template, tag: str) -> dict:
    """Milliseconds of each part of the work before the first token, llmux's way."""
    t0 = time.perf_counter()
    prompt = template.render(messages(tag), None)
    t1 = time.perf_counter()
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    t2 = time.perf_counter()
    llm.reset()
    llm.eval(tokens)
    t3 = time.perf_counter()
    llm.sample(temp=0)
    t4 = time.perf_counter()
    return {"template_ms": (t1 - t0) * 1000, "tokenize_ms": (t2 - t1) * 1000,
            "prompt_eval_ms": (t3 - t2) * 1000, "first_sample_ms": (t4 - t3) * 1000,
            "prompt_tokens": len(tokens)}


def main(argv: list[str]) -> int:
    import llama_cpp

    path, n_ctx, threads = argv[0], int(argv[1]), int(argv[2])
    llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, verbose=False)
    template = None
    try:
        from llmux_llamacpp.prompt import ChatTemplate

        source = llm.metadata["tokenizer.chat_template"]
        template = ChatTemplate(source, "", "")
    except ImportError:
        pass
    hello = {"pid": os.getpid(), "openmp": openmp.settings(),
             "n_threads": llm.context_params.n_threads,
             "n_threads_batch": llm.context_params.n_threads_batch}
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        try:
            if ask["way"] == "direct":
                out = direct(llm, ask["tag"], ask["max_tokens"])
            elif ask["way"] == "floor":
                out = floor(llm, ask["tag"], ask["max_tokens"])
            elif ask["way"] == "prompt_tokens":
                out = llm.create_chat_completion(messages(ask["tag"]), max_tokens=1,
                                                 temperature=0)["usage"]
            elif ask["way"] == "breakdown" and template is not None:
                out = breakdown(llm, template, ask["tag"])
            else:
                out = {"error": f"cannot run {ask['way']!r} here"}
        except Exception as exc:  # reported to the benchmark, which raises it there
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)
    llm.close()
    return 0


class Worker:
    """The benchmark's side: start the worker, ask it, stop it (asyncio, one ask at a time)."""

    def __init__(self, path: str, n_ctx: int, threads: int, log_path) -> None:
        self.argv = [sys.executable, "-m", "benchmarks.llama_worker", path, str(n_ctx),
                     str(threads)]
        self.log_path = log_path
        self.proc = None
        self.hello: dict = {}

    async def start(self, cwd) -> dict:
        import asyncio

        with open(self.log_path, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log, env=library_env(), cwd=cwd, limit=1 << 20)
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the llama worker exited: see {self.log_path}")
        self.hello = json.loads(line)
        return self.hello

    async def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the llama worker exited: see {self.log_path}")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"llama worker: {out['error']}")
        return out

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.stdin.close()
        await self.proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
