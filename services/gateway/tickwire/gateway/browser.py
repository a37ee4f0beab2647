"""What the gateway tells browsers, and which pages may open its streams.

Every response carries headers that keep the dashboard to its own files: a Content
Security Policy without inline script or style (the page loads /static/dashboard.js
and .css; the streams and the query API are `connect-src 'self'`), no framing by other
sites (`frame-ancestors 'none'`), `nosniff`, and no referrer leaving the site.

A browser attaches the session cookie to a WebSocket handshake from any page, so the
handshake's `Origin` is checked (cross-site WebSocket hijacking): allowed are the
gateway's own origin and `TICKWIRE_GATEWAY_CORS_ORIGINS`. A client that sends no
`Origin` is not a browser page and carries no ambient cookie; it is let through to
authentication like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware adding `HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def origin_allowed(headers: Mapping[str, str], scheme: str, allowed: Iterable[str]) -> bool:
    """Whether a WebSocket handshake's Origin may open a stream (module docstring)."""
    origin = headers.get("origin")
    if origin is None:
        return True
    own = f"{'https' if scheme in ('https', 'wss') else 'http'}://{headers.get('host', '')}"
    return origin == own or origin in set(allowed)
