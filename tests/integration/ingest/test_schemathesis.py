"""`schemathesis run` against the app's own OpenAPI document with its default checks,
on a live ingest (uvicorn on 127.0.0.1, auth on, real Kafka): no 5xx, no response
outside the schema, valid data accepted, invalid data refused. Sized (examples per
operation) to run in about a minute. The seed is random locally and fixed under CI=true.
Hooks: tests/helpers/ingest_schemathesis.py."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import infra
from tests.helpers.ingest import keys_document, running_ingest, settings_for

ROOT = Path(__file__).resolve().parents[3]
MAX_EXAMPLES = 500  # about 30-60 s on the shared 2-core machine
# Random seeds locally (more inputs over time; a failure prints its seed for `st replay`);
# a fixed one in CI, so that a submission lands or not on its own merits, not on a draw.
_SEED = ["--seed", "20261128"] if os.environ.get("CI") else []


@pytest.mark.timeout(600)  # a failure guard on a loaded machine, not a measurement
async def test_schemathesis_finds_nothing(kafka_bootstrap: str, topics: infra.Topics) -> None:
    document, keys = keys_document([{"key_id": "schemathesis"}])
    settings = settings_for(
        kafka_bootstrap,
        topics.raw,
        ingest_auth="on",
        ingest_keys=document,
        ingest_max_batch_events=20,
        ingest_max_body_bytes=64 * 1024,
    )
    async with running_ingest(settings) as url:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.helpers.ingest_schemathesis",
        }
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"X-API-Key: {keys['schemathesis']}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            *_SEED,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text[-6000:]
