"""Certificates for a secure local stack, made at stack start with `cryptography`.

    <stack>/tls/ca.pem          the stack's own CA (clients trust it: TICKWIRE_KAFKA_SSL_CAFILE)
    <stack>/tls/ca-key.pem      its key (0600), to renew the server certificate
    <stack>/tls/server.pem      the brokers' key (PKCS#8) and certificate chain, for Kafka's
                                PEM keystore; names 127.0.0.1 and localhost
    <stack>/tls/client.pem      a client certificate signed by the same CA (mutual TLS)
    <stack>/tls/client-key.pem  its key

Keys are EC P-256, certificates valid for 30 days: a stack is a development tool, and
`down --wipe` removes them. Nothing here is meant for production, where certificates
come from the operator's PKI (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


@dataclass(frozen=True)
class StackCerts:
    """Where a stack's TLS files are."""

    ca: Path
    server: Path
    client_cert: Path
    client_key: Path

    @property
    def ca_key(self) -> Path:
        return self.ca.with_name("ca-key.pem")


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tickwire local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,  # Kafka's PEM keystore reads PKCS#8 only
        serialization.NoEncryption(),
    )


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
    )
    if usage is None:  # the CA itself
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            True,
        )  # fmt: skip
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                False,
            )
    return builder.sign(ca_key, hashes.SHA256())


def make(directory: Path) -> StackCerts:
    """Write a CA, a server and a client certificate into directory (made if missing);
    files already there are kept, so a restarted stack keeps its identity."""
    certs = StackCerts(
        ca=directory / "ca.pem",
        server=directory / "server.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    if all(p.exists() for p in (certs.ca, certs.server, certs.client_cert, certs.client_key)):
        return certs
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("tickwire local CA")
    ca = _issue("tickwire local CA", ca_key, ca_name, ca_key, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("127.0.0.1", server_key, ca_name, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("tickwire", client_key, ca_name, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    certs.ca.write_bytes(ca.public_bytes(pem))
    certs.ca_key.write_bytes(_pem_key(ca_key))
    certs.server.write_bytes(_pem_key(server_key) + server.public_bytes(pem) + ca.public_bytes(pem))
    certs.client_cert.write_bytes(client.public_bytes(pem))
    certs.client_key.write_bytes(_pem_key(client_key))
    for key_file in (certs.server, certs.client_key, certs.ca_key):
        key_file.chmod(0o600)
    return certs


def renew_server(certs: StackCerts) -> x509.Certificate:
    """Issue a new server certificate (new key, new serial) from the stack's CA and
    replace server.pem with it in one rename; the new certificate."""
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue("127.0.0.1", key, ca.subject, ca_key, ExtendedKeyUsageOID.SERVER_AUTH)
    pem = serialization.Encoding.PEM
    staged = certs.server.with_suffix(".new")
    staged.touch(0o600)
    staged.write_bytes(_pem_key(key) + cert.public_bytes(pem) + ca.public_bytes(pem))
    staged.replace(certs.server)
    return cert
