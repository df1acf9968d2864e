"""The plugin's parts without the HTTP app: the token cap, the synthesis loop on a fake
model, sentence splitting and options."""

from __future__ import annotations


import numpy as np
import pytest

from llmux.errors import InvalidRequest, LlmuxError
from llmux.types import Behaviour, Cancellation, SpeechRequest

from chatterbox_config import THIRD_PARTY_WARNINGS
from chatterbox_fakes import FakeT3, fake_handle, physical

pytestmark = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]


# --------------------------------------------------------------------------- token cap


def test_cap_bounds_the_english_and_multilingual_loop():
    from llmux_chatterbox.tokens import TokenCap

    t3 = FakeT3()
    cap = TokenCap(t3, limit=30)
    tokens = t3.inference(t3_cond=None, text_tokens=None, max_new_tokens=1000)
    assert t3.calls[-1]["max_new_tokens"] == 30
    assert tokens.shape == (1, 30) and cap.count == 30 and cap.truncated


def test_cap_bounds_the_turbo_loop():
    from llmux_chatterbox.tokens import TokenCap

    t3 = FakeT3()
    cap = TokenCap(t3, limit=30)
    tokens = t3.inference_turbo(None, None)
    assert t3.calls[-1]["max_gen_len"] == 29
    assert tokens.shape == (1, 30) and cap.count == 30


def test_cap_drops_ids_s3gen_cannot_take():
    from llmux_chatterbox.tokens import TokenCap

    # Multilingual's T3 has 8194 ids; a random (or unlucky) one samples unused ids >= 6561.
    t3 = FakeT3(script=[5, 7000, 6, 8193, 6561, 7, 6562])
    cap = TokenCap(t3, limit=100)
    tokens = t3.inference(max_new_tokens=1000)
    assert tokens.tolist() == [[5, 6, 7]] and cap.count == 3 and not cap.truncated

    t3.script = [6562]  # stopped at once: S3Gen still gets something to vocode
    tokens = t3.inference(max_new_tokens=1000)
    assert cap.count == 0 and tokens.tolist() == [[4299, 4299, 4299]]


def test_cap_stops_sampling_when_cancelled():
    from llmux_chatterbox.tokens import Cancelled, TokenCap

    t3 = FakeT3()
    cap = TokenCap(t3, limit=10)
    cancel = Cancellation()
    with cap.cancellable(cancel):
        t3.inference(max_new_tokens=10)
        cancel.cancel()
        with pytest.raises(Cancelled):
            t3.inference(max_new_tokens=10)
    t3.inference(max_new_tokens=10)  # outside a request the hook does nothing


# --------------------------------------------------------------------------- synthesis


def test_sentences_are_synthesised_one_chunk_at_a_time_and_joined(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path, max_speech_tokens=50, temperature=0.6)
    handle = fake_handle(model)
    text = ("One sentence that is long enough to fill a chunk by itself, or nearly so, because "
            "it keeps going and going with more and more words in it until it is quite long, "
            "longer than most sentences that people write or say in one breath. "
            "Two more sentences follow it here. They share a chunk.")
    speech = synthesize(handle, model, SpeechRequest(text=text, behaviour=Behaviour(
        options={"exaggeration": 0.7})), Cancellation())
    assert [t for t, _, _ in handle.tts.generated] == [
        text[:text.index("Two")].strip(), "Two more sentences follow it here. They share a chunk."]
    assert handle.tts.generated[0][1] == {"exaggeration": 0.7, "cfg_weight": 0.5,
                                          "temperature": 0.6}
    assert speech.speech_tokens == 24 and speech.sample_rate == 24000
    assert speech.samples.dtype == np.float32
    assert len(speech.samples) == 24 * 960 + int(0.15 * 24000)  # joined with a pause
    assert handle.tts.t3.calls[-1]["max_new_tokens"] == 50


def test_cancel_between_sentences_returns_what_was_made(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path)
    handle = fake_handle(model)
    cancel = Cancellation()
    original = handle.tts.generate

    def generate_then_cancel(text, **kwargs):
        wav = original(text, **kwargs)
        cancel.cancel()
        return wav

    handle.tts.generate = generate_then_cancel
    text = "First sentence here. " + "x" * 240 + ". Third one."
    speech = synthesize(handle, model, SpeechRequest(text=text), cancel)
    assert len(handle.tts.generated) == 1 and speech.speech_tokens == 12


def test_cancel_during_sampling_stops_the_chunk(tmp_path):
    from llmux_chatterbox.synth import synthesize

    model = physical(tmp_path)
    handle = fake_handle(model)
    cancel = Cancellation()
    # The client leaves after T3's first step; the cap's pre-hook stops the second.
    handle.tts.t3.tfmr.register_forward_hook(lambda *args: cancel.cancel())
    speech = synthesize(handle, model, SpeechRequest(text="Hello."), cancel)
    assert speech.speech_tokens == 0 and len(speech.samples) == 0
    assert handle.tts.generated == []


