"""A delta decoder written from the documented client rule (services/gateway README,
Field-level deltas), sharing no code with the gateway."""

from __future__ import annotations

from typing import Any

import orjson


def decode(held: dict[str, Any], event: str, data: dict[str, Any]) -> None:
    """Apply one event to the states held per symbol: full states replace; a delta
    applies only on its base (asserted: the server never sends another)."""
    symbol = data["symbol"]
    if event in ("snapshot", "quote"):
        held[symbol] = data
        return
    assert event == "delta"
    assert symbol in held, "a delta for a symbol the client holds no state of"
    state = held[symbol]
    assert state["version"] == data["base"], "a delta on a version the client does not hold"
    state = orjson.loads(orjson.dumps(state))
    for path, value in data["set"].items():
        parent, _, child = path.partition(".")
        target, key = (state[parent], child) if child else (state, parent)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    state["version"] = data["version"]
    held[symbol] = state
