"""Images of chat requests: a ``data:`` URL -> an RGB Pillow image, with a size limit.

The core has already checked that a data URL is base64 holding a PNG, JPEG, GIF, WEBP or BMP
(``llmux.openai.images``); this decodes the pixels, which the core never does. The size is
read from the image's header and checked before any pixel is decoded, so a small file that
claims a huge image (a decompression bomb) costs nothing. Every refusal is an
:class:`InvalidRequest` (400) that says which image and why. Pillow is imported only when an
image is decoded; a runtime that uses this depends on ``pillow`` itself.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from typing import Any

from ..errors import InvalidRequest

#: The most pixels (width x height) an image may have: 64 megapixels, 192 MB as RGB.
MAX_IMAGE_PIXELS = 64_000_000


def decode_image(url: str, index: int = 0, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """The RGB ``PIL.Image.Image`` in ``url``; ``index`` numbers the image in messages (from
    0) for the error messages."""
    from PIL import Image

    name = f"image {index}"
    if url[:5].lower() != "data:":
        raise InvalidRequest(
            f"{name}: only data URLs (data:image/png;base64,...) are accepted; this server "
            "does not fetch URLs", param="messages")
    header, _, payload = url.partition(",")
    if ";base64" not in header.lower():
        raise InvalidRequest(f"{name}: the data URL must be base64-encoded "
                             "(data:image/png;base64,...)", param="messages")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{name}: the data URL is not valid base64: {exc}",
                             param="messages") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidRequest(
                    f"{name} is {width}x{height}, {width * height:,} pixels: more than the "
                    f"{max_pixels:,} pixels (width x height) this server accepts; send a "
                    "smaller image", param="messages")
            image.load()
            return image.convert("RGB")
    except InvalidRequest:
        raise
    except Image.DecompressionBombError:  # so large that Pillow refused to open it
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise InvalidRequest(f"{name} has more than the {limit:,} pixels (width x height) this "
                             "server accepts; send a smaller image", param="messages") from None
    except Exception as exc:  # Pillow raises many types for broken input
        raise InvalidRequest(f"{name} could not be decoded: {exc}", param="messages") from None
