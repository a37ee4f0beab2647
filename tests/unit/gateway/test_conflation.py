"""The per-connection outbox: conflation per key, order by cursor, rate limit, bounds."""

from __future__ import annotations

import pytest

from tickwire.gateway import cursor
from tickwire.gateway.connection import Connection, Interest, Tally
from tickwire.gateway.updates import BAR, QUOTE, Parsed, PartitionBuffer, Update


def update(symbol: str, version: int, seq: int, *, slot: int = 0, interval: str = "") -> Update:
    kind = BAR if interval else QUOTE
    key = f"{symbol}|{interval}" if interval else symbol
    parsed = Parsed(kind, symbol, key, interval, version, 0)
    return Update(parsed, slot, seq, seq, f"c{seq}", f'{{"v":{version}}}'.encode())


async def make(max_rate: float | None = None) -> Connection:
    conn = Connection(ip="127.0.0.1", subject=None, max_rate=max_rate)
    conn.interest = Interest(frozenset({"A", "B"}))
    return conn


def ids(frames: list[bytes]) -> list[str]:
    return [f.split(b"\nid: ")[1].split(b"\n")[0].decode() for f in frames]


async def test_newer_update_replaces_unsent_older_one_and_moves_last() -> None:
    conn = await make()
    for u in [update("A", 1, 1), update("B", 1, 2), update("A", 2, 3)]:
        conn.offer(u)
    frames, waiting = conn.rendered(0, Tally())
    assert ids(frames) == ["c2", "c3"]  # the last id covers everything before it
    assert conn.conflated == 1
    assert not waiting
    assert conn.pending == {}


async def test_backlog_goes_first_and_is_never_conflated() -> None:
    conn = await make()
    conn.backlog = [b"s1", b"s2"]
    conn.offer(update("A", 1, 1))
    tally = Tally()
    frames, _ = conn.rendered(0, tally)
    assert frames[:2] == [b"s1", b"s2"]
    assert tally.events == 1
    assert conn.backlog == []


async def test_pending_is_bounded_by_keys_whatever_arrives() -> None:
    conn = await make()
    for seq in range(10_000):
        conn.offer(update("AB"[seq % 2], seq, seq))
    assert len(conn.pending) == 2
    assert conn.conflated == 9_998


async def test_bars_conflate_per_interval_and_unwanted_intervals_are_ignored() -> None:
    conn = await make()
    conn.offer(update("A", 1, 1, interval="1m"))
    conn.offer(update("A", 2, 2, interval="1m"))
    conn.offer(update("A", 3, 3, interval="1s"))  # not subscribed
    conn.offer(update("A", 4, 4))
    frames, _ = conn.rendered(0, Tally())
    assert ids(frames) == ["c2", "c4"]


async def test_rate_limit_holds_the_head_and_everything_behind_it() -> None:
    conn = await make(max_rate=1.0)
    conn.offer(update("A", 1, 1))
    frames, waiting = conn.rendered(10**9, Tally())
    assert ids(frames) == ["c1"]
    assert not waiting
    conn.offer(update("A", 2, 2))
    conn.offer(update("B", 1, 3))
    frames, waiting = conn.rendered(10**9 + 10**8, Tally())  # 0.1 s later: A must wait
    assert frames == []
    assert waiting
    conn.offer(update("A", 3, 4))  # replaces A2 and moves behind B
    frames, waiting = conn.rendered(10**9 + 2 * 10**8, Tally())
    assert ids(frames) == ["c3"]
    assert waiting
    frames, waiting = conn.rendered(2 * 10**9 + 10**8, Tally())
    assert ids(frames) == ["c4"]
    assert not waiting


async def test_skip_holds_back_updates_below_a_cursor_ahead_of_this_instance() -> None:
    conn = await make()
    conn.skip = {0: 5}
    conn.offer(update("A", 1, 4))
    conn.offer(update("B", 1, 5))
    frames, _ = conn.rendered(0, Tally())
    assert ids(frames) == ["c5"]


