"""Chat inference: render with the model's own chat template, generate on the model's compute
thread, decode token by token keeping the special tokens the chat format parses, and yield
chat events.

Long prompts are prefilled in slices of ``prefill_chunk`` tokens (:mod:`.prefill`) on the
compute thread, under the model's lock, before ``generate`` runs; a cancellation stops the
prefill between slices, and any forward between two layers (:func:`.prefill.interruptible`).

The compute thread is the handle's, for the model's whole residency (it also loads the
model; ``ChatModel.close`` ends it): one torch OpenMP team per model, where a thread per
request added a team (measured in docs/plugins.md, Threads). However the iterator ends
(finished, closed by a client that left, an error), it stops the generation and waits for
it before returning, so the caller's lease on the model outlives every use of it.

Hot path: the compute thread hands each new token id to a ``SimpleQueue``; the consumer (the
model's thread in the core, pulling this iterator) decodes it incrementally (two short
``decode`` calls over a small window) and feeds the chat-format parser. Nothing else runs per
token unless stop strings or penalties were asked for.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from llmux.errors import InvalidRequest
from llmux.kit import StopStrings, acquire
from llmux.types import Cancellation, ChatEvent, ChatRequest, Usage

from .constrain import GuideProcessor, guide_for
from .loading import Plan
from .marks import prompt_marks
from .prefill import DEFAULT_CHUNK, VISION_INPUTS, Interrupted, interruptible, plan
from .prefix_cache import begin as begin_reuse
from .vision import Vision, image_parts

log = logging.getLogger(__name__)

#: Extension seam (used by the tests to force outputs): each factory is called once per
#: generation as ``factory(request, tokenizer, prompt_ids)`` and may return a
#: ``transformers.LogitsProcessor`` (or None) that runs after the sampling processors.
EXTRA_LOGITS_PROCESSORS: list[Callable[[ChatRequest, Any, list[int]], Any]] = []

JOIN_SECONDS = 10.0  # after this, a generation still running is logged (and waited for)
POLL_SECONDS = 0.05


@dataclass
class ChatModel:
    """The handle of a loaded chat model."""

    name: str
    model: Any
    tokenizer: Any
    plan: Plan
    max_context: int
    vision: Vision | None = None
    prefill_chunk: int = DEFAULT_CHUNK  # prompt tokens per prefill forward (options.prefill_chunk)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    vocabulary: Any = None  # llmux.structured.Vocabulary, built on the first constrained request
    prefixes: Any = None  # .prefix_cache.PrefixStore (options.prompt_cache_gb), None when off
    #: The thread every generation's torch work runs on (started on the first; ended by
    #: ``close``): one thread, so one OpenMP team, for the model's whole residency.
    compute: ThreadPoolExecutor | None = field(default=None, repr=False)

    def close(self) -> None:
        compute, self.compute = self.compute, None
        if compute is not None:
            compute.shutdown(wait=False)


def chat(h: ChatModel, request: ChatRequest, cancel: Cancellation) -> Iterator[ChatEvent]:
    """Validate and render now (so bad input is a 400 before streaming starts), then return
    the iterator that generates."""
    fmt = request.chat_format
    if fmt is None:
        from llmux.chatformats import PlainFormat

        fmt = PlainFormat()
    urls = image_parts(request.messages)
    if urls and h.vision is None:
        raise InvalidRequest(f"model {request.model!r} does not accept images", param="messages")
    try:
        kwargs = fmt.template_kwargs(request.behaviour)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    messages = fmt.prepare_messages(request.messages, request.behaviour)
    ids = render(h.tokenizer, messages, request.tools, kwargs)
    thinking = kwargs.get("enable_thinking", True)
    parser = fmt.parser(request.tools, thinking=thinking)
    guide = guide_for(h, request, fmt, thinking=thinking)
    inputs: dict[str, Any] = {}
    if urls:
        decoded = h.vision.inputs(urls, cancel)
        if decoded is None:  # cancelled while decoding the images
            return _cancelled(parser, len(ids))
        inputs, counts = decoded
        ids = h.vision.expand(ids, counts)
    if len(ids) >= h.max_context:
        raise InvalidRequest(
            f"the prompt is {len(ids)} tokens; model {request.model!r} takes at most "
            f"{h.max_context} tokens of context", param="messages", code="context_length_exceeded"
        )
    keep_ends = bool(fmt.stop_sequences or fmt.needs_special_tokens)
    marks = () if h.prefixes is None else prompt_marks(
        h.tokenizer, messages, request.tools, kwargs, ids)
    return _generate(h, request, cancel, ids, inputs, parser, keep_ends, guide, marks)


def render(tokenizer: Any, messages: list, tools: Any, kwargs: dict) -> list[int]:
    """The prompt token ids from the model's own chat template."""
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(
            messages, tools=list(tools) if tools else None, tokenize=False,
            add_generation_prompt=True, **kwargs,
        )
    except TemplateError as exc:
        raise InvalidRequest(f"the model's chat template refused the messages: {exc}") from None
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --------------------------------------------------------------------------- generation


