"""The gateway's errors, grown from tickwire's tree.

    PermanentError
    └── GatewayError                  refuses a client request; `status` is the HTTP answer
        ├── BadRequestError           400: malformed input (e.g. a cursor that cannot decode)
        │   └── SubscriptionLimitError    400 + code: a connection's symbols or bar streams
        ├── UnauthorizedError         401: no valid token
        ├── ForbiddenError            403: the token does not allow these symbols
        ├── TooManyConnectionsError   429: a per-IP or per-subject limit is reached
        ├── NotReadyError             503: the cache is not warm yet (retriable)
        │   └── RetryLaterError       503 + Retry-After
        │       ├── LimitsDownError   Redis is down, fail-closed
        │       ├── OverloadedError   the admission queue is full (tickwire.gateway.admission)
        │       └── DrainingError     the node is draining before it stops
        └── RefreshRefusedError       a WebSocket `refresh` refused, with a specific `code`

A cursor from another topic, cluster or generation is not an error: it resumes as a reset.
"""

from __future__ import annotations

import math

from tickwire.core.errors import PermanentError


class GatewayError(PermanentError):
    """A request the gateway refuses; `status` is the HTTP status to answer with."""

    status = 400
    code: str | None = None  # a machine-readable reason, where clients act on it

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON body of the refusal: the message, and the code where there is one."""
        body = {"error": self.message}
        if self.code is not None:
            body["code"] = self.code
        return body

    def headers(self) -> dict[str, str]:
        """HTTP headers to answer with (Retry-After where one is known)."""
        return {}


class BadRequestError(GatewayError):
    """Malformed client input."""

    status = 400


class SubscriptionLimitError(BadRequestError):
    """A subscription would take its connection past a per-connection limit; `code` is
    `too_many_symbols` (GATEWAY_MAX_SYMBOLS) or `too_many_bar_streams`
    (GATEWAY_MAX_BAR_STREAMS)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnauthorizedError(GatewayError):
    """Missing, expired or invalid token."""

    status = 401


class ForbiddenError(GatewayError):
    """The subject may not subscribe to what it asked for."""

    status = 403


class TooManyConnectionsError(GatewayError):
    """A connection limit is reached."""

    status = 429


class NotReadyError(GatewayError):
    """The gateway has not caught up with Kafka yet; try again shortly."""

    status = 503
    retriable = True


class RetryLaterError(NotReadyError):
    """Not now: retry after `retry_after` seconds (503 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class LimitsDownError(RetryLaterError):
    """The shared connection limits cannot be checked (Redis down) and the policy is
    fail-closed."""


class OverloadedError(RetryLaterError):
    """Too many streams are waiting to start on this node (the admission queue)."""

    code = "overloaded"


class DrainingError(RetryLaterError):
    """The node is draining before it stops: another node serves the stream."""

    code = "draining"


class RefreshRefusedError(GatewayError):
    """A WebSocket `refresh` the gateway refuses; the stream's deadline stays put.
    Codes: `bad_refresh` (400, no token string), `auth_off` (400), `invalid_token`
    (401: signature, claims, expired), `subject_mismatch` (403), `scope_narrowed` (403:
    the new token does not cover the connection's subscriptions)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
