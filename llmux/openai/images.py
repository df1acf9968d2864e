"""Image parts of a chat request: a data URL must hold an image, checked before admission.

Only the container is recognised here (by its first bytes, no PIL in the core); decoding the
pixels stays with the runtime. Other URLs are the runtime's to accept or refuse.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import InvalidRequest

#: The image formats a data URL may hold, by their magic bytes.
FORMATS = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",),
           "GIF": (b"GIF87a", b"GIF89a"), "BMP": (b"BM",)}


def image_format(data: bytes) -> str | None:
    """PNG, JPEG, GIF, WEBP or BMP from the first bytes of ``data``; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for name, magics in FORMATS.items() if data.startswith(magics)), None)


def check_image_url(url: str, param: str) -> None:
    """Raise :class:`InvalidRequest` naming ``param`` unless a ``data:`` URL is an
    ``image/*`` media type with valid base64 holding a known image format."""
    if url[:5].lower() != "data:":
        return
    header, comma, payload = url[5:].partition(",")
    media_type, *params = header.split(";")
    if not media_type.strip().lower().startswith("image/"):
        raise InvalidRequest(
            f"the data URL in {param} has the media type {media_type.strip()[:60]!r}, "
            "not an image/* one", param=param)
    if not comma or "base64" not in (p.strip().lower() for p in params):
        raise InvalidRequest(f"the data URL in {param} must be base64-encoded "
                             "(data:image/png;base64,...)", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"the data URL in {param} is not valid base64: {exc}",
                             param=param) from None
    if image_format(data) is None:
        raise InvalidRequest(
            f"the data URL in {param} does not hold an image "
            f"(accepted: {', '.join(sorted([*FORMATS, 'WEBP']))})", param=param)
