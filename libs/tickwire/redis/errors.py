"""Errors of tickwire.redis, grown from tickwire's tree.

    RetriableError (tickwire.core.errors)
    └── RedisUnavailableError      Redis did not answer (down, timeout, refused, not
        │                          configured): the caller applies the fallback policy
        └── LimitsUnavailableError the policy is fail-closed: refuse with 503 and
                                   Retry-After until Redis answers again

redis-py's own exceptions are translated in one place (`link.RedisLink.call`); callers
read these classes, never redis-py's.
"""

from __future__ import annotations

from tickwire.core.errors import RetriableError


class RedisUnavailableError(RetriableError):
    """Redis is not configured, or did not answer in time."""


class LimitsUnavailableError(RedisUnavailableError):
    """A shared limit cannot be checked and the policy is fail-closed."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
