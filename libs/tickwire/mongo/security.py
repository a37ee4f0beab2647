"""How the services authenticate to MongoDB and encrypt the connection.

    username, password      credentials (or in the URL); the password also from a file
    auth_mechanism          None = the driver's negotiation (SCRAM on MongoDB); FerretDB
                            v1 authenticates with PLAIN and hands the credentials to
                            PostgreSQL, which checks them
    tls                     encrypt; ca_file is the CA the server's certificate is
                            checked against (none = the system's trust store)
    certificate_key_file    a client certificate and its key in one PEM (mutual TLS)

Refused at start, naming the setting: a password without a username (or the other way
round), PLAIN without TLS (PLAIN sends the password as it is), TLS files given without
TLS. The password never appears in `repr`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tickwire.core.errors import ConfigError
from tickwire.core.settings import read_secret


class MongoSecuritySettings(Protocol):
    """The fields of `CommonSettings` this module reads."""

    mongodb_username: str | None
    mongodb_password: Any  # SecretStr | None
    mongodb_password_file: Path | None
    mongodb_auth_mechanism: str | None
    mongodb_tls: bool
    mongodb_tls_ca_file: Path | None
    mongodb_tls_certificate_key_file: Path | None


@dataclass(frozen=True)
class MongoSecurity:
    """See the module docstring."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_mechanism: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    certificate_key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ConfigError(
                "MongoDB credentials need both TICKWIRE_MONGODB_USERNAME and a password "
                "(TICKWIRE_MONGODB_PASSWORD or TICKWIRE_MONGODB_PASSWORD_FILE)"
            )
        if self.auth_mechanism == "PLAIN" and not self.tls:
            raise ConfigError(
                "TICKWIRE_MONGODB_AUTH_MECHANISM=PLAIN sends the password in clear: "
                "set TICKWIRE_MONGODB_TLS=true"
            )
        if not self.tls and (self.ca_file or self.certificate_key_file):
            raise ConfigError(
                "TICKWIRE_MONGODB_TLS_CA_FILE and TICKWIRE_MONGODB_TLS_CERTIFICATE_KEY_FILE "
                "need TICKWIRE_MONGODB_TLS=true"
            )

    @classmethod
    def from_settings(cls, settings: MongoSecuritySettings) -> MongoSecurity:
        """The security of a service's settings (the password read from its file)."""
        password = settings.mongodb_password
        secret = password.get_secret_value() if password is not None else None
        if settings.mongodb_password_file is not None:
            secret = read_secret(settings.mongodb_password_file, "TICKWIRE_MONGODB_PASSWORD_FILE")
        mechanism = settings.mongodb_auth_mechanism
        return cls(
            username=settings.mongodb_username,
            password=secret,
            auth_mechanism=mechanism.upper() if mechanism else None,
            tls=settings.mongodb_tls,
            ca_file=settings.mongodb_tls_ca_file,
            certificate_key_file=settings.mongodb_tls_certificate_key_file,
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for (Async)MongoClient."""
        out: dict[str, Any] = {}
        if self.username is not None:
            out["username"] = self.username
            out["password"] = self.password
        if self.auth_mechanism is not None:
            out["authMechanism"] = self.auth_mechanism
        if self.tls:
            out["tls"] = True
            if self.ca_file is not None:
                out["tlsCAFile"] = str(self.ca_file)
            if self.certificate_key_file is not None:
                out["tlsCertificateKeyFile"] = str(self.certificate_key_file)
        return out


NO_AUTH = MongoSecurity()
