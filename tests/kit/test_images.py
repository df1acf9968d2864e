"""Images: an RGB image from a data URL; every refusal a 400 that says which image and why,
and an image over the pixel limit refused from its header, before any pixel is decoded."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest

from llmux import InvalidRequest
from llmux.kit import MAX_IMAGE_PIXELS, decode_image


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64," + base64.b64encode(data).decode()


def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height), (200, 10, 10, 255)[: len(mode)]).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (with a few bytes of pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def refusal(url: str, **kwargs) -> str:
    with pytest.raises(InvalidRequest) as info:
        decode_image(url, 2, **kwargs)
    assert info.value.param == "messages"
    return info.value.message


def test_an_image_becomes_rgb():
    image = decode_image(data_url(png(5, 3)))
    assert (image.mode, image.size) == ("RGB", (5, 3))
    assert image.getpixel((0, 0)) == (200, 10, 10)


def test_an_image_over_the_pixel_limit_is_refused_naming_the_limit():
    message = refusal(data_url(png_header_only(10_000, 8_000)))
    assert message == ("image 2 is 10000x8000, 80,000,000 pixels: more than the 64,000,000 "
                       "pixels (width x height) this server accepts; send a smaller image")
    assert MAX_IMAGE_PIXELS == 64_000_000


def test_the_limit_is_the_callers():
    assert "more than the 100 pixels" in refusal(data_url(png(11, 10)), max_pixels=100)
    assert decode_image(data_url(png(10, 10)), max_pixels=100).size == (10, 10)


def test_an_image_too_large_for_pillow_to_open_gets_the_same_400():
    assert refusal(data_url(png_header_only(20_000, 20_000))) == (
        "image 2 has more than the 64,000,000 pixels (width x height) this server accepts; "
        "send a smaller image")


def test_urls_are_not_fetched():
    assert refusal("https://example.com/cat.png") == (
        "image 2: only data URLs (data:image/png;base64,...) are accepted; this server does "
        "not fetch URLs")


def test_bad_data_is_a_400():
    assert "must be base64-encoded" in refusal("data:image/png,rawbytes")
    assert "not valid base64" in refusal("data:image/png;base64,!!!notbase64")
    assert refusal(data_url(b"\x89PNG\r\n\x1a\nthis is not a png")).startswith(
        "image 2 could not be decoded: ")
