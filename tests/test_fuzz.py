"""Fuzzing every route: thousands of generated malformed requests, and the server holds.

Hypothesis generates requests for every route of the demo app (on the ``echo`` runtime):
wrong types for each field, missing fields, huge and deeply nested values, invalid JSON,
wrong content types, broken multipart forms, lone surrogates, bad keys, unknown models,
absurd numbers, bad image URLs and tool definitions. Every answer must be below 500, every
4xx OpenAI's error JSON; afterwards the server still answers and its memory stayed bounded.
The runs are derandomized, so CI sees the same requests every time.
"""

from __future__ import annotations

import base64
import ctypes
import gc
import http.client
import json
import math
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmux.app import create_app
from llmux.config import load_config
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes
from llmux.testing import ThreadedServer, sine_wav

from .conftest import DEMO_ADMIN_KEY, DEMO_KEY, demo_models, write_config

# Examples (one request each) per family; together at least MIN_REQUESTS.
BUDGET = {"chat": 800, "speech": 300, "transcriptions": 400, "admin": 250, "other": 300}
MIN_REQUESTS = 2000
RSS_GROWTH_MB = 200
ERROR_KEYS = {"message", "type", "param", "code"}

LLM = ["qwen3.5-4b-instruct", "qwen3.5-4b-thinking", "gpt-oss-20b-low", "gpt-oss-20b-high"]
TTS = ["Chatterbox", "Chatterbox-Multilingual"]
ASR = ["cohere-transcribe"]
PHYSICAL = ["qwen3.5-4b", "gpt-oss-20b", "chatterbox", "cohere-transcribe"]
COUNTS: dict[str, int] = {}  # requests sent, by family
COMPLETED: set[str] = set()  # families whose run passed


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    headers: dict
    body: bytes = b""


