"""Pure logic of the Redis parts: the in-process bucket's rule, the bars cache's coverage
check and keys, the settings' policy values."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pydantic import ValidationError

from tickwire.events import wire
from tickwire.gateway.hub import Hub, Slot
from tickwire.gateway.querycache import KEPT, AppliedFinals, LocalAnswers, QueryCache
from tickwire.gateway.settings import GatewaySettings
from tickwire.gateway.updates import BAR, Parsed
from tickwire.redis.link import RedisLink
from tickwire.redis.ratelimit import TokenBucket
from tickwire.redis.settings import RedisSettings

T0 = dt.datetime(2026, 11, 27, 14, 30, tzinfo=dt.UTC)
MINUTE_US = 60_000_000
T0_US = int((T0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds()) * 1_000_000


def _final(minute: int, version: int) -> Parsed:
    return Parsed(
        BAR, "S", f"S|1m|{minute}", "1m", version, 0,
        start_us=T0_US + minute * MINUTE_US, final=True,
    )  # fmt: skip


def _bar(minute: int, version: int) -> wire.Bar:
    start = T0 + dt.timedelta(minutes=minute)
    return wire.Bar(
        symbol="S", interval="1m", start=start, end=start + dt.timedelta(minutes=1),
        open=1, high=1, low=1, close=1, volume=1, vwap=1, trades=1, final=True,
        version=version,
    )  # fmt: skip


def test_token_bucket_rule() -> None:
    bucket = TokenBucket(rate=0.001, burst=100)
    assert [bucket.take(10) for _ in range(10)] == [0.0] * 10
    wait = bucket.take(10)
    assert 9 / 0.001 < wait <= 10 / 0.001  # (count - tokens) / rate, tokens < 1
    assert bucket.take(101) == math.inf
    assert TokenBucket(rate=0, burst=1).take(10**6) == 0


def test_finals_move_the_stamp_and_keep_the_newest_version() -> None:
    finals = AppliedFinals()
    finals.applied(_final(1, 7), offset=10)
    finals.applied(_final(1, 5), offset=11)  # an older state read again: stamp moves
    assert finals.stamps["S|1m"] == 11
    assert finals.finals["S|1m"] == {T0_US + MINUTE_US: 7}
    for minute in range(2, KEPT + 5):
        finals.applied(_final(minute, 3), offset=100 + minute)
    assert len(finals.finals["S|1m"]) == KEPT
    assert min(finals.finals["S|1m"]) == T0_US + 5 * MINUTE_US  # minutes 1..KEPT+4 read


def test_coverage_of_an_answer() -> None:
    finals = AppliedFinals()
    for minute, version in ((0, 7), (1, 7), (2, 9)):
        finals.applied(_final(minute, version), offset=minute)
    full = [_bar(0, 7), _bar(1, 7), _bar(2, 9)]
    assert finals.covers("S|1m", None, None, 500, full)
    assert not finals.covers("S|1m", None, None, 500, full[:2])  # bar 2 not persisted
    assert not finals.covers("S|1m", None, None, 500, [*full[:2], _bar(2, 7)])  # older
    assert finals.covers("S|1m", None, None, 500, [*full[:2], _bar(2, 11)])  # newer: fine
    # a window that leaves bar 2 out does not need it
    assert finals.covers("S|1m", None, T0 + dt.timedelta(minutes=2), 500, full[:2])
    assert finals.covers("S|1m", T0 + dt.timedelta(minutes=1), None, 1, full[1:2])  # cut
    # the latest 2 before `to`: bar 0 is outside the answer's span
    assert finals.covers("S|1m", None, None, 2, full[1:])
    assert not finals.covers("S|1m", None, None, 2, full[:2])
    assert finals.covers("S|other", None, None, 10, [])  # nothing applied there


async def test_no_bars_key_without_redis() -> None:
    settings = GatewaySettings(gateway_auth="off")
    cache = QueryCache(RedisLink.from_settings(settings), settings)
    assert cache.bars_key(None, "S", "1m", None, None, 10) is None


def test_fallback_policy_values() -> None:
    assert RedisSettings().redis_fallback == "fail-open"
    assert RedisSettings(redis_fallback="fail-closed").redis_fallback == "fail-closed"
    with pytest.raises(ValidationError):
        RedisSettings(redis_fallback="maybe")  # type: ignore[arg-type]


def test_local_answers_keep_the_most_recently_used_within_their_budget() -> None:
    local = LocalAnswers("test_local", budget=30)
    local.put("a", b"x" * 9)  # 10 bytes with its key
    local.put("b", b"y" * 9)
    local.put("c", b"z" * 9)
    assert local.get("a") == b"x" * 9  # a is now the most recently used
    local.put("d", b"w" * 9)  # over budget: b, the least recently used, leaves
    assert local.get("b") is None
    assert [local.get(k) for k in "acd"] == [b"x" * 9, b"z" * 9, b"w" * 9]
    assert local.size == 30
    local.put("a", b"v" * 4)  # replacing an entry gives back its bytes
    assert local.size == 25
    local.put("big", b"q" * 40)  # larger than the whole budget: not kept, nothing evicted
    assert local.get("big") is None
    assert local.size == 25


async def test_bars_keys_need_a_caught_up_hub_and_some_cache() -> None:
    hub = Hub([Slot("bars", 0, BAR)], tag=1, buffer_capacity=8)
    hub.ready.set()
    local_only = GatewaySettings(gateway_auth="off")  # no Redis: the local map alone
    cache = QueryCache(RedisLink.from_settings(local_only), local_only)
    assert cache.bars_key(hub, "S", "1m", None, None, 10) is not None
    none = GatewaySettings(gateway_auth="off", gateway_cache_local_mib=0)
    assert (
        QueryCache(RedisLink.from_settings(none), none).bars_key(hub, "S", "1m", None, None, 10)
        is None
    )
    hub.ready.clear()  # before the hub has caught up nothing is cached
    assert cache.bars_key(hub, "S", "1m", None, None, 10) is None
