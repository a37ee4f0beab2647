"""The soak's arithmetic: slopes per 10 minutes and /proc sampling of a live process."""

from __future__ import annotations

import os

from bench.common import ProcSampler, proc_usage, slope_per


def test_slope_of_a_line_per_ten_minutes() -> None:
    points = [(t, 100 + 0.01 * t) for t in range(0, 1200, 5)]  # 0.01 MiB per second
    assert abs(slope_per(points, 600) - 6.0) < 1e-9


def test_flat_and_degenerate_series_have_no_slope() -> None:
    assert slope_per([(t, 42.0) for t in range(10)], 600) == 0
    assert slope_per([(1.0, 5.0)], 600) == 0
    assert slope_per([], 600) == 0


def test_proc_usage_reads_this_process_and_none_for_a_missing_one() -> None:
    usage = proc_usage(os.getpid())
    assert usage is not None
    rss, fds = usage
    assert rss > 1 << 20
    assert fds >= 3
    assert proc_usage(2**22 + 1) is None  # above the kernel's pid_max default


def test_sampler_rows_follow_the_named_processes() -> None:
    sampler = ProcSampler(lambda: {"me": os.getpid(), "gone": None}, 1.0)
    row = sampler.sample()
    assert "me" in row
    assert "gone" not in row
    assert sampler.series("me", 1) == [(row["t"], row["me"][1])]
