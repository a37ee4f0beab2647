"""A side-stream of bad inputs and security cases, sent while a fault happens.

Bad inputs (with a valid key or token): malformed JSON, wrong types, missing fields,
unknown types, NaN, deeply nested JSON, invalid UTF-8, oversized bodies and headers, wrong
content types to ingest; malformed query parameters and cursors to the gateway. Each
must get a 4xx (or, for a stream a cursor it cannot read, a fresh stream): `5xx` counts
those answered 5xx (a 503 from ingest is the documented "retry later", counted apart).

Security cases: ingest without a key, with an unknown, revoked or out-of-scope key, the
key in the query string; gateway tokens missing, garbage, expired, not yet valid, for
another audience or issuer, without `exp` or `sub`, `alg: none`, badly signed, not
covering the symbol, or given in the URL. `wrongly_accepted` counts those answered 2xx.

Everything the side-stream posts uses symbols outside the tape's, so even a wrongly
accepted event could not change the scenario's reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.helpers.ingest import keys_document
from tests.helpers.tokens import KEY, bad_tokens, bearer, token

BAD_SYMBOL = "ZZBAD"  # never on the tape
MAX_BODY = 256 * 1024  # ingest's body limit in the runs here (TICKWIRE_INGEST_MAX_BODY_BYTES)


@dataclass(frozen=True)
class Credentials:
    """The producer's key, the keys document ingest is given and the gateway token."""

    keys_document: str
    keys: dict[str, str]

    @property
    def ingest_headers(self) -> dict[str, str]:
        return {"x-api-key": self.keys["producer"]}

    @property
    def gateway_headers(self) -> dict[str, str]:
        return bearer(token("faults", symbols=["*"]))


def credentials() -> Credentials:
    """A producer key for every symbol, one for other symbols only and a revoked one."""
    document, keys = keys_document(
        [
            {"key_id": "producer"},
            {"key_id": "narrow", "scopes": {"symbols": ["NOPE*"]}},
            {"key_id": "old", "revoked": True},
        ]
    )
    return Credentials(document, keys)


def service_env(creds: Credentials) -> dict[str, str]:
    """Settings that turn auth on for ingest (API keys) and the gateway (HS256 JWTs)."""
    return {
        "TICKWIRE_INGEST_AUTH": "on",
        "TICKWIRE_INGEST_KEYS": creds.keys_document,
        "TICKWIRE_INGEST_MAX_BODY_BYTES": str(MAX_BODY),
        "TICKWIRE_GATEWAY_AUTH": "jwt",
        "TICKWIRE_GATEWAY_JWT_KEY": KEY,
    }


@dataclass
class AbuseTally:
    """What the side-stream tried and how it was answered."""

    bad_inputs_tried: int = 0
    bad_inputs_5xx: int = 0
    bad_inputs_503: int = 0
    security_cases_tried: int = 0
    security_wrongly_accepted: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # case -> times it failed

    def figures(self) -> dict[str, Any]:
        """The per-scenario figures of the fault report."""
        return {
            "bad_inputs_tried": self.bad_inputs_tried,
            "bad_inputs_5xx": self.bad_inputs_5xx,
            "bad_inputs_503": self.bad_inputs_503,
            "security_cases_tried": self.security_cases_tried,
            "security_wrongly_accepted": self.security_wrongly_accepted,
            "failed_cases": dict(self.failures),
        }


def _trade(**fields: Any) -> dict[str, Any]:
    event = {"type": "trade", "symbol": BAD_SYMBOL, "price": 1.0, "size": 1.0}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


@dataclass(frozen=True)
class Case:
    """One request: where, how, and what it is."""

    name: str
    service: str  # "ingest" | "gateway"
    method: str
    path: str
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    security: bool = False


