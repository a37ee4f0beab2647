"""The gateway's OpenAPI describes the raw SSE route too: its query parameters (since
included) and every refusal it answers with before the stream opens."""

from __future__ import annotations

from tickwire.gateway.app import create_app
from tickwire.gateway.settings import GatewaySettings


def test_openapi_lists_the_stream_with_since_and_its_refusals() -> None:
    app = create_app(GatewaySettings(gateway_auth="off"))
    schema = app.openapi()
    assert schema is app.openapi()  # built once
    stream = schema["paths"]["/v1/stream"]["get"]
    names = [p["name"] for p in stream["parameters"]]
    assert names == [
        "symbols", "prefix", "bars", "max_rate", "last_event_id", "since", "delta", "Last-Event-ID",
    ]  # fmt: skip
    assert set(stream["responses"]) == {"200", "400", "401", "403", "410", "429", "503"}
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"/v1/quotes", "/v1/bars/{symbol}", "/v1/session"} <= set(schema["paths"])
