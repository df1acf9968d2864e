"""Stop strings: the text ends exactly before the client's stop string however the pieces
fall, nothing that cannot begin one is held back, and a chat format's end marker is kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmux.kit import StopStrings


def run(stops: StopStrings, pieces: list[str]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        text, hit = stops.push(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + stops.flush(), False


def test_a_stop_string_split_across_pieces_is_cut_exactly():
    assert run(StopStrings(["END"]), ["Hello E", "N", "D and more"]) == ("Hello ", True)


def test_text_that_cannot_begin_a_stop_string_streams_at_once():
    stops = StopStrings(["END"])
    assert stops.push("Hello") == ("Hello", False)
    assert stops.push(" E") == (" ", False)  # "E" may begin "END": held
    assert stops.push("cho") == ("Echo", False)  # it did not
    assert stops.flush() == ""


def test_held_text_comes_out_when_generation_ends():
    stops = StopStrings(["END"])
    assert stops.push("the EN") == ("the ", False)
    assert stops.flush() == "EN"


def test_the_earliest_stop_string_wins():
    assert run(StopStrings(["world", "lo"]), ["hello world"]) == ("hel", True)


def test_a_kept_marker_stays_in_the_text_for_the_parser():
    stops = StopStrings(["END"], keep=["<|im_end|>"])
    assert run(stops, ["answer<|im", "_end|>junk"]) == ("answer<|im_end|>", True)
    assert run(StopStrings(["END"], keep=["<|im_end|>"]), ["a END <|im_end|>"]) == ("a ", True)


def test_no_stop_strings_pass_everything_through():
    stops = StopStrings(["", ""])
    assert not stops
    assert stops.push("abc") == ("abc", False)


@given(st.text("abEND", max_size=30), st.lists(st.integers(1, 5), max_size=30))
def test_any_split_gives_the_text_before_the_first_stop(text, cuts):
    pieces, i = [], 0
    for n in cuts:
        pieces.append(text[i:i + n])
        i += n
    pieces.append(text[i:])
    out, hit = run(StopStrings(["END", "bb"]), pieces)
    first = min((j for j in (text.find("END"), text.find("bb")) if j >= 0), default=-1)
    assert (out, hit) == ((text[:first], True) if first >= 0 else (text, False))
