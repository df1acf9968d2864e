"""The cost and accuracy of the Chatterbox plugin's per-sentence language detection
(``llmux_chatterbox/language.py``, py3langid) on short, chat-answer-like sentences, among all
23 Multilingual languages and among ``en``+``de``. Prints a table; no network, no model.

    python -m benchmarks.tts_language [--repeat 20] [--compare]

``--compare`` also runs lingua-language-detector (high and low accuracy mode) and langdetect
when they are installed (they are not dependencies: ``pip install lingua-language-detector
langdetect`` in a scratch venv), on the same sentences.

Measured 2026-12-01 on 2 shared CPU cores, Python 3.11 (accuracy on the 77 / 34 sentences
below among 23 languages / en+de; µs per sentence; load = loading the model and restricting
it; RSS = process peak, cumulative down the table):

    detector               accuracy 23  en+de   µs 23 / en+de   load      wheel
    plugin detect()        75/77*       34/34   236 / 232       1.1-2 s   (py3langid)
    py3langid 0.4.0        76/77        34/34   180 / 162       1.1-2 s   4.4 MB, numpy only
    lingua 2.1.1 high      75/77        34/34   451 / 170       9.6 s     92 MB, ~490 MiB RSS
    lingua 2.1.1 low       68/77        33/34   227 / 87        <1 s
    langdetect 1.0.9       67/77        32/34   15,900 / 9,600  1 s       unmaintained, no
                                                                          restriction, 7 None

    * the 2 others undecided (confidence < 0.6: Norwegian/Danish), none wrong; undecided
      sentences take a neighbour's language, or the fallback.

py3langid's one error is Norwegian read as Danish; lingua's low-accuracy mode misreads short
English sentences as French, Italian or Norwegian, which is the case that matters here.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

# (language, sentence): short sentences typical of chat answers, hand-written.
SENTENCES = [
    ("en", "Sure, here is the answer."), ("en", "The capital of France is Paris."),
    ("en", "I hope this helps!"), ("en", "Let me know if you have any questions."),
    ("en", "Python is a programming language."), ("en", "Restart the server after the update."),
    ("en", "This takes about five minutes."), ("en", "Yes, that is correct."),
    ("en", "The function returns a list of strings."),
    ("en", "Berlin has many museums and parks."),
    ("en", "Water boils at one hundred degrees Celsius."), ("en", "You can install it with pip."),
    ("en", "Good morning, how are you today?"), ("en", "The meeting starts at nine."),
    ("en", "Add salt and stir well."), ("en", "My name is Anna."),
    ("de", "Natürlich, hier ist die Antwort."), ("de", "Die Hauptstadt von Frankreich ist Paris."),
    ("de", "Ich hoffe, das hilft dir weiter!"), ("de", "Sag Bescheid, wenn du Fragen hast."),
    ("de", "Python ist eine Programmiersprache."),
    ("de", "Starte den Server nach dem Update neu."),
    ("de", "Das dauert ungefähr fünf Minuten."), ("de", "Ja, das ist richtig."),
    ("de", "Die Funktion gibt eine Liste zurück."), ("de", "Berlin hat viele Museen und Parks."),
    ("de", "Wasser kocht bei hundert Grad Celsius."), ("de", "Du kannst es mit pip installieren."),
    ("de", "Guten Morgen, wie geht es dir heute?"), ("de", "Das Treffen beginnt um neun."),
    ("de", "Salz hinzufügen und gut umrühren."), ("de", "Mein Name ist Anna."),
    ("de", "Die Datei wurde erfolgreich gespeichert."), ("de", "Ein Hund läuft über die Straße."),
    ("fr", "Bien sûr, voici la réponse."), ("fr", "La capitale de la France est Paris."),
    ("fr", "J'espère que cela vous aide."),
    ("es", "Claro, aquí está la respuesta."), ("es", "La capital de Francia es París."),
    ("es", "Espero que esto te ayude."),
    ("it", "Certo, ecco la risposta."), ("it", "La capitale della Francia è Parigi."),
    ("it", "Spero che questo ti aiuti."),
    ("nl", "Natuurlijk, hier is het antwoord."), ("nl", "De hoofdstad van Frankrijk is Parijs."),
    ("nl", "Ik hoop dat dit helpt."),
    ("pt", "Claro, aqui está a resposta."), ("pt", "A capital da França é Paris."),
    ("pt", "Espero que isso ajude."),
    ("sv", "Självklart, här är svaret."), ("sv", "Huvudstaden i Frankrike är Paris."),
    ("sv", "Jag hoppas att det hjälper."),
    ("da", "Selvfølgelig, her er svaret."), ("da", "Hovedstaden i Frankrig er Paris."),
    ("da", "Jeg håber, det hjælper."),
    ("no", "Selvfølgelig, her er svaret ditt."), ("no", "Hovedstaden i Frankrike er Paris."),
    ("no", "Jeg håper dette hjelper deg."),
    ("fi", "Tietenkin, tässä on vastaus."), ("fi", "Ranskan pääkaupunki on Pariisi."),
    ("pl", "Oczywiście, oto odpowiedź."), ("pl", "Stolicą Francji jest Paryż."),
    ("tr", "Elbette, işte cevap."), ("tr", "Fransa'nın başkenti Paris'tir."),
    ("ms", "Sudah tentu, inilah jawapannya."), ("ms", "Ibu negara Perancis ialah Paris."),
    ("sw", "Bila shaka, hili ndilo jibu."), ("sw", "Mji mkuu wa Ufaransa ni Paris."),
    ("ru", "Конечно, вот ответ."), ("ru", "Столица Франции — Париж."),
    ("el", "Φυσικά, ορίστε η απάντηση."), ("ar", "بالطبع، إليك الإجابة."),
    ("he", "כמובן, הנה התשובה."), ("hi", "बेशक, यह रहा जवाब।"), ("zh", "当然，这是答案。"),
    ("ja", "もちろん、これが答えです。"), ("ko", "물론이죠, 여기 답이 있습니다."),
]


def _plugin(languages: tuple[str, ...]) -> Callable[[str], str | None]:
    from llmux_chatterbox.language import detect, identifier

    identifier(languages)
    return lambda text: detect(text, languages)


def _py3langid(languages: tuple[str, ...]) -> Callable[[str], str | None]:
    from llmux_chatterbox.language import identifier

    ident = identifier(languages)
    return lambda text: ident.classify(text)[0]


def _lingua(low: bool) -> Callable[[tuple[str, ...]], Callable[[str], str | None]]:
    def make(languages):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        codes = {Language.from_iso_code_639_1(
            getattr(IsoCode639_1, "NB" if c == "no" else c.upper())): c for c in languages}
        builder = LanguageDetectorBuilder.from_languages(*codes).with_preloaded_language_models()
        detector = (builder.with_low_accuracy_mode() if low else builder).build()
        return lambda text: codes.get(detector.detect_language_of(text))
    return make


def _langdetect(languages: tuple[str, ...]) -> Callable[[str], str | None]:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0

    def detect(text):
        try:
            found = detect_langs(text)
        except LangDetectException:
            return None
        return next((r.lang.split("-")[0] for r in found
                     if r.lang.split("-")[0] in languages), None)
    return detect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--compare", action="store_true",
                        help="also lingua (high/low accuracy) and langdetect, if installed")
    args = parser.parse_args()
    from llmux_chatterbox.variants import MULTILINGUAL_LANGUAGES

    detectors = {"plugin detect()": _plugin, "py3langid classify": _py3langid}
    if args.compare:
        detectors |= {"lingua high": _lingua(False), "lingua low": _lingua(True),
                      "langdetect": _langdetect}
    print(f"{'detector':20s} {'languages':9s} {'accuracy':>9s} {'undecided':>9s} "
          f"{'µs/sentence':>11s} {'load s':>7s} {'RSS MiB':>8s}")
    for name, make in detectors.items():
        for languages, label in ((tuple(MULTILINGUAL_LANGUAGES), "23"), (("de", "en"), "en+de")):
            sentences = [(lang, s) for lang, s in SENTENCES if lang in languages]
            started = time.perf_counter()
            try:
                detect = make(languages)
                detect("warm up")
            except ImportError as exc:
                print(f"{name:20s} not installed ({exc})")
                break
            load = time.perf_counter() - started
            guesses = [detect(s) for _, s in sentences]
            right = sum(g == lang for g, (lang, _) in zip(guesses, sentences))
            undecided = sum(g is None for g in guesses)
            started = time.perf_counter()
            for _ in range(args.repeat):
                for _, s in sentences:
                    detect(s)
            us = (time.perf_counter() - started) / (args.repeat * len(sentences)) * 1e6
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{name:20s} {label:9s} {right:>4d}/{len(sentences):<4d} {undecided:>9d} "
                  f"{us:>11.0f} {load:>7.2f} {rss:>8.0f}")


if __name__ == "__main__":
    main()
