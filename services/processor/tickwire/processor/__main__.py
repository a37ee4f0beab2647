"""`python -m tickwire.processor` / `tickwire-processor`: run the processor."""

from __future__ import annotations

import gc

from tickwire.core.serve import serve
from tickwire.processor.app import create_app
from tickwire.processor.settings import ProcessorSettings


def main() -> None:
    """Build the settings once from the environment and serve the app."""
    settings = ProcessorSettings()
    # a batch holds tens of thousands of fetched records alive while it is processed,
    # and the default gen-0 threshold (700) runs collections over them every few
    # hundred allocations: 20-35% of aggregate + encode (docs/processor-benchmark.md)
    gc.set_threshold(50_000, 20, 10)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
