"""How tickwire's Kafka clients authenticate and encrypt: one value every client takes.

    protocol        PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL (Kafka's names)
    sasl_mechanism  SCRAM-SHA-512 | SCRAM-SHA-256 | PLAIN
    username, password              SASL credentials
    cafile          the CA bundle the broker's certificate is checked against (PEM);
                    none = the system's trust store
    certfile, keyfile, key_password a client certificate (mutual TLS), optional
    check_hostname  whether the broker's certificate must name the host dialled

`KafkaSecurity.from_settings` reads it from the `TICKWIRE_KAFKA_*` settings every
service shares (secrets also from files: `..._PASSWORD_FILE`, for Kubernetes secrets);
`options()` is the keyword arguments of aiokafka's producer, consumer and admin client.

Refused at start, with a message naming the setting: an unknown protocol or mechanism,
SASL without a username or password, PLAIN without TLS (PLAIN sends the password as
it is), and TLS files that cannot be read. The password never appears in `repr`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiokafka.helpers import create_ssl_context

from tickwire.core.errors import ConfigError
from tickwire.core.settings import read_secret

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class KafkaSecuritySettings(Protocol):
    """The fields of `CommonSettings` this module reads."""

    kafka_security_protocol: str
    kafka_sasl_mechanism: str
    kafka_sasl_username: str | None
    kafka_sasl_password: Any  # SecretStr | None
    kafka_sasl_password_file: Path | None
    kafka_ssl_cafile: Path | None
    kafka_ssl_certfile: Path | None
    kafka_ssl_keyfile: Path | None
    kafka_ssl_key_password_file: Path | None
    kafka_ssl_check_hostname: bool


@dataclass(frozen=True)
class KafkaSecurity:
    """See the module docstring."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: str | None = field(default=None, repr=False)
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"TICKWIRE_KAFKA_SECURITY_PROTOCOL={self.protocol!r}: use one of "
                + ", ".join(PROTOCOLS)
            )
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise ConfigError(
                    f"TICKWIRE_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r}: use one of "
                    + ", ".join(MECHANISMS)
                )
            if not self.username or not self.password:
                raise ConfigError(
                    f"{self.protocol} needs TICKWIRE_KAFKA_SASL_USERNAME and a password "
                    "(TICKWIRE_KAFKA_SASL_PASSWORD or TICKWIRE_KAFKA_SASL_PASSWORD_FILE)"
                )
            if self.sasl_mechanism == "PLAIN" and not self.tls:
                raise ConfigError(
                    "SASL PLAIN sends the password in clear: use it over TLS "
                    "(TICKWIRE_KAFKA_SECURITY_PROTOCOL=SASL_SSL) or use SCRAM"
                )
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError(
                "a client certificate needs both TICKWIRE_KAFKA_SSL_CERTFILE and "
                "TICKWIRE_KAFKA_SSL_KEYFILE"
            )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @classmethod
    def from_settings(cls, settings: KafkaSecuritySettings) -> KafkaSecurity:
        """The security of a service's settings (secrets read from their files)."""
        password = settings.kafka_sasl_password
        secret = password.get_secret_value() if password is not None else None
        if settings.kafka_sasl_password_file is not None:
            secret = read_secret(
                settings.kafka_sasl_password_file, "TICKWIRE_KAFKA_SASL_PASSWORD_FILE"
            )
        key_password = None
        if settings.kafka_ssl_key_password_file is not None:
            key_password = read_secret(
                settings.kafka_ssl_key_password_file, "TICKWIRE_KAFKA_SSL_KEY_PASSWORD_FILE"
            )
        return cls(
            protocol=settings.kafka_security_protocol.upper(),
            sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
            username=settings.kafka_sasl_username,
            password=secret,
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            key_password=key_password,
            check_hostname=settings.kafka_ssl_check_hostname,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the CA (or the system's), the client certificate if any."""
        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.cafile,
                certfile=self.certfile,
                keyfile=self.keyfile,
                password=self.key_password,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"Kafka TLS files: {exc}") from None
        context.check_hostname = self.check_hostname
        return context

    def options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient."""
        if self.protocol == "PLAINTEXT":
            return {}
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        if self.sasl:
            out["sasl_mechanism"] = self.sasl_mechanism
            out["sasl_plain_username"] = self.username
            out["sasl_plain_password"] = self.password
        return out


PLAINTEXT = KafkaSecurity()
