"""Connection limits per client IP and per subject (429 beyond them)."""

from __future__ import annotations

from collections import Counter

from tickwire.gateway.errors import TooManyConnectionsError


class ConnectionLimits:
    """Counts open streams; `acquire` refuses beyond the limits, `release` frees."""

    def __init__(self, per_ip: int, per_subject: int) -> None:
        self.per_ip = per_ip
        self.per_subject = per_subject
        self.by_ip: Counter[str] = Counter()
        self.by_subject: Counter[str] = Counter()

    def acquire(self, ip: str, subject: str | None) -> None:
        """Count one more stream, or raise TooManyConnectionsError."""
        if self.by_ip[ip] >= self.per_ip:
            raise TooManyConnectionsError("too many streams from this address")
        if subject is not None and self.by_subject[subject] >= self.per_subject:
            raise TooManyConnectionsError("too many streams for this subject")
        self.by_ip[ip] += 1
        if subject is not None:
            self.by_subject[subject] += 1

    def release(self, ip: str, subject: str | None) -> None:
        """Count one stream fewer."""
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]
        if subject is not None:
            self.by_subject[subject] -= 1
            if self.by_subject[subject] <= 0:
                del self.by_subject[subject]
