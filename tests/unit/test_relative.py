"""Relative times as people read them, at ManualClock instants."""

from __future__ import annotations

import pytest

from gateway.clock import ManualClock
from gateway.domain import FOREVER_MS
from gateway.relative import absolute, instant_ms, relative, when

S, MIN, H, DAY = 1000, 60_000, 3_600_000, 86_400_000


@pytest.mark.parametrize(
    ("offset", "shown"),
    [
        (0, "now"),
        (999, "now"),
        (-999, "now"),
        (40 * S, "in 40 s"),
        (-40 * S, "40 s ago"),
        (59 * S + 999, "in 59 s"),
        (MIN, "in 1 min"),
        (-5 * MIN, "5 min ago"),
        (59 * MIN, "in 59 min"),
        (3 * H, "in 3 h"),
        (-3 * H - 59 * MIN, "3 h ago"),
        (23 * H, "in 23 h"),
        (DAY, "in 1 day"),
        (-2 * DAY, "2 days ago"),
        (6 * DAY + 23 * H, "in 6 days"),
        (7 * DAY, "8 Jan 2026"),
        (-7 * DAY, "25 Dec 2025"),
        (400 * DAY, "5 Feb 2027"),
        (27241 * H, "9 Feb 2029"),
    ],
)
def test_relative_times(offset: int, shown: str) -> None:
    clock = ManualClock()  # 2026-01-01T00:00:00Z
    assert relative(clock.now_ms() + offset, clock.now_ms()) == shown


def test_no_deadline() -> None:
    now = ManualClock().now_ms()
    assert relative(None, now) == "no deadline"
    assert relative(FOREVER_MS, now) == "no deadline"
    assert absolute(FOREVER_MS) == absolute(None) == "no deadline"
    assert absolute(now + 3 * H) == "2026-01-01T03:00:00.000Z"


def test_the_when_filter_renders_a_time_element_people_read() -> None:
    now = ManualClock().now_ms()
    shown = str(when("2026-01-01T03:00:00.000Z", now))
    assert shown == (
        '<time datetime="2026-01-01T03:00:00.000Z" title="2026-01-01T03:00:00.000Z">in 3 h</time>'
    )
    assert str(when("3000-01-01T00:00:00.000Z", now)) == "no deadline"
    assert str(when(None, now)) == "no deadline"
    assert instant_ms("2025-12-31T23:59:00.000Z") == now - MIN
