"""The processor's errors, under tickwire's root tree (tickwire.core.errors):

TickwireError
├── RetriableError
│   └── StoreUnavailableError    MongoDB did not take a batch's writes; retry
└── PermanentError
    ├── ConfigurationError       a setting is unusable (e.g. a bad bar interval)
    └── PoisonMessageError       (core) a ticks.raw record that cannot be processed
"""

from __future__ import annotations

from tickwire.core.errors import PermanentError, RetriableError


class StoreUnavailableError(RetriableError):
    """MongoDB failed or timed out while writing or reading state."""


class ConfigurationError(PermanentError):
    """A processor setting cannot be used as given."""
