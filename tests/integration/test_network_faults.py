"""Network faults between the services and Kafka (issue 11, scenario 5), short: the
fault report's `network` scenario (bench/faults.py) on a private proxied stack
(`tickwire-stack up --proxied`: the broker advertises Toxiproxy's address, so every
service reaches Kafka only through it), with a short tape and short steps.

While a producer posts a known tape (retrying a batch with the same ids until 202),
every connection to Kafka gets 200 ms ± 50 ms latency each way, then a 16 KB/s
bandwidth limit, then resets 500 ms after opening, then a timeout (no data passes), then
nothing. The scenario ends on a marker, not a clock: every client holds each symbol's
final version (the acknowledged count), and MongoDB caught up; its deadline is only a
failure guard. Then, exactly:

- the acknowledged ids are the ids in `ticks.raw`, and an id is there more than once
  only when the producer posted it again after a non-202 (Kafka's retries add none);
- MongoDB equals the reference (trades = acknowledged ids, volume = their sizes);
- `ticker.updates` ends each symbol at its reference version, never going backwards;
- every SSE client, one of which leaves and resumes with its cursor on the other
  gateway twice per step, was never sent a `reset` (a retriable Kafka error during a
  resume is retried, not answered with fresh snapshots) and received each symbol's
  versions strictly increasing (no duplicate, none out of order) up to the final one
  (versions in between may be skipped: the processor publishes one update per symbol
  per batch, the gateway's outbox conflates, both by design);
- ingest answered nothing but 202 and 503 with Retry-After;
- the broker advertises only the proxy's address, so no client could bypass the faults.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import Tape, run_scenario

SHORT = Tape(symbols=("N1", "N2", "N3", "N4"), events=400, rate=200.0, phase_s=2.0)


@pytest.mark.timeout(300)  # a failure guard: a private stack and five services start first
async def test_network_faults_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    r = await run_scenario("network", tmp_path, SHORT)
    must_be = {
        "lost_from_log": 0,
        "in_log_not_acknowledged": 0,
        "log_copies_beyond_posts": 0,
        "lost_from_store": 0,
        "duplicated_in_store": 0,
        "store_volume_equal_to_reference": True,
        "updates_final_version_wrong": 0,
        "backwards": 0,
        "sse_repeated_or_out_of_order": 0,
        "sse_final_version_wrong": 0,
        "sse_resets": 0,  # every cursor resumed: the missed updates, not a snapshot
        "5xx_other": 0,
        "kafka_only_through_proxies": True,  # so every service felt every toxic
    }
    assert {k: r[k] for k in must_be} == must_be, r
    assert r["acknowledged"] >= SHORT.events, r
    assert set(r["responses"]) <= {"202", "503"}, r
    assert r["sse_reconnects"] >= 1, r  # the resuming client did resume with its cursor
