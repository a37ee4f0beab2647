"""Symbol rules, stated once: what a ticker symbol may look like on every hop.

A symbol is 1-24 characters: an upper-case letter or digit, then upper-case letters,
digits, `.`, `-`, `/` or `_` (`AAPL`, `BRK.B`, `BTC-USD`, `EUR/USD`). It is the Kafka key
of every record and the `subject` of every CloudEvent.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

#: JSON Schema / pydantic form (`$` is the end of the string there).
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._/-]{0,23}$"
MAX_SYMBOL_LENGTH = 24


def full_match(pattern: str) -> str:
    """A `^...$` pattern for Python's `re.search` (which msgspec uses): Python's `$` also
    matches before a trailing newline, JSON Schema's (and pydantic's Rust regex) do not;
    `\\Z` makes them agree."""
    return pattern.removesuffix("$") + r"\Z"


_SYMBOL = re.compile(full_match(SYMBOL_PATTERN))

#: A symbol field of a msgspec Struct.
Symbol = Annotated[str, msgspec.Meta(pattern=full_match(SYMBOL_PATTERN))]


def is_symbol(text: str) -> bool:
    """Whether text is a valid symbol."""
    return _SYMBOL.search(text) is not None
