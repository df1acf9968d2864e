"""The multilingual model speaks each sentence in its own language: detection, grouping into
chunks, fallback and the request's explicit language; then once through the app on the tiny
random-weight multilingual model (its audio is noise, so the language ids are checked)."""

from __future__ import annotations

import pytest

from llmux.types import Behaviour, Cancellation, SpeechRequest

from chatterbox_config import LANGUAGES, THIRD_PARTY_WARNINGS
from chatterbox_fakes import fake_handle, physical

pytestmark = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]

ALL = None  # options.languages absent: the 23
GERMAN = ["Das Wetter ist heute wirklich schön.", "Ich gehe später mit dem Hund spazieren."]
ENGLISH = ["Here is the English translation.", "The weather is really nice today."]


def supported(allowed=ALL):
    from llmux_chatterbox.variants import VARIANTS

    return VARIANTS["multilingual"].supported_languages(allowed)


def plan(text, language=None, behaviour=None, variant="multilingual", allowed=ALL):
    from llmux_chatterbox.language import plan as make_plan
    from llmux_chatterbox.variants import VARIANTS

    behaviour = Behaviour(language=behaviour)
    # The speech route passes only the client's language; the behaviour's is the fallback.
    request = SpeechRequest(text=text, language=language, behaviour=behaviour)
    return make_plan(VARIANTS[variant], allowed, request)


def test_the_detector_knows_every_multilingual_language():
    from llmux_chatterbox.language import identifier

    assert set(supported()) <= set(identifier(supported()).labels)
    assert sorted(identifier(["en", "de"]).labels) == ["de", "en"]


def test_words():
    from llmux_chatterbox.language import words

    assert words("Ja.") == 1
    assert words("Hello there, world!") == 3
    assert words("3.14 - 42") == 0
    assert words("当然，这是答案。") == 6  # each CJK character is a word
    assert words("もちろん、これが答えです。") == 11


@pytest.mark.parametrize("allowed", [ALL, ["de", "en"]])
@pytest.mark.parametrize("text, expected", [
    *((s, "de") for s in GERMAN + ["Natürlich, hier ist die Antwort.", "Ja, das ist richtig."]),
    *((s, "en") for s in ENGLISH + ["Sure, here is the answer.", "Yes, that is correct."]),
])
def test_english_and_german_sentences(allowed, text, expected):
    from llmux_chatterbox.language import detect

    assert detect(text, supported(allowed)) == expected


@pytest.mark.parametrize("text, expected", [
    ("Bien sûr, voici la réponse.", "fr"),
    ("Claro, aquí está la respuesta.", "es"),
    ("Конечно, вот ответ.", "ru"),
    ("もちろん、これが答えです。", "ja"),
])
def test_other_languages(text, expected):
    from llmux_chatterbox.language import detect

    assert detect(text, supported()) == expected


@pytest.mark.parametrize("text", ["Ja.", "OK.", "Hello world.", "Vielen Dank!", "3.14", ""])
def test_too_short_to_tell(text):
    from llmux_chatterbox.language import detect

    assert detect(text, supported()) is None


def test_a_mixed_answer_keeps_neighbours_of_one_language_in_one_chunk():
    text = " ".join(GERMAN + ENGLISH + ["Und zurück auf Deutsch, bitte sehr."])
    assert plan(text, behaviour="de") == [
        ("de", " ".join(GERMAN)), ("en", " ".join(ENGLISH)),
        ("de", "Und zurück auf Deutsch, bitte sehr."),
    ]
    # An English answer to the German virtual model is English throughout.
    assert plan(" ".join(ENGLISH), behaviour="de") == [("en", " ".join(ENGLISH))]


def test_chunks_of_one_language_still_stop_at_the_size_limit():
    from llmux_chatterbox.language import assign
    from llmux_chatterbox.text import split_by_language

    text = " ".join(ENGLISH * 4 + GERMAN)
    chunks = split_by_language(text, lambda s: assign(s, supported(), "de"), max_chars=80)
    assert [lang for lang, _ in chunks] == ["en"] * 4 + ["de"]
    assert all(len(chunk) <= 80 for _, chunk in chunks)
    assert " ".join(chunk for _, chunk in chunks) == text


def test_short_sentences_take_their_neighbours_language():
    assert plan("Yes. " + ENGLISH[0] + " OK.", behaviour="de") == [
        ("en", "Yes. " + ENGLISH[0] + " OK.")]
    assert plan(GERMAN[0] + " Ja. Genau.", behaviour="en") == [("de", GERMAN[0] + " Ja. Genau.")]


