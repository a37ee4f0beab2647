"""Who may subscribe to what: JWT in an `Authorization: Bearer` header or an HttpOnly
cookie (EventSource cannot set headers; tokens are never read from URLs).

The algorithm and key come from settings, never from the token's header; `exp`, `aud`
and `iss` are required and checked; `exp` also ends open streams
(tickwire.gateway.expiry). Claims:
    sub       the subject (connection limits are counted per subject)
    symbols   symbols the subject may subscribe to; "*" means every symbol
    prefixes  symbol prefixes the subject may subscribe to
    delay     optional delayed entitlements: seconds by symbol ("MSFT"), by prefix
              ("BRK*") or for every other symbol ("*"), e.g. {"*": 900, "MSFT": 0}.
              An exact symbol beats a prefix, a longer prefix a shorter one, either
              beats "*"; no rule means real time. Values are 0-86400 seconds.
With auth off (anonymous mode) everyone may subscribe to everything, in real time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from tickwire.core.errors import ConfigError
from tickwire.core.settings import read_secret
from tickwire.gateway.connection import Interest
from tickwire.gateway.errors import BadRequestError, ForbiddenError, UnauthorizedError
from tickwire.gateway.settings import GatewaySettings

#: Longest delay a token may carry (a day), and most rules in one claim.
MAX_DELAY_S = 86_400
MAX_DELAY_RULES = 256


@dataclass(frozen=True)
class Delays:
    """A subject's delayed entitlements (the `delay` claim): seconds per symbol, per
    prefix and by default. Empty: everything in real time."""

    symbols: tuple[tuple[str, float], ...] = ()
    prefixes: tuple[tuple[str, float], ...] = ()  # longest prefix first
    default: float = 0.0

    @classmethod
    def from_claim(cls, claim: object) -> Delays:
        """Parse the claim; ValueError says what is wrong with it."""
        if claim is None:
            return cls()
        if not isinstance(claim, dict) or len(claim) > MAX_DELAY_RULES:
            raise ValueError(f"delay must be an object of at most {MAX_DELAY_RULES} rules")
        symbols: dict[str, float] = {}
        prefixes: dict[str, float] = {}
        default = 0.0
        for key, value in claim.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"delay of {key[:40]!r} must be a number of seconds")
            if not 0 <= value <= MAX_DELAY_S:
                raise ValueError(f"delay of {key[:40]!r} must be 0-{MAX_DELAY_S} seconds")
            if key == "*":
                default = float(value)
            elif key.endswith("*") and 1 < len(key) <= 33 and "*" not in key[:-1]:
                prefixes[key[:-1]] = float(value)
            elif key and len(key) <= 32 and "*" not in key:
                symbols[key] = float(value)
            else:
                raise ValueError(f"delay key {key[:40]!r} is not a symbol, PREFIX* or *")
        ordered = sorted(prefixes.items(), key=lambda kv: -len(kv[0]))
        return cls(tuple(sorted(symbols.items())), tuple(ordered), default)

    def __bool__(self) -> bool:
        return bool(self.default or any(v for _, v in self.symbols + self.prefixes))

    def for_symbol(self, symbol: str) -> float:
        """The delay of one symbol."""
        for key, value in self.symbols:
            if key == symbol:
                return value
        return self._covering(symbol)

    def _covering(self, text: str) -> float:
        for key, value in self.prefixes:
            if text.startswith(key):
                return value
        return self.default

    def for_interest(self, interest: Interest) -> float:
        """The one delay of every symbol a subscription can receive; BadRequestError
        when they differ (one stream has one delay: split it into several)."""
        seen: dict[float, str] = {}
        for symbol in sorted(interest.symbols):
            seen.setdefault(self.for_symbol(symbol), symbol)
        for prefix in interest.prefixes:
            seen.setdefault(self._covering(prefix), f"{prefix}*")
            for key, value in self.symbols + self.prefixes:
                if key.startswith(prefix):
                    seen.setdefault(value, key)
        if interest.everything:
            seen.setdefault(self.default, "*")
            for key, value in self.symbols + self.prefixes:
                seen.setdefault(value, key)
        if len(seen) > 1:
            listed = ", ".join(f"{name} {value:g} s" for value, name in sorted(seen.items()))
            raise BadRequestError(
                f"this subscription mixes delayed entitlements ({listed}): subscribe to "
                "symbols of different delays in separate streams"
            )
        return next(iter(seen), 0.0)


@dataclass(frozen=True)
class Principal:
    """An authenticated (or anonymous) client and what it may subscribe to."""

    subject: str | None
    symbols: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    everything: bool = False
    delays: Delays = Delays()
    expires_at: float | None = None  # the token's `exp` (streams end then)

    def delay_of(self, interest: Interest) -> float:
        """Seconds this principal's updates of interest are delayed (0: real time)."""
        return self.delays.for_interest(interest) if self.delays else 0.0

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


#: Algorithms a gateway may be configured with (never "none"); an HMAC key must be at
#: least as long as the hash (RFC 7518, 3.2), an asymmetric one a public key PEM.
ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "EdDSA")


def check_key(algorithm: str, key: str) -> None:
    """Refuse at start what would make tokens forgeable (ConfigError naming the setting)."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"TICKWIRE_GATEWAY_JWT_ALGORITHM={algorithm!r}: use one of {', '.join(ALGORITHMS)}"
        )
    if not key:
        raise ConfigError("TICKWIRE_GATEWAY_JWT_KEY is required when auth is jwt")
    if algorithm.startswith("HS"):
        needed = int(algorithm[2:]) // 8
        if len(key.encode()) < needed:
            raise ConfigError(
                f"TICKWIRE_GATEWAY_JWT_KEY must be at least {needed} bytes for {algorithm}"
            )
        return
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"TICKWIRE_GATEWAY_JWT_KEY is not a usable {algorithm} public key: {exc}"
        ) from None


class Authenticator:
    """Turns request headers into a Principal according to the settings."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.gateway_auth == "jwt"
        self.algorithm = settings.gateway_jwt_algorithm
        self.key = settings.gateway_jwt_key.get_secret_value()
        if settings.gateway_jwt_key_file is not None:
            self.key = read_secret(settings.gateway_jwt_key_file, "TICKWIRE_GATEWAY_JWT_KEY_FILE")
        self.audience = settings.gateway_jwt_audience
        self.issuer = settings.gateway_jwt_issuer
        self.cookie = settings.gateway_jwt_cookie
        if self.enabled:
            check_key(self.algorithm, self.key)

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
        try:
            delays = Delays.from_claim(claims.get("delay"))
        except ValueError as exc:
            raise UnauthorizedError(f"invalid token: {exc}") from exc
        return Principal(
            subject=str(claims["sub"]),
            symbols=frozenset(symbols) - {"*"},
            prefixes=tuple(_strings(claims.get("prefixes"))),
            everything="*" in symbols,
            delays=delays,
            expires_at=float(claims["exp"]),
        )


def _strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []
