"""The runtime kit: the plumbing every runtime plugin needs, written once.

Import it as ``from llmux import kit`` (or the names below from ``llmux.kit``). Each piece is
a small module with one job; none imports torch, transformers, Pillow or jinja2 until it is
used, so importing the kit costs nothing.

- :mod:`.stops` :class:`StopStrings`: client ``stop`` strings cut exactly in streamed text.
- :mod:`.usage` :class:`TokenCount`: the one rule for ``Usage`` (the end token counts).
- :mod:`.cancel` :func:`acquire`: a lock waited for in slices, given up once cancelled.
- :mod:`.images` :func:`decode_image`: data URL -> RGB image, over :data:`MAX_IMAGE_PIXELS` a 400.
- :mod:`.devices` :func:`choose_device`, :func:`free_device_memory`: torch device choice.
- :mod:`.languages` :func:`choose_language`, :func:`configured_languages`, :func:`primary_subtag`.
- :mod:`.templates` :class:`ChatTemplate`, :func:`environment`: chat templates as
  transformers renders them, in jinja2's immutable sandbox.
- :mod:`.guards` :func:`chat_only`: the 400 for a request a chat backend does not serve.
"""

from .cancel import POLL_SECONDS, acquire
from .devices import choose_device, free_device_memory
from .guards import chat_only
from .images import MAX_IMAGE_PIXELS, decode_image
from .languages import choose_language, configured_languages, primary_subtag
from .stops import StopStrings
from .templates import ChatTemplate, environment
from .usage import TokenCount

__all__ = [
    "MAX_IMAGE_PIXELS", "POLL_SECONDS", "ChatTemplate", "StopStrings", "TokenCount", "acquire",
    "chat_only", "choose_device", "choose_language", "configured_languages", "decode_image",
    "environment", "free_device_memory", "primary_subtag",
]
