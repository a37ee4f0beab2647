"""The root of tickwire's errors, shared by every library and service.

    TickwireError                 root; `retriable` says whether trying again may help
    ├── RetriableError            a dependency is unavailable for now (Kafka, MongoDB)
    │   └── BackpressureError     too much in flight; shed load and retry later
    └── PermanentError            the input or the configuration is wrong; do not retry
        ├── ConfigError           a setting cannot be used as given: refuse to start
        └── PoisonMessageError    a Kafka record cannot be parsed or processed

Services extend this tree (e.g. the gateway's cursor errors) rather than start another.
"""

from __future__ import annotations


class TickwireError(Exception):
    """Root of all tickwire errors."""

    retriable: bool = False


class RetriableError(TickwireError):
    """A dependency failed in a way that may pass: back off and try again."""

    retriable = True


class BackpressureError(RetriableError):
    """The component is at its in-flight limit; the caller should retry later."""


class PermanentError(TickwireError):
    """Trying again with the same input will fail the same way."""

    retriable = False


class ConfigError(PermanentError):
    """A setting cannot be used as given; the message names it. Raised at start."""


class PoisonMessageError(PermanentError):
    """A Kafka record that cannot be parsed or processed; it goes to a dead-letter topic."""
