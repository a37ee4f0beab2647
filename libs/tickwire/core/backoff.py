"""Exponential backoff with full jitter and a cap, for retrying unavailable dependencies."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive retries: random in [0, min(cap, base * 2**attempt)].

    Call `next_delay()` after each failure and `reset()` after a success.
    """

    base: float = 0.1
    cap: float = 10.0
    attempt: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """The delay before the next attempt; grows until the cap."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Forget past failures."""
        self.attempt = 0