def rss_mb() -> float:
    """Resident memory of this process (the server runs in it), after giving back what the
    allocator holds free, so what is measured is what stays allocated."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class Server(ThreadedServer):
    def send(self, req: Req, timeout: float = 60) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(req.method, req.path, body=req.body, headers=req.headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def check(self, req: Req, family: str) -> None:
        status, body = self.send(req)
        COUNTS[family] = COUNTS.get(family, 0) + 1
        assert status < 500, f"{status} for {str(req)[:2000]}: {body[:2000]!r}"
        if status >= 400 and req.method != "HEAD":
            try:
                error = json.loads(body)
            except ValueError:
                raise AssertionError(
                    f"{status} is not JSON for {str(req)[:2000]}: {body[:500]!r}") from None
            assert set(error) == {"error"}, body[:500]
            assert set(error["error"]) == ERROR_KEYS, body[:500]
            assert isinstance(error["error"]["message"], str) and error["error"]["message"]


class _Summary:
    def pytest_terminal_summary(self, terminalreporter):
        total = sum(COUNTS.values())
        detail = ", ".join(f"{k} {v}" for k, v in COUNTS.items())
        terminalreporter.write_line(f"llmux fuzz: {total} generated requests ({detail})")


@pytest.fixture(scope="module")
def server(request, tmp_path_factory, builtin_pm_module):
    models = demo_models()
    for physical in models["physical"].values():
        physical.setdefault("options", {}).pop("token_delay", None)  # no waiting on tokens
        if physical["type"] == "tts":
            physical["options"]["seconds_per_char"] = 0.002  # short audio to encode
    directory = write_config(tmp_path_factory.mktemp("fuzz"), models)
    config = load_config(directory, Runtimes(builtin_pm_module))
    with Server(create_app(config, builtin_pm_module)) as srv:
        for req in valid_requests():  # load every model type once before the baseline
            assert srv.send(req)[0] == 200
        srv.rss_before = rss_mb()
        if not request.config.pluginmanager.has_plugin("llmux-fuzz-summary"):
            request.config.pluginmanager.register(_Summary(), "llmux-fuzz-summary")
        yield srv


@pytest.fixture(scope="module")
def builtin_pm_module():
    return get_plugin_manager(load_entry_points=False)


# --------------------------------------------------------------------------- values

ABSURD = st.sampled_from([
    0, -1, 1, 2, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**100,
    -(10**100), 1e308, -1e308, 5e-324, -0.0, 0.5, 2.0000001, math.nan, math.inf, -math.inf,
    True, False, "1", "", None, [], {},
])
LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udc00\ud800", "\ud83d"])
TEXT = st.one_of(
    st.text(max_size=40), LONE_SURROGATES,
    st.sampled_from(["", " ", "\x00", "\u202e\u200b\ufeff", "e\u0301" * 20, "🦙" * 10]),
    st.integers(10_000, 300_000).map(lambda n: "x" * n),  # huge, but one word
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT, ABSURD)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


def _nested(depth: int):
    value: list | dict = []
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


def maybe(strategy, *bad):
    """Mostly ``strategy``; sometimes any JSON value or one of ``bad``."""
    return st.one_of(strategy, strategy, JSON, *bad)


def key_headers(admin: bool = False) -> st.SearchStrategy[dict]:
    key = DEMO_ADMIN_KEY if admin else DEMO_KEY
    good = st.just({"Authorization": f"Bearer {key}"})
    bad = st.one_of(
        st.just({}),
        st.sampled_from(["", "Bearer", "Bearer ", "Basic " + key, key, f"Bearer {key}x",
                         f"bearer  {DEMO_KEY}", f"Bearer {DEMO_KEY}" if admin else "Token x",
                         "Bearer " + "k" * 4_000]).map(lambda v: {"Authorization": v}),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
        .map(lambda v: {"Authorization": "Bearer " + v}),
    )
    return st.one_of(good, good, good, good, good, bad)


JSON_TYPES = st.sampled_from([
    "application/json", "application/json", "application/json", "application/json",
    "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data", "multipart/form-data; boundary=x", "", "garbage/;;;=",
])


@st.composite
def json_body(draw, obj) -> bytes:
    """``obj`` encoded as JSON, or a broken encoding of it."""
    how = draw(st.sampled_from(["json"] * 6 + ["utf8", "truncate", "binary", "deep", "bignum",
                                               "empty", "text"]))
    if how == "utf8":  # lone surrogates as raw (invalid) UTF-8, not \\u escapes
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    raw = json.dumps(obj).encode()
    if how == "truncate":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "binary":
        return draw(st.binary(max_size=200))
    if how == "deep":
        n = draw(st.sampled_from([500, 1_000, 100_000]))
        return b'{"model": "x", "messages": ' + b"[" * n + b"]" * n + b"}"
    if how == "bignum":
        return raw[:-1] + b', "seed": ' + b"9" * 5000 + b"}" if raw.endswith(b"}") else raw
    if how == "empty":
        return draw(st.sampled_from([b"", b" ", b"null", b"[]", b'""', b"0", b"\xef\xbb\xbf{}"]))
    if how == "text":
        return draw(st.text(max_size=50)).encode()
    return raw


def json_request(method, path, headers, objects) -> st.SearchStrategy[Req]:
    @st.composite
    def build(draw):
        hdrs = dict(draw(headers))
        content_type = draw(JSON_TYPES)
        if content_type:
            hdrs["Content-Type"] = content_type
        return Req(method, path, hdrs, draw(json_body(draw(objects))))

    return build()


@st.composite
def fields(draw, required: dict, optional: dict) -> dict:
    """Required fields, each sometimes missing or wrong; a few optional ones, often wrong."""
    body = {}
    for name, strategy in required.items():
        if draw(st.integers(0, 9)):
            body[name] = draw(strategy)
    for name in sorted(draw(st.sets(st.sampled_from(sorted(optional)), max_size=4))):
        body[name] = draw(optional[name])
    if not draw(st.integers(0, 15)):
        body[draw(st.text(max_size=8))] = draw(JSON)
    return body


# --------------------------------------------------------------------------- chat

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
       "rkJggg==")
IMAGE_URLS = st.one_of(
    st.sampled_from([
        "data:image/png;base64," + PNG, "data:image/png;base64,AAAA", "data:image/png;base64,!!",
        "data:image/png;base64,", "data:", "data:,", "data:image/png,raw", "data:;base64,====",
        "data:image/png;base64," + PNG[:20], "data:text/plain;base64,aGVsbG8=",
        "data:image/jpeg;base64," + "A" * 100_000, "http://127.0.0.1:9/x.png",
        "file:///etc/passwd", "", "data:image/png;base64,%%%", "data:image/svg+xml,<svg/>",
    ]),
    st.binary(max_size=64).map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode()),
    TEXT,
)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(st.text(max_size=30))}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": maybe(
        st.fixed_dictionaries({"url": IMAGE_URLS}, optional={"detail": JSON}), IMAGE_URLS)}),
    st.fixed_dictionaries({"type": maybe(st.sampled_from(["input_audio", "refusal", "video"]))},
                          optional={"input_audio": JSON, "refusal": JSON}),
    JSON,
)
TOOL_CALL = st.fixed_dictionaries({
    "id": maybe(st.text(max_size=10)), "type": maybe(st.just("function")),
    "function": maybe(st.fixed_dictionaries({
        "name": maybe(st.sampled_from(["get_weather", ""])),
        "arguments": maybe(st.sampled_from(['{"city": "x"}', "{", "[]", ""]))}))})
MESSAGE = st.one_of(
    st.fixed_dictionaries(
        {"role": maybe(st.sampled_from(["user", "user", "system", "developer", "assistant",
                                        "tool", "function", "wizard"])),
         "content": maybe(st.text(max_size=60), st.none(), st.lists(PART, max_size=3), TEXT)},
        optional={"tool_calls": maybe(st.lists(TOOL_CALL, max_size=2)),
                  "tool_call_id": maybe(st.text(max_size=10)), "name": JSON},
    ),
    JSON,
)
SCHEMA = st.fixed_dictionaries(
    {"type": maybe(st.just("object")),
     "properties": maybe(st.dictionaries(st.text(max_size=6), maybe(st.fixed_dictionaries(
         {"type": maybe(st.sampled_from(["string", "integer", "number", "boolean", "array",
                                         "object", "null"]))},
         optional={"enum": JSON, "items": JSON, "properties": JSON})), max_size=3))},
    optional={"required": maybe(st.lists(st.text(max_size=6), max_size=3))},
)
TOOL = maybe(st.fixed_dictionaries({
    "type": maybe(st.just("function")),
    "function": maybe(st.fixed_dictionaries(
        {"name": maybe(st.sampled_from(["get_weather", "f", ""]))},
        optional={"description": JSON, "parameters": maybe(SCHEMA), "strict": JSON})),
}))
CHAT = fields(
    {"model": maybe(st.sampled_from(LLM), st.sampled_from(["gpt-5", "", *TTS, *ASR])),
     "messages": maybe(st.lists(MESSAGE, max_size=4), st.builds(_nested, st.just(200)))},
    {"stream": maybe(st.booleans()), "stream_options": maybe(st.fixed_dictionaries(
        {"include_usage": maybe(st.booleans())})),
     "temperature": ABSURD, "top_p": ABSURD, "max_tokens": ABSURD,
     "max_completion_tokens": ABSURD, "n": ABSURD, "seed": ABSURD, "presence_penalty": ABSURD,
     "frequency_penalty": ABSURD, "stop": maybe(st.lists(TEXT, max_size=6), TEXT),
     "tools": maybe(st.lists(TOOL, max_size=3)),
     "tool_choice": maybe(st.sampled_from(["auto", "none", "required", "any"]),
                          st.fixed_dictionaries({"type": st.just("function"), "function":
                                                 st.fixed_dictionaries({"name": maybe(
                                                     st.just("get_weather"))})})),
     "response_format": JSON, "reasoning_effort": JSON, "logprobs": JSON, "user": JSON},
)


# --------------------------------------------------------------------------- audio

SPEECH = fields(
    {"model": maybe(st.sampled_from(TTS), st.sampled_from(["tts-1", "", *LLM])),
     "input": maybe(st.text(max_size=80), TEXT, st.just("x " * 3000))},
    {"voice": maybe(st.sampled_from(["alloy", "default", "nobody", ""])),
     "language": maybe(st.sampled_from(["en", "de", "xx", ""])),
     "response_format": maybe(st.sampled_from(["mp3", "opus", "aac", "flac", "wav", "pcm",
                                               "ogg", ""])),
     "speed": ABSURD, "instructions": JSON, "stream_format": JSON},
)
WAV = sine_wav(0.25)
FILES = st.one_of(
    st.just(WAV), st.integers(0, len(WAV)).map(lambda n: WAV[:n]), st.binary(max_size=300),
    st.just(b""), st.just(b"RIFF\xff\xff\xff\xffWAVEfmt "), st.just(WAV[:44] + b"\x00" * 8),
    st.just(b"ID3" + b"\x00" * 100), st.just(b"OggS" + b"\xff" * 60),
)
FORM_FIELDS = {
    "model": maybe(st.sampled_from(ASR), st.sampled_from(["whisper-1", "", *LLM, *TTS])),
    "response_format": maybe(st.sampled_from(["json", "text", "verbose_json", "srt", "vtt",
                                              "xml"])),
    "temperature": maybe(st.sampled_from(["0", "0.5", "1", "-1", "nan", "inf", "1e309", ""])),
    "language": maybe(st.sampled_from(["en", "de", "xx", ""])),
    "prompt": TEXT, "stream": maybe(st.sampled_from(["false", "true", "0", ""])),
    "timestamp_granularities[]": JSON,
}


@st.composite
def form_value(draw, name: str) -> bytes:
    if name == "file":
        return draw(FILES)
    value = draw(FORM_FIELDS.get(name, JSON))
    text = value if isinstance(value, str) else json.dumps(value)
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=40))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def multipart(draw) -> Req:
    boundary = draw(st.sampled_from(["fuzzb0undary", "x", "----WebKitFormBoundary7MA4YWx",
                                     "a" * 70]))
    names = ["model", "file"] * draw(st.integers(0, 1))
    names += draw(st.lists(st.sampled_from([*FORM_FIELDS, "file", "model", ""]), max_size=4))
    parts = []
    for name in names:
        kind = draw(st.sampled_from(["plain"] * 8 + ["no-disposition", "nested", "filename"]))
        if kind == "no-disposition":
            head = "Content-Type: text/plain"
        elif kind == "nested":
            head = (f'Content-Disposition: form-data; name="{name}"\r\n'
                    "Content-Type: multipart/mixed; boundary=inner")
        elif kind == "filename" or name == "file":
            head = (f'Content-Disposition: form-data; name="{name}"; filename="a.wav"\r\n'
                    "Content-Type: audio/wav")
        else:
            head = f'Content-Disposition: form-data; name="{name}"'
        value = (b"--inner\r\n\r\nx\r\n--inner--\r\n" if kind == "nested"
                 else draw(form_value(name)))
        parts.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + value + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    breakage = draw(st.sampled_from(["none"] * 6 + ["truncate", "no-end", "other-boundary",
                                                   "no-boundary", "garbage", "json", "crlf"]))
    content_type = f"multipart/form-data; boundary={boundary}"
    if breakage == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif breakage == "no-end":
        body = body[: -len(f"--{boundary}--\r\n")]
    elif breakage == "other-boundary":
        content_type = "multipart/form-data; boundary=" + draw(
            st.sampled_from(["other", "", '"', "x" * 200, "fuzz b0undary"]))
    elif breakage == "no-boundary":
        content_type = draw(st.sampled_from(["multipart/form-data", "multipart/mixed", ""]))
    elif breakage == "garbage":
        body = draw(st.binary(max_size=300))
    elif breakage == "json":
        content_type, body = "application/json", b'{"model": "cohere-transcribe"}'
    elif breakage == "crlf":
        body = body.replace(b"\r\n", b"\n")
    headers = dict(draw(key_headers()))
    if content_type:
        headers["Content-Type"] = content_type
    return Req("POST", "/v1/audio/transcriptions", headers, body)


# --------------------------------------------------------------------------- the rest

ROUTES = [("POST", "/v1/chat/completions"), ("POST", "/v1/audio/transcriptions"),
          ("POST", "/v1/audio/speech"), ("GET", "/v1/models"), ("GET", "/v1/models/{name}"),
          ("GET", "/v1/admin/models"), ("POST", "/v1/admin/models/{name}/load"),
          ("POST", "/v1/admin/models/{name}/unload"), ("POST", "/v1/admin/bench"),
          ("GET", "/health"), ("GET", "/metrics"), ("GET", "/openapi.json")]
NAMES = st.one_of(
    st.sampled_from([*PHYSICAL, *LLM, *TTS, "nope", "", "..", "%2e%2e", "%00", "%ff%fe",
                     "a" * 5000]),
    st.text(max_size=20).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")),
)
QUERIES = st.one_of(st.just(""), st.just(""), st.sampled_from(
    ["?", "?a=1&a=2", "?%ff=%fe", "?x=" + "y" * 5000, "?;;;&&==", "?model=nope"]))


@st.composite
def other_request(draw, routes=ROUTES) -> Req:
    method, path = draw(st.sampled_from(routes))
    method = draw(st.sampled_from([method] * 4 + ["GET", "POST", "PUT", "DELETE", "PATCH",
                                                  "OPTIONS", "HEAD"]))
    if draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from(["/v1", "/v1/", "/v1/nothing", "/", "/health/",
                                     "/v1/models/", "/v1//models", "/openapi.json/x"]))
    path = path.replace("{name}", draw(NAMES)) + draw(QUERIES)
    headers = dict(draw(key_headers(admin=draw(st.booleans()))))
    body = b""
    if draw(st.booleans()):
        headers["Content-Type"] = draw(JSON_TYPES) or "application/octet-stream"
        body = draw(json_body(draw(JSON)))
    return Req(method, path, headers, body)


BENCH = fields(
    {"model": maybe(st.sampled_from(PHYSICAL), st.sampled_from(LLM))},
    {"device": maybe(st.sampled_from(["cpu", "cuda", "both", "tpu"])),
     "runs": maybe(st.integers(-2, 3), ABSURD), "max_tokens": maybe(st.integers(-2, 4), ABSURD)},
)
ADMIN = st.one_of(
    json_request("POST", "/v1/admin/bench", key_headers(admin=True), BENCH),
    other_request([r for r in ROUTES if r[1].startswith("/v1/admin")]),
    st.tuples(st.sampled_from(["load", "unload"]), NAMES, key_headers(admin=True)).map(
        lambda t: Req("POST", f"/v1/admin/models/{t[1]}/{t[0]}", t[2])),
)
FAMILIES = {
    "chat": json_request("POST", "/v1/chat/completions", key_headers(), CHAT),
    "speech": json_request("POST", "/v1/audio/speech", key_headers(), SPEECH),
    "transcriptions": multipart(),
    "admin": ADMIN,
    "other": other_request(),
}


# --------------------------------------------------------------------------- tests


def valid_requests() -> list[Req]:
    auth = {"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json"}
    form = (b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ncohere-transcribe\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
            + WAV + b"\r\n--b--\r\n")
    return [
        Req("POST", "/v1/chat/completions", auth, json.dumps(
            {"model": LLM[0], "messages": [{"role": "user", "content": "hi"}]}).encode()),
        Req("POST", "/v1/audio/speech", auth,
            json.dumps({"model": TTS[0], "input": "hello"}).encode()),
        Req("POST", "/v1/audio/transcriptions",
            {**auth, "Content-Type": "multipart/form-data; boundary=b"}, form),
    ]


def _known(path: str, body: bytes, key: str = DEMO_KEY, content_type="application/json"):
    return Req("POST", path, {"Authorization": f"Bearer {key}", "Content-Type": content_type},
               body)


# Requests this fuzzing once found a 5xx with, run first in every run.
KNOWN = {
    "chat": [
        _known("/v1/chat/completions", b'{"model": "qwen3.5-4b-instruct", "seed": '
               + b"9" * 5000 + b', "messages": [{"role": "user", "content": "x"}]}'),
        _known("/v1/chat/completions",
               b'{"model": "qwen3.5-4b-instruct", "messages": [{"role": [], "content": null}]}'),
        _known("/v1/chat/completions", b'{"model": "qwen3.5-4b-instruct", "messages": '
               b'[{"role": "user", "content": [{"type": []}]}]}'),
    ],
    "transcriptions": [
        _known("/v1/audio/transcriptions", b"--b--\r\n", content_type="multipart/form-data"),
    ],
    "admin": [_known("/v1/admin/bench", b'{"device": []}', DEMO_ADMIN_KEY)],
}


def test_the_families_cover_every_route_and_enough_requests(server):
    registered = {(r.method, r.resource.canonical) for r in server.app.router.routes()
                  if r.method != "HEAD"}
    assert registered == set(ROUTES)
    assert sum(BUDGET.values()) >= MIN_REQUESTS


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzz(server, family, record_property):
    @settings(max_examples=BUDGET[family], deadline=None, derandomize=True, database=None,
              print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much, HealthCheck.large_base_example])
    @given(req=FAMILIES[family])
    def fuzz(req):
        server.check(req, family)

    for req in KNOWN.get(family, ()):
        fuzz = example(req=req)(fuzz)
    fuzz()
    record_property("fuzz_requests", COUNTS[family])
    assert COUNTS[family] >= BUDGET[family]
    COMPLETED.add(family)


def test_after_the_fuzz_the_server_answers_and_stayed_small(server, record_property):
    status, body = server.send(Req("GET", "/health", {}))
    assert status == 200 and json.loads(body)["status"] == "ok"
    for req in valid_requests():
        assert server.send(req)[0] == 200, req
    total = sum(COUNTS.values())
    record_property("fuzz_requests_total", total)
    if COMPLETED == set(FAMILIES):  # every family ran, and passed
        assert total >= MIN_REQUESTS
    grown = rss_mb() - server.rss_before
    assert grown < RSS_GROWTH_MB, f"RSS grew by {grown:.0f} MB over {total} fuzzed requests"
