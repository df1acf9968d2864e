"""A request's prompt: its text through the GGUF's chat template (images as the vision
marker), and where in its tokens checkpoints are saved (:func:`.prompt.boundaries`)."""

from __future__ import annotations

from typing import Any

from llmux import ChatRequest, InvalidRequest

from .prompt import boundaries, chat_format, image_urls, tools_of, with_markers


class Rendering:
    """The :class:`.engine.Engine`'s prompt side (it sets ``template``, ``_adds_bos``,
    ``vision``, ``store``, ``settings`` and ``llama``)."""

    def render(self, request: ChatRequest) -> tuple[str, list[str], dict[str, Any]]:
        """The prompt text (images as markers), the image URLs, the template kwargs."""
        fmt = chat_format(request)
        kwargs = fmt.template_kwargs(request.behaviour)
        messages = fmt.prepare_messages(request.messages, request.behaviour)
        urls = image_urls(messages)
        if urls:
            if self.vision is None:
                raise InvalidRequest(
                    f"model {request.model!r} does not accept images (its physical model has "
                    "no mmproj_file)", param="messages",
                )
            messages = with_markers(messages, self.vision.marker)
        return self._prompt_text(messages, tools_of(request), kwargs), urls, kwargs

    def _prompt_text(self, messages, tools, kwargs, add_generation_prompt: bool = True) -> str:
        prompt = self.template.render(messages, tools, add_generation_prompt=add_generation_prompt,
                                      **kwargs)
        bos = self.template.bos_token
        if self._adds_bos and bos and prompt.startswith(bos):
            prompt = prompt[len(bos):]  # llama.cpp adds it again
        return prompt

    def marks(self, request: ChatRequest, prompt: str, tokens: list[int], kwargs) -> list[int]:
        """Checkpoint positions in a text prompt's ``tokens`` (:func:`.prompt.boundaries`)."""
        if self.store is None or self.cuttable:
            return []  # a cuttable model saves its state after the answer instead
        fmt, tools = chat_format(request), tools_of(request)
        messages = fmt.prepare_messages(request.messages, request.behaviour)
        marks = boundaries(
            lambda m, **kw: self._prompt_text(m, tools, kwargs, **kw),
            lambda text, bos: self.llama.tokenize(text.encode(), add_bos=bos, special=True),
            messages, prompt, tokens)
        every = self.settings.checkpoint_every
        return marks + (list(range(every, len(tokens), every)) if every > 0 else [])
