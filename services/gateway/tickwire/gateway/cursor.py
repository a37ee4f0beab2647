"""Cursors: the `id` of every event, from which any gateway instance can resume.

A cursor is the reader's position (next offset) in every partition of `ticker.updates`
followed by every partition of `ticker.bars` ("slots"), after the event it labels:

    base64url( 0x01 | tag:4 bytes | count:varint | offset:varint ... )   (no padding)

`tag` is a CRC32 of the cursor generation setting, the topic names and their partition
counts: a cursor from another topic, cluster generation or partition layout decodes to
a different tag and resumes as a reset. Anything that does not decode is malformed (400).

The whole position vector is encoded (not only the partitions a subscription touches)
so that one event has one id, shared by every subscriber: its frame is encoded once.
Each slot's varint is kept pre-encoded, so a new id costs one join and one b64 encode.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Sequence

from tickwire.gateway.errors import BadRequestError

VERSION = 1
MAX_CURSOR_CHARS = 2048
_HEADER = struct.Struct(">BI")


class MalformedCursorError(BadRequestError):
    """The cursor is not something this gateway ever issued."""


def topology_tag(generation: str, layout: Sequence[tuple[str, int]]) -> int:
    """The tag of a cursor generation and a (topic, partition count) layout."""
    text = generation + "\x00" + "\x00".join(f"{topic}/{count}" for topic, count in layout)
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    """Unsigned LEB128 encoding of a non-negative integer."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def header(tag: int, count: int) -> bytes:
    """The fixed part of every cursor of a layout."""
    return _HEADER.pack(VERSION, tag) + varint(count)


def encode(tag: int, positions: Sequence[int]) -> str:
    """The cursor text for a position vector."""
    return encode_pieces(header(tag, len(positions)), [varint(p) for p in positions])


def encode_pieces(head: bytes, pieces: Sequence[bytes]) -> str:
    """The cursor text from a header and pre-encoded varints (the hot-path form)."""
    return base64.urlsafe_b64encode(head + b"".join(pieces)).rstrip(b"=").decode()


def decode(text: str) -> tuple[int, list[int]]:
    """(tag, positions) of a cursor; MalformedCursorError for anything else."""
    if not text or len(text) > MAX_CURSOR_CHARS:
        raise MalformedCursorError("cursor is empty or too long")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCursorError("cursor is not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text.rstrip("="):
        raise MalformedCursorError("cursor is not canonical base64url")
    if len(raw) < _HEADER.size + 1:
        raise MalformedCursorError("cursor is truncated")
    version, tag = _HEADER.unpack_from(raw)
    if version != VERSION:
        raise MalformedCursorError(f"unknown cursor version {version}")
    values = _read_varints(raw, _HEADER.size)
    if not values or values[0] != len(values) - 1:
        raise MalformedCursorError("cursor length does not match its count")
    return tag, values[1:]


def _read_varints(raw: bytes, start: int) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for byte in raw[start:]:
        if shift > 63:
            raise MalformedCursorError("cursor offset out of range")
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        if shift and byte == 0:
            raise MalformedCursorError("cursor varint is not minimal")
        values.append(value)
        value = shift = 0
    if shift:
        raise MalformedCursorError("cursor ends inside a number")
    return values
