"""Gateway JWTs for tests, signed with the key the test gateways are given, and every
way a token can be wrong (the auth matrix and the fault report's security cases)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import orjson

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


HS = "HS256"


def claims(**extra: Any) -> dict[str, Any]:
    """Valid claims for alice on AAPL; an `extra` of None removes that claim."""
    base: dict[str, Any] = {
        "sub": "alice",
        "aud": "tickwire-gateway",
        "iss": "tickwire",
        "exp": int(time.time()) + 300,
        "symbols": ["AAPL"],
    }
    return {k: v for k, v in {**base, **extra}.items() if v is not None}


def b64(data: bytes) -> str:
    """Unpadded base64url, as in a JWT."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_by_hand(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """A token PyJWT would refuse to make (alg none, a PEM as an HMAC secret)."""
    head = b64(orjson.dumps(header)) + "." + b64(orjson.dumps(payload))
    if header["alg"] == "none":
        return head + "."
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def bad_tokens() -> dict[str, tuple[str | None, int]]:
    """Each bad token for a stream of AAPL and the status it gets; made when called
    (times are now)."""
    now = int(time.time())
    return {
        "no token": (None, 401),
        "garbage": ("not-a-jwt", 401),
        "expired": (jwt.encode(claims(exp=now - 60), KEY, HS), 401),
        "not yet valid": (jwt.encode(claims(nbf=now + 3600), KEY, HS), 401),
        "wrong audience": (jwt.encode(claims(aud="someone-else"), KEY, HS), 401),
        "wrong issuer": (jwt.encode(claims(iss="someone-else"), KEY, HS), 401),
        "no exp": (jwt.encode(claims(exp=None), KEY, HS), 401),
        "no sub": (jwt.encode(claims(sub=None), KEY, HS), 401),
        "alg none": (signed_by_hand({"alg": "none", "typ": "JWT"}, claims(), b""), 401),
        "bad signature": (jwt.encode(claims(), KEY + "-but-not-the-same", HS), 401),
        "symbol not covered": (jwt.encode(claims(symbols=["MSFT"]), KEY, HS), 403),
    }
