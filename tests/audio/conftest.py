"""Speech-like clips made in the session (numpy, PyAV) in every upload format."""

from __future__ import annotations

import pytest

from . import speech


@pytest.fixture(scope="session")
def spoken(tmp_path_factory) -> dict:
    """``{"en": wav, "de": wav}``: the English and German sentences, synthesised."""
    folder = tmp_path_factory.mktemp("speech")
    return {lang: speech.speak(text, lang, folder / f"{lang}.wav")
            for lang, text in speech.TEXT.items()}


@pytest.fixture(scope="session")
def clips(spoken, tmp_path_factory) -> dict:
    """``{(language, format): Clip}`` for both languages and all nine formats."""
    folder = tmp_path_factory.mktemp("clips")
    return {(lang, fmt): clip
            for lang, wav in spoken.items()
            for fmt, clip in speech.make_clips(folder, wav, lang).items()}
