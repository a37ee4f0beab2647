"""A guard around every parser of outside data (HTTP bodies, Kafka record values): what
the parser cannot survive becomes a `MalformedInput` with a specific reason instead of
escaping as RecursionError or UnicodeDecodeError (a 500, or a consumer crash loop).

Nesting is bounded by msgspec's recursion guard (it raises RecursionError well before
the C stack is at risk); no tickwire event nests more than three levels, so anything
that deep is malformed whatever it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tickwire.core.errors import PermanentError

T = TypeVar("T")


class MalformedInput(PermanentError):
    """The bytes cannot be read at all: not UTF-8, or nested too deeply."""


def utf8_error(data: bytes | memoryview) -> str | None:
    """Where data stops being UTF-8, as a message; None when it is valid."""
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
    return None


def guarded(decode: Callable[[bytes], T], data: bytes) -> T:
    """decode(data), with unreadable input raised as MalformedInput (and the parser's
    own errors, e.g. msgspec.DecodeError, passed through)."""
    try:
        return decode(data)
    except RecursionError:
        raise MalformedInput("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise MalformedInput(utf8_error(data) or "not valid UTF-8") from None
