"""A fast reader of a GGUF file's key/value metadata (header and KV section only).

``gguf.GGUFReader`` maps the whole file and builds numpy views of every part of every field
and tensor info, which takes ~30 s on a production GGUF whose vocabulary arrays hold 248,320
strings. This reader walks the KV section with ``struct`` over a buffered file instead:
scalars, strings and small arrays are read fully; an array of more than ``max_array``
elements is skipped (for strings: each length read, its bytes passed over) and kept only as
an :class:`ArrayInfo` (element type and length). Tensor infos and data are never read.

Layout (GGUF v2/v3, little- or big-endian): magic ``GGUF``, uint32 version, uint64 tensor
count, uint64 kv count, then per KV: string key, uint32 value type, value. A string is a
uint64 length and UTF-8 bytes; an array is a uint32 element type, a uint64 count, elements.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_ARRAY = 1024

# GGUFValueType -> struct format of a scalar of that type (STRING = 8, ARRAY = 9 aside).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
            10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


class GGUFFormatError(ValueError):
    """Not a GGUF file this reader understands (bad magic, version, type or truncated)."""


@dataclass(frozen=True)
class ArrayInfo:
    """An array too long to materialise: its element type (GGUFValueType) and length."""

    type: int
    length: int

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class Header:
    version: int
    tensor_count: int
    kv_count: int
    byteorder: str  # "<" or ">"


class _Cursor:
    """Sequential reads from a binary file through an in-memory window (``unpack_from``)."""

    CHUNK = 1 << 20

    def __init__(self, f: BinaryIO):
        self.f = f
        self.buf = b""
        self.pos = 0

    def _ensure(self, n: int) -> None:
        if self.pos + n <= len(self.buf):
            return
        rest = self.buf[self.pos:]
        self.buf = rest + self.f.read(max(n - len(rest), self.CHUNK))
        self.pos = 0
        if len(self.buf) < n:
            raise GGUFFormatError("unexpected end of file in the metadata")

    def unpack(self, fmt: struct.Struct) -> tuple:
        self._ensure(fmt.size)
        out = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return out

    def take(self, n: int) -> bytes:
        self._ensure(n)
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        left = len(self.buf) - self.pos
        if n <= left:
            self.pos += n
            return
        self.f.seek(n - left, 1)
        self.buf, self.pos = b"", 0


class _Walker:
    def __init__(self, cursor: _Cursor, byteorder: str, max_array: int):
        self.c = cursor
        self.max_array = max_array
        self.u32 = struct.Struct(byteorder + "I")
        self.u64 = struct.Struct(byteorder + "Q")
        self.scalars = {t: struct.Struct(byteorder + f) for t, f in _SCALARS.items()}
        self.byteorder = byteorder

    def string(self) -> str:
        (n,) = self.c.unpack(self.u64)
        return self.c.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            return self.array()
        fmt = self.scalars.get(vtype)
        if fmt is None:
            raise GGUFFormatError(f"unknown GGUF value type {vtype}")
        return self.c.unpack(fmt)[0]

    def array(self) -> list | ArrayInfo:
        (etype,) = self.c.unpack(self.u32)
        (n,) = self.c.unpack(self.u64)
        if n > self.max_array:
            self.skip_elements(etype, n)
            return ArrayInfo(etype, n)
        if etype in _SCALARS:
            fmt = struct.Struct(f"{self.byteorder}{n}{_SCALARS[etype]}")
            return list(self.c.unpack(fmt))
        return [self.value(etype) for _ in range(n)]

    def skip_strings(self, n: int) -> None:
        _skip_strings(self.c, self.u64, n)

    def skip_elements(self, etype: int, n: int) -> None:
        if etype in _SCALARS:
            self.c.skip(n * self.scalars[etype].size)
        elif etype == STRING:
            self.skip_strings(n)
        elif etype == ARRAY:
            for _ in range(n):
                (inner,) = self.c.unpack(self.u32)
                (m,) = self.c.unpack(self.u64)
                self.skip_elements(inner, m)
        else:
            raise GGUFFormatError(f"unknown GGUF value type {etype}")


def _skip_strings(c: _Cursor, u64: struct.Struct, n: int) -> None:
    """Pass over ``n`` strings (uint64 length + bytes each): the hot loop of a vocabulary,
    kept on local variables over the cursor's window."""
    unpack_from, read, seek = u64.unpack_from, c.f.read, c.f.seek
    buf, pos = c.buf, c.pos
    end = len(buf)
    for _ in range(n):
        if pos + 8 > end:
            buf = buf[pos:] + read(c.CHUNK)
            pos, end = 0, len(buf)
            if end < 8:
                raise GGUFFormatError("unexpected end of file in the metadata")
        pos += 8 + unpack_from(buf, pos)[0]
        if pos > end:  # the string runs past the window: seek over the rest of it
            seek(pos - end, 1)
            buf, pos, end = b"", 0, 0
    c.buf, c.pos = buf, pos


def _header(c: _Cursor) -> Header:
    if c.take(4) != MAGIC:
        raise GGUFFormatError("bad magic (not a GGUF file)")
    (version,) = c.unpack(struct.Struct("<I"))
    byteorder = "<"
    if version & 0xFFFF == 0:  # written on a big-endian host: the version reads byte-swapped
        version = struct.unpack(">I", struct.pack("<I", version))[0]
        byteorder = ">"
    if version not in SUPPORTED_VERSIONS:
        raise GGUFFormatError(f"unsupported GGUF version {version}")
    tensor_count, kv_count = c.unpack(struct.Struct(byteorder + "QQ"))
    return Header(version, tensor_count, kv_count, byteorder)


def read_header(path: str | Path) -> Header:
    with open(path, "rb") as f:
        return _header(_Cursor(f))


def read_metadata(path: str | Path, max_array: int = MAX_ARRAY) -> dict[str, Any]:
    """Every key of the GGUF's KV section -> its value (``str``, ``int``, ``float``, ``bool``,
    a ``list`` of those, or an :class:`ArrayInfo` for arrays longer than ``max_array``)."""
    with open(path, "rb", buffering=0) as f:
        c = _Cursor(f)
        header = _header(c)
        walk = _Walker(c, header.byteorder, max_array)
        out: dict[str, Any] = {}
        for _ in range(header.kv_count):
            key = walk.string()
            (vtype,) = c.unpack(walk.u32)
            out[key] = walk.value(vtype)
    return out
