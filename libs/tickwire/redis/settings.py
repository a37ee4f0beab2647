"""`RedisSettings`: the Redis fields a service mixes into its one settings class.

TICKWIRE_REDIS_URL          redis://host:6379/0, or rediss://... for TLS; unset =
                            no Redis (in-process limits, no shared cache)
TICKWIRE_REDIS_FALLBACK     fail-open (default): when Redis is down each replica
                            enforces the limits on its own; fail-closed: refuse
                            with 503 + Retry-After until Redis answers
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Fallback = Literal["fail-open", "fail-closed"]


class RedisSettings(BaseSettings):
    """Where Redis is and what to do when it does not answer."""

    model_config = SettingsConfigDict(env_prefix="TICKWIRE_", extra="ignore")

    redis_url: str | None = Field(
        None, description="redis:// or rediss:// (TLS) URL; unset: no Redis"
    )
    redis_password: SecretStr | None = Field(
        None, description="password (or use the URL's); never logged"
    )
    redis_tls_ca_file: Path | None = Field(
        None, description="CA bundle that signs the server's certificate (rediss://)"
    )
    redis_fallback: Fallback = Field(
        "fail-open",
        description="Redis down: fail-open = in-process limits per replica; "
        "fail-closed = 503 with Retry-After",
    )
    redis_timeout_s: float = Field(
        0.25, gt=0, description="socket connect/read timeout of one Redis call"
    )
    redis_probe_s: float = Field(
        1.0, gt=0, description="how often Redis is pinged (and retried once down)"
    )
    redis_key_prefix: str = Field(
        "tickwire", pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="prefix of every key"
    )
    redis_lease_s: float = Field(
        15.0,
        ge=1,
        description="a replica's connection counts vanish this long after it stops "
        "renewing them (crash); renewed every third of it",
    )
