"""Errors of the local stack launcher.

StackError              anything that keeps the stack from coming up
├── MissingToolError    Java, Maven or Go is not installed (says what to install)
└── StartupError        a component did not answer in time (names its log)
"""


class StackError(Exception):
    """Root of the launcher's errors; never retriable by itself."""


class MissingToolError(StackError):
    """A required tool is missing or too old."""


class StartupError(StackError):
    """A component was started but did not become ready."""
