"""`tickwire-ingest` / `python -m tickwire.ingest`: serve the ingest app."""

from __future__ import annotations

from tickwire.core.gctune import tune_for_throughput
from tickwire.core.logs import configure_logging
from tickwire.core.serve import serve
from tickwire.ingest.app import create_app
from tickwire.ingest.settings import IngestSettings


def main() -> None:
    """Build the settings once from the environment and serve."""
    settings = IngestSettings()
    configure_logging(settings.log_level, "ingest", settings.log_format)
    app = create_app(settings)
    tune_for_throughput()  # the batch path allocates thousands of objects per request
    serve(app, settings)


if __name__ == "__main__":
    main()
