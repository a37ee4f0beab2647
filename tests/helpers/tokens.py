"""Gateway JWTs for tests, signed with the key the test gateways are given."""

from __future__ import annotations

import time

import jwt

KEY = "integration-test-secret-key-long-enough-for-hs256-signatures"


def token(subject: str, **claims: object) -> str:
    """A valid token for subject (audience, issuer, five minutes), claims added."""
    payload: dict[str, object] = {
        "sub": subject,
        "aud": "tickwire-gateway",
        "iss": "tickwire",
        "exp": int(time.time()) + 300,
    }
    payload.update(claims)
    return jwt.encode(payload, KEY, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    """The Authorization header carrying a token."""
    return {"Authorization": f"Bearer {value}"}
