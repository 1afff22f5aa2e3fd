"""The dashboard's overview: executions by status, the approvals waiting longest, and the
deadlines of the next 24 hours as a small chart drawn on the server (inline SVG, no script)."""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000
HOURS = 24
MAX_APPROVALS = 20
BAR_WIDTH, GAP, CHART_HEIGHT = 12, 3, 60


@dataclass(frozen=True)
class WaitingApproval:
    """An approval wait still open: what is asked, since when, until when."""

    execution_id: int
    workflow_id: str
    title: str
    parked_at: int
    wait_till: int | None


@dataclass(frozen=True)
class Overview:
    """What the overview shows, for the executions a principal may see."""

    counts: dict[str, int]
    approvals: tuple[WaitingApproval, ...]
    """Oldest first, at most ``MAX_APPROVALS``."""
    due_by_hour: tuple[int, ...]
    """How many deadlines fall in each of the next ``HOURS`` hours (index 0: within the hour)."""


@dataclass(frozen=True)
class Bar:
    """One bar of the deadlines chart, in SVG user units."""

    hour: int
    count: int
    x: int
    y: int
    height: int


def bars(due_by_hour: tuple[int, ...]) -> list[Bar]:
    """The chart's bars, scaled so the highest fills ``CHART_HEIGHT`` (an empty hour keeps a
    one-unit baseline so the axis reads)."""
    top = max(due_by_hour, default=0) or 1
    drawn = []
    for hour, count in enumerate(due_by_hour):
        height = max(1, round(CHART_HEIGHT * count / top))
        drawn.append(Bar(hour, count, hour * (BAR_WIDTH + GAP), CHART_HEIGHT - height, height))
    return drawn
