"""ServerTLS: HTTPS settings a service refuses at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.core.errors import ConfigError
from tickwire.core.serve import ServerTLS
from tickwire.core.settings import CommonSettings
from tickwire.devstack import certs

pytestmark = pytest.mark.unit


def test_no_files_is_plain_http() -> None:
    assert ServerTLS.from_settings(CommonSettings()) is None


def test_half_a_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TICKWIRE_TLS_KEYFILE"):
        ServerTLS.from_settings(CommonSettings(tls_certfile=tmp_path / "cert.pem"))


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path: Path) -> None:
    tls = certs.make(tmp_path)
    settings = CommonSettings(tls_certfile=tls.server, tls_keyfile=tls.client_key)
    with pytest.raises(ConfigError, match="cannot be used"):
        ServerTLS.from_settings(settings)


def test_usable_files_and_what_a_renewal_changes(tmp_path: Path) -> None:
    tls = certs.make(tmp_path)
    server = ServerTLS.from_settings(
        CommonSettings(tls_certfile=tls.server, tls_keyfile=tls.server)
    )
    assert server is not None
    before = server.fingerprint()
    certs.renew_server(tls)
    assert server.fingerprint() != before
