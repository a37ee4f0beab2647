"""Checks of the dashboard page's state, shared by the browser tests."""

from __future__ import annotations

from playwright.async_api import Page

#: In the page: each symbol's full state from /v1/quotes beside the state the page holds
#: (built from a full frame and the deltas since). Both are parsed by the page's JSON, so
#: large integers (received_ns) lose the same precision on both sides.
_STATES = """async (symbols) => {
  const answer = await fetch(`/v1/quotes?symbols=${symbols.join(",")}`,
                             { credentials: "same-origin" });
  const full = (await answer.json()).quotes;
  return full.map((q) => [q, window.tickwire.state.get(q.symbol) || null]);
}"""


async def assert_deltas_match_full_state(page: Page, symbols: list[str]) -> None:
    """The page applied delta events, none of them forced a reconnect, and what it holds
    for each symbol equals the gateway's full state."""
    deltas = await page.evaluate("window.tickwire.deltas")
    assert deltas["applied"] >= 1, deltas
    assert deltas["resyncs"] == 0, deltas
    pairs = await page.evaluate(_STATES, symbols)
    assert len(pairs) == len(symbols)
    for full, held in pairs:
        assert held == full
