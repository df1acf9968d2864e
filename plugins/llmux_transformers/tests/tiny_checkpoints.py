"""The tiny chat checkpoints, now :mod:`llmux_transformers.tiny.checkpoints` (importable
without these tests); every name this module had is still importable from here."""

from pathlib import Path

from llmux_transformers.tiny.checkpoints import *  # noqa: F401,F403
from llmux_transformers.tiny.checkpoints import (  # noqa: F401
    _generation_config,
    _ids,
    _to_mxfp4,
)

HERE = Path(__file__).parent
