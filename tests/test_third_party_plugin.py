"""A runtime from another distribution, installed with pip, found through its entry point.

``tests/third_party_plugin/`` is the README's example plugin, verbatim: the first test keeps
the two equal, the others serve it through the HTTP API.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import pytest

from llmux.app import create_app
from llmux.config import load_config
from llmux.plugins import get_plugin_manager
from llmux.runtime import Runtimes

from .conftest import AUTH, REPO, write_config

EXAMPLE = REPO / "tests" / "third_party_plugin"


def _readme_blocks() -> dict[str, str]:
    """The fenced blocks of the README's "Runtime plugins" section whose first line is a
    comment naming a file: {that path: the rest of the block}."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Runtime plugins\n", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for body in re.findall(r"^```[a-z]*\n(.*?)^```$", section, re.MULTILINE | re.DOTALL):
        first, _, rest = body.partition("\n")
        if match := re.fullmatch(r"# (\S+)", first):
            blocks[match.group(1)] = rest
    return blocks


def _example_files() -> dict[str, str]:
    files = [EXAMPLE / "pyproject.toml", *(EXAMPLE / "llmux_reverse").rglob("*.py")]
    return {f.relative_to(EXAMPLE).as_posix(): f.read_text() for f in files}


def test_the_readme_example_is_this_plugin_verbatim():
    blocks, files = _readme_blocks(), _example_files()
    assert sorted(blocks) == sorted(files)  # every file shown, nothing shown that is not one
    for path, text in files.items():
        assert blocks[path] == text, f"README.md's {path} differs from {EXAMPLE / path}"


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, timeout=300,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("llmux_reverse", None)
        importlib.invalidate_caches()


async def test_a_pip_installed_plugin_serves_a_model(installed_plugin, tmp_path, aiohttp_client):
    pm = get_plugin_manager()
    assert pm.get_plugin("reverse") is not None  # registered under its entry-point name
    runtimes = Runtimes(pm)
    assert runtimes.get("reverse").plugin_name == "reverse"
    directory = write_config(tmp_path, {
        "models_dir": str(tmp_path),
        "physical": {"mirror": {"type": "llm", "backend": "reverse", "path": "mirror",
                                "vram_gb": 1, "chat_format": "plain",
                                "options": {"upper": True}}},
        "virtual": {"mirror-chat": {"physical": "mirror"}},
    })
    config = load_config(directory, runtimes)
    client = await aiohttp_client(create_app(config, pm))
    resp = await client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "mirror-chat", "messages": [{"role": "user", "content": "stressed"}]})
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "DESSERTS"
    health = await (await client.get("/health")).json()
    assert [m["model"] for m in health["loaded"]] == ["mirror"]
    assert "reverse" in health["backends"]


def test_its_options_are_validated_by_its_own_schema(installed_plugin, tmp_path):
    from llmux.errors import ConfigError

    directory = write_config(tmp_path, {
        "physical": {"mirror": {"type": "llm", "backend": "reverse", "path": "m", "vram_gb": 1,
                                "chat_format": "plain", "options": {"upper": "yes"}}},
        "virtual": {"mirror-chat": {"physical": "mirror"}},
    })
    with pytest.raises(ConfigError) as info:
        load_config(directory, Runtimes(get_plugin_manager()))
    assert info.value.errors == [
        "models.yaml::$.physical.mirror.options.upper: 'yes' is not of type 'boolean'"
    ]


def test_load_plugins_env_narrows_discovery(installed_plugin, monkeypatch):
    monkeypatch.setenv("LLMUX_LOAD_PLUGINS", "")
    assert not Runtimes(get_plugin_manager()).has("reverse")
    monkeypatch.setenv("LLMUX_LOAD_PLUGINS", "reverse")
    assert Runtimes(get_plugin_manager()).has("reverse")


# --------------------------------------------------------------------------- over HTTP

TEXT_PARTS = [{"type": "text", "text": "stre"}, {"type": "text", "text": "ssed"}]


