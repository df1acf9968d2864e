"""Language codes: ``en``, ``EN``, ``en-US`` and ``en_GB`` all name English.

A model speaks or transcribes a fixed set of languages (often narrowed by the operator's
``options.languages``); a request names one or none. These helpers say which code to use,
and refuse what the model cannot do with the list of what it can.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..errors import InvalidRequest, ModelLoadError


def primary_subtag(language: str | None) -> str | None:
    """``"de-DE"``/``"de_DE"``/``"DE"`` -> ``"de"``; None or blank -> None."""
    if language is None or not str(language).strip():
        return None
    return str(language).strip().replace("_", "-").split("-")[0].lower()


def configured_languages(wanted: Iterable[str] | None, known: Sequence[str],
                         where: str, model: str) -> tuple[str, ...]:
    """``wanted`` (a model's ``options.languages``; all of ``known`` when empty), each one
    ``model`` (e.g. "Cohere Transcribe") knows, else a :class:`ModelLoadError` at ``where``
    (e.g. the physical model's name) naming the ones it does not and the supported ones."""
    chosen = tuple(wanted or known)
    unknown = [code for code in chosen if code not in known]
    if unknown:
        raise ModelLoadError(
            f"{where}: options.languages has {', '.join(unknown)}, which {model} does not "
            f"support; it supports {', '.join(known)}"
        )
    return chosen


def choose_language(given: str | None, supported: Sequence[str], who: str) -> str:
    """The code of ``given`` among ``supported``; with none given, English when supported,
    else the first one. An unsupported language is a 400 (``param="language"``) naming
    ``who`` (e.g. ``"'cohere-asr'"``) and the supported codes."""
    code = primary_subtag(given)
    if code is None:
        return "en" if "en" in supported else supported[0]
    if code not in supported:
        raise InvalidRequest(
            f"language {given!r} is not supported by {who}; use one of: {', '.join(supported)}",
            param="language",
        )
    return code
