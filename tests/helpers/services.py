"""Run tickwire services as real child processes for end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.infra import Topics
from tickwire.devstack import procs
from tickwire.devstack.run import ServiceSpec, start_service, wait_ready


def service_env(
    kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> dict[str, str]:
    """Environment that points every service at this test's topics and database."""
    env = {
        **os.environ,
        "TICKWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TICKWIRE_MONGODB_URL": mongodb_url,
        "TICKWIRE_MONGODB_DB": db_name,
        "TICKWIRE_LOG_LEVEL": "WARNING",
    }
    env.update({f"TICKWIRE_{k.upper()}": v for k, v in topics.settings_env().items()})
    return env


@contextmanager
def running(
    specs: list[ServiceSpec], env: dict[str, str], run_dir: Path
) -> Iterator[dict[str, str]]:
    """Start the services, wait until each is ready, yield name -> base URL, stop them."""
    pid_files: list[Path] = []
    try:
        for spec in specs:
            pid_files.append(start_service(spec, env, run_dir))
        for spec, pid_file in zip(specs, pid_files, strict=True):
            wait_ready(spec, pid_file, run_dir / f"{spec.name}.log")
        yield {spec.name: f"http://127.0.0.1:{spec.port}" for spec in specs}
    finally:
        for pid_file in pid_files:
            procs.stop(pid_file)


def pipeline_specs() -> list[ServiceSpec]:
    """ingest (auth off), processor and gateway (anonymous) on free ports."""
    return [
        ServiceSpec("ingest", procs.free_port(), {"TICKWIRE_INGEST_AUTH": "off"}),
        ServiceSpec("processor", procs.free_port(), {}),
        ServiceSpec("gateway", procs.free_port(), {"TICKWIRE_GATEWAY_AUTH": "off"}),
    ]
