"""Connection limits per client IP and per subject (429 beyond them), held across every
gateway replica through Redis when `TICKWIRE_REDIS_URL` is set.

The counting, the leases that make a crashed replica's connections stop counting, and
the fallback (fail-open: these caps on this replica's own streams; fail-closed: 503 with
Retry-After) are tickwire.redis.connections'; this module maps them to the gateway's
errors. Without Redis the same caps hold per replica.
"""

from __future__ import annotations

from tickwire.gateway.errors import LimitsDownError, TooManyConnectionsError
from tickwire.redis.connections import Scope, SharedConnectionCounter
from tickwire.redis.errors import LimitsUnavailableError
from tickwire.redis.link import RedisLink

_MESSAGES = {
    "ip": "too many streams from this address",
    "subject": "too many streams for this subject",
}


class ConnectionLimits:
    """Counts open streams; `acquire` refuses beyond the limits, `release` frees."""

    def __init__(self, per_ip: int, per_subject: int, link: RedisLink) -> None:
        self.per_ip = per_ip
        self.per_subject = per_subject
        self.counter = SharedConnectionCounter(link, {"ip": per_ip, "subject": per_subject})

    @staticmethod
    def _scopes(ip: str, subject: str | None) -> list[Scope]:
        return [("ip", ip)] if subject is None else [("ip", ip), ("subject", subject)]

    async def acquire(self, ip: str, subject: str | None) -> None:
        """Count one more stream, or raise TooManyConnectionsError (429), or
        LimitsDownError (503) when Redis is down and the policy is fail-closed."""
        try:
            refused = await self.counter.acquire(self._scopes(ip, subject))
        except LimitsUnavailableError as exc:
            raise LimitsDownError(exc.message, exc.retry_after) from None
        if refused is not None:
            raise TooManyConnectionsError(_MESSAGES[refused])

    async def release(self, ip: str, subject: str | None) -> None:
        """Count one stream fewer."""
        await self.counter.release(self._scopes(ip, subject))

    def open_streams(self) -> dict[Scope, int]:
        """This replica's open streams per scope."""
        return dict(self.counter.local)
