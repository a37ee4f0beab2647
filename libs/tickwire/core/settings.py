"""Settings every service shares; each service subclasses it once, adding its own fields.

All variables carry the `TICKWIRE_` prefix, e.g. `TICKWIRE_KAFKA_BOOTSTRAP`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickwire.core.errors import ConfigError


def read_secret(path: Path, setting: str) -> str:
    """A secret kept in a file (a Kubernetes secret's mount; trailing newline removed),
    or ConfigError naming the setting."""
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None


class CommonSettings(BaseSettings):
    """Connection and topic settings shared by ingest, processor and gateway."""

    model_config = SettingsConfigDict(env_prefix="TICKWIRE_", extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_client_id: str = Field("tickwire", description="client.id prefix for Kafka clients")
    kafka_security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str = Field(
        "SCRAM-SHA-512", description="SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (PLAIN over TLS only)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password")
    kafka_sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password (wins over the variable)"
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM) for the brokers' certificates; default: system's"
    )
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM), mTLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="client certificate's key (PEM)")
    kafka_ssl_key_password_file: Path | None = Field(
        None, description="file holding the client key's password"
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="the broker's certificate must name the host dialled"
    )
    mongodb_url: str = Field("mongodb://127.0.0.1:27017/", description="MongoDB URL")
    mongodb_db: str = Field("tickwire", description="MongoDB database name")
    mongodb_username: str | None = Field(None, description="MongoDB user (or in the URL)")
    mongodb_password: SecretStr | None = Field(None, description="MongoDB password")
    mongodb_password_file: Path | None = Field(
        None, description="file holding the MongoDB password (wins over the variable)"
    )
    mongodb_auth_mechanism: str | None = Field(
        None, description="e.g. SCRAM-SHA-256 (MongoDB) or PLAIN (FerretDB v1, TLS only)"
    )
    mongodb_tls: bool = Field(False, description="connect to MongoDB over TLS")
    mongodb_tls_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) for MongoDB's certificate; default: system's"
    )
    mongodb_tls_certificate_key_file: Path | None = Field(
        None, description="client certificate and key (one PEM file), mutual TLS"
    )

    topic_raw: str = Field("ticks.raw", description="events posted by producers")
    topic_updates: str = Field("ticker.updates", description="per-symbol state updates")
    topic_bars: str = Field("ticker.bars", description="OHLCV bars")
    topic_late: str = Field("ticks.late", description="events later than the bar grace")
    topic_dlq: str = Field("ticks.dlq", description="records that could not be processed")
    topic_partitions: int = Field(6, ge=1, description="partitions for topics created here")
    topic_replication: int = Field(1, ge=1, description="replication factor for new topics")
    topic_retention_ms: int = Field(7 * 24 * 3600 * 1000, description="retention of new topics")

    tls_certfile: Path | None = Field(
        None, description="serve HTTPS: certificate chain (PEM); re-read when it changes"
    )
    tls_keyfile: Path | None = Field(None, description="serve HTTPS: the certificate's key")
    tls_key_password_file: Path | None = Field(None, description="file holding the key's password")
    tls_reload_interval_s: float = Field(
        10.0, gt=0, description="how often the certificate files are checked for a new one"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDRs of TLS-terminating proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed (JSON list); none: those headers are ignored",
    )
    host: str = Field("127.0.0.1", description="HTTP listen address")
    port: int = Field(8000, ge=0, le=65535, description="HTTP listen port")
    log_level: str = Field("INFO", description="Python log level")
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one object per line (service, level, correlation_id)"
    )
    otel_traces_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL; set: export OpenTelemetry spans there"
    )
