"""Field-level deltas of quotes (`delta=1`): only what changed since the state the
client was last sent for that symbol.

A delta event's data is one JSON object:

    {"symbol": "AAPL", "version": 42, "base": 41, "set": {"last": 101.5, "bid": null,
     "session.change": 1.25}}

- `base` is the version of the state the delta applies to: the one this connection
  was last sent for the symbol (a `snapshot`, a `quote` or a previous `delta`);
- `set` maps a field path to its new JSON value: a top-level field of the state, or
  `parent.child` for a field of a nested object (`session`, `status`) present before
  and after (an object that appears, disappears or changes shape is sent whole under
  its own name); `null` means the field is absent from the full state now (a full
  state omits absent and default fields, so the decoder deletes the key);
- `version` replaces the state's version. Fields not named keep their value.

The hub computes, once per accepted quote, the delta against the previous quote of the
symbol it fanned out (`Update.delta_frame`), shared by every connection that was last
sent that previous version — the common case. A connection that was last sent
something else (it was conflated, rate-limited, just resumed) gets a delta computed
against what it was sent, from both states' flattened fields (decoded once per state,
cached on the state), a dict compare. No state known for the symbol: a full frame.
"""

from __future__ import annotations

from typing import Any

import orjson

#: Nested objects of a state compared field by field (others are leaves).
NESTED = frozenset({"session", "status"})
#: Sent as the delta's own keys, never in `set`.
_META = frozenset({"symbol", "version"})

Flat = dict[str, bytes]


def flatten(value: bytes) -> Flat:
    """A state's fields as path -> encoded JSON value (nested objects one level down)."""
    state: dict[str, Any] = orjson.loads(value)
    flat: Flat = {}
    dumps = orjson.dumps
    for name, field in state.items():
        if name in _META:
            continue
        if name in NESTED and isinstance(field, dict):
            flat[name] = b"{"  # marks "an object is here": its children follow
            for child, inner in field.items():
                flat[f"{name}.{child}"] = dumps(inner)
        else:
            flat[name] = dumps(field)
    return flat


def changes(old: Flat, new: Flat) -> list[bytes]:
    """The `"path":value` pieces turning old into new (see the module docstring)."""
    out: list[bytes] = []
    whole: set[str] = set()
    for path, encoded in new.items():
        if encoded == b"{":
            if old.get(path) != b"{":  # an object appears where none was: send it whole
                whole.add(path)
            continue
        parent = path.partition(".")[0] if "." in path else ""
        if parent in whole:
            continue
        if old.get(path) != encoded:
            out.append(b'"' + path.encode() + b'":' + encoded)
    for path in whole:
        out.append(b'"' + path.encode() + b'":' + _rebuild(new, path))
    for path in old:
        if path in new:
            continue
        parent = path.partition(".")[0] if "." in path else ""
        if parent and (parent in whole or new.get(parent) != b"{"):
            continue  # covered by its object, sent whole, replaced or removed
        out.append(b'"' + path.encode() + b'":null')
    return out


def _rebuild(flat: Flat, parent: str) -> bytes:
    prefix = parent + "."
    inner = [
        b'"' + path[len(prefix) :].encode() + b'":' + encoded
        for path, encoded in flat.items()
        if path.startswith(prefix)
    ]
    return b"{" + b",".join(inner) + b"}"


def encode(symbol: str, version: int, base: int, pieces: list[bytes]) -> bytes:
    """The data of a delta event."""
    return b'{"symbol":%b,"version":%d,"base":%d,"set":{%b}}' % (
        orjson.dumps(symbol),
        version,
        base,
        b",".join(pieces),
    )


class Sent:
    """A state as last sent to a connection (a snapshot or replayed frame): its version
    and value, flattened on first need."""

    __slots__ = ("_flat", "value", "version")

    def __init__(self, version: int, value: bytes) -> None:
        self.version = version
        self.value = value
        self._flat: Flat | None = None

    @property
    def flat(self) -> Flat:
        """The flattened fields (decoded once)."""
        if self._flat is None:
            self._flat = flatten(self.value)
        return self._flat
