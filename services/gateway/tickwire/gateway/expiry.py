"""Streams that outlive their token: each connection's deadline at the token's `exp`.

No timer per connection: the janitor's sweep, which already passes every connection
once a tick (at most a second apart), asks each deadline what is due (one float
compare when nothing is). `GATEWAY_TOKEN_EXPIRY_NOTICE_S` before `exp` the client is
sent a `token-expiring` event carrying `exp` (no id, so the browser's Last-Event-ID
stays put); at `exp` the stream ends with a final `error` event, code `token_expired`
(WebSocket: then close code 4001). Before that, a WebSocket client renews in place
(`{"type": "refresh", "token": ...}`, `Deadline.extend`); an SSE client stores a fresh
cookie (`POST /v1/session`) and its browser's automatic reconnect resumes from its
cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

NOTICE, EXPIRED = "notice", "expired"
#: WebSocket close code of a stream whose token expired (private-use range: 1008
#: stays the handshake's refusals, so a client can tell "renew" from "refused").
WS_TOKEN_EXPIRED = 4001
EXPIRED_MESSAGE = (
    "the token expired: send a fresh one (WebSocket: a refresh message before exp; "
    "SSE: POST /v1/session) and reconnect from the last event id"
)


@dataclass
class Deadline:
    """When a connection's token expires, and whether its client was told."""

    exp: float  # the token's `exp`, seconds since the epoch
    notice_s: float
    noticed: bool = False

    @classmethod
    def of(cls, exp: float | None, notice_s: float) -> Deadline | None:
        """The deadline of a token (None: a principal without one, auth off)."""
        return None if exp is None else cls(exp, notice_s)

    def due(self, now: float) -> str | None:
        """What is due at wall time `now`: EXPIRED, NOTICE (once), or None."""
        if now >= self.exp:
            return EXPIRED
        if not self.noticed and now >= self.exp - self.notice_s:
            self.noticed = True
            return NOTICE
        return None

    def extend(self, exp: float) -> None:
        """A renewed token: the deadline moves to its `exp` (told again before it)."""
        self.exp = exp
        self.noticed = False

    def notice_data(self) -> bytes:
        """The `token-expiring` event's data."""
        return orjson.dumps({"exp": int(self.exp) if self.exp.is_integer() else self.exp})


def expired_data() -> bytes:
    """The final `error` event's data."""
    return orjson.dumps({"status": 401, "code": "token_expired", "message": EXPIRED_MESSAGE})
