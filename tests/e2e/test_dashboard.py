"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): updates
posted to Kafka appear on the page; the 1m chart fills with bars from history on a
store holding a day of data; after the server drops the connection the page
reconnects, resumes from its cursor, and shows the later updates, none lost."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.helpers import gateway as g
from tests.helpers.dashboard import assert_deltas_match_full_state
from tests.helpers.gateway_process import GatewayProcess, gateway_env
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tickwire.events.wire import Bar
from tickwire.mongo import documents

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "run `make browser` to install Debian's chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def cell(page: Page, symbol: str, name: str) -> str:
    return await page.locator(f"#row-{symbol} td.{name}").inner_text()


async def wait_text(page: Page, symbol: str, name: str, text: str) -> None:
    await page.wait_for_function(
        "([s, n, t]) => { const c = document.querySelector(`#row-${s} td.${n}`);"
        " return c && c.textContent === t; }",
        arg=[symbol, name, text],
        timeout=30_000,
    )


async def load_day(mongo: Any, symbols: list[str]) -> list[dt.datetime]:
    """A day of 1m bars and an hour of 1s bars per symbol, stored as the processor stores
    them (buckets, by the documents codec), the last 1m bar starting a minute after
    BASE_TIME; returns the 1m bars' starts, oldest first."""
    minute, second = dt.timedelta(minutes=1), dt.timedelta(seconds=1)
    end = g.BASE_TIME + 2 * minute
    starts = [end - (1440 - n) * minute for n in range(1440)]
    seconds = [end - (3600 - n) * second for n in range(3600)]
    for symbol in symbols:
        bars = [_bar(symbol, "1m", start, minute) for start in starts]
        bars += [_bar(symbol, "1s", start, second) for start in seconds]
        await mongo.bars.insert_many(documents.bucket_documents(bars))
    return starts


def _bar(symbol: str, interval: str, start: dt.datetime, step: dt.timedelta) -> Bar:
    return Bar(
        symbol=symbol, interval=interval, start=start, end=start + step, open=100, high=101,
        low=99, close=100.5, volume=10, vwap=100, trades=2, final=True, version=5,
    )  # fmt: skip


async def chart_shows(page: Page, count: int, first: dt.datetime, last: dt.datetime) -> None:
    """Wait until the chart draws `count` bars from `first` to `last` (bar starts)."""
    iso = [t.isoformat().replace("+00:00", "Z") for t in (first, last)]
    await page.wait_for_function(
        "([n, a, b]) => { const c = document.querySelector('#chart').dataset;"
        " return c.bars === n && c.first === a && c.last === b; }",
        arg=[str(count), *iso],
        timeout=30_000,
    )


def price(version: int) -> str:
    return f"{g.ticker_state('X', version).last:.2f}"


async def test_dashboard_shows_updates_and_resumes_after_a_dropped_connection(
    browser: Browser,
    kafka_bootstrap: str,
    mongodb_url: str,
    db_name: str,
    topics: Topics,
    mongo: Any,
    tmp_path: Path,
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(
        kafka_bootstrap, topics.updates, [g.update_record("AAPL", 1), g.update_record("MSFT", 1)]
    )
    # a store holding a day of history: 1m bars for a day and 1s bars for the last hour,
    # for the page's symbols and 50 others, ending before the live bar below
    history = await load_day(mongo, ["AAPL", "MSFT", *(f"H{i:03d}" for i in range(50))])
    gateway = GatewayProcess(
        {
            **gateway_env(kafka_bootstrap, mongodb_url, db_name, topics),
            "TICKWIRE_GATEWAY_RETRY_MS": "500",
        },
        g.free_port(),
        tmp_path / "gateway.log",
    )
    await gateway.start()
    page = await browser.new_page()
    try:
        await page.goto(gateway.url + "/?symbols=AAPL,MSFT")
        await wait_text(page, "AAPL", "last", price(1))
        await wait_text(page, "MSFT", "last", price(1))
        await page.wait_for_function(
            "document.querySelector('#connection').dataset.state === 'live'"
        )
        # the 1m chart: its 120 bars from history, then a live bar after them
        await chart_shows(page, 120, history[-120], history[-1])
        await produce(kafka_bootstrap, topics.bars, [g.bar_record("AAPL", 2, 5)])
        await chart_shows(page, 120, history[-119], g.BASE_TIME + dt.timedelta(minutes=5))

        await produce(kafka_bootstrap, topics.updates, [g.update_record("AAPL", 2)])
        await wait_text(page, "AAPL", "last", price(2))

        gateway.kill()  # every connection drops at once
        await page.wait_for_function(
            "document.querySelector('#connection').dataset.state !== 'live'"
        )
        await produce(
            kafka_bootstrap,
            topics.updates,
            [g.update_record("AAPL", v) for v in (3, 4)] + [g.update_record("MSFT", 2)],
        )
        await gateway.start()
        await wait_text(page, "AAPL", "last", price(4))
        await wait_text(page, "MSFT", "last", price(2))
        await produce(kafka_bootstrap, topics.updates, [g.update_record("MSFT", 3)])
        await wait_text(page, "MSFT", "last", price(3))

        assert int(await page.locator("#reconnects").inner_text()) >= 1
        applied = await page.evaluate("window.tickwire.log")
        assert [v for s, v in applied if s == "AAPL"] == [1, 2, 3, 4]  # none lost, none twice
        assert [v for s, v in applied if s == "MSFT"] == [1, 2, 3]
        assert await cell(page, "AAPL", "bid") == f"{g.ticker_state('X', 4).bid:.2f}"
        # the page streams deltas (AAPL 2 and 4, MSFT 3 came as `delta` events after a
        # full frame each) and holds exactly the full states
        assert (await page.evaluate("window.tickwire.deltas"))["applied"] >= 3
        await assert_deltas_match_full_state(page, ["AAPL", "MSFT"])
    finally:
        await page.close()
        gateway.kill()
