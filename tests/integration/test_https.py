"""A service serves HTTPS from TICKWIRE_TLS_CERTFILE/KEYFILE and picks up a renewed
certificate without a restart (libs/tickwire/core/serve.py).

The processor (a real process on the test stack) serves with a certificate from a
test CA. A client that trusts the CA gets /healthz; plain HTTP on the port gets no
answer. The certificate is renewed in place (one rename, as a rotated Kubernetes
secret appears): new connections then get the new one from the same process. A broken
renewal (the file half-written) is refused: the service logs it and keeps serving the
last good certificate.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.helpers.infra import Topics
from tests.helpers.services import service_env
from tickwire.devstack import certs, procs
from tickwire.devstack.run import ServiceSpec, start_service

pytestmark = pytest.mark.integration


def served_serial(port: int) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


async def until(check: object, what: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s  # a failure guard, not a measurement
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_https_with_a_certificate_renewed_in_place(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics, tmp_path: Path
) -> None:
    tls = certs.make(tmp_path / "tls")
    first = x509.load_pem_x509_certificate(tls.server.read_bytes()).serial_number
    port = procs.free_port()
    spec = ServiceSpec(
        "processor",
        port,
        {
            "TICKWIRE_TLS_CERTFILE": str(tls.server),
            "TICKWIRE_TLS_KEYFILE": str(tls.server),
            "TICKWIRE_TLS_RELOAD_INTERVAL_S": "0.2",
        },
    )
    env = service_env(kafka_bootstrap, mongodb_url, db_name, topics)
    env["TICKWIRE_LOG_LEVEL"] = "INFO"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pid_file = start_service(spec, env, run_dir)
    log = run_dir / "processor.log"
    pid = procs.read_pid(pid_file)
    try:
        trust = ssl.create_default_context(cafile=tls.ca)
        async with httpx.AsyncClient(verify=trust) as client:

            def healthy() -> bool:
                assert procs.alive(pid), log.read_text()
                try:
                    return httpx.get(
                        f"https://127.0.0.1:{port}/healthz", verify=trust, timeout=2
                    ).is_success
                except httpx.HTTPError:
                    return False

            await until(healthy, "the processor to answer over HTTPS")
            assert served_serial(port) == first
            resp = await client.get(f"https://127.0.0.1:{port}/healthz")
            assert resp.status_code == 200

            with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the port
                await httpx.AsyncClient().get(f"http://127.0.0.1:{port}/healthz", timeout=5)

            renewed = certs.renew_server(tls).serial_number
            assert renewed != first
            await until(lambda: served_serial(port) == renewed, "the renewed certificate")
            assert procs.read_pid(pid_file) == pid  # the same process: no restart

            tls.server.write_bytes(tls.server.read_bytes()[:100])  # a half-written renewal
            await until(lambda: "could not be loaded" in log.read_text(), "the refusal log")
            assert served_serial(port) == renewed  # the last good certificate stays
            fresh = httpx.AsyncClient(verify=ssl.create_default_context(cafile=tls.ca))
            async with fresh:
                assert (await fresh.get(f"https://127.0.0.1:{port}/healthz")).status_code == 200
    finally:
        procs.stop(pid_file)