def bad_inputs(creds: Credentials) -> list[Case]:
    """Malformed requests from an authenticated caller."""
    key = creds.ingest_headers
    as_json = {**key, "content-type": "application/json"}
    gw = creds.gateway_headers

    def post(
        name: str, body: bytes, headers: dict[str, str] = as_json, batch: bool = False
    ) -> Case:
        path = "/v1/events:batch" if batch else "/v1/events"
        return Case(name, "ingest", "POST", path, body, headers)

    def get(name: str, path: str, headers: dict[str, str] = gw) -> Case:
        return Case(name, "gateway", "GET", path, b"", headers)

    return [
        post("truncated json", b'{"type": "trade", "symbol": '),
        post("not an object", b'"just a string"'),
        post("empty body", b""),
        post("invalid utf-8", b'{"type": "trade", "symbol": "\xff\xfe"}'),
        post("nan price", b'{"type":"trade","symbol":"ZZBAD","price":NaN,"size":1}'),
        post("deep nesting", b"[" * 100_000 + b"]" * 100_000),
        post("wrong types", orjson.dumps(_trade(symbol=123, price="abc", size=[1]))),
        post("missing fields", orjson.dumps(_trade(price=None, size=None))),
        post("unknown type", orjson.dumps(_trade(type="dividend"))),
        post("negative size", orjson.dumps(_trade(size=-5))),
        post("bad time", orjson.dumps(_trade(time="yesterday"))),
        post("future time", orjson.dumps(_trade(time="2999-01-01T00:00:00Z"))),
        post("bad symbol", orjson.dumps(_trade(symbol="a b\n"))),
        post(
            "oversized", orjson.dumps([_trade(venue="x" * 1000)] * (MAX_BODY // 900)), as_json, True
        ),
        post("batch of junk", orjson.dumps([1, None, "x", {}]), as_json, True),
        post(
            "ndjson bad line",
            b'{"type":"trade"}\n{nope\n',
            {**key, "content-type": "application/x-ndjson"},
            True,
        ),
        post("wrong content type", orjson.dumps(_trade()), {**key, "content-type": "text/plain"}),
        post("no content type", orjson.dumps(_trade()), key),
        post("bad traceparent", orjson.dumps(_trade()), {**as_json, "traceparent": "00-zz-zz-zz"}),
        post("huge header", orjson.dumps(_trade()), {**as_json, "x-junk": "j" * 64_000}),
        get("stream: bad symbol", "/v1/stream?symbols=a%20b%0A"),
        get(
            "stream: too many symbols",
            "/v1/stream?symbols=" + ",".join(f"S{i}" for i in range(1500)),
        ),
        get("stream: bad bars", "/v1/stream?symbols=F00&bars=fortnightly"),
        get("stream: bad max_rate", "/v1/stream?symbols=F00&max_rate=-1"),
        get("stream: bad since", "/v1/stream?symbols=F00&since=garbage"),
        get(
            "stream: garbage cursor",
            "/v1/stream?symbols=F00",
            {**gw, "last-event-id": "!!not-a-cursor"},
        ),
        get("bars: bad interval", "/v1/bars/F00?interval=7x"),
        get("bars: bad time range", "/v1/bars/F00?interval=1m&start=never&end=-1"),
        get("quotes: no symbols", "/v1/quotes?symbols="),
        get("quotes: bad symbol", "/v1/quotes/%00%FF"),
    ]


def security_cases(creds: Credentials) -> list[Case]:
    """Requests that must be refused (each would be a 2xx if the check were missing)."""
    event = orjson.dumps(_trade())
    plain = {"content-type": "application/json"}
    cases = [
        Case("ingest: no key", "ingest", "POST", "/v1/events", event, plain, True),
        Case(
            "ingest: unknown key",
            "ingest",
            "POST",
            "/v1/events",
            event,
            {**plain, "x-api-key": "tw_" + "0" * 43},
            True,
        ),
        Case(
            "ingest: revoked key",
            "ingest",
            "POST",
            "/v1/events",
            event,
            {**plain, "x-api-key": creds.keys["old"]},
            True,
        ),
        Case(
            "ingest: symbol outside the key's scope",
            "ingest",
            "POST",
            "/v1/events",
            event,
            {**plain, "x-api-key": creds.keys["narrow"]},
            True,
        ),
        Case(
            "ingest: bearer with a wrong key",
            "ingest",
            "POST",
            "/v1/events",
            event,
            {**plain, "authorization": "Bearer tw_wrong"},
            True,
        ),
        Case(
            "ingest: key in the query string",
            "ingest",
            "POST",
            "/v1/events?api_key=" + creds.keys["producer"],
            event,
            plain,
            True,
        ),
    ]
    for name, (bad, _status) in bad_tokens().items():
        headers = bearer(bad) if bad is not None else {}
        cases.append(
            Case(
                f"gateway stream: {name}",
                "gateway",
                "GET",
                "/v1/stream?symbols=AAPL",
                b"",
                headers,
                True,
            )
        )
        cases.append(
            Case(
                f"gateway quotes: {name}",
                "gateway",
                "GET",
                "/v1/quotes?symbols=AAPL",
                b"",
                headers,
                True,
            )
        )
    cases.append(
        Case(
            "gateway: token in the URL",
            "gateway",
            "GET",
            "/v1/stream?symbols=AAPL&access_token=" + token("faults", symbols=["*"]),
            b"",
            {},
            True,
        )
    )
    return cases


async def _status(http: httpx.AsyncClient, case: Case) -> int:
    """The status a case is answered with (0: no HTTP answer); streams are closed at once."""
    try:
        async with http.stream(
            case.method, case.path, content=case.content or None, headers=case.headers
        ) as resp:
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                await resp.aread()
            return resp.status_code
    except httpx.HTTPError:
        return 0


async def side_stream(
    urls: Callable[[], dict[str, str]],
    creds: Credentials,
    tally: AbuseTally,
    stop: asyncio.Event,
    pause_s: float = 0.25,
) -> None:
    """Send every case in turn, over and over, until stop is set. `urls()` gives the
    current base URL of "ingest" and "gateway" (a fault may move them)."""
    # alternate the two kinds, so that even a short fault sees both
    bad, security = bad_inputs(creds), security_cases(creds)
    cases = [c for pair in itertools.zip_longest(bad, security) for c in pair if c is not None]
    turn = 0
    async with httpx.AsyncClient(timeout=httpx.Timeout(10)) as http:
        while not stop.is_set():
            case = cases[turn % len(cases)]
            turn += 1
            base = urls()[case.service]
            status = await _status(http, dataclasses.replace(case, path=base + case.path))
            if case.security:
                tally.security_cases_tried += 1
                if 200 <= status < 300:
                    tally.security_wrongly_accepted += 1
                    tally.failures[case.name] += 1
            else:
                tally.bad_inputs_tried += 1
                if status == 503 and case.service == "ingest":
                    tally.bad_inputs_503 += 1
                elif status >= 500:
                    tally.bad_inputs_5xx += 1
                    tally.failures[case.name] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)