@pytest.fixture
async def reverse_client(installed_plugin, tmp_path, aiohttp_client):
    """The app with two of the plugin's models: the plain format and Qwen3.5's."""
    physical = {"type": "llm", "backend": "reverse", "path": "m", "vram_gb": 1}
    directory = write_config(tmp_path, {
        "models_dir": str(tmp_path),
        "physical": {"plain": {**physical, "chat_format": "plain"},
                     "qwen": {**physical, "chat_format": "qwen3_5",
                              "capabilities": {"tools": True}}},
        "virtual": {"plain-chat": {"physical": "plain"}, "qwen-chat": {"physical": "qwen"}},
    })
    pm = get_plugin_manager()
    return await aiohttp_client(create_app(load_config(directory, Runtimes(pm)), pm))


async def _chat(client, stream: bool, **body) -> dict:
    """POST a chat completion; a stream is folded into the non-streaming answer's shape."""
    body = {"model": "plain-chat", "stream": stream, **body}
    if stream:
        body["stream_options"] = {"include_usage": True}
    resp = await client.post("/v1/chat/completions", headers=AUTH, json=body)
    assert resp.status == 200, await resp.text()
    if not stream:
        answer = await resp.json()
        return {**answer["choices"][0]["message"], "finish_reason":
                answer["choices"][0]["finish_reason"], "usage": answer["usage"]}
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    frames = [line[len("data: "):] for line in (await resp.text()).split("\n\n") if line]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    message: dict = {"content": "", "finish_reason": None, "usage": chunks[-1]["usage"]}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        for key in ("content", "reasoning_content"):
            if choice["delta"].get(key):
                message[key] = message.get(key, "") + choice["delta"][key]
        message["finish_reason"] = choice["finish_reason"] or message["finish_reason"]
    return message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("content", ["stressed", TEXT_PARTS], ids=["string", "parts"])
async def test_it_answers_a_string_or_content_parts(reverse_client, stream, content):
    answer = await _chat(reverse_client, stream, messages=[
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": content}])
    assert answer["content"] == "desserts"
    assert answer["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": len("be brief") + 8, "completion_tokens": 8,
                               "total_tokens": len("be brief") + 16,
                               "prompt_tokens_details": {"cached_tokens": 0}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_it_honours_stop_and_max_tokens(reverse_client, stream):
    messages = [{"role": "user", "content": TEXT_PARTS}]
    answer = await _chat(reverse_client, stream, messages=messages, stop=["r", "ss"])
    assert (answer["content"], answer["finish_reason"]) == ("de", "stop")
    answer = await _chat(reverse_client, stream, messages=messages, max_tokens=3)
    assert (answer["content"], answer["finish_reason"]) == ("des", "length")
    assert answer["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_its_output_goes_through_the_models_chat_format(reverse_client, stream):
    # Qwen3.5's generation opens inside the reasoning: "hmm</think>hi" is reasoning + answer.
    answer = await _chat(reverse_client, stream, model="qwen-chat",
                         messages=[{"role": "user", "content": [
                             {"type": "text", "text": "ih>kniht/<mmh"}]}])
    assert (answer["reasoning_content"], answer["content"]) == ("hmm", "hi")


def test_called_without_a_chat_format_it_parses_as_plain(installed_plugin):
    # Over HTTP an llm model always has one (models.yaml requires it); a direct call may not.
    import llmux_reverse

    from llmux import ChatRequest, ContentDelta, Finish, PhysicalModel, Usage
    from llmux.types import Cancellation

    model = PhysicalModel("m", "llm", "reverse", "m", REPO)
    handle = llmux_reverse.load(model=model, device=None)
    request = ChatRequest("m", [{"role": "user", "content": TEXT_PARTS + [
        {"type": "text", "text": ">kniht/<"}]}])
    events = list(llmux_reverse.infer(model=model, handle=handle, request=request,
                                      cancel=Cancellation()))
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "</think>desserts"
    assert events[-2:] == [Finish("stop"), Usage(16, 16)]
    cancel = Cancellation()
    cancel.cancel()
    events = list(llmux_reverse.infer(model=model, handle=handle, request=request, cancel=cancel))
    assert events == [Finish("cancelled"), Usage(16, 0)]
