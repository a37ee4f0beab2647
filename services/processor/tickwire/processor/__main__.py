"""`python -m tickwire.processor` / `tickwire-processor`: run the processor."""

from __future__ import annotations

from tickwire.core.serve import serve
from tickwire.processor.app import create_app
from tickwire.processor.settings import ProcessorSettings


def main() -> None:
    """Build the settings once from the environment and serve the app."""
    settings = ProcessorSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
