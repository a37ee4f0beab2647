"""Plain helpers for the Redis tests: links with private key prefixes, metric reads."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from prometheus_client import REGISTRY

from tickwire.redis.link import RedisLink
from tickwire.redis.settings import RedisSettings


def prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


def settings(url: str, key_prefix: str, **extra: Any) -> RedisSettings:
    return RedisSettings(redis_url=url, redis_key_prefix=key_prefix, **extra)


async def link(url: str, key_prefix: str, **extra: Any) -> RedisLink:
    """A connected link (one per simulated replica: its own client and pool)."""
    made = RedisLink.from_settings(settings(url, key_prefix, **extra))
    assert await made.connect()
    return made


def sample(name: str, **labels: str) -> float:
    """A metric's value in this process (0 when never touched)."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def scrape(base_url: str, name: str, **labels: str) -> float:
    """A metric's value on a service's /metrics (0 when absent)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0
