"""A complete third-party llmux runtime in one module: chat that reverses the last message."""

from llmux import BackendInfo, ContentDelta, Finish, Usage, hookimpl


class ReverseModel:
    def __init__(self, model):
        self.model = model


@hookimpl
def backends():
    return [BackendInfo(
        name="reverse",
        types=frozenset({"llm"}),
        options_schema={"type": "object", "properties": {"upper": {"type": "boolean"}},
                        "additionalProperties": False},
    )]


@hookimpl
def load(model, device):
    return ReverseModel(model)


@hookimpl
def unload(model, handle):
    return None


@hookimpl
def estimate_vram(model):
    return 0.5


@hookimpl
def infer(model, handle, request, cancel):
    text = request.messages[-1]["content"][::-1]
    if model.options.get("upper"):
        text = text.upper()
    for ch in text:
        if cancel.cancelled:
            yield Finish("cancelled")
            return
        yield ContentDelta(ch)
    yield Finish("stop")
    yield Usage(prompt_tokens=len(text), completion_tokens=len(text))
