"""Reading a subscription request (query string or WebSocket message): what to stream."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tickwire.gateway.connection import Interest
from tickwire.gateway.errors import BadRequestError

SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/^=-]{0,31}$")
INTERVAL = re.compile(r"^[1-9][0-9]{0,3}[smhd]$")


def split(value: str | None) -> list[str]:
    """Comma-separated values, trimmed, empty ones dropped."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def interest_from(
    symbols: Iterable[str],
    prefixes: Iterable[str],
    bars: Iterable[str] | None,
    *,
    max_symbols: int,
    default_bars: frozenset[str] = frozenset({"1m"}),
) -> Interest:
    """Validate a subscription; BadRequestError says what is wrong.

    `symbols` may hold "*" (every symbol); `bars` lists bar intervals to receive
    ("none" for no bars; absent means the default).
    """
    wanted = list(dict.fromkeys(symbols))
    everything = "*" in wanted
    wanted = [s for s in wanted if s != "*"]
    starts = tuple(dict.fromkeys(prefixes))
    if not (wanted or starts or everything):
        raise BadRequestError("ask for symbols=A,B, symbols=* or prefix=P")
    if len(wanted) + len(starts) > max_symbols:
        raise BadRequestError(f"at most {max_symbols} symbols and prefixes per subscription")
    for symbol in (*wanted, *starts):
        if not SYMBOL.match(symbol):
            raise BadRequestError(f"not a valid symbol: {symbol[:40]!r}")
    intervals = default_bars
    if bars is not None:
        listed = list(bars)
        intervals = frozenset() if listed in ([], ["none"]) else frozenset(listed)
        for interval in intervals:
            if not INTERVAL.match(interval):
                raise BadRequestError(f"not a valid bar interval: {interval[:20]!r}")
    return Interest(frozenset(wanted), starts, everything, intervals)


def max_rate_from(value: str | None) -> float | None:
    """The optional per-symbol rate limit (events per second)."""
    if value is None or value == "":
        return None
    try:
        rate = float(value)
    except ValueError as exc:
        raise BadRequestError("max_rate must be a number") from exc
    if not 0.01 <= rate <= 10_000:
        raise BadRequestError("max_rate must be between 0.01 and 10000")
    return rate


def flag_from(value: object, name: str) -> bool:
    """An on/off option: absent, "0", "false" or false is off; "1", "true" or true on."""
    if value is None or value in ("", "0", "false", False):
        return False
    if value in ("1", "true", True):
        return True
    raise BadRequestError(f"{name} must be 1 or 0")
