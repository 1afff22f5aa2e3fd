"""The strict ISO 8601 duration parser of reminders and escalations."""

from __future__ import annotations

import pytest

from gateway.durations import parse_duration
from gateway.errors import InvalidInput

H = 3_600_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("PT4H", 4 * H),
        ("P1D", 24 * H),
        ("P2W", 14 * 24 * H),
        ("P1DT2H30M", 26 * H + 30 * 60_000),
        ("PT90S", 90_000),
        ("PT0H1M", 60_000),
    ],
)
def test_parses(text: str, ms: int) -> None:
    assert parse_duration(text, "x") == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "4H",
        "PT4h",
        "P1Y",
        "P1M",
        "PT1.5H",
        "P1W2D",
        "PT-1H",
        "PT0S",
        "P400D",
        " PT1H",
        "PT1H ",
        "P1H",
        "PT1D",
        "P1S",
        "PT1S1M",
    ],
)
def test_refuses_naming_it(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_duration(text, "approval.reminders[0]")
    assert "approval.reminders[0]" in str(refused.value)
    assert repr(text) in str(refused.value)
