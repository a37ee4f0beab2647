"""`tickwire-bridge` / `python -m tickwire.bridge`: serve the bridge app."""

from __future__ import annotations

from tickwire.bridge.app import create_app
from tickwire.bridge.settings import BridgeSettings
from tickwire.core.logs import configure_logging
from tickwire.core.serve import serve


def main() -> None:
    """Build the settings once from the environment and serve."""
    settings = BridgeSettings()
    configure_logging(settings.log_level)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