def test_voices(tmp_path):
    from llmux_chatterbox.synth import synthesize

    (tmp_path / "english").mkdir()
    (tmp_path / "english" / "near.wav").write_bytes(b"RIFF")  # beside the weights
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "far.wav").write_bytes(b"RIFF")  # under models_dir
    model = physical(tmp_path, voices={"near": "near.wav", "far": "voices/far.wav",
                                       "lost": "missing.wav"})
    handle = fake_handle(model)

    def say(voice):
        synthesize(handle, model, SpeechRequest(text="Hi.", voice=voice), Cancellation())
        return handle.tts.generated[-1][2].name

    assert say(None) == say("default") == "builtin"
    assert say("near") == "near" and say("far") == "far"
    assert say("near") == "near" and len(handle.tts.prepared) == 2  # prepared once
    assert say("default") == "builtin"
    with pytest.raises(InvalidRequest) as info:
        say("nobody")
    assert info.value.message.startswith(
        "unknown voice 'nobody'; this model's voices are: default, far, lost, near")
    assert info.value.param == "voice"
    with pytest.raises(LlmuxError, match="the reference clip of voice 'lost' is missing"):
        say("lost")


def test_turbo_needs_a_clip_over_five_seconds(tmp_path):
    import chatterbox_checkpoints
    from llmux_chatterbox.synth import synthesize

    (tmp_path / "turbo").mkdir()
    chatterbox_checkpoints.write_clip(tmp_path / "short.wav", 3.0, 200.0, seed=0)
    model = physical(tmp_path, "turbo", voices={"short": "short.wav"})
    handle = fake_handle(model)
    with pytest.raises(LlmuxError, match="lasts 3.0 s; Chatterbox turbo needs more than 5 s"):
        synthesize(handle, model, SpeechRequest(text="Hi.", voice="short"), Cancellation())
    synthesize(handle, model, SpeechRequest(text="Hi."), Cancellation())
    assert handle.tts.generated[-1][1] == {"temperature": 0.8}  # Turbo's only knob


def test_languages(tmp_path):
    from llmux_chatterbox.synth import synthesize
    from llmux_chatterbox.variants import VARIANTS

    english, multi = VARIANTS["english"], VARIANTS["multilingual"]
    assert english.check_language(None, None) is None
    assert english.check_language("en-US", None) is None
    with pytest.raises(InvalidRequest, match="Chatterbox english speaks English only, not 'de'"):
        english.check_language("de", None)
    assert multi.check_language("de_DE", None) == "de"
    assert multi.check_language(None, None) == "en"
    assert multi.check_language(None, ["fr", "de"]) == "fr"
    with pytest.raises(InvalidRequest) as info:
        multi.check_language("xx", None)
    assert len(info.value.message.split("use one of: ")[1].split(", ")) == 23
    with pytest.raises(InvalidRequest, match="use one of: fr, de$"):
        multi.check_language("es", ["fr", "de"])

    model = physical(tmp_path, "multilingual")
    handle = fake_handle(model)
    synthesize(handle, model, SpeechRequest(text="Hallo.", language="de"), Cancellation())
    assert handle.tts.generated[-1][1]["language_id"] == "de"


def test_knobs_merge_and_validate():
    from llmux_chatterbox.options import Knobs

    knobs = Knobs.merge({"max_speech_tokens": 300, "temperature": 0.5},
                        {"temperature": 0.7, "max_speech_tokens": 2000}, {"cfg_weight": 0.2})
    assert knobs == Knobs(max_speech_tokens=300, exaggeration=0.5, cfg_weight=0.2,
                          temperature=0.7)  # a later layer never raises the cap
    assert Knobs.merge({}).max_speech_tokens == 1000
    with pytest.raises(InvalidRequest, match="'temperature' must be a number between"):
        Knobs.merge({}, {"temperature": "hot"})


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize("text, chunks", [
    ("", []),
    ("  Hello   world  ", ["Hello world"]),
    ("One. Two! Three?", ["One. Two! Three?"]),
    ("Ein Satz. \"Zitat.\" Noch einer…  Ende", ["Ein Satz. \"Zitat.\" Noch einer… Ende"]),
    ("你好。今天好吗？", ["你好。今天好吗？"]),
    ("Wait... what?! (Really.) Yes", ["Wait... what?! (Really.) Yes"]),
])
def test_short_text_stays_one_chunk(text, chunks):
    from llmux_chatterbox.text import split_sentences

    assert split_sentences(text) == chunks


def test_long_text_is_split_at_sentences_then_clauses_then_words():
    from llmux_chatterbox.text import split_sentences

    four, two = "你好。" * 4, "你好。" * 2
    assert split_sentences("你好。" * 10, max_chars=12) == [four, four, two]

    sentences = [f"Sentence number {i} says something of moderate length." for i in range(12)]
    chunks = split_sentences(" ".join(sentences), max_chars=120)
    assert all(len(c) <= 120 for c in chunks)
    assert " ".join(chunks) == " ".join(sentences)
    assert all(c.endswith(".") for c in chunks)  # cut between sentences

    clauses = ", ".join(["a clause of some words"] * 12) + "."
    chunks = split_sentences(clauses, max_chars=100)
    assert all(len(c) <= 100 for c in chunks) and all(c.endswith((",", ".")) for c in chunks)
    assert " ".join(chunks) == clauses

    words = " ".join(["word"] * 100)
    chunks = split_sentences(words, max_chars=50)
    assert all(len(c) <= 50 for c in chunks) and " ".join(chunks) == words