def _cancelled(parser, prompt_tokens: int) -> Iterator[ChatEvent]:
    yield from parser.close("cancelled")
    yield Usage(prompt_tokens, 0)


def _generate(h, request, cancel, ids, inputs, parser, keep_ends, guide,
              marks=()) -> Iterator[ChatEvent]:
    if not acquire(h.lock, cancel, POLL_SECONDS):
        yield from _cancelled(parser, len(ids))
        return
    try:
        yield from _run(h, request, cancel, ids, inputs, parser, keep_ends, guide, marks)
    finally:
        h.lock.release()


def _run(h, request, cancel, ids, inputs, parser, keep_ends, guide,
         marks=()) -> Iterator[ChatEvent]:
    import torch

    sampling = request.sampling
    limit = h.max_context - len(ids)
    max_new = min(sampling.max_tokens, limit) if sampling.max_tokens else limit
    stop = threading.Event()  # set by a stop string, and whenever this iterator ends
    halt = _Halt(stop, cancel)
    streamer = _TokenQueue()
    gen_kwargs = _generation_kwargs(h, request, ids, inputs, stop, cancel, streamer, max_new)
    if guide is not None:  # last: the sampling warpers then choose among allowed tokens only
        gen_kwargs["logits_processor"].append(GuideProcessor(guide, len(ids), stop))
    image_token = h.vision.image_token_id if h.vision is not None else None
    first_image = ids.index(image_token) if inputs else None  # no reuse from there on
    if h.compute is None:
        h.compute = ThreadPoolExecutor(1, thread_name_prefix=f"llmux-{h.name}-generate")

    def prepare():  # a restored cache is a torch copy: on the compute thread too
        reuse = begin_reuse(h.prefixes, ids, h.model.device, marks, first_image)
        return reuse, plan(h.model, gen_kwargs, h.prefill_chunk, image_token, reuse)

    reuse, prefill = h.compute.submit(prepare).result()
    if prefill is None:  # an image prompt this transformers cannot prefill in slices
        reuse = None
    if prefill is not None:  # the prefill consumes the images; generate runs the last token
        for key in VISION_INPUTS:
            gen_kwargs.pop(key, None)
        gen_kwargs["generation_config"].cache_implementation = None  # it gets our cache
    eos = set(_eos_ids(h))
    decoder = _Decoder(h.tokenizer)
    stops = StopStrings(sampling.stop) if sampling.stop else None
    produced, last, reason = 0, None, "stop"

    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)  # under the model's lock; process-wide RNG
    generation = h.compute.submit(_generate_in_thread, h.model, gen_kwargs, streamer, prefill,
                                  halt)
    del prefill
    try:
        while True:
            try:
                item = streamer.queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if cancel.cancelled:
                    break
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            produced += 1
            last = item
            if item in eos and not keep_ends:
                continue
            text = decoder.push(item)
            if stops is not None and text:
                text, hit = stops.push(text)
                if hit:
                    stop.set()
                    yield from parser.feed(text)
                    break
            if text:
                yield from parser.feed(text)
            if cancel.cancelled:
                break
        if stops is not None and not stop.is_set():
            yield from parser.feed(stops.flush())
        if cancel.cancelled:
            reason = "cancelled"
        elif produced >= max_new and last not in eos and not stop.is_set():
            reason = "length"
        yield from parser.close(reason)
        yield Usage(prompt_tokens=len(ids), completion_tokens=produced,
                    cached_tokens=reuse.tokens if reuse is not None else 0)
    finally:
        stop.set()  # ends generate at its next step, the prefill or a forward at its next layer
        _join(generation, h.name)


