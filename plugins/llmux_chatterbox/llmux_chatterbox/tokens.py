"""A real upper bound on the speech tokens T3 samples, valid ids only, and prompt cancellation.

``generate()`` of every Chatterbox variant has no length argument: English and Multilingual
call ``T3.inference(max_new_tokens=1000)`` with the number written into the call, Turbo calls
``T3.inference_turbo()`` with its default ``max_gen_len=1000``. Each is a Python loop that
samples one token per step until the stop token -- which a model may never sample. At
25 tokens a second of audio, 1000 tokens are 40 s of audio and minutes of compute on a CPU.

:class:`TokenCap` replaces both methods on the loaded T3 *instance* (``generate`` looks them
up through ``self.t3``), so the loop bound becomes the ``max_speech_tokens`` option. It also

- drops ids the S3Gen vocoder cannot embed: its vocabulary is 6561 ids, T3's is larger
  (start/stop 6561/6562 and, for English and Multilingual, unused ids up to 8193).
  English and Turbo filter ``< 6561`` after T3; Multilingual only cuts at the stop token, so
  an unused id reaches S3Gen and fails with an index error;
- counts the tokens that reach S3Gen, for ``Speech.speech_tokens``;
- stops sampling within one step when the request is cancelled: a forward pre-hook on the
  T3 transformer raises :class:`Cancelled`, which :func:`llmux_chatterbox.synth.synthesize`
  catches;
- removes the attention hooks Multilingual's loop leaves behind
  (:func:`llmux_chatterbox.fixes.no_hook_leak`).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)

SPEECH_VOCAB_SIZE = 6561  # S3Gen's speech-token vocabulary (chatterbox's s3tokenizer)
STOP_SPEECH_TOKEN = 6562
SILENCE_TOKEN = 4299  # chatterbox.models.s3gen.const.S3GEN_SIL
DEFAULT_MAX_SPEECH_TOKENS = 1000


class Cancelled(Exception):
    """Raised inside T3's sampling loop when the client went away."""


class TokenCap:
    def __init__(self, t3, limit: int = DEFAULT_MAX_SPEECH_TOKENS) -> None:
        self.tfmr = t3.tfmr
        self.limit = limit
        self.count = 0  # tokens handed to S3Gen by the last generate()
        self.truncated = False  # the last generate() hit the limit without a stop token
        self._cancel: threading.Event | None = None
        self._inference = t3.inference
        self._inference_turbo = t3.inference_turbo
        t3.inference = self.inference
        t3.inference_turbo = self.inference_turbo
        t3.tfmr.register_forward_pre_hook(self._check_cancel)

    def inference(self, **kwargs):
        from .fixes import no_hook_leak

        kwargs["max_new_tokens"] = min(kwargs.get("max_new_tokens") or self.limit, self.limit)
        with no_hook_leak(self.tfmr):
            return self._keep(self._inference(**kwargs))

    def inference_turbo(self, t3_cond, text_tokens, **kwargs):
        # It samples one token before its loop of max_gen_len steps.
        kwargs["max_gen_len"] = max(0, self.limit - 1)
        return self._keep(self._inference_turbo(t3_cond, text_tokens, **kwargs)[:, : self.limit])

    def _keep(self, tokens):
        """``tokens`` is (1, n); keep the ids S3Gen can take."""
        import torch

        row = tokens[0]
        self.truncated = row.numel() >= self.limit and int(row[-1]) != STOP_SPEECH_TOKEN
        if self.truncated:
            log.warning("chatterbox: speech token cap of %d reached, audio cut short", self.limit)
        kept = tokens[:, row < SPEECH_VOCAB_SIZE]
        self.count = kept.shape[1]
        if self.count == 0:  # S3Gen cannot take an empty sequence: a moment of silence
            kept = torch.full((1, 3), SILENCE_TOKEN, dtype=tokens.dtype, device=tokens.device)
        return kept

    @contextmanager
    def cancellable(self, cancel: threading.Event | None):
        self._cancel = cancel
        try:
            yield
        finally:
            self._cancel = None

    def _check_cancel(self, module, args):
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled()
