"""Full-process recording compliance over a period.

Answers what a superior asks after reading the annual report: were the inspections
recorded (footage linked and covering the inspection window, by two officers), was
footage uploaded within the deadline, are devices docked and their clocks right, is
footage left unlinked or unplayable.  Each figure names the detail table that lists
the cases, recordings or devices behind it.

Figures come from SQL aggregates; the long recording lists (late, unlinked,
unplayable) and the chart data are fetched only when the output shows them.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from core.settings import Settings
from reports.context import MIN_RECORDING_OFFICERS, CoverageOptions, Context, device_register, rules_for
from reports.device_health import clock_errors, undocked_devices
from reports.inspections import inspection_rows, one_officer
from reports.model import Chart, Column, Figure, Report, Table
from reports.periods import Period, local_iso
from reports.recordings import (
    Expressions, RecordingCounts, delay_histogram, late_rows, recording_counts, unlinked_rows, unplayable_rows,
)
from reports.scope import load_scope

__all__ = ["CoverageOptions", "coverage_report"]


def coverage_report(session: Session, settings: Settings, opts: CoverageOptions, details: bool = True,
                    charts: bool = True) -> Report:
    """The report; `details` fetches the long recording lists, `charts` the chart data (HTML only)."""
    period = Period.of(opts.first, opts.last, settings.tz)
    now = opts.now or datetime.now(timezone.utc)
    ctx = Context(period, load_scope(session, opts.unit), rules_for(settings, opts), now,
                  session.get_bind().dialect.name)
    ctx.devices = device_register(session)

    inspections = inspection_rows(session, ctx)
    fewer = [r for r in inspections if r["recording_officers"] < MIN_RECORDING_OFFICERS]
    # Two-officer-rule violations in the enforcement record itself (行政处罚法 Art. 42).
    single = [r for r in inspections if one_officer(r)]
    x = Expressions(ctx)
    counts = recording_counts(session, x)
    undocked, checked = undocked_devices(session, ctx)
    clock = clock_errors(session, ctx)
    report = Report(
        kind="coverage", statement=_statement(ctx, len(inspections), counts, checked),
        figures=_figures(inspections, fewer, single, counts, undocked, checked, clock),
        tables=[
            Table("inspections", _INSPECTION_COLUMNS, inspections, detail=True),
            Table("one_officer_inspections", _ONE_OFFICER_COLUMNS, single, detail=True),
            Table("fewer_than_two_officers", _INSPECTION_COLUMNS, fewer, detail=True),
            Table("late_uploads", _LATE_COLUMNS, None, True, lambda: late_rows(session, ctx, x)),
            Table("undocked_devices", _UNDOCKED_COLUMNS, undocked, detail=True),
            Table("clock_errors", _CLOCK_COLUMNS, clock, detail=True),
            Table("unlinked", _UNLINKED_COLUMNS, None, True, lambda: unlinked_rows(session, ctx, x)),
            Table("unplayable", _UNPLAYABLE_COLUMNS, None, True, lambda: unplayable_rows(session, ctx, x)),
        ],
        charts=_charts(inspections, session, ctx, x) if charts else [],
    )
    if details:
        report.load_details()
    report.drop_loaders()
    return report


def _figures(inspections: list[dict], fewer: list[dict], single: list[dict], c: RecordingCounts,
             undocked: list[dict], checked: int, clock: list[dict]) -> list[Figure]:
    status = Counter(r["status"] for r in inspections)
    n = len(inspections)
    return [
        Figure("inspections", n, table="inspections"),
        Figure("inspections_covered", status["covered"], "share", n, "inspections"),
        Figure("inspections_partial", status["partial"], "share", n, "inspections"),
        Figure("inspections_outside_window", status["outside_window"], "share", n, "inspections"),
        Figure("inspections_no_footage", status["no_footage"], "share", n, "inspections"),
        Figure("inspections_one_officer", len(single), "share", n, "one_officer_inspections"),
        Figure("inspections_fewer_than_two_officers", len(fewer), "share", n, "fewer_than_two_officers"),
        Figure("recordings", c.recordings),
        Figure("uploads_within_deadline", c.timed - c.late, "share", c.timed),
        Figure("uploads_late", c.late, "share", c.timed, "late_uploads"),
        Figure("uploads_untimed", c.untimed),
        Figure("devices_undocked", len(undocked), "share", checked, "undocked_devices"),
        Figure("devices_clock_error", len(clock), table="clock_errors"),
        Figure("recordings_unlinked", c.unlinked, "share", c.recordings, "unlinked"),
        Figure("recordings_unplayable", c.unplayable, "share", c.recordings, "unplayable"),
    ]


def _statement(ctx: Context, inspections: int, c: RecordingCounts, checked: int) -> dict[str, Any]:
    return {
        "report": "coverage",
        "period": ctx.period.describe(),
        "scope": ctx.scope.describe(),
        "standard": ctx.rules.describe(),
        "as_of": local_iso(ctx.as_of, ctx.tz),
        "generated_at": local_iso(ctx.now, ctx.tz),
        "definitions": [
            "def_cov_inspections", "def_cov_one_officer", "def_cov_footage", "def_cov_recordings", "def_cov_upload_delay",
            "def_cov_undocked", "def_cov_clock_error", "def_cov_unlinked",
        ],
        "counted": {"inspection_count": inspections, "recording_count": c.recordings, "devices_checked": checked},
    }


def _charts(inspections: list[dict], session: Session, ctx: Context, x: Expressions) -> list[Chart]:
    order = ["covered", "partial", "outside_window", "no_footage"]
    status = Counter(r["status"] for r in inspections)
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in inspections:
        m = months[r["start"][:7]]
        m[0] += 1
        m[1] += r["status"] == "covered"
    keys = sorted(months)
    deadline = ctx.rules.deadline.total_seconds() / 3600
    cap = max(1, int(deadline * 3))
    hist = delay_histogram(session, x, cap)
    return [
        Chart("chart_inspection_status", "bar", order, {"inspections": [status[k] for k in order]},
              translate_categories=True),
        Chart("chart_monthly", "bar", keys, {"inspections": [months[k][0] for k in keys],
                                             "inspections_covered": [months[k][1] for k in keys]}),
        # Pre-binned: one bar per whole hour of delay; the last bar holds everything later.
        Chart("chart_upload_delay", "hist", [str(h) for h in range(cap + 1)], {"recordings": hist},
              reference=deadline, reference_label="upload_deadline_hours", x_label="delay_hours",
              y_label="recordings"),
    ]


_INSPECTION_COLUMNS = [
    Column("case_no"), Column("record_id"), Column("enterprise"), Column("unit"), Column("start"), Column("end"),
    Column("assigned_officers", "int"), Column("linked_recordings", "int"),
    Column("status", translate=True), Column("covered_share", "share"), Column("largest_gap_minutes", "ratio"),
    Column("recording_officers", "int"), Column("badges"),
]
_ONE_OFFICER_COLUMNS = [
    Column("case_no"), Column("record_id"), Column("enterprise"), Column("unit"), Column("start"), Column("end"),
    Column("assigned_officers", "int"), Column("officers", label="case_officers"),
    Column("linked_recordings", "int"), Column("status", translate=True),
]
_MEDIA_COLUMNS = [
    Column("media_id", "int"), Column("recording"), Column("device"), Column("badge"), Column("device_start_text"),
    Column("recorded_start"), Column("docked_at"), Column("status", translate=True),
]
_LATE_COLUMNS = _MEDIA_COLUMNS[:6] + [Column("recorded_end"), Column("docked_at"), Column("delay_hours", "hours")]
_UNLINKED_COLUMNS = _MEDIA_COLUMNS + [Column("days_unlinked", "ratio")]
_UNPLAYABLE_COLUMNS = _MEDIA_COLUMNS + [Column("reason")]
_UNDOCKED_COLUMNS = [Column("device"), Column("kind", translate=True), Column("unit"), Column("never_docked", "bool"),
                     Column("last_docked_at"), Column("days_since_dock", "ratio")]
_CLOCK_COLUMNS = [Column("device"), Column("unit"), Column("source", translate=True),
                  Column("docks_measured", "int"), Column("docks_over", "int"),
                  Column("worst_offset_seconds", "seconds"), Column("device_clock_text"),
                  Column("station_clock_at_read")]
