"""Run a service's ASGI app with uvicorn on uvloop and httptools, over HTTP or HTTPS.

HTTPS: `TICKWIRE_TLS_CERTFILE` and `TICKWIRE_TLS_KEYFILE` (and the key's password in
`TICKWIRE_TLS_KEY_PASSWORD_FILE`). The files are checked every
`TICKWIRE_TLS_RELOAD_INTERVAL_S`; when they change (a renewed certificate, a rotated
Kubernetes secret) they are loaded into the live TLS context, so new connections get
the new certificate without a restart and open ones are left alone. A renewal that
cannot be loaded (a key that does not match, half-written files) is logged and the
current certificate stays; the next check tries again.

Behind a TLS-terminating proxy: `TICKWIRE_TRUSTED_PROXIES` lists the proxies whose
`X-Forwarded-For` / `X-Forwarded-Proto` are believed (uvicorn's proxy-headers
middleware). A request from one of them is seen with the client's address (per-IP
limits count clients, not the proxy) and scheme (cookies get `Secure`); from anyone
else those headers are ignored. The default trusts nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from tickwire.core.errors import ConfigError
from tickwire.core.logs import configure_logging
from tickwire.core.settings import CommonSettings, read_secret
from tickwire.observability import gcpause, looplag, tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerTLS:
    """A service's HTTPS certificate and key files."""

    certfile: Path
    keyfile: Path
    password: str | None
    reload_interval_s: float

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ServerTLS | None:
        """None for plain HTTP; ConfigError for half a configuration."""
        if settings.tls_certfile is None and settings.tls_keyfile is None:
            return None
        if settings.tls_certfile is None or settings.tls_keyfile is None:
            raise ConfigError("HTTPS needs both TICKWIRE_TLS_CERTFILE and TICKWIRE_TLS_KEYFILE")
        password = None
        if settings.tls_key_password_file is not None:
            password = read_secret(settings.tls_key_password_file, "TICKWIRE_TLS_KEY_PASSWORD_FILE")
        tls = cls(
            settings.tls_certfile, settings.tls_keyfile, password, settings.tls_reload_interval_s
        )
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                tls.certfile, tls.keyfile, tls.password
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TICKWIRE_TLS_CERTFILE/KEYFILE cannot be used: {exc}") from None
        return tls

    def fingerprint(self) -> tuple[int, ...]:
        """What changes when either file is replaced (mtime and size of both)."""
        out: list[int] = []
        for path in (self.certfile, self.keyfile):
            try:
                st = path.stat()
            except OSError:
                out += [-1, -1]
            else:
                out += [st.st_mtime_ns, st.st_size]
        return tuple(out)

    async def keep_loaded(self, context: ssl.SSLContext) -> None:
        """Load renewed files into the server's TLS context until cancelled."""
        seen = self.fingerprint()
        while True:
            await asyncio.sleep(self.reload_interval_s)
            now = self.fingerprint()
            if now == seen:
                continue
            try:
                context.load_cert_chain(self.certfile, self.keyfile, self.password)
            except (OSError, ssl.SSLError) as exc:
                log.error("a renewed TLS certificate could not be loaded (kept the old): %s", exc)
                continue  # `seen` unchanged: try again next time
            seen = now
            log.info("TLS certificate reloaded from %s", self.certfile)


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM runs `drain` (the app still serving, so it can say
    it is not ready and send its clients elsewhere) and stops the server once it
    returns; a second SIGTERM, or SIGINT, stops it at once as usual."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self.drain = drain
        self.loop: asyncio.AbstractEventLoop | None = None
        self.draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.draining is None and self.loop is not None:
            self.loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        if self.draining is not None:
            return
        log.info("SIGTERM: draining before the server stops")
        self.draining = asyncio.ensure_future(self.drain())

        def stop(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("the drain failed: %r", task.exception())
            self.should_exit = True

        self.draining.add_done_callback(stop)


def serve(
    app: FastAPI,
    settings: CommonSettings,
    drain: Callable[[], Awaitable[None]] | None = None,
    **extra: object,
) -> None:
    """Serve app on settings.host:settings.port until SIGINT/SIGTERM (with `drain`: the
    first SIGTERM runs it before the server stops, see DrainingServer)."""
    service = type(settings).__name__.removesuffix("Settings").lower()
    configure_logging(settings.log_level, service, settings.log_format)
    tracing.configure(service, settings.otel_traces_endpoint)
    tls = ServerTLS.from_settings(settings)
    options: dict[str, object] = {
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or "",
    }
    if tls is not None:
        options |= {
            "ssl_certfile": str(tls.certfile),
            "ssl_keyfile": str(tls.keyfile),
            "ssl_keyfile_password": tls.password,
        }
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's loggers go to the root logger: JSON like the rest
        timeout_graceful_shutdown=10,
        **options,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config) if drain is None else DrainingServer(config, drain)

    async def main() -> None:
        if isinstance(server, DrainingServer):
            server.loop = asyncio.get_running_loop()
        config.load()  # builds the TLS context the server then uses (uvicorn skips a reload)
        reloader = None
        if tls is not None:
            assert config.ssl is not None, "uvicorn made no TLS context from the files"
            reloader = asyncio.create_task(tls.keep_loaded(config.ssl))
        gcpause.install()
        lag = asyncio.create_task(looplag.monitor())
        try:
            await server.serve()
        finally:
            tracing.shutdown()
            for task in (lag, reloader):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())
