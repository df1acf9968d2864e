"""A loaded GGUF model (the handle llmux gets from ``load``) and its chat generation.

Generation is llmux's own token loop over ``Llama.generate``: between two tokens it checks
the cancellation, counts tokens exactly, turns each token into bytes once (cached), decodes
UTF-8 incrementally (a character split across tokens is held back, nothing is
re-detokenized) and feeds the text to the chat format's stream parser. One generation at a
time per model: a per-handle lock, waited for in short slices so that a cancelled request
stops waiting, and held by ``unload`` too. A text prompt is evaluated in ``n_batch`` slices
(:func:`.prompt.evaluate`) with the cancellation checked between them, from the longest
prefix still in the context or saved in the model's checkpoint store (:mod:`.checkpoints`,
process-wide: it outlives an unload).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import threading
import time
from typing import Any, Iterator

from llmux import ChatRequest, InvalidRequest, LlmuxError, ModelLoadError, Usage
from llmux.kit import StopStrings, TokenCount, acquire

from .constrain import GuideStage, guide_for
from .options import Settings
from .checkpoints import store_for
from .prompt import ChatTemplate, chat_format, evaluate, save_answer, tools_of
from .render import Rendering
from .vision import Vision, decode_image

log = logging.getLogger("llmux_llamacpp")

# llama-cpp-python's sampling defaults, used where neither request nor model say otherwise.
DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05,
            "repeat_penalty": 1.0}


class Engine(Rendering):
    def __init__(self, name: str, settings: Settings) -> None:
        import llama_cpp

        from .logs import install

        install()
        self.name = name
        self.settings = settings
        self.lock = threading.Lock()
        self.vision: Vision | None = None
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._eog: dict[int, bool] = {}
        self._grammars: dict[str, Any] = {}
        self.store: Any = None  # .checkpoints.Store, None when prompt_cache_gb is 0
        self.cuttable = False  # set at load: an attention-only model's cache can be cut
        self.vocabulary: Any = None  # llmux.structured.Vocabulary, on the first constrained request
        if settings.n_gpu_layers != 0 and not llama_cpp.llama_supports_gpu_offload():
            if settings.device == "cuda":
                raise ModelLoadError(
                    f"model {name!r}: the GPU was asked for but this llama-cpp-python build "
                    "has no GPU support; reinstall it with CMAKE_ARGS=\"-DGGML_CUDA=on\""
                )
            log.info("llamacpp %s: CPU-only llama-cpp-python build, n_gpu_layers ignored", name)
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(settings.model_path),
                n_gpu_layers=settings.n_gpu_layers,
                n_ctx=settings.n_ctx,
                verbose=False,
                **settings.llama_kwargs,
            )
        except Exception as exc:
            raise ModelLoadError(f"model {name!r}: llama.cpp could not load "
                                 f"{settings.model_path}: {exc}") from exc
        try:
            self.vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
            source = self.llama.metadata.get("tokenizer.chat_template")
            if not source:
                raise ModelLoadError(f"model {name!r}: {settings.model_path.name} has no "
                                     "embedded chat template (tokenizer.chat_template)")
            self.template = ChatTemplate(
                source, self._text(self.llama.token_bos()), self._text(self.llama.token_eos())
            )
            self._adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
            if settings.grammar:
                self.grammar(settings.grammar)
            # saved prompt states, outside the engine: they outlive an unload
            self.store = store_for(name, settings.model_path, settings.prompt_cache_bytes,
                                   layout=settings.llama_kwargs.get("flash_attn"))
            # attention only: the cache can be cut back to any prefix, so no prefill splits
            self.cuttable = not (llama_cpp.llama_model_is_recurrent(self.llama.model)
                                 or llama_cpp.llama_model_is_hybrid(self.llama.model))
            if settings.mmproj_path is not None:
                self.vision = Vision(settings.mmproj_path, self.llama,
                                     use_gpu=settings.n_gpu_layers != 0)
        except BaseException:
            self.close()
            raise

    def device_bytes(self) -> int:
        """llama.cpp's own count: the model's tensors (the offloaded share) and the
        context's state (KV cache and recurrent state)."""
        import llama_cpp

        llama = self.__dict__.get("llama")
        if llama is None:
            return 0
        n_layer = max(1, llama_cpp.llama_model_n_layer(llama.model))
        layers = self.settings.n_gpu_layers
        share = 1.0 if layers < 0 else min(layers, n_layer) / n_layer
        model = llama_cpp.llama_model_size(llama.model) * share
        return int(model + llama_cpp.llama_state_get_size(llama.ctx))

    def close(self) -> None:
        """Free the vision context, then the model (the context refers to the model)."""
        if self.vision is not None:
            self.vision.close()
            self.vision = None
        llama = self.__dict__.pop("llama", None)
        if llama is not None:
            llama.close()
        self._grammars.clear()

    # ------------------------------------------------------------------ tokens

    def _text(self, token: int) -> str:
        return self._piece(token, True).decode("utf-8", "replace") if token >= 0 else ""

    def _piece(self, token: int, special: bool) -> bytes:
        key = (token, special)
        piece = self._pieces.get(key)
        if piece is None:
            import llama_cpp

            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
            piece = self._pieces[key] = buf.raw[:n]
        return piece

    def _is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            import llama_cpp

            eog = self._eog[token] = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
        return eog

    def grammar(self, text: str) -> Any:
        """A compiled-once ``LlamaGrammar``; a grammar llama.cpp cannot parse is an error."""
        grammar = self._grammars.get(text)
        if grammar is None:
            import llama_cpp
            from llama_cpp import LlamaGrammar

            probe = llama_cpp.llama_sampler_init_grammar(self.vocab, text.encode(), b"root")
            if not probe:
                raise LlmuxError(f"model {self.name!r}: the GBNF grammar does not parse")
            llama_cpp.llama_sampler_free(probe)
            grammar = self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
        return grammar

    # ------------------------------------------------------------------ chat

    def chat(self, request: ChatRequest, cancel: Any) -> Iterator:
        """Validate at once (errors become 4xx before any byte is sent), then stream."""
        prompt, urls, kwargs = self.render(request)
        images = [decode_image(url, i) for i, url in enumerate(urls)]
        tokens = None
        if not images:
            tokens = self.llama.tokenize(prompt.encode(), add_bos=True, special=True)
            if len(tokens) >= self.settings.n_ctx:
                raise InvalidRequest(
                    f"the prompt is {len(tokens)} tokens; the context of {request.model!r} "
                    f"holds {self.settings.n_ctx}", param="messages",
                )
        log.debug("llamacpp %s prompt: %r", self.name, prompt)
        grammar_text = request.behaviour.options.get("grammar") or self.settings.grammar
        grammar = self.grammar(grammar_text) if grammar_text else None
        guide = guide_for(self, request, chat_format(request),
                          thinking=kwargs.get("enable_thinking", True))
        if guide is not None:
            grammar = None  # the request's constraint replaces an operator's GBNF grammar
        marks = self.marks(request, prompt, tokens, kwargs) if tokens is not None else []
        return self._generate(request, cancel, prompt, tokens, images, kwargs, grammar, guide,
                              marks)

    def _generate(self, request, cancel, prompt, tokens, images, kwargs, grammar,
                  guide=None, marks=()) -> Iterator:
        fmt = chat_format(request)
        parser = fmt.parser(tools_of(request), thinking=kwargs.get("enable_thinking", True))
        if not acquire(self.lock, cancel):
            yield from parser.close("cancelled")
            yield Usage(0, 0)
            return
        run = Run()
        try:
            if "llama" not in self.__dict__:
                raise ModelLoadError(f"model {self.name!r} was unloaded")
            if images:
                assert self.vision is not None
                tokens, run.prompt, run.cached = self.vision.evaluate(
                    self.llama, prompt, images,  # reuse up to the first image
                    lambda text: evaluate(self.llama, text, cancel, self.store,
                                          cuttable=self.cuttable))
                evaluated = not cancel.cancelled
            else:
                run.prompt = len(tokens)
                reused = evaluate(self.llama, tokens, cancel, self.store, marks,
                                  cuttable=self.cuttable)
                evaluated = reused is not None
                run.cached = reused or 0
            room = self.settings.n_ctx - run.prompt
            wanted = request.sampling.max_tokens
            limit = min(wanted, room) if wanted else room
            if not evaluated:
                run.reason = "cancelled"
            elif limit <= 0:
                run.reason = "length"
            else:
                yield from self._loop(run, request, cancel, parser, fmt, tokens, limit, grammar,
                                      guide)
            yield from parser.close(run.reason)
            yield run.usage()
            if self.cuttable and not images and not cancel.cancelled:
                save_answer(self.llama, self.store)  # after the last event: off the TTFT path
        finally:
            self.lock.release()
            if cancel.cancelled:
                run.reason = "cancelled"
            log.debug("llamacpp %s: %d prompt + %d completion tokens, finish %s, %.3f s",
                      self.name, run.prompt, run.completion, run.reason,
                      time.perf_counter() - run.started)

    def _loop(self, run: "Run", request, cancel, parser, fmt, tokens, limit, grammar, guide):
        import llama_cpp

        s = request.sampling
        opts = {**DEFAULTS, **self.settings.sampling}
        seed = s.seed if s.seed is not None else opts.get("seed")
        # llama.cpp's sampler seed is 32-bit; the API takes any 64-bit integer.
        self.llama.set_seed(seed & 0xFFFFFFFF if seed is not None
                            else llama_cpp.LLAMA_DEFAULT_SEED)
        special = fmt.needs_special_tokens
        stopper = StopStrings(s.stop, keep=fmt.stop_sequences)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        generator = self.llama.generate(
            tokens,
            temp=s.temperature if s.temperature is not None else opts["temperature"],
            top_p=s.top_p if s.top_p is not None else opts["top_p"],
            top_k=opts["top_k"],
            min_p=opts["min_p"],
            repeat_penalty=opts["repeat_penalty"],
            frequency_penalty=s.frequency_penalty or 0.0,
            presence_penalty=s.presence_penalty or 0.0,
            grammar=grammar,
            logits_processor=[GuideStage(guide)] if guide is not None else None,
        )
        stopped = False
        feed, push, piece, is_eog = parser.feed, stopper.push, self._piece, self._is_eog
        try:
            for token in generator:
                if cancel.cancelled:
                    run.reason = "cancelled"
                    break
                run.completion += 1  # the end token counts too (llmux.kit.usage)
                if is_eog(token):
                    break
                if guide is not None:
                    guide.consume(token)
                text = decoder.decode(piece(token, special))
                if text:
                    text, stopped = push(text)
                    if text:
                        events = feed(text)
                        if events:
                            yield from events
                    if stopped:
                        break
                if run.completion >= limit:
                    run.reason = "length"
                    break
        finally:
            generator.close()
        if not stopped:
            tail = stopper.flush(decoder.decode(b"", final=True))
            if tail:
                yield from feed(tail)


class Run(TokenCount):
    """One generation's counts, kept where a closed generator can still report them."""

    __slots__ = ("reason", "started")

    def __init__(self) -> None:
        super().__init__()
        self.reason = "stop"
        self.started = time.perf_counter()
