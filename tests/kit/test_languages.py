from __future__ import annotations

import pytest

from llmux import InvalidRequest, ModelLoadError
from llmux.kit import choose_language, configured_languages, primary_subtag


@pytest.mark.parametrize("given, code", [("de", "de"), ("DE", "de"), ("de-AT", "de"),
                                         ("de_DE", "de"), (" en ", "en"), ("", None),
                                         (None, None)])
def test_codes_reduce_to_their_primary_subtag(given, code):
    assert primary_subtag(given) == code


def test_a_supported_language_is_its_code():
    assert choose_language("en-GB", ("de", "en"), "'asr'") == "en"


def test_no_language_is_english_when_supported_else_the_first():
    assert choose_language(None, ("de", "en"), "'asr'") == "en"
    assert choose_language("", ("fr", "de"), "'asr'") == "fr"


def test_an_unknown_language_is_refused_with_the_supported_list():
    with pytest.raises(InvalidRequest) as info:
        choose_language("xx", ("en", "de"), "'cohere-asr'")
    assert info.value.param == "language"
    assert info.value.message == (
        "language 'xx' is not supported by 'cohere-asr'; use one of: en, de")


def test_configured_languages_must_be_known():
    assert configured_languages(None, ("en", "de"), "'m'", "X") == ("en", "de")
    assert configured_languages(["de"], ("en", "de"), "'m'", "X") == ("de",)
    with pytest.raises(ModelLoadError) as info:
        configured_languages(["en", "tlh"], ("en", "de"), "'m'", "Cohere Transcribe")
    assert str(info.value) == ("'m': options.languages has tlh, which Cohere Transcribe does "
                               "not support; it supports en, de")
