"""Does the footage linked to an inspection cover the inspection's time window?

Recorders split files at about 15 minutes and leave a second or two between
parts; inspection times are written by hand to the minute.  So pieces closer than
the tolerance count as continuous, and the footage may start or end up to the
tolerance inside the window.  Pure functions, no catalog.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from reports.numbers import round_half_up

Status = Literal["covered", "partial", "outside_window", "no_footage"]


@dataclass(frozen=True)
class WindowCoverage:
    status: Status
    share: float  # share of the window's seconds with footage (1.0 for a covered instant)
    largest_gap_seconds: float  # longest stretch of the window without footage


def merge(pieces: list[tuple[datetime, datetime]], tolerance: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted, merged intervals; pieces separated by at most `tolerance` join up."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(pieces):
        if out and start <= out[-1][1] + tolerance:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def window_coverage(start: datetime, end: datetime, pieces: list[tuple[datetime, datetime]],
                    tolerance: timedelta) -> WindowCoverage:
    """Classify one inspection window against its footage intervals.

    covered: no stretch of the window longer than `tolerance` lacks footage;
    partial: some footage inside the window, but a longer gap;
    outside_window: footage is linked but none of it overlaps the window
    (often a wrong clock or a wrong link); no_footage: nothing linked.
    """
    if not pieces:
        return WindowCoverage("no_footage", 0.0, (end - start).total_seconds())
    merged = merge(pieces, tolerance)
    lo, hi = start - tolerance, end + tolerance
    inside = [(max(s, start), min(e, end)) for s, e in merged if e >= lo and s <= hi]
    if not inside:
        return WindowCoverage("outside_window", 0.0, (end - start).total_seconds())
    span = (end - start).total_seconds()
    gaps = _gaps(start, end, inside)
    largest = max(gaps, default=0.0)
    covered = sum(max(0.0, (e - s).total_seconds()) for s, e in inside)
    share = 1.0 if span <= 0 else min(1.0, covered / span)
    status: Status = "covered" if largest <= tolerance.total_seconds() else "partial"
    return WindowCoverage(status, round_half_up(share, 4) or 0.0, largest)


def _gaps(start: datetime, end: datetime, inside: list[tuple[datetime, datetime]]) -> list[float]:
    """Seconds without footage: before the first piece, between pieces, after the last."""
    gaps, cursor = [], start
    for s, e in inside:
        gaps.append(max(0.0, (s - cursor).total_seconds()))
        cursor = max(cursor, e)
    gaps.append(max(0.0, (end - cursor).total_seconds()))
    return gaps
