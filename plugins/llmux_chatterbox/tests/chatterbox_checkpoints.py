"""The random-weight Chatterbox checkpoints, now :mod:`llmux_chatterbox.tiny` (importable
without these tests); every name this module had is still importable from here."""

from llmux_chatterbox.tiny import *  # noqa: F401,F403
from llmux_chatterbox.tiny import _char_tokenizer, _gpt2_tokenizer, _state  # noqa: F401
