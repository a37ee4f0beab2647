"""`python -m tickwire.processor` / `tickwire-processor`: run the processor."""

from __future__ import annotations

from tickwire.core.gctune import tune_for_throughput
from tickwire.core.logs import configure_logging
from tickwire.core.serve import serve
from tickwire.processor.app import create_app
from tickwire.processor.settings import ProcessorSettings


def main() -> None:
    """Build the settings once from the environment and serve the app."""
    settings = ProcessorSettings()
    configure_logging(settings.log_level, "processor", settings.log_format)
    app = create_app(settings)
    # a batch keeps tens of thousands of fetched records alive while it is applied and
    # encoded; with the default thresholds the collector walks them every few hundred
    # allocations (20-35% of aggregate + encode: docs/processor-benchmark.md)
    tune_for_throughput()
    serve(app, settings)


if __name__ == "__main__":
    main()
