"""Reading a subscription request (query string or WebSocket message): what to stream."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tickwire.gateway.connection import Interest
from tickwire.gateway.errors import BadRequestError, SubscriptionLimitError
from tickwire.gateway.settings import GatewaySettings

SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/^=-]{0,31}$")
INTERVAL = re.compile(r"^[1-9][0-9]{0,3}[smhd]$")
#: SubscriptionLimitError codes
TOO_MANY_SYMBOLS = "too_many_symbols"
TOO_MANY_BAR_STREAMS = "too_many_bar_streams"


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
    if len(wanted) + len(starts) > max_symbols:  # before checking each one
        raise SubscriptionLimitError(
            TOO_MANY_SYMBOLS, f"a connection holds at most {max_symbols} symbols and prefixes"
        )
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


def within_limits(held: Interest, asked: Interest, settings: GatewaySettings) -> None:
    """Refuse (SubscriptionLimitError) a subscription that would take a connection past
    its limits, counted over everything it holds with this one added: symbols and
    prefixes (GATEWAY_MAX_SYMBOLS), and (symbol or prefix, interval) bar streams
    (GATEWAY_MAX_BAR_STREAMS). Checked before anything is registered, so a refused
    subscription leaves the connection's others as they were."""
    max_symbols, max_bar_streams = settings.gateway_max_symbols, settings.gateway_max_bar_streams
    merged = held.union(asked)
    if merged.names() > max_symbols:
        raise SubscriptionLimitError(
            TOO_MANY_SYMBOLS,
            f"a connection holds at most {max_symbols} symbols and prefixes; with this "
            f"subscription it would hold {merged.names()} (unsubscribe some first)",
        )
    if merged.bar_streams() > max_bar_streams:
        raise SubscriptionLimitError(
            TOO_MANY_BAR_STREAMS,
            f"a connection receives bars of at most {max_bar_streams} (symbol, interval) "
            f"pairs; with this subscription it would be {merged.names()} symbols and "
            f"prefixes x {len(merged.bar_intervals)} intervals = {merged.bar_streams()}",
        )


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
