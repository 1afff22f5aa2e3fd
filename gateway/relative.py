"""Times as people read them: "in 3 h", "2 days ago", a date beyond a week, "no deadline".

One helper for every page and the dashboard, so no page shows "27241h" or n8n's 3000-01-01
placeholder for a wait without a deadline. The instant is always shown next to it in full
(``format_instant``), for whoever needs the exact time.
"""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape

from gateway.domain import FOREVER_MS, format_instant

NO_DEADLINE = "no deadline"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
WEEK = 7 * DAY


def relative(at_ms: int | None, now_ms: int) -> str:
    """``at_ms`` as seen at ``now_ms``: "now", "in 40 s", "5 min ago", "in 3 h", "2 days ago";
    a week or more away, the date ("5 Dec 2026"); ``None`` or 3000-01-01: "no deadline"."""
    if at_ms is None or at_ms >= FOREVER_MS:
        return NO_DEADLINE
    delta = at_ms - now_ms
    span = abs(delta)
    if span >= WEEK:
        day = format_instant(at_ms) or ""
        year, month, date = day[:10].split("-")
        return f"{int(date)} {MONTHS[int(month) - 1]} {year}"
    if span < SECOND:
        return "now"
    if span < MINUTE:
        amount = f"{span // SECOND} s"
    elif span < HOUR:
        amount = f"{span // MINUTE} min"
    elif span < DAY:
        amount = f"{span // HOUR} h"
    else:
        days = span // DAY
        amount = f"{days} day" if days == 1 else f"{days} days"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def absolute(at_ms: int | None) -> str:
    """The instant in full (UTC, ISO 8601), or "no deadline"."""
    if at_ms is None or at_ms >= FOREVER_MS:
        return NO_DEADLINE
    return format_instant(at_ms) or ""


def instant_ms(text: str) -> int:
    """An instant as ``format_instant`` writes it, in milliseconds since the epoch."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def when(text: str | None, now_ms: int) -> Markup:
    """The template filter ``when``: an instant (``format_instant``'s text) as a ``<time>``
    reading "in 3 h" (the full instant as its ``datetime`` and tooltip), or "no deadline"."""
    if not text:
        return escape(NO_DEADLINE)
    at = instant_ms(text)
    if at >= FOREVER_MS:
        return escape(NO_DEADLINE)
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(
        escape(text), relative(at, now_ms)
    )
