"""The dashboard's market marks in a real headless Chromium: the session phase and a
trading halt (and its end) from the quote's `session` and `status`, a delayed stream
marked as delayed, and "replay the last N minutes" filling the chart through `since=`."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright
from pydantic import SecretStr

from tests.e2e.test_dashboard import ARGS, CHROMIUM, wait_text
from tests.helpers import gateway as g
from tests.helpers.dashboard import assert_deltas_match_full_state
from tests.helpers.infra import Topics
from tests.helpers.kafka import produce
from tests.helpers.tokens import KEY, token
from tickwire.events import wire


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "run `make browser` to install Debian's chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def session(phase: str) -> wire.SessionInfo:
    return wire.SessionInfo(
        exchange="XNYS", date="2026-11-27", phase=phase, open=100, high=101, low=99,
        prev_close=99.5, change=0.5, change_pct=0.5,
    )  # fmt: skip


def halted(reason: str) -> wire.StatusInfo:
    return wire.StatusInfo(state="halted", reason=reason, since=g.BASE_TIME)


async def signed_in(browser: Browser, url: str, jwt: str) -> Page:
    """A page holding the gateway's session cookie for jwt, on the dashboard."""
    page = await browser.new_page()
    await page.goto(url + "/static/dashboard.css")  # same origin, before the dashboard
    status = await page.evaluate(
        "async (t) => (await fetch('/v1/session', {method: 'POST',"
        " headers: {Authorization: 'Bearer ' + t}})).status",
        jwt,
    )
    assert status == 200
    await page.goto(url + "/?symbols=AAPL,MSFT")
    return page


async def test_dashboard_shows_sessions_halts_delay_and_replays_the_chart(
    browser: Browser, kafka_bootstrap: str, mongodb_url: str, db_name: str, topics: Topics
) -> None:
    await g.create_topics(kafka_bootstrap, [topics.updates, topics.bars], 2)
    await produce(
        kafka_bootstrap,
        topics.updates,
        [
            g.update_record("AAPL", 1, session=session("regular")),
            g.update_record("MSFT", 1, session=session("pre"), status=halted("news pending")),
            g.update_record("AAPL", 2, session=session("regular")),
        ],
    )
    await produce(kafka_bootstrap, topics.bars, [g.bar_record("AAPL", v, v) for v in (1, 2, 3)])
    settings = g.settings_for(
        kafka_bootstrap,
        mongodb_url,
        db_name,
        topics,
        gateway_auth="jwt",
        gateway_jwt_key=SecretStr(KEY),
    )
    async with g.running_gateway(settings) as url:
        live = await signed_in(browser, url, token("now", symbols=["*"]))
        late = await signed_in(browser, url, token("late", symbols=["*"], delay={"*": 2}))
        try:
            for page in (live, late):
                await wait_text(page, "AAPL", "session", "open")
                await wait_text(page, "MSFT", "session", "pre-market")
                await wait_text(page, "MSFT", "status", "HALTED")
                assert "halted" in (await page.locator("#row-MSFT").get_attribute("class") or "")
            # only the delayed page says so: a badge, and a mark on every row
            await late.wait_for_selector("#delayed:not([hidden])")
            assert await late.locator("#delayed").inner_text() == "delayed 2 s"
            assert await late.locator("#tickers tr.delayed").count() == 2
            assert await live.locator("#delayed").is_hidden()
            assert await live.locator("#tickers tr.delayed").count() == 0

            # the halt ends: the mark goes
            await produce(
                kafka_bootstrap,
                topics.updates,
                [g.update_record("MSFT", 2, session=session("regular"))],
            )
            await wait_text(live, "MSFT", "status", "")
            await wait_text(live, "MSFT", "session", "open")
            assert "halted" not in (await live.locator("#row-MSFT").get_attribute("class") or "")
            # MSFT 2 came as a delta (its status removed, its session's phase changed)
            await assert_deltas_match_full_state(live, ["AAPL", "MSFT"])

            # replay the last 15 minutes of AAPL on the chart: the three bars published
            await live.locator("#row-AAPL").click()
            await live.fill("#replay-minutes", "15")
            await live.click("#replay")
            await live.wait_for_function(
                "() => document.querySelector('#replay-status').dataset.state === 'done'",
                timeout=30_000,
            )
            starts = [g.BASE_TIME + dt.timedelta(minutes=m) for m in (1, 3)]
            canvas = live.locator("#chart")
            assert await canvas.get_attribute("data-bars") == "3"
            assert await canvas.get_attribute("data-first") == starts[0].isoformat()[:19] + "Z"
            assert await canvas.get_attribute("data-last") == starts[1].isoformat()[:19] + "Z"
            # AAPL's 2 quotes and 3 bars were published in the last 15 minutes
            assert await live.locator("#replay-status").inner_text() == (
                "replayed 5 updates of the last 15 min"
            )
        finally:
            await live.close()
            await late.close()
