"""The tiny ``cohere_asr`` checkpoint, now :mod:`llmux_transformers.tiny.asr` (importable
without these tests); every name this module had is still importable from here."""

from llmux_transformers.tiny.asr import *  # noqa: F401,F403

if __name__ == "__main__":  # python tiny_asr.py DIR: build one to look at
    import sys
    from pathlib import Path

    print(build_cohere_asr(Path(sys.argv[1])))  # noqa: F405
