#!/usr/bin/env python3
"""Acceptance checks, phases 2 and 3 (TST-008 … TST-019), against a running llmux.

    python scripts/acceptance.py --url http://127.0.0.1:8081 --key KEY [--demo]

Needs only the standard library and the ``openai`` package. Every check prints one row of a
PASS/FAIL table; the exit status is 1 when any check fails.

- Phase 2: authentication, the 16 models, a chat per virtual LLM, streaming, ASR in English
  and German, TTS, vision, tools per tool model.
- Phase 3: the VRAM steps of TST-016 … TST-019, observed through ``GET /health``. They
  change what is loaded: run them on a quiet service.

The prompts are written so that a correct answer contains a word of the prompt ("banana",
"red"), so the same checks hold for real models and for the echo runtime of
``config/demo``. ``--demo`` relaxes what only real models can do: a transcript that matches
the clip's words, and tokens that arrive spread out in time.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

try:
    import openai
except ImportError:  # pragma: no cover - message for operators
    sys.exit("acceptance: the 'openai' package is needed: python3 -m pip install openai")

from acceptance_material import (  # noqa: E402
    DEFAULT_AUDIO_DIR,
    GROUPS,
    LLMS,
    NO_VISION_MODEL,
    STREAM_MODELS,
    TOOL_MODELS,
    TTS_TEXT,
    VIRTUAL,
    VISION_MODELS,
    WEATHER_TOOL,
    Clip,
    is_mp3,
    load_clips,
    png_square,
    recall,
)
from acceptance_report import Report  # noqa: E402

# --------------------------------------------------------------------------- the checks


class Acceptance:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = args.url.rstrip("/")
        self.client = openai.OpenAI(base_url=f"{self.base}/v1", api_key=args.key,
                                    timeout=args.timeout, max_retries=0)
        self.report = Report()
        self.clips = load_clips(Path(args.audio_dir) if args.audio_dir else None)
        self.physical_of = dict(VIRTUAL)  # replaced by what /v1/models says, when it says

    # ----------------------------------------------------------- http helpers
    def raw(self, method: str, path: str, key: str | None = None,
            body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.args.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def health(self) -> dict:
        status, body = self.raw("GET", "/health")
        assert status == 200, f"/health answered {status}"
        return json.loads(body)

    def loaded(self) -> tuple[set[str], dict]:
        health = self.health()
        names = set()
        for entry in health.get("loaded", []):
            name = entry.get("model") or entry.get("physical") or entry.get("name")
            names.add(self.physical_of.get(name, name))
        return names, health.get("vram", {})

    # ----------------------------------------------------------- requests
    def chat(self, model: str, prompt: str, **kwargs):
        return self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}],
            max_tokens=kwargs.pop("max_tokens", self.args.max_tokens), **kwargs)

    def transcribe(self, clip: Clip) -> str:
        result = self.client.audio.transcriptions.create(
            model="cohere-transcribe", file=(clip.filename, clip.data), language=clip.language)
        return result.text

    def speak(self, model: str, text: str, **kwargs) -> bytes:
        return self.client.audio.speech.create(model=model, voice="alloy", input=text,
                                               **kwargs).content

    # ----------------------------------------------------------- phase 2
    def check_auth(self) -> None:
        r = self.report

        def refused(path: str, key: str | None, method: str = "GET", body=None):
            def run() -> str:
                status, payload = self.raw(method, path, key, body)
                assert status == 401, f"{method} {path} answered {status}, expected 401"
                error = json.loads(payload).get("error", {})
                assert isinstance(error, dict) and error.get("message"), "no OpenAI error JSON"
                return f"{method} {path} -> 401 ({error.get('message')[:60]})"
            return run

        chat = {"model": "qwen3.5-4b-instruct", "messages": [{"role": "user", "content": "hi"}]}
        r.check("TST-008", "no key: /v1/models", refused("/v1/models", None))
        r.check("TST-008", "wrong key: /v1/models", refused("/v1/models", "sk-wrong-key-000000"))
        r.check("TST-008", "no key: chat", refused("/v1/chat/completions", None, "POST", chat))
        r.check("TST-008", "no key: speech", refused(
            "/v1/audio/speech", None, "POST", {"model": "Chatterbox", "input": "hi"}))
        r.check("TST-008", "no key: transcriptions",
                refused("/v1/audio/transcriptions", None, "POST", {}))

        def openai_error() -> str:
            bad = openai.OpenAI(base_url=f"{self.base}/v1", api_key="sk-wrong-key-000000",
                                max_retries=0, timeout=30)
            try:
                bad.models.list()
            except openai.AuthenticationError:
                return "openai.AuthenticationError for a wrong key"
            raise AssertionError("a wrong key was accepted")

        r.check("TST-008", "openai client, wrong key", openai_error)

        def health_open() -> str:
            status, _ = self.raw("GET", "/health")
            assert status == 200, f"/health without a key answered {status}"
            return "/health answers 200 without a key (API-006)"

        r.check("TST-008", "health without key", health_open)

        if self.args.admin_key:
            def admin_key() -> str:
                status, _ = self.raw("GET", "/v1/models", self.args.admin_key)
                assert status == 200, f"the admin key got {status} on /v1/models"
                return "the admin key is a valid API key too"

            r.check("AUTH", "admin key accepted", admin_key)

    def check_models(self) -> None:
        def run() -> str:
            models = self.client.models.list().data
            ids = [m.id for m in models]
            missing = sorted(set(VIRTUAL) - set(ids))
            extra = sorted(set(ids) - set(VIRTUAL))
            assert not missing and not extra, f"missing {missing}, unexpected {extra}"
            assert len(ids) == 16, f"{len(ids)} entries (duplicates?)"
            assert all(m.object == "model" for m in models), "an entry is not object=model"
            for m in models:
                physical = getattr(m, "physical", None) or (m.model_extra or {}).get("physical")
                if physical:
                    self.physical_of[m.id] = physical
            return "the 16 virtual models, OpenAI list format"

        self.report.check("TST-009", "GET /v1/models", run)

    def check_chat(self) -> None:
        for model in LLMS:
            def run(model=model) -> str:
                reply = self.chat(model, "Please reply with just the word banana.")
                choice = reply.choices[0]
                content = choice.message.content or ""
                assert content.strip(), (
                    f"empty content (finish_reason {choice.finish_reason}; "
                    f"raise --max-tokens if it is 'length')")
                assert "banana" in content.lower(), f"unexpected answer: {content[:80]!r}"
                assert reply.model == model, f"reply names model {reply.model!r}"
                return f"{content.strip()[:50]!r} ({reply.usage.completion_tokens} tokens)"

            self.report.check("TST-010", f"chat {model}", run)

    def check_stream(self) -> None:
        for model in STREAM_MODELS:
            def run(model=model) -> str:
                start = time.monotonic()
                stream = self.chat(model, "Count from one to twenty in words, separated by "
                                          "spaces: one two three and so on.", stream=True)
                times, text, finish = [], [], None
                for chunk in stream:
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    piece = (delta.content or "") + (getattr(delta, "reasoning_content", None)
                                                     or (delta.model_extra or {}).get("reasoning_content")
                                                     or "")
                    if piece:
                        times.append(time.monotonic())
                        text.append(piece)
                    finish = chunk.choices[0].finish_reason or finish
                assert len(times) >= 5, f"only {len(times)} content chunk(s): not streamed"
                assert finish is not None, "no chunk carried a finish_reason"
                spread = times[-1] - times[0]
                if not self.args.demo:
                    assert spread > 0.05, f"{len(times)} chunks arrived at once ({spread:.3f}s)"
                return (f"{len(times)} chunks, first after {times[0] - start:.2f}s, "
                        f"spread over {spread:.2f}s")

            self.report.check("TST-011", f"stream {model}", run)

    def check_asr(self) -> None:
        for lang in ("en", "de"):
            clip = self.clips[lang]

            def run(clip=clip) -> str:
                text = self.transcribe(clip)
                assert text and text.strip(), "empty transcript"
                if clip.expected is None or self.args.demo:
                    return f"{clip.filename}: {text[:60]!r} (shape only)"
                score = recall(clip.expected, text)
                assert score >= self.args.asr_min_recall, (
                    f"{clip.filename}: heard {text!r}, {score:.0%} of the expected words")
                return f"{clip.filename}: {text[:60]!r} ({score:.0%} of the words)"

            self.report.check("TST-012", f"ASR {lang}", run)

    def check_tts(self) -> None:
        for model, text in TTS_TEXT.items():
            def run(model=model, text=text) -> str:
                audio = self.speak(model, text)
                assert len(audio) > 1000, f"only {len(audio)} bytes"
                assert is_mp3(audio), f"default format is not mp3 (starts {audio[:4]!r})"
                return f"{len(audio)} bytes of mp3"

            self.report.check("TST-013", f"TTS {model}", run)

        def wav() -> str:
            audio = self.speak("Chatterbox-Multilingual", "Guten Tag.", response_format="wav")
            assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE", "not a WAV file"
            with wave.open(io.BytesIO(audio)) as w:
                seconds = w.getnframes() / w.getframerate()
            assert seconds > 0.1, f"{seconds:.2f}s of audio"
            return f"{seconds:.2f}s of WAV"

        self.report.check("TST-013", "TTS response_format=wav", wav)

    def _image_message(self, prompt: str) -> list[dict]:
        url = "data:image/png;base64," + base64.b64encode(png_square()).decode()
        return [{"role": "user", "content": [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": url}},
        ]}]

    def check_vision(self) -> None:
        prompt = ("What is the colour of this image? Answer with one word: "
                  "red, green or blue.")
        for model in VISION_MODELS:
            def run(model=model) -> str:
                reply = self.client.chat.completions.create(
                    model=model, messages=self._image_message(prompt),
                    max_tokens=self.args.max_tokens)
                content = (reply.choices[0].message.content or "").strip()
                assert content, "empty answer"
                assert "red" in content.lower(), f"answer {content[:80]!r} does not say red"
                return repr(content[:60])

            self.report.check("TST-014", f"vision {model}", run)

        def refused() -> str:
            try:
                self.client.chat.completions.create(
                    model=NO_VISION_MODEL, messages=self._image_message(prompt), max_tokens=8)
            except openai.BadRequestError as exc:
                return f"400: {exc.message[:60]}"
            raise AssertionError("an image was accepted by a model without vision")

        self.report.check("TST-014", f"no vision {NO_VISION_MODEL}", refused)

    def check_tools(self) -> None:
        for model in TOOL_MODELS:
            def run(model=model) -> str:
                messages = [{"role": "user", "content":
                             "What is the weather in Berlin right now? Use the get_weather tool."}]
                reply = self.client.chat.completions.create(
                    model=model, messages=messages, tools=[WEATHER_TOOL],
                    max_tokens=self.args.max_tokens)
                choice = reply.choices[0]
                calls = choice.message.tool_calls or []
                assert calls, f"no tool call (finish_reason {choice.finish_reason}, " \
                              f"content {(choice.message.content or '')[:60]!r})"
                assert choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason}"
                call = calls[0]
                assert call.function.name == "get_weather", f"called {call.function.name!r}"
                arguments = json.loads(call.function.arguments)
                assert "city" in arguments, f"arguments {arguments}"
                messages += [
                    {"role": "assistant", "content": None, "tool_calls": [{
                        "id": call.id, "type": "function",
                        "function": {"name": "get_weather", "arguments": call.function.arguments},
                    }]},
                    {"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps({"city": arguments["city"], "weather": "sunny, 21 C"})},
                ]
                final = self.client.chat.completions.create(
                    model=model, messages=messages, tools=[WEATHER_TOOL],
                    max_tokens=self.args.max_tokens)
                answer = (final.choices[0].message.content or "").strip()
                assert answer, "no answer after the tool result"
                return f"get_weather({call.function.arguments}) -> {answer[:40]!r}"

            self.report.check("TST-015", f"tools {model}", run)

    # ----------------------------------------------------------- phase 3
    def _expect(self, present: set[str], absent: set[str]) -> str:
        loaded, vram = self.loaded()
        missing, still = present - loaded, absent & loaded
        assert not missing and not still, (
            f"loaded {sorted(loaded)}; expected also {sorted(missing)}, "
            f"expected gone {sorted(still)}")
        used = vram.get("used_gb")
        budget = vram.get("budget_gb")
        if isinstance(used, (int, float)) and isinstance(budget, (int, float)):
            assert used <= budget + 1e-6, f"VRAM used {used} GB exceeds the budget {budget} GB"
            return f"loaded {sorted(loaded)}, {used:g}/{budget:g} GB"
        return f"loaded {sorted(loaded)}"

    def check_vram(self) -> None:
        asr, tts = "cohere-transcribe", "chatterbox-multilingual"
        en = self.clips["en"]
        phys = self.physical_of
        r = self.report

        def small() -> str:  # TST-016
            self.transcribe(en)
            self.speak("Chatterbox-Multilingual", "Hallo.")
            self.chat("qwen3.5-4b-instruct", "Say ok.", max_tokens=8)
            return self._expect({asr, tts, phys["qwen3.5-4b-instruct"]}, set())

        def medium() -> str:  # TST-017
            self.chat("qwen3.5-9b-fp8-instruct", "Say ok.", max_tokens=8)
            return self._expect({asr, tts, phys["qwen3.5-9b-fp8-instruct"]},
                                {phys["qwen3.5-4b-instruct"]})

        def large() -> str:  # TST-018, first half
            self.transcribe(en)
            self.speak("Chatterbox-Multilingual", "Hallo.")
            self.chat("gpt-oss-20b-low", "Say ok.", max_tokens=8)
            return self._expect({phys["gpt-oss-20b-low"]}, {asr, tts})

        def asr_after_large() -> str:  # TST-018, second half
            self.transcribe(en)
            return self._expect({asr}, {phys["gpt-oss-20b-low"]})

        def swap() -> str:  # TST-019
            first, second = "qwen3.5-4b-instruct", "qwen3.5-9b-fp8-uncensored-instruct"
            self.chat(first, "Say ok.", max_tokens=8)
            self._expect({phys[first]}, set())
            self.chat(second, "Say ok.", max_tokens=8)
            return self._expect({phys[second]}, {phys[first]})

        r.check("TST-016", "4B beside ASR and TTS", small)
        r.check("TST-017", "9B beside ASR and TTS", medium)
        r.check("TST-018", "gpt-oss evicts ASR and TTS", large)
        r.check("TST-018", "ASR evicts gpt-oss", asr_after_large)
        r.check("TST-019", "LLM swap evicts the first", swap)

    # ----------------------------------------------------------- run
    def run(self, groups: list[str]) -> int:
        try:
            health = self.health()
        except (OSError, AssertionError, ValueError) as exc:
            print(f"acceptance: {self.base}/health is not reachable: {exc}", file=sys.stderr)
            return 2
        print(f"llmux at {self.base}: status {health.get('status')!r}\n", flush=True)
        if "models" not in groups:  # the mapping from /v1/models helps every other group
            try:
                for m in self.client.models.list().data:
                    physical = (m.model_extra or {}).get("physical")
                    if physical:
                        self.physical_of[m.id] = physical
            except openai.APIError as exc:  # the models check reports it; use the built-in map
                print(f"acceptance: /v1/models: {exc}", file=sys.stderr)
        for group in groups:
            getattr(self, f"check_{group}")()
        print("\n" + self.report.table())
        return 1 if self.report.failed else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8081", help="llmux base URL")
    p.add_argument("--key", required=True, help="an API key from api_keys.yaml")
    p.add_argument("--admin-key", help="an admin key (admin: true); optional: checked to be "
                                       "accepted like any key")
    p.add_argument("--audio-dir", help="speech clips speech_en.* / speech_de.* with .txt "
                                       f"transcripts (default: {DEFAULT_AUDIO_DIR})")
    p.add_argument("--demo", action="store_true",
                   help="the server runs the echo runtime (config/demo): check the shape of "
                        "transcripts, not their words, and not the timing of streamed tokens")
    p.add_argument("--only", default=",".join(GROUPS),
                   help=f"comma-separated groups to run (default: all): {', '.join(GROUPS)}")
    p.add_argument("--skip", default="", help="comma-separated groups to leave out")
    p.add_argument("--max-tokens", type=int, default=1024,
                   help="max_tokens for chat checks (thinking variants need room)")
    p.add_argument("--asr-min-recall", type=float, default=0.6,
                   help="share of the clip's words the transcript must contain")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds per request (a request may wait for a model load)")
    args = p.parse_args(argv)
    wanted = [g.strip() for g in args.only.split(",") if g.strip()]
    skipped = {g.strip() for g in args.skip.split(",") if g.strip()}
    unknown = sorted((set(wanted) | skipped) - set(GROUPS))
    if unknown:
        p.error(f"unknown group(s) {unknown}; choose from {', '.join(GROUPS)}")
    args.groups = [g for g in GROUPS if g in wanted and g not in skipped]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Acceptance(args).run(args.groups)


if __name__ == "__main__":
    sys.exit(main())
