"""The RED middleware counts every response, including an unhandled error's 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from tickwire.observability.http import REDMiddleware


def _count(service: str, route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "tickwire_http_requests_total",
        {"service": service, "route": route, "method": "GET", "status": status},
    )
    return value or 0.0


def _app(service: str) -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("an injected unhandled error")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(REDMiddleware, service=service)
    return app


async def test_an_unhandled_error_is_counted_as_a_5xx() -> None:
    service = "red-test-unhandled"
    transport = httpx.ASGITransport(app=_app(service), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/boom")).status_code == 500
        assert (await client.get("/fine")).status_code == 200
    assert _count(service, "/boom", "5xx") == 2
    assert _count(service, "/fine", "2xx") == 1
    assert _count(service, "/boom", "2xx") == 0
