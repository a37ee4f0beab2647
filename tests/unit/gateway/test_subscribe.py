"""Subscription requests, auth claims and connection limits."""

from __future__ import annotations

import time

import jwt
import pytest

from tickwire.core.errors import ConfigError
from tickwire.gateway.auth import Authenticator
from tickwire.gateway.connection import Interest
from tickwire.gateway.errors import (
    BadRequestError,
    ForbiddenError,
    SubscriptionLimitError,
    TooManyConnectionsError,
    UnauthorizedError,
)
from tickwire.gateway.limits import ConnectionLimits
from tickwire.gateway.settings import GatewaySettings
from tickwire.gateway.subscribe import interest_from, max_rate_from, within_limits
from tickwire.redis.link import RedisLink

KEY = "test-secret-key-that-is-long-enough-for-hs256-and-also-for-hs512!!"


def test_interest_forms() -> None:
    assert interest_from(["AAPL", "MSFT", "AAPL"], [], None, max_symbols=10) == Interest(
        frozenset({"AAPL", "MSFT"}), (), False, frozenset({"1m"})
    )
    assert interest_from(["*"], [], ["none"], max_symbols=10).everything
    assert interest_from([], ["AA"], ["1s", "1m"], max_symbols=10).bar_intervals == {"1s", "1m"}


@pytest.mark.parametrize(
    ("symbols", "prefixes", "bars"),
    [
        ([], [], None),
        (["bad symbol"], [], None),
        (["A"] * 0 + ["A", "B", "C"], [], None),
        (["A"], [], ["1x"]),
        (["A"], ["<x>"], None),
    ],
)
def test_invalid_interest(symbols: list[str], prefixes: list[str], bars: list[str] | None) -> None:
    with pytest.raises(BadRequestError):
        interest_from(symbols, prefixes, bars, max_symbols=2)


def test_max_rate() -> None:
    assert max_rate_from(None) is None
    assert max_rate_from("2.5") == 2.5
    for bad in ("x", "0", "1e9"):
        with pytest.raises(BadRequestError):
            max_rate_from(bad)


def auth() -> Authenticator:
    return Authenticator(GatewaySettings(gateway_auth="jwt", gateway_jwt_key=KEY))


def token(**claims: object) -> str:
    base: dict[str, object] = {
        "sub": "alice",
        "aud": "tickwire-gateway",
        "iss": "tickwire",
        "exp": int(time.time()) + 60,
        "symbols": ["AAPL"],
        "prefixes": ["MS"],
    }
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, KEY, algorithm="HS256")


def test_token_from_header_or_cookie() -> None:
    a = auth()
    assert a.authenticate({"authorization": f"Bearer {token()}"}, {}).subject == "alice"
    assert a.authenticate({}, {"tickwire_token": token()}).subject == "alice"
    with pytest.raises(UnauthorizedError):
        a.authenticate({}, {})


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 10},
        {"aud": "other"},
        {"iss": "other"},
        {"exp": None},
        {"aud": None},
        {"iss": None},
        {"sub": None},
    ],
)
def test_bad_claims_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(UnauthorizedError):
        auth().verify(token(**claims))


def test_algorithm_comes_from_settings_not_the_token() -> None:
    unsigned = jwt.encode(
        {"sub": "x", "aud": "tickwire-gateway", "iss": "tickwire", "exp": time.time() + 60},
        None,
        algorithm="none",
    )
    with pytest.raises(UnauthorizedError):
        auth().verify(unsigned)
    other = jwt.encode({"sub": "x"}, KEY, algorithm="HS512")
    with pytest.raises(UnauthorizedError):
        auth().verify(other)


def test_claims_decide_what_may_be_subscribed() -> None:
    p = auth().verify(token())
    p.check(Interest(frozenset({"AAPL", "MSFT"}), ("MSX",)))
    for refused in (
        Interest(frozenset({"GOOG"})),
        Interest(everything=True),
        Interest(prefixes=("M",)),
    ):
        with pytest.raises(ForbiddenError):
            p.check(refused)
    auth().verify(token(symbols=["*"])).check(Interest(everything=True))


def test_anonymous_mode_allows_everything() -> None:
    a = Authenticator(GatewaySettings(gateway_auth="off"))
    a.authenticate({}, {}).check(Interest(everything=True))


def test_jwt_mode_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="KEY"):
        Authenticator(GatewaySettings(gateway_auth="jwt"))


async def test_limits_per_ip_and_subject() -> None:
    # no Redis configured: the caps hold in this process
    limits = ConnectionLimits(2, 1, RedisLink.from_settings(GatewaySettings(gateway_auth="off")))
    await limits.acquire("1.1.1.1", "a")
    with pytest.raises(TooManyConnectionsError):
        await limits.acquire("2.2.2.2", "a")
    await limits.acquire("1.1.1.1", None)
    with pytest.raises(TooManyConnectionsError):
        await limits.acquire("1.1.1.1", None)
    await limits.release("1.1.1.1", "a")
    await limits.acquire("3.3.3.3", "a")
    assert limits.open_streams() == {
        ("ip", "1.1.1.1"): 1,
        ("ip", "3.3.3.3"): 1,
        ("subject", "a"): 1,
    }


def limits(symbols: int, bar_streams: int) -> GatewaySettings:
    return GatewaySettings(gateway_max_symbols=symbols, gateway_max_bar_streams=bar_streams)


def test_limits_count_what_a_connection_holds_over_its_subscriptions() -> None:
    held = Interest(frozenset({"AAPL", "MSFT"}), ("BR",), False, frozenset({"1m"}))
    # a symbol held already counts once; 3 names x 1 interval
    within_limits(held, Interest(frozenset({"AAPL"}), (), False, frozenset()), limits(3, 3))
    with pytest.raises(SubscriptionLimitError, match="would hold 4") as symbols:
        within_limits(held, Interest(frozenset({"GOOG"}), (), False, frozenset()), limits(3, 9))
    assert (symbols.value.code, symbols.value.status) == ("too_many_symbols", 400)
    # a new interval applies to every symbol of the connection: 3 names x 2 intervals
    with pytest.raises(SubscriptionLimitError, match="= 6") as bars:
        within_limits(held, Interest(frozenset(), (), False, frozenset({"1s"})), limits(9, 5))
    assert bars.value.code == "too_many_bar_streams"
    within_limits(held, Interest(frozenset(), (), False, frozenset({"1s"})), limits(9, 6))
    # "*" counts one name; a first subscription is checked against nothing held
    empty = Interest(bar_intervals=frozenset())
    within_limits(empty, Interest(frozenset(), (), True, frozenset({"1m"})), limits(1, 1))
    with pytest.raises(SubscriptionLimitError):
        within_limits(empty, Interest(frozenset({"A"}), (), True, frozenset()), limits(1, 1))


def test_a_single_subscription_over_the_limit_is_refused_with_its_code() -> None:
    with pytest.raises(SubscriptionLimitError) as refused:
        interest_from(["A", "B", "C"], [], None, max_symbols=2)
    assert refused.value.code == "too_many_symbols"
    assert refused.value.body() == {"error": refused.value.message, "code": "too_many_symbols"}