@pytest.mark.parametrize("behaviour, expected", [("de", "de"), ("fr", "fr"), (None, "en")])
def test_text_too_short_to_tell_falls_back_to_the_behaviour(behaviour, expected):
    assert plan("OK.", behaviour=behaviour) == [(expected, "OK.")]
    assert plan("Ja. Nein.", behaviour=behaviour) == [(expected, "Ja. Nein.")]


def test_the_whole_text_is_tried_when_no_sentence_can_be_told():
    # Each sentence has two words; together they tell.
    assert plan("Thank you. See you. Have fun. Good night.", behaviour="de") == [
        ("en", "Thank you. See you. Have fun. Good night.")]


def test_an_explicit_language_wins_for_every_sentence():
    text = " ".join(GERMAN + ENGLISH)
    assert plan(text, language="fr", behaviour="de") == [("fr", text)]
    assert plan(text, language="en-US") == [("en", text)]
    # Equal to the behaviour's, it is still the client's choice: German throughout.
    assert plan(text, language="de", behaviour="de") == [("de", text)]


def test_detection_is_restricted_to_the_configured_languages():
    from llmux_chatterbox.language import detect

    dutch = "De hoofdstad van Frankrijk is Parijs."
    assert detect(dutch, supported()) == "nl"
    assert detect(dutch, supported(["de", "en"])) in ("de", "en", None)
    assert detect("Bien sûr, voici la réponse.", supported(["de", "en"])) != "fr"
    # One language configured: nothing to detect.
    assert plan(" ".join(GERMAN + ENGLISH), allowed=["de"]) == [
        ("de", " ".join(GERMAN + ENGLISH))]
    english, french = ENGLISH[0], "Bien sûr, voici la réponse complète."
    assert plan(f"{english} {french}", behaviour="fr", allowed=["fr", "en"]) == [
        ("en", english), ("fr", french)]


def test_english_only_variants_detect_nothing():
    text = " ".join(GERMAN + ENGLISH)
    assert plan(text, variant="english") == [(None, text)]
    assert plan(text, variant="turbo") == [(None, text)]


def test_without_py3langid_the_fallback_language_is_used(monkeypatch):
    import sys

    from llmux_chatterbox import language

    monkeypatch.setattr(language, "_identifiers", {})
    monkeypatch.setattr(language, "_unavailable", [])
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)  # import fails
    assert plan(" ".join(ENGLISH), behaviour="de") == [("de", " ".join(ENGLISH))]
    assert language._unavailable


def test_synthesize_passes_each_chunks_language(tmp_path, caplog):
    import logging

    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path, "multilingual")
    handle = fake_handle(model)
    request = SpeechRequest(text=" ".join(GERMAN + ENGLISH), behaviour=Behaviour(language="de"))
    with caplog.at_level(logging.DEBUG, logger="llmux_chatterbox.synth"):
        synthesize(handle, model, request, Cancellation())
    assert [(text, kw["language_id"]) for text, kw, _ in handle.tts.generated] == [
        (" ".join(GERMAN), "de"), (" ".join(ENGLISH), "en")]
    assert "chunk 1/2 (76 chars) in language 'de'" in caplog.text
    assert "chunk 2/2 (66 chars) in language 'en'" in caplog.text


# --------------------------------------------------------------------------- through the app


def test_one_request_speaks_german_and_english_with_their_own_ids(client, server, monkeypatch):
    from chatterbox.mtl_tts import ChatterboxMultilingualTTS

    assert LANGUAGES == ["de", "en", "fr"]  # the tiny model's configured subset
    calls = []
    original = ChatterboxMultilingualTTS.generate

    def spy(self, text, language_id, *args, **kwargs):
        calls.append((text, language_id))
        return original(self, text, language_id, *args, **kwargs)

    monkeypatch.setattr(ChatterboxMultilingualTTS, "generate", spy)
    # The virtual model's behaviour says German; the request sends no language.
    audio = client.audio.speech.create(model="Chatterbox-Multilingual", voice="alloy",
                                       input=f"{GERMAN[0]} {ENGLISH[1]}",
                                       response_format="pcm").read()
    assert audio
    assert calls == [(GERMAN[0], "de"), (ENGLISH[1], "en")]
