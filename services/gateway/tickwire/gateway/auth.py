"""Who may subscribe to what: JWT in an `Authorization: Bearer` header or an HttpOnly
cookie (EventSource cannot set headers; tokens are never read from URLs).

The algorithm and key come from settings, never from the token's header; `exp`, `aud`
and `iss` are required and checked. Claims:
    sub       the subject (connection limits are counted per subject)
    symbols   symbols the subject may subscribe to; "*" means every symbol
    prefixes  symbol prefixes the subject may subscribe to
With auth off (anonymous mode) everyone may subscribe to everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from tickwire.gateway.connection import Interest
from tickwire.gateway.errors import ForbiddenError, UnauthorizedError
from tickwire.gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Principal:
    """An authenticated (or anonymous) client and what it may subscribe to."""

    subject: str | None
    symbols: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    everything: bool = False

    def may_see(self, symbol: str) -> bool:
        """Whether this principal may receive events of symbol."""
        return self.everything or symbol in self.symbols or symbol.startswith(self.prefixes)

    def check(self, interest: Interest) -> None:
        """Raise ForbiddenError unless every part of interest is allowed."""
        if self.everything:
            return
        if interest.everything:
            raise ForbiddenError("not allowed to subscribe to every symbol")
        for prefix in interest.prefixes:
            if not prefix.startswith(self.prefixes):
                raise ForbiddenError(f"not allowed to subscribe to prefix {prefix!r}")
        refused = sorted(s for s in interest.symbols if not self.may_see(s))
        if refused:
            raise ForbiddenError(f"not allowed to subscribe to {', '.join(refused[:10])}")


ANONYMOUS = Principal(subject=None, everything=True)
#: Longest token looked at (a JWT with a few claims is a few hundred characters).
MAX_TOKEN_CHARS = 8192


class Authenticator:
    """Turns request headers into a Principal according to the settings."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.gateway_auth == "jwt"
        self.algorithm = settings.gateway_jwt_algorithm
        self.key = settings.gateway_jwt_key.get_secret_value()
        self.audience = settings.gateway_jwt_audience
        self.issuer = settings.gateway_jwt_issuer
        self.cookie = settings.gateway_jwt_cookie
        if self.enabled and not self.key:
            raise ValueError("TICKWIRE_GATEWAY_JWT_KEY is required when auth is jwt")

    def token_from(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
        """The bearer token from the Authorization header, else from the cookie."""
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return cookies.get(self.cookie) or None

    def authenticate(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Principal:
        """The caller's Principal; UnauthorizedError when a token is needed and not valid."""
        if not self.enabled:
            return ANONYMOUS
        token = self.token_from(headers, cookies)
        if token is None:
            raise UnauthorizedError("a bearer token or session cookie is required")
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        """Check a token's signature and claims."""
        if len(token) > MAX_TOKEN_CHARS:
            raise UnauthorizedError("invalid token: too long")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except (jwt.PyJWTError, RecursionError, ValueError, TypeError) as exc:
            # PyJWT parses the header's JSON before checking the signature; nesting deep
            # enough raises RecursionError there, which is no PyJWTError
            raise UnauthorizedError(f"invalid token: {str(exc)[:200]}") from exc
        symbols = _strings(claims.get("symbols"))
        return Principal(
            subject=str(claims["sub"]),
            symbols=frozenset(symbols) - {"*"},
            prefixes=tuple(_strings(claims.get("prefixes"))),
            everything="*" in symbols,
        )


def _strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []
