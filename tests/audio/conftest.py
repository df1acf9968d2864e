"""Speech made in the session (espeak-ng, sox, PyAV) in every upload format."""

from __future__ import annotations

import pytest

from . import speech


@pytest.fixture(scope="session")
def spoken(tmp_path_factory) -> dict:
    """``{"en": wav, "de": wav}``: espeak-ng's English and German sentences."""
    missing = speech.tools_missing()
    if missing:
        pytest.skip(f"the audio tests need {' and '.join(missing)} (apt-get install espeak-ng sox)")
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
