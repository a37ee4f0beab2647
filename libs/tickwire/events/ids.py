"""Event ids for events that came without one: ULIDs (sortable by time, unique).

A request's events get consecutive ULIDs: one random ULID from python-ulid, then its
low 30 bits counted up, so ids stay unique and sort in the order the events were
posted, at a fraction of the cost of a fresh ULID per event.
"""

from __future__ import annotations

from ulid import ULID

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32, as ULID uses
_LOW_BITS = 30  # the last 6 characters of a ULID
_LOW_MASK = (1 << _LOW_BITS) - 1
_TRIPLE = [
    _ALPHABET[(i >> 10) & 31] + _ALPHABET[(i >> 5) & 31] + _ALPHABET[i & 31] for i in range(1 << 15)
]


def ulids(count: int) -> list[str]:
    """`count` distinct ULIDs, increasing, all stamped with the current millisecond."""
    first = str(ULID())
    if count == 1:
        return [first]
    prefix = first[:-6]
    low = int.from_bytes(ULID.from_str(first).bytes, "big") & _LOW_MASK
    if low + count > _LOW_MASK:
        # rare: counting up would carry into the prefix; start this run lower instead
        low = _LOW_MASK - count
    out = []
    for n in range(low, low + count):
        out.append(prefix + _TRIPLE[n >> 15] + _TRIPLE[n & 0x7FFF])
    return out
