"""KafkaSecurity: the settings a service refuses at start, and the client options it
gives aiokafka otherwise (the rules in tickwire/kafka/security.py's docstring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.core.errors import ConfigError
from tickwire.core.settings import CommonSettings
from tickwire.devstack import certs
from tickwire.kafka.security import KafkaSecurity

pytestmark = pytest.mark.unit


def test_plaintext_is_the_default_and_adds_no_options() -> None:
    security = KafkaSecurity.from_settings(CommonSettings())
    assert security.protocol == "PLAINTEXT"
    assert security.options() == {}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"protocol": "TLS"}, "TICKWIRE_KAFKA_SECURITY_PROTOCOL"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "u", "password": "p"},
         "TICKWIRE_KAFKA_SASL_MECHANISM"),
        ({"protocol": "SASL_SSL", "username": "u"}, "TICKWIRE_KAFKA_SASL_PASSWORD"),
        ({"protocol": "SASL_SSL", "password": "p"}, "TICKWIRE_KAFKA_SASL_USERNAME"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u",
          "password": "p"}, "over TLS"),
        ({"protocol": "SSL", "certfile": Path("c.pem")}, "TICKWIRE_KAFKA_SSL_KEYFILE"),
    ],
)  # fmt: skip
def test_unusable_settings_are_refused_naming_what_to_fix(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        KafkaSecurity(**fields)  # type: ignore[arg-type]


def test_scram_over_plaintext_is_allowed_plain_is_not() -> None:
    scram = KafkaSecurity(protocol="SASL_PLAINTEXT", username="u", password="p")
    assert scram.options()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "ssl_context" not in scram.options()


def test_the_password_is_read_from_its_file_and_kept_out_of_repr(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-from-a-file\n")
    settings = CommonSettings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_username="svc",
        kafka_sasl_password="the-variable-loses",
        kafka_sasl_password_file=secret,
    )
    security = KafkaSecurity.from_settings(settings)
    assert security.protocol == "SASL_SSL"
    assert security.password == "s3cr3t-from-a-file"
    assert "s3cr3t" not in repr(security)
    assert "the-variable-loses" not in repr(settings)


def test_an_unreadable_password_file_is_refused(tmp_path: Path) -> None:
    settings = CommonSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password_file=tmp_path / "missing",
    )
    with pytest.raises(ConfigError, match="TICKWIRE_KAFKA_SASL_PASSWORD_FILE"):
        KafkaSecurity.from_settings(settings)


def test_tls_options_trust_the_given_ca_and_carry_the_client_certificate(
    tmp_path: Path,
) -> None:
    tls = certs.make(tmp_path)
    security = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        username="u",
        password="p",
        cafile=tls.ca,
        certfile=tls.client_cert,
        keyfile=tls.client_key,
    )
    options = security.options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_username"] == "u"
    assert options["sasl_plain_password"] == "p"
    context = options["ssl_context"]
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the given CA only, not the system's


def test_unreadable_tls_files_are_refused(tmp_path: Path) -> None:
    security = KafkaSecurity(protocol="SSL", cafile=tmp_path / "no-such-ca.pem")
    with pytest.raises(ConfigError, match="Kafka TLS files"):
        security.options()
