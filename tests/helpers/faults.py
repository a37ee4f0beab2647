"""Pausing a server process for a fault test, and knowing that it is paused.

`os.kill(pid, SIGSTOP)` returns as soon as the signal is queued; each thread of the
target stops when it is next scheduled (right after the call, a JVM's threads are seen
still `R` or `S` in /proc). A test that acts on "the broker is paused" waits for that
marker: every thread of the process reports state `T`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil


def thread_states(pid: int) -> set[str]:
    """The scheduler state letter of every thread of pid (`T` = stopped)."""
    states = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread exited meanwhile
            continue
        states.add(stat.rsplit(")", 1)[1].split()[0])
    return states


def listening_ports(pid: int) -> set[int]:
    """The TCP ports pid listens on."""
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@contextmanager
def paused(pid: int, listens_on: int | None = None, within_s: float = 30.0) -> Iterator[None]:
    """SIGSTOP pid, wait until every one of its threads is stopped, yield, check it
    is still stopped, SIGCONT.

    With `listens_on`, first check that pid is the process serving that port (a test
    that pauses the wrong process would see a server that keeps answering)."""
    if listens_on is not None:
        ports = listening_ports(pid)
        assert listens_on in ports, f"pid {pid} does not listen on {listens_on}: {ports}"
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + within_s  # a failure guard, not a measurement
        while (states := thread_states(pid)) != {"T"}:
            assert time.monotonic() < deadline, f"pid {pid} did not stop: {states}"
            time.sleep(0.005)
        yield
        # nothing may have resumed it meanwhile, or the test's premise did not hold
        assert thread_states(pid) == {"T"}, f"pid {pid} was resumed while paused"
    finally:
        os.kill(pid, signal.SIGCONT)
