"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): updates
posted to Kafka appear on the page; after the server drops the connection the page
reconnects, resumes from its cursor, and shows the later updates, none lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.helpers import gateway as g
from tests.helpers.gateway_process import GatewayProcess
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce

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
    await mongo.bars.insert_many(
        [
            {
                "symbol": "AAPL",
                "interval": "1m",
                "start": g.BASE_TIME.replace(minute=m),
                "end": g.BASE_TIME.replace(minute=m + 1),
                "open": 100,
                "high": 101,
                "low": 99,
                "close": 100.5,
                "volume": 10,
                "vwap": 100,
                "trades": 2,
                "final": True,
                "version": 1,
            }
            for m in (0, 1)
        ]
    )
    gateway = GatewayProcess(
        {
            "TICKWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "TICKWIRE_MONGODB_URL": mongodb_url,
            "TICKWIRE_MONGODB_DB": db_name,
            "TICKWIRE_TOPIC_UPDATES": topics.updates,
            "TICKWIRE_TOPIC_BARS": topics.bars,
            "TICKWIRE_GATEWAY_AUTH": "off",
            "TICKWIRE_GATEWAY_RETRY_MS": "500",
            "TICKWIRE_LOG_LEVEL": "WARNING",
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
        # history from /v1/bars plus a live bar for the selected symbol
        await page.wait_for_function("document.querySelector('#chart').dataset.bars === '2'")
        await produce(kafka_bootstrap, topics.bars, [g.bar_record("AAPL", 2, 5)])
        await page.wait_for_function("document.querySelector('#chart').dataset.bars === '3'")

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
    finally:
        await page.close()
        gateway.kill()
