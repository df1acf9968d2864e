"""The tiny GGUF builders, now :mod:`llmux_llamacpp.tiny` (importable without these tests);
every name this module had is still importable from here."""

from llmux_llamacpp.tiny import *  # noqa: F401,F403
from llmux_llamacpp.tiny import _finish, _ones, _w  # noqa: F401
