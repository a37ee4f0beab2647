"""Run a service's ASGI app with uvicorn on uvloop and httptools."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from tickwire.core.logs import configure_logging
from tickwire.core.settings import CommonSettings


def serve(app: FastAPI, settings: CommonSettings, **extra: object) -> None:
    """Serve app on settings.host:settings.port until SIGINT/SIGTERM."""
    configure_logging(settings.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
        **extra,  # type: ignore[arg-type]
    )