async def test_forget_drops_unsent_updates_of_unsubscribed_symbols() -> None:
    conn = await make()
    conn.offer(update("A", 1, 1))
    conn.offer(update("B", 1, 2))
    conn.forget(frozenset({"A"}))
    assert list(conn.pending) == ["B"]


async def test_cut_empties_the_outbox_and_resolves_done() -> None:
    conn = await make()
    conn.backlog.append(b"x")
    conn.offer(update("A", 1, 1))
    conn.cut("slow")
    assert conn.closed
    assert conn.done.done()
    assert conn.backlog == []
    assert conn.pending == {}


@pytest.mark.parametrize("capacity", [1, 3])
def test_partition_buffer_start_moves_with_eviction(capacity: int) -> None:
    buffer = PartitionBuffer(capacity, start=10)
    for offset in (10, 12, 13, 17):
        buffer.append(update("A", offset, offset))
    kept = [u.offset for u in buffer.items]
    assert kept == [10, 12, 13, 17][-capacity:]
    assert buffer.start == {1: 14, 3: 11}[capacity]
    assert not buffer.covers(buffer.start - 1)
    assert [u.offset for u in buffer.since(13)] == [o for o in kept if o >= 13]


def bar(symbol: str, start: int, version: int, seq: int, *, final: bool) -> Update:
    parsed = Parsed(
        BAR, symbol, f"{symbol}|1s|{start}", "1s", version, 0, start_us=start, final=final
    )
    return Update(parsed, 0, seq, seq, f"c{seq}", f'{{"v":{version}}}'.encode())


async def test_a_closed_bar_is_never_conflated_away() -> None:
    conn = Connection(ip="127.0.0.1", subject=None)
    conn.interest = Interest(frozenset({"A"}), bar_intervals=frozenset({"1s"}))
    seq = 0
    for start in range(10):  # a client that keeps up but flushes after ten bars
        for version, final in ((2, False), (4, False), (5, True)):
            seq += 1
            conn.offer(bar("A", start, version, seq, final=final))
    frames, _ = conn.rendered(0, Tally())
    # every bar's final, in cursor order; only its own forming states were replaced
    assert ids(frames) == [f"c{3 * start + 3}" for start in range(10)]
    assert conn.conflated == 20
    assert conn.pending_bars == 0


async def test_too_many_unsent_bars_cut_the_client_instead_of_losing_one() -> None:
    conn = Connection(ip="127.0.0.1", subject=None, max_pending_bars=3)
    conn.interest = Interest(frozenset({"A"}), bar_intervals=frozenset({"1s"}))
    for start in range(3):
        conn.offer(bar("A", start, 3, start, final=True))
    assert not conn.closed
    conn.offer(bar("A", 3, 3, 3, final=True))
    assert conn.closed
    assert conn.close_reason == "overflow"
    assert conn.pending == {}


async def test_a_new_connection_receives_no_bars_until_it_asks_for_some() -> None:
    conn = Connection(ip="127.0.0.1", subject=None)
    assert conn.interest.bar_intervals == frozenset()


async def test_ids_after_a_resume_are_raised_to_the_cursor_until_passed() -> None:
    conn = Connection(ip="127.0.0.1", subject=None)
    conn.interest = Interest(frozenset({"A"}))
    conn.floor = [5, 3]  # the cursor the client resumed from

    def at(positions: list[int], seq: int) -> Update:
        parsed = Parsed(QUOTE, "A", "A", "", seq, 0)
        return Update(parsed, 0, seq, seq, cursor.encode(7, positions), b"{}")

    behind = at([6, 1], 1)  # read here before partition 1 reached the cursor
    assert ids([conn.render(behind)]) == [cursor.encode(7, [6, 3])]
    assert conn.floor == [5, 3]
    passed = at([7, 3], 2)
    assert conn.render(passed) == passed.frame  # the shared bytes again
    assert conn.floor is None
