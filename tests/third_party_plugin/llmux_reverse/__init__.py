"""A complete llmux runtime: chat that answers with the last message reversed."""

from llmux import BackendInfo, Usage, hookimpl
from llmux.chatformats import PlainFormat


@hookimpl
def backends():
    options = {"type": "object", "properties": {"upper": {"type": "boolean"}},
               "additionalProperties": False}  # validates the physical model's `options`
    return [BackendInfo(name="reverse", types=frozenset({"llm"}), options_schema=options)]


@hookimpl
def estimate_vram(model, context):  # GiB once loaded, from the files; this model has none
    return 0.0


@hookimpl
def load(model, device):  # the handle that infer and unload receive
    return {"upper": model.options.get("upper", False)}


@hookimpl
def unload(model, handle):
    handle.clear()


def text_of(content):  # a string, None, or a list of parts like {"type": "text", "text": "hi"}
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if p.get("type") == "text")


@hookimpl
def infer(model, handle, request, cancel):  # runs in a worker thread; yields chat events
    fmt = request.chat_format or PlainFormat()  # render and parse through the model's format
    kwargs = fmt.template_kwargs(request.behaviour)
    messages = fmt.prepare_messages(request.messages, request.behaviour)
    tools = None if request.tool_choice == "none" else request.tools
    parser = fmt.parser(tools, thinking=kwargs.get("enable_thinking", True))

    output = text_of(messages[-1].get("content"))[::-1]  # the "generation"
    if handle["upper"]:
        output = output.upper()
    for stop in request.sampling.stop:  # the client's stop strings are cut off
        output = output.split(stop)[0]
    reason, generated = "stop", 0
    for token in output:
        if cancel.cancelled or generated == request.sampling.max_tokens:
            reason = "cancelled" if cancel.cancelled else "length"
            break
        generated += 1
        yield from parser.feed(token)
    yield from parser.close(reason)  # the rest, then exactly one Finish
    prompt = sum(len(text_of(m.get("content"))) for m in messages)
    yield Usage(prompt_tokens=prompt, completion_tokens=generated)
