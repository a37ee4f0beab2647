"""MongoSecurity: what a service refuses at start, the client options otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.core.errors import ConfigError
from tickwire.core.settings import CommonSettings
from tickwire.mongo.security import MongoSecurity

pytestmark = pytest.mark.unit


def test_no_settings_no_options() -> None:
    assert MongoSecurity.from_settings(CommonSettings()).options() == {}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"username": "u"}, "TICKWIRE_MONGODB_PASSWORD"),
        ({"password": "p"}, "TICKWIRE_MONGODB_USERNAME"),
        ({"username": "u", "password": "p", "auth_mechanism": "PLAIN"}, "TICKWIRE_MONGODB_TLS"),
        ({"ca_file": Path("ca.pem")}, "TICKWIRE_MONGODB_TLS=true"),
    ],
)
def test_unusable_settings_are_refused_naming_what_to_fix(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        MongoSecurity(**fields)  # type: ignore[arg-type]


def test_password_from_a_file_and_tls_options(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-the-file\n")
    settings = CommonSettings(
        mongodb_username="svc",
        mongodb_password="the-variable-loses",
        mongodb_password_file=secret,
        mongodb_auth_mechanism="plain",
        mongodb_tls=True,
        mongodb_tls_ca_file=tmp_path / "ca.pem",
    )
    security = MongoSecurity.from_settings(settings)
    assert security.options() == {
        "username": "svc",
        "password": "from-the-file",
        "authMechanism": "PLAIN",
        "tls": True,
        "tlsCAFile": str(tmp_path / "ca.pem"),
    }
    assert "from-the-file" not in repr(security)


def test_an_unreadable_password_file_is_refused(tmp_path: Path) -> None:
    settings = CommonSettings(mongodb_username="svc", mongodb_password_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match="TICKWIRE_MONGODB_PASSWORD_FILE"):
        MongoSecurity.from_settings(settings)
