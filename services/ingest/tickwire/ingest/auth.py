"""API keys, their scopes and their rate limits.

A producer sends its key as `X-API-Key: <key>` (or `Authorization: Bearer <key>`).
Keys are stored only as SHA-256 digests: a key is 256 random bits, so a fast digest is
as safe as a slow password hash and costs a microsecond per request. The keys document
(JSON, from `TICKWIRE_INGEST_KEYS_FILE` or inline in `TICKWIRE_INGEST_KEYS`):

    {"keys": [
      {"key_id": "feed-a",
       "sha256": "<hex digest of the key>",
       "scopes": {"types": ["trade", "quote"], "symbols": ["AAPL", "BTC-*"]},
       "rate": 50000, "burst": 100000}
    ]}

An entry with `"revoked": true` is refused like an unknown key (401, the same answer:
nothing tells a caller which keys once existed).

`symbols` are shell-style globs matched against the whole symbol (case-sensitive);
`rate` is events per second (0 = unlimited) and `burst` the bucket's size (defaults to
max(rate, the largest batch)). With `TICKWIRE_REDIS_URL` set, a key's bucket is shared
by every ingest replica (tickwire.redis.ratelimit; the bucket here is the fallback).
`python -m tickwire.ingest.keys new` prints a new key
and its entry. Keys are never logged; only `key_id` is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tickwire.events.kinds import BY_NAME
from tickwire.ingest.settings import IngestSettings
from tickwire.redis.ratelimit import TokenBucket

__all__ = ["ANONYMOUS", "Authenticator", "Principal", "TokenBucket", "digest"]

log = logging.getLogger(__name__)

#: scope name ("trade") -> CloudEvents type, for every registered event kind
TYPE_NAMES = {name: kind.type for name, kind in BY_NAME.items()}
KindName: Any = Literal[tuple(TYPE_NAMES)]
ANONYMOUS = "anonymous"


class Scopes(BaseModel):
    """What a key may publish."""

    model_config = ConfigDict(extra="forbid")

    types: list[KindName] = list(TYPE_NAMES)
    symbols: list[str] = ["*"]


class KeyEntry(BaseModel):
    """One producer's key, as stored: never the key itself."""

    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: Scopes = Scopes()
    rate: float = Field(0.0, ge=0)
    burst: float | None = Field(None, gt=0)
    revoked: bool = False  # kept for the record; refused like an unknown key


class KeysDocument(BaseModel):
    """The keys file."""

    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry]


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


class Principal:
    """An authenticated producer: its id, what it may publish, its rate limit."""

    __slots__ = ("_allowed", "bucket", "key_id", "symbol_patterns", "types")

    def __init__(
        self, key_id: str, types_: frozenset[str], symbols: list[str], bucket: TokenBucket
    ) -> None:
        self.key_id = key_id
        self.types = types_
        self.symbol_patterns = symbols
        self.bucket = bucket
        self._allowed: dict[str, bool] = {}

    def may_publish(self, event_type: str, symbol: str) -> bool:
        """Whether the key's scopes cover this event type and symbol."""
        if event_type not in self.types:
            return False
        allowed = self._allowed.get(symbol)
        if allowed is None:
            allowed = any(fnmatch.fnmatchcase(symbol, p) for p in self.symbol_patterns)
            if len(self._allowed) > 100_000:
                self._allowed.clear()  # bounded: symbols are few, this is a safety net
            self._allowed[symbol] = allowed
        return allowed


class Authenticator:
    """Finds the principal for a request's key; with auth off, everyone is anonymous."""

    def __init__(self, settings: IngestSettings) -> None:
        self.enabled = settings.ingest_auth == "on"
        self._by_digest: dict[str, Principal] = {}
        default_burst = float(settings.ingest_max_batch_events)
        if not self.enabled:
            log.warning(
                "AUTHENTICATION IS OFF (TICKWIRE_INGEST_AUTH=off): anyone who can reach "
                "this port may publish any event. For local demos only."
            )
            rate = settings.ingest_anonymous_rate
            self.anonymous = Principal(
                ANONYMOUS,
                frozenset(TYPE_NAMES.values()),
                ["*"],
                TokenBucket(rate, max(rate, default_burst)),
            )
            return
        document = load_keys(settings)
        for entry in document.keys:
            if entry.revoked:
                continue
            self._by_digest[entry.sha256] = Principal(
                entry.key_id,
                frozenset(TYPE_NAMES[t] for t in entry.scopes.types),
                entry.scopes.symbols,
                TokenBucket(entry.rate, entry.burst or max(entry.rate, default_burst)),
            )
        revoked = sum(1 for e in document.keys if e.revoked)
        log.info("loaded %d API keys (%d revoked)", len(self._by_digest), revoked)

    def principal(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal for these request headers, or None when the key is missing or
        unknown."""
        if not self.enabled:
            return self.anonymous
        key = headers.get("x-api-key")
        if key is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            key = token.strip()
        return self._by_digest.get(digest(key))


def load_keys(settings: IngestSettings) -> KeysDocument:
    """The keys document from the file or the inline setting (file wins)."""
    if settings.ingest_keys_file is not None:
        return KeysDocument.model_validate_json(settings.ingest_keys_file.read_bytes())
    if settings.ingest_keys:
        return KeysDocument.model_validate_json(settings.ingest_keys)
    raise ValueError(
        "TICKWIRE_INGEST_AUTH=on needs TICKWIRE_INGEST_KEYS_FILE or TICKWIRE_INGEST_KEYS "
        "(or TICKWIRE_INGEST_AUTH=off for a local demo)"
    )
