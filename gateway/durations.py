"""ISO 8601 durations as approvals' reminders and escalations name them, in milliseconds.

Strict and small: ``PnW``, or ``PnDTnHnMnS`` with every part optional but at least one given
and a ``T`` only before a time part; whole numbers only (no years or months: their length
varies). ``P1D`` is 24 hours (the wait's clock, not a calendar).
"""

from __future__ import annotations

import re

from gateway.errors import InvalidInput

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d{1,6})W|(?P<days>\d{1,6}D)?(?:T(?P<hours>\d{1,7}H)?(?P<minutes>\d{1,9}M)?"
    r"(?P<seconds>\d{1,11}S)?)?)"
)
_MS = {"weeks": 604_800_000, "days": 86_400_000, "hours": 3_600_000, "minutes": 60_000}
MAX_DURATION_MS = 366 * 86_400_000
"""The longest duration accepted (a year)."""


def parse_duration(text: str, where: str) -> int:
    """``text`` in milliseconds; ``InvalidInput`` naming ``where`` and ``text`` unless it is a
    positive duration of the form above, at most ``MAX_DURATION_MS``."""
    found = _DURATION.fullmatch(text)
    if found is None or text.endswith("T") or not any(found.groupdict().values()):
        raise InvalidInput(f"{where}: {text!r} is not an ISO 8601 duration such as PT4H or P1D")
    total = 0
    for part, value in found.groupdict().items():
        if value is not None:
            total += int(value.rstrip("WDHMS")) * _MS.get(part, 1000)
    if not 0 < total <= MAX_DURATION_MS:
        raise InvalidInput(f"{where}: {text!r} must be more than zero and at most a year")
    return total
