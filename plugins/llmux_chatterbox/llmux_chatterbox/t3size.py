"""A checkpoint that says its own T3 transformer size.

chatterbox builds T3 from the module-level ``LLAMA_CONFIGS`` (``Llama_520M`` for English and
Multilingual, ``GPT2_medium`` for Turbo) inside ``from_local``, whatever the weights hold. A
checkpoint directory may carry ``t3_config.json`` -- ``{"Llama_520M": {"num_hidden_layers":
14, ...}}`` -- and the load then builds T3 with those values (the random-weight checkpoints
of the tests and of ``scripts/make_tiny_models.py`` are made that way). The production
checkpoints have no such file and load at their published size.

The change to the shared table lasts only for the one ``from_local`` and is made under a
lock, so loads in other threads never see it.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from llmux.errors import ModelLoadError

T3_CONFIG_FILE = "t3_config.json"
_lock = threading.Lock()


def read(directory: Path) -> dict[str, dict]:
    path = Path(directory) / T3_CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        overrides = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ModelLoadError(f"{path} must map a T3 config name to the values to change")
    return overrides


@contextmanager
def t3_size(directory: Path) -> Iterator[None]:
    """Build T3 at the size the checkpoint's ``t3_config.json`` names, for this block only."""
    overrides = read(directory)
    if not overrides:
        yield
        return
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    unknown = sorted(set(overrides) - set(LLAMA_CONFIGS))
    if unknown:
        raise ModelLoadError(f"{directory / T3_CONFIG_FILE} names unknown T3 configs {unknown}"
                             f" (known: {', '.join(sorted(LLAMA_CONFIGS))})")
    with _lock:
        saved = {name: dict(LLAMA_CONFIGS[name]) for name in overrides}
        try:
            for name, values in overrides.items():
                LLAMA_CONFIGS[name].update(values)
            yield
        finally:
            for name, values in saved.items():
                LLAMA_CONFIGS[name].clear()
                LLAMA_CONFIGS[name].update(values)