def _join(generation: Future, name: str) -> None:
    """Wait for the generation, however long it takes: the model is in use until it has
    ended (a close that returned early would let an eviction free it under ``generate``)."""
    if wait([generation], JOIN_SECONDS).not_done:
        log.error("%s: generation has not stopped after %ss; waiting for it", name, JOIN_SECONDS)
        wait([generation])


def _generate_in_thread(model: Any, kwargs: dict, streamer: "_TokenQueue", prefill: Any,
                        halt: "_Halt") -> None:
    import torch

    try:
        with torch.inference_mode(), interruptible(model, halt):
            if prefill is not None:
                cache = prefill.run(halt)
                if cache is None:  # cancelled between slices: the consumer reports it
                    return
                kwargs[prefill.cache_arg] = cache
                del prefill
            model.generate(**kwargs)
    except Interrupted:  # cancelled inside a forward: the consumer reports it
        pass
    except BaseException as exc:  # handed to the consumer, re-raised there
        streamer.queue.put(exc)
    finally:
        streamer.end()


def _eos_ids(h: ChatModel) -> list[int]:
    eos = h.model.generation_config.eos_token_id
    if eos is None:
        eos = h.tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or ())


def _generation_kwargs(h, request, ids, inputs, stop, cancel, streamer, max_new) -> dict:
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    sampling = request.sampling
    config = h.model.generation_config
    options: dict[str, Any] = {"max_new_tokens": max_new}
    if sampling.temperature is not None:
        if sampling.temperature <= 0:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            options.update(do_sample=True, temperature=sampling.temperature)
    if sampling.top_p is not None and options.get("do_sample", config.do_sample):
        options["top_p"] = sampling.top_p
    processors = LogitsProcessorList()
    if sampling.presence_penalty or sampling.frequency_penalty:
        processors.append(
            _OpenAIPenalties(len(ids), sampling.presence_penalty or 0.0,
                             sampling.frequency_penalty or 0.0)
        )
    for factory in EXTRA_LOGITS_PROCESSORS:
        processor = factory(request, h.tokenizer, ids)
        if processor is not None:
            processors.append(processor)
    device = h.model.device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    extra = {k: v.to(device) for k, v in inputs.items()}
    if "pixel_values" in extra:
        extra["pixel_values"] = extra["pixel_values"].to(h.model.dtype)
        extra["mm_token_type_ids"] = (input_ids == h.vision.image_token_id).int()
    return dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        **extra,
        generation_config=_config(config, options),
        logits_processor=processors,
        stopping_criteria=StoppingCriteriaList([_Stop(stop, cancel)]),
        streamer=streamer,
    )


def _config(base: Any, options: dict) -> Any:
    import copy

    config = copy.deepcopy(base)
    for key, value in options.items():
        setattr(config, key, value)
    return config


# --------------------------------------------------------------------------- helpers


class _TokenQueue:
    """A transformers streamer: new token ids -> a queue (the prompt is skipped)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._prompt = True

    def put(self, value: Any) -> None:
        if self._prompt:
            self._prompt = False
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(token)

    def end(self) -> None:
        self.queue.put(None)


class _Halt:
    """What the generation thread checks: the request cancelled, or its consumer done (a
    stop string, or the iterator closed)."""

    __slots__ = ("cancel", "stop")

    def __init__(self, stop: threading.Event, cancel: Cancellation) -> None:
        self.stop, self.cancel = stop, cancel

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set() or self.cancel.cancelled


class _Stop:
    """Ends ``generate`` at the next step once cancelled or stopped."""

    def __init__(self, stop: threading.Event, cancel: Cancellation) -> None:
        self.halt = _Halt(stop, cancel)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.halt.cancelled, dtype=torch.bool,
                          device=input_ids.device)


class _Decoder:
    """Incremental detokenisation keeping special tokens: text appears once it is complete
    UTF-8 and cannot change with the next token (the read/prefix offsets of TGI/vLLM)."""

    __slots__ = ("tokenizer", "ids", "prefix", "read")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.ids, self.prefix, self.read = tokenizer, [], 0, 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""


class _OpenAIPenalties:
    """OpenAI's presence/frequency penalties over the generated tokens (additive)."""

    def __init__(self, prompt_len: int, presence: float, frequency: float) -> None:
        self.start, self.presence, self.frequency = prompt_len, presence, frequency

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.start:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(
            1, generated, torch.ones_like(generated, dtype=scores.dtype)
        )
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)
