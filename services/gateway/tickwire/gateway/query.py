"""The query API: a dashboard's first paint and history chart.

    GET /v1/quotes/{symbol}                          one symbol's current state
    GET /v1/quotes?symbols=A,B                       several (missing ones listed apart)
    GET /v1/bars/{symbol}?interval=1m&from=&to=&limit=
                                                     bars by start time; without `from`,
                                                     the latest `limit` bars before `to`
Quotes come from the hub's memory once it has caught up with Kafka: the newest state
of every symbol read from ticker.updates (seeded from MongoDB at cold start), so at
least as new as MongoDB, which the processor writes behind its publishes, and never a
store round trip. Before that, and for bars, MongoDB answers, read through a cache in
this process and, when `TICKWIRE_REDIS_URL` is set, the Redis cache shared by the
replicas (tickwire.gateway.querycache: keyed by what the gateway has applied, so never
older than that).
Invalid input answers 422 (FastAPI validation) or 400; unknown symbols 404; symbols the
token does not allow 403; MongoDB unavailable 503. Client input never causes a 5xx.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pymongo.errors import PyMongoError

from tickwire.gateway.auth import Principal
from tickwire.gateway.delay import bars_before
from tickwire.gateway.errors import GatewayError, NotReadyError
from tickwire.gateway.reader import state_from_document
from tickwire.gateway.runtime import Runtime, runtime_of
from tickwire.gateway.subscribe import INTERVAL, SYMBOL, split
from tickwire.mongo.history import history

router = APIRouter(prefix="/v1", tags=["query"])

SymbolPath = Annotated[str, Path(pattern=SYMBOL.pattern, max_length=32)]
_ENCODER = msgspec.json.Encoder()


def _json(value: Any) -> Response:
    return Response(_ENCODER.encode(value), media_type="application/json")


def _caller(request: Request) -> tuple[Runtime, Principal]:
    try:
        runtime = runtime_of(request.scope)
        if runtime.db is None:
            raise NotReadyError("the gateway is starting")
        return runtime, runtime.auth.authenticate(request.headers, request.cookies)
    except GatewayError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def _allow(principal: Principal, symbols: list[str]) -> None:
    refused = [s for s in symbols if not principal.may_see(s)]
    if refused:
        raise HTTPException(403, f"not allowed: {', '.join(refused[:10])}")


def _held(runtime: Runtime, symbols: list[str]) -> dict[str, bytes] | None:
    """The hub's newest state (published JSON) of each symbol it holds; None while the
    hub has not caught up with Kafka (then MongoDB answers)."""
    hub = runtime.hub
    if hub is None or not hub.ready.is_set():
        return None
    out: dict[str, bytes] = {}
    for symbol in symbols:
        held = hub.quotes.get(symbol)
        if held is not None:
            out[symbol] = held[1]
    return out


async def _delayed(runtime: Runtime, principal: Principal, symbols: list[str]) -> dict[str, bytes]:
    """A delayed subject's states, each from its delay's feed: never fresher than that."""
    try:
        return await runtime.delayed_quotes(principal, symbols)
    except GatewayError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def _unavailable(exc: PyMongoError) -> HTTPException:
    return HTTPException(503, f"store unavailable: {type(exc).__name__}")


@router.get("/quotes/{symbol}", summary="One symbol's current state")
async def get_quote(request: Request, symbol: SymbolPath) -> Response:
    runtime, principal = _caller(request)
    _allow(principal, [symbol])
    held = await _delayed(runtime, principal, [symbol]) if principal.delays else None
    held = _held(runtime, [symbol]) if held is None else held
    if held is not None:
        if symbol not in held:
            raise HTTPException(404, f"no quote for {symbol}")
        return Response(held[symbol], media_type="application/json")
    cached = await runtime.query_cache.cached_quotes(runtime.hub, [symbol])
    if symbol in cached:
        return Response(cached[symbol], media_type="application/json")
    try:
        doc = await runtime.db.quotes.find_one({"_id": symbol})
    except PyMongoError as exc:
        raise _unavailable(exc) from exc
    state = state_from_document(doc) if doc else None
    if state is None:
        raise HTTPException(404, f"no quote for {symbol}")
    await runtime.query_cache.store_quotes([state])
    return _json(state)


@router.get("/quotes", summary="Several symbols' current state")
async def get_quotes(
    request: Request, symbols: Annotated[str, Query(min_length=1, max_length=10_000)]
) -> Response:
    runtime, principal = _caller(request)
    wanted = list(dict.fromkeys(split(symbols)))
    limit = runtime.settings.gateway_query_max_symbols
    if not wanted or len(wanted) > limit:
        raise HTTPException(422, f"give 1 to {limit} comma-separated symbols")
    bad = [s for s in wanted if not SYMBOL.match(s)]
    if bad:
        raise HTTPException(422, f"not a valid symbol: {bad[0][:40]!r}")
    _allow(principal, wanted)
    held = await _delayed(runtime, principal, wanted) if principal.delays else None
    held = _held(runtime, wanted) if held is None else held
    if held is not None:
        missing = [s for s in wanted if s not in held]
        body = b'{"quotes":[' + b",".join(held[s] for s in wanted if s in held) + b'],"missing":'
        return Response(body + _ENCODER.encode(missing) + b"}", media_type="application/json")
    cached = await runtime.query_cache.cached_quotes(runtime.hub, wanted)
    unread = [s for s in wanted if s not in cached]
    try:
        # point reads by _id, concurrently: FerretDB v1 answers `$in` by reading the
        # whole collection, an `_id` equality it pushes down to its backend
        found_docs = await asyncio.gather(
            *(runtime.db.quotes.find_one({"_id": symbol}) for symbol in unread)
        )
        docs = [doc for doc in found_docs if doc is not None]
    except PyMongoError as exc:
        raise _unavailable(exc) from exc
    states = [s for s in map(state_from_document, docs) if s is not None]
    await runtime.query_cache.store_quotes(states)
    found = {s.symbol: _ENCODER.encode(s) for s in states}
    found.update(cached)
    missing = [s for s in wanted if s not in found]
    body = b'{"quotes":[' + b",".join(found[s] for s in wanted if s in found) + b'],"missing":'
    return Response(body + _ENCODER.encode(missing) + b"}", media_type="application/json")


@router.get("/bars/{symbol}", summary="OHLCV bars by start time")
async def get_bars(
    request: Request,
    symbol: SymbolPath,
    interval: Annotated[str, Query(pattern=INTERVAL.pattern)] = "1m",
    start: Annotated[dt.datetime | None, Query(alias="from")] = None,
    end: Annotated[dt.datetime | None, Query(alias="to")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    runtime, principal = _caller(request)
    _allow(principal, [symbol])
    most = runtime.settings.gateway_query_max_bars
    if limit is not None and limit > most:
        raise HTTPException(422, f"limit is at most {most}")
    count = limit or min(500, most)
    try:
        start, end = _utc(start), _utc(end)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise HTTPException(422, "from/to must be within years 1-9999 in UTC") from exc
    if start is not None and end is not None and start >= end:
        raise HTTPException(422, "from must be before to")
    if principal.delays:  # a delayed subject: no bar fresher than its delay
        end = bars_before(principal.delays.for_symbol(symbol), interval, end)
    cache = runtime.query_cache
    key = cache.bars_key(runtime.hub, symbol, interval, start, end, count)
    if key is not None:
        cached = await cache.cached_bars(key)
        if cached is not None:
            return Response(cached, media_type="application/json")
    try:
        bars = await history(runtime.db.bars, symbol, interval, start, end, count)
    except PyMongoError as exc:
        raise _unavailable(exc) from exc
    body = _ENCODER.encode({"symbol": symbol, "interval": interval, "bars": bars})
    if key is not None and cache.finals.covers(f"{symbol}|{interval}", start, end, count, bars):
        await cache.store_bars(key, body)
    return Response(body, media_type="application/json")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """The time in UTC (naive means UTC); OverflowError past the calendar's edges."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
