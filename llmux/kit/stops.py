"""Client ``stop`` strings (and a chat format's end markers) found in streamed text.

A runtime decodes a token at a time; a stop string may arrive split across pieces
(``"EN"`` then ``"D"``). :class:`StopStrings` holds back only a tail that could begin one,
so the text before it streams at once and the cut is exact however the pieces fall.
"""

from __future__ import annotations

from typing import Iterable


class StopStrings:
    """Cuts generated text at the first stop string.

    ``cut``: the client's ``stop`` strings (``request.sampling.stop``); the text ends before
    them, as OpenAI's do. ``keep``: strings to stop at but leave in the text, such as the chat
    format's ``stop_sequences``, so that its parser still sees its end marker. Empty strings
    are ignored.

    Feed each decoded piece to :meth:`push`: it returns the settled text and whether a stop
    string was found (then stop generating; the text ends before a cut string, or with a kept
    one). When generation ends without one, :meth:`flush` returns what was held back.
    """

    __slots__ = ("_stops", "_prefixes", "_longest", "_hold")

    def __init__(self, cut: Iterable[str] = (), keep: Iterable[str] = ()) -> None:
        self._stops = [(s, False) for s in cut if s] + [(s, True) for s in keep if s]
        self._prefixes = {s[:i] for s, _ in self._stops for i in range(1, len(s))}
        self._longest = max(map(len, self._prefixes), default=0)
        self._hold = ""

    def __bool__(self) -> bool:
        return bool(self._stops)

    def push(self, text: str) -> tuple[str, bool]:
        """``(settled text, found)`` after ``text``; held-back text comes out later."""
        if not self._stops:
            return text, False
        buf = self._hold + text
        best: tuple[int, str, bool] | None = None
        for stop, include in self._stops:
            i = buf.find(stop)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, stop, include)
        if best is not None:
            i, stop, include = best
            self._hold = ""
            return buf[:i] + (stop if include else ""), True
        keep = 0
        for k in range(min(len(buf), self._longest), 0, -1):
            if buf[-k:] in self._prefixes:
                keep = k
                break
        self._hold = buf[len(buf) - keep:]
        return buf[: len(buf) - keep], False

    def flush(self, text: str = "") -> str:
        """What was held back (followed by ``text``): generation ended without a stop."""
        out, self._hold = self._hold + text, ""
        return out
