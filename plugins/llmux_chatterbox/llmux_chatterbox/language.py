"""The language each sentence is spoken in, for the multilingual model.

Open WebUI's read-aloud sends no ``language``, so a virtual model's ``behaviour.language``
would speak every answer with one language id, English answers with the German one. Instead
each sentence's language is detected among the languages the model speaks (``options.
languages``, else all 23) with py3langid (langid.py's naive Bayes over byte n-grams,
restricted with ``set_languages``; see benchmarks/tts_language.py for its cost and accuracy
against lingua and langdetect):

- a request's own ``language`` wins for every sentence;
- a sentence of fewer than :data:`MIN_WORDS` words, or one the detector is less than
  :data:`MIN_CONFIDENCE` sure of, is undecided: it takes the language of the sentence
  before it (else after it), so "Ja." in a German answer stays German;
- when no sentence is decided, the whole text is tried once more, then the fallback
  (``behaviour.language``, else English) is used.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from llmux.kit import primary_subtag
from llmux.types import SpeechRequest

from .text import split_by_language, split_sentences
from .variants import Variant

log = logging.getLogger(__name__)

MIN_WORDS = 3  # fewer words: too short to tell ("Ja.", "OK.", "Hello world.")
MIN_CONFIDENCE = 0.6  # py3langid's normalised probability among the allowed languages

# Han, kana and the CJK compatibility block: no spaces between words, so each character
# counts as one word.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_lock = threading.Lock()
_identifiers: dict[tuple[str, ...], Any] = {}
_unavailable: list[str] = []  # why py3langid could not be loaded (warned about once)


def words(text: str) -> int:
    """Whitespace-separated tokens with a letter in them; each CJK character counts as one."""
    return sum(max(1, len(_CJK.findall(token))) for token in text.split()
               if any(c.isalpha() for c in token))


def identifier(languages: Sequence[str]) -> Any | None:
    """py3langid's identifier restricted to ``languages`` (loaded once per set, ~2-4 s),
    or None when py3langid is not installed."""
    key = tuple(sorted(languages))
    with _lock:
        if key in _identifiers:
            return _identifiers[key]
        if _unavailable:
            return None
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError as exc:
            _unavailable.append(str(exc))
            log.warning("chatterbox: py3langid is not installed (%s); the multilingual model "
                        "speaks every sentence in the request's or behaviour's language", exc)
            return None
        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        ident.set_languages(list(key))
        _identifiers[key] = ident
        return ident


def detect(text: str, languages: Sequence[str]) -> str | None:
    """The language of ``text`` among ``languages``, or None when it is too short to tell,
    the detector is unsure or unavailable."""
    if len(languages) == 1:
        return languages[0]
    if words(text) < MIN_WORDS:
        return None
    ident = identifier(languages)
    if ident is None:
        return None
    code, confidence = ident.classify(text)
    return code if confidence >= MIN_CONFIDENCE and code in languages else None


def assign(sentences: Sequence[str], languages: Sequence[str], fallback: str) -> list[str]:
    """One language per sentence (see the module's docstring)."""
    detected = [detect(s, languages) for s in sentences]
    decided = [d for d in detected if d is not None]
    if not decided:
        whole = detect(" ".join(sentences), languages) if len(sentences) > 1 else None
        return [whole or fallback] * len(sentences)
    out, last = [], decided[0]  # leading undecided sentences take the first decided one
    for d in detected:
        last = d or last
        out.append(last)
    return out


def explicit_language(request: SpeechRequest) -> str | None:
    """The request's own ``language`` (the core passes only what the client sent; the
    virtual model's ``behaviour.language`` is the fallback, not this)."""
    return request.language if primary_subtag(request.language) else None


def plan(variant: Variant, allowed: list[str] | None, request: SpeechRequest,
         max_chars: int | None = None) -> list[tuple[str | None, str]]:
    """The chunks to synthesise with their language ids (None for English-only variants)."""
    kwargs = {} if max_chars is None else {"max_chars": max_chars}
    explicit = explicit_language(request)
    fallback = variant.check_language(explicit or request.language or
                                      request.behaviour.language, allowed)
    supported = variant.supported_languages(allowed)
    if variant.name != "multilingual" or explicit or len(supported) == 1:
        return [(fallback, chunk) for chunk in split_sentences(request.text, **kwargs)]
    chooser: Callable[[Sequence[str]], list[str]] = (
        lambda sentences: assign(sentences, supported, fallback))
    return split_by_language(request.text, chooser, **kwargs)
