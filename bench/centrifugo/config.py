"""Centrifugo's configuration for the fan-out benchmark.

- Transport: unidirectional SSE only (`uni_sse`, GET /connection/uni_sse?cf_connect=...),
  the client's watchlist given as `subs` in its connect request, one channel per symbol
  in the default namespace (channel name = the symbol).
- Auth: `client.insecure` (no token, any channel): a loopback benchmark, like the
  gateway's TICKWIRE_GATEWAY_AUTH=off.
- Feed: Centrifugo's own Kafka consumer reads the SAME ticker.updates records the
  gateway reads, unchanged, in "publication data mode": the record value is published
  as-is, to the channel named by the `ce_subject` header (the symbol), with `tw_version`
  as the publication version. Centrifugo drops out-of-order versions only when a
  channel keeps history, so history is on (10 per channel, 5 min), which also gives it
  a resume buffer comparable to the gateway's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def config(*, port: int, bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    """The configuration document for one benchmark run."""
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "warn"},
        "usage_stats": {"disabled": True},
        "client": {"insecure": True, "allowed_origins": ["*"]},
        "uni_sse": {"enabled": True},
        "health": {"enabled": True},
        "channel": {
            "without_namespace": {"history_size": 10, "history_ttl": "300s"},
        },
        "consumers": [
            {
                "enabled": True,
                "name": "tickwire_updates",
                "type": "kafka",
                "kafka": {
                    "brokers": bootstrap.split(","),
                    "topics": [topic],
                    "consumer_group": group,
                    "publication_data_mode": {
                        "enabled": True,
                        "channels_header": "ce_subject",
                        "version_header": "tw_version",
                    },
                },
            }
        ],
    }


def write(path: Path, **kwargs: Any) -> Path:
    """Write config(**kwargs) as JSON to path and return it."""
    path.write_text(json.dumps(config(**kwargs), indent=2) + "\n")
    return path
