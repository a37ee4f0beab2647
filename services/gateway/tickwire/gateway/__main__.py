"""`python -m tickwire.gateway` / `tickwire-gateway`: serve the gateway."""

from __future__ import annotations

import gc

from tickwire.core.logs import configure_logging
from tickwire.core.serve import serve
from tickwire.gateway.app import create_app
from tickwire.gateway.settings import GatewaySettings


def main() -> None:
    """Build the settings once and serve the app until SIGINT/SIGTERM."""
    settings = GatewaySettings()
    configure_logging(settings.log_level, "gateway", settings.log_format)
    # fan-out allocates many short-lived objects per update: collect the young
    # generation less often, so collector pauses are rarer (each stays short)
    gc.set_threshold(20_000, 20, 20)
    app = create_app(settings)
    serve(app, settings, drain=app.state.drain, ws="websockets-sansio")


if __name__ == "__main__":
    main()
