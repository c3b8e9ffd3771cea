"""Full-process recording compliance over a period.

Answers what a superior asks after reading the annual report: were the inspections
recorded (footage linked and covering the inspection window, by two officers),
was footage uploaded within the deadline, are devices docked and their clocks
right, is footage left unlinked or unplayable.  Each figure names the detail table
that lists the cases, recordings or devices behind it.

Queries fetch plain columns (no ORM objects) for speed: a year of a bureau is about
800 inspections and 50,000 recordings.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from custody.settings import Settings
from indexer.catalog.models import Case, CaseOfficer, Device, DockSession, Media, MediaLink, Unit
from reports.model import Chart, Column, Figure, Report, Table
from reports.periods import Period, in_period, local_iso, local_today
from reports.ratio import device_exclusion
from reports.scope import Scope, load_scope
from reports.windows import window_coverage

MIN_RECORDING_OFFICERS = 2  # 行政处罚法 Art. 42: at least two officers


@dataclass(frozen=True)
class CoverageOptions:
    first: date
    last: date
    unit: str | None = None
    kinds: tuple[str, ...] | None = None
    deadline_hours: float | None = None
    undocked_days: int | None = None
    clock_threshold_seconds: float | None = None
    unlinked_days: int | None = None
    now: datetime | None = None  # the report's "now"; tests pin it


@dataclass(frozen=True)
class Rules:
    """The thresholds applied, after flags override settings."""

    deadline: timedelta
    undocked: timedelta
    clock_seconds: float
    unlinked: timedelta
    tolerance: timedelta
    kinds: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "upload_deadline_hours": self.deadline.total_seconds() / 3600,
            "min_recording_officers": MIN_RECORDING_OFFICERS,
            "coverage_tolerance_seconds": self.tolerance.total_seconds(),
            "undocked_days": self.undocked.days,
            "clock_error_threshold_seconds": self.clock_seconds,
            "unlinked_days": self.unlinked.days,
            "device_kinds": list(self.kinds),
        }


def rules_for(settings: Settings, o: CoverageOptions) -> Rules:
    r = settings.reports
    return Rules(
        deadline=timedelta(hours=o.deadline_hours if o.deadline_hours is not None else r.upload_deadline_hours),
        undocked=timedelta(days=o.undocked_days if o.undocked_days is not None else r.undocked_days),
        clock_seconds=o.clock_threshold_seconds if o.clock_threshold_seconds is not None
        else r.clock_error_threshold_seconds,
        unlinked=timedelta(days=o.unlinked_days if o.unlinked_days is not None else r.unlinked_days),
        tolerance=timedelta(seconds=r.coverage_tolerance_seconds),
        kinds=tuple(o.kinds or r.counted_device_kinds),
    )


@dataclass
class Context:
    """What every section needs: the period, the units, the rules, the device register."""

    period: Period
    scope: Scope
    rules: Rules
    now: datetime
    devices: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def tz(self) -> timezone:
        return self.period.tz

    @property
    def as_of(self) -> datetime:
        """Dock and clock state is judged at the period's end, or now if that is earlier."""
        return min(self.now, self.period.end_utc)

    def serial(self, device_id: int | None) -> str | None:
        return self.devices[device_id]["serial"] if device_id in self.devices else None


# ----------------------------------------------------------------------------- entry point
def coverage_report(session: Session, settings: Settings, opts: CoverageOptions) -> Report:
    period = Period.of(opts.first, opts.last, settings.tz)
    now = opts.now or datetime.now(timezone.utc)
    ctx = Context(period, load_scope(session, opts.unit), rules_for(settings, opts), now)
    ctx.devices = _device_register(session)

    inspections = _inspections(session, ctx)
    media = _media_in_period(session, ctx)
    late, delays, untimed = _uploads(media, ctx)
    unlinked = _unlinked(media, ctx)
    unplayable = _unplayable(session, media, ctx)
    undocked, checked = _undocked_devices(session, ctx)
    clock = _clock_errors(session, ctx)

    fewer = [r for r in inspections if r["recording_officers"] < MIN_RECORDING_OFFICERS]
    status = Counter(r["status"] for r in inspections)
    n, timed = len(inspections), len(delays)
    within = sum(1 for d in delays if d <= ctx.rules.deadline.total_seconds() / 3600)
    figures = [
        Figure("inspections", n, table="inspections"),
        Figure("inspections_covered", status["covered"], "share", n, "inspections"),
        Figure("inspections_partial", status["partial"], "share", n, "inspections"),
        Figure("inspections_outside_window", status["outside_window"], "share", n, "inspections"),
        Figure("inspections_no_footage", status["no_footage"], "share", n, "inspections"),
        Figure("inspections_fewer_than_two_officers", len(fewer), "share", n, "fewer_than_two_officers"),
        Figure("recordings", len(media)),
        Figure("uploads_within_deadline", within, "share", timed),
        Figure("uploads_late", len(late), "share", timed, "late_uploads"),
        Figure("uploads_untimed", untimed),
        Figure("devices_undocked", len(undocked), "share", checked, "undocked_devices"),
        Figure("devices_clock_error", len(clock), table="clock_errors"),
        Figure("recordings_unlinked", len(unlinked), "share", len(media), "unlinked"),
        Figure("recordings_unplayable", len(unplayable), "share", len(media), "unplayable"),
    ]
    statement = {
        "report": "coverage",
        "period": period.describe(),
        "scope": ctx.scope.describe(),
        "standard": ctx.rules.describe(),
        "as_of": local_iso(ctx.as_of, ctx.tz),
        "generated_at": local_iso(now, ctx.tz),
        "definitions": [
            "def_cov_inspections", "def_cov_footage", "def_cov_recordings", "def_cov_upload_delay",
            "def_cov_undocked", "def_cov_clock_error", "def_cov_unlinked",
        ],
        "counted": {
            "inspection_count": n,
            "recording_count": len(media),
            "devices_checked": checked,
        },
    }
    return Report(
        kind="coverage", statement=statement, figures=figures,
        tables=[
            Table("inspections", _INSPECTION_COLUMNS, inspections, detail=True),
            Table("fewer_than_two_officers", _INSPECTION_COLUMNS, fewer, detail=True),
            Table("late_uploads", _LATE_COLUMNS, late, detail=True),
            Table("undocked_devices", _UNDOCKED_COLUMNS, undocked, detail=True),
            Table("clock_errors", _CLOCK_COLUMNS, clock, detail=True),
            Table("unlinked", _MEDIA_COLUMNS + [Column("days_unlinked", "ratio")], unlinked, detail=True),
            Table("unplayable", _MEDIA_COLUMNS + [Column("reason")], unplayable, detail=True),
        ],
        charts=_charts(inspections, status, delays, ctx),
    )


# ----------------------------------------------------------------------------- register
def _device_register(session: Session) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(Device.id, Device.serial, Device.kind, Device.unit_id, Unit.code)
        .outerjoin(Unit, Unit.id == Device.unit_id)
    ).all()
    return {r.id: {"serial": r.serial, "kind": r.kind, "unit_id": r.unit_id, "unit": r.code} for r in rows}


# ----------------------------------------------------------------------------- inspections
def _inspections(session: Session, ctx: Context) -> list[dict[str, Any]]:
    wanted = and_(Case.kind == "inspection", in_period(Case.start, ctx.period))
    cases = session.execute(
        select(Case.id, Case.case_no, Case.enterprise, Case.start, Case.end, Unit.code.label("unit"), Case.unit_id)
        .outerjoin(Unit, Unit.id == Case.unit_id).where(wanted).order_by(Case.start, Case.case_no)
    ).all()
    cases = [c for c in cases if ctx.scope.covers(c.unit_id)]
    assigned = dict(session.execute(
        select(CaseOfficer.case_id, func.count()).join(Case, Case.id == CaseOfficer.case_id)
        .where(wanted).group_by(CaseOfficer.case_id)
    ).all())
    footage = _linked_footage(session, wanted)
    return [_inspection_row(c, assigned.get(c.id, 0), footage.get(c.id, []), ctx) for c in cases]


def _linked_footage(session: Session, wanted: Any) -> dict[int, list[Any]]:
    rows = session.execute(
        select(MediaLink.case_id, Media.id, Media.recorded_start, Media.recorded_end, Media.duration_seconds,
               Media.officer_id, Media.officer_badge, Media.flags)
        .join(Media, Media.id == MediaLink.media_id).join(Case, Case.id == MediaLink.case_id)
        .where(MediaLink.active.is_(True), wanted)
    ).all()
    out: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        out[r.case_id].append(r)
    return out


def _inspection_row(c: Any, assigned: int, footage: list[Any], ctx: Context) -> dict[str, Any]:
    usable = [f for f in footage if f.recorded_start is not None and "unplayable" not in (f.flags or [])]
    pieces = [(f.recorded_start, _end_of(f.recorded_start, f.recorded_end, f.duration_seconds)) for f in usable]
    # An inspection with no end time is checked at its start instant.
    end = c.end if c.end is not None and c.end >= c.start else c.start
    cov = window_coverage(c.start, end, pieces, ctx.rules.tolerance)
    officers = {f.officer_id or f.officer_badge for f in usable if f.officer_id or f.officer_badge}
    badges = sorted({f.officer_badge for f in usable if f.officer_badge})
    return {
        "case_no": c.case_no, "enterprise": c.enterprise, "unit": c.unit,
        "start": local_iso(c.start, ctx.tz), "end": local_iso(c.end, ctx.tz),
        "assigned_officers": assigned, "linked_recordings": len(footage), "status": cov.status,
        "covered_share": cov.share, "largest_gap_minutes": round(cov.largest_gap_seconds / 60, 1),
        "recording_officers": len(officers), "badges": ", ".join(badges),
    }


def _end_of(start: datetime, end: datetime | None, duration: float | None) -> datetime:
    if end is not None:
        return end
    return start + timedelta(seconds=duration or 0.0)


# ----------------------------------------------------------------------------- recordings
def _media_in_period(session: Session, ctx: Context) -> list[Any]:
    linked = exists().where(MediaLink.media_id == Media.id, MediaLink.active.is_(True))
    rows = session.execute(
        select(Media.id, Media.original_name, Media.device_id, Media.officer_badge, Media.unit_code,
               Media.recorded_start, Media.recorded_end, Media.duration_seconds, Media.docked_at,
               Media.device_start_text, Media.flags, Media.status, linked.label("linked"))
        .where(in_period(Media.recorded_start, ctx.period)).order_by(Media.recorded_start, Media.id)
    ).all()
    return [r for r in rows if _media_in_scope(r, ctx)]


def _media_in_scope(r: Any, ctx: Context) -> bool:
    if ctx.scope.root is None:
        return True
    dev = ctx.devices.get(r.device_id)
    if dev is not None and dev["unit_id"] is not None:
        return ctx.scope.covers(dev["unit_id"])
    return ctx.scope.covers_code(r.unit_code)


def _media_row(r: Any, ctx: Context) -> dict[str, Any]:
    return {
        "media_id": r.id, "recording": r.original_name, "device": ctx.serial(r.device_id),
        "badge": r.officer_badge, "device_start_text": r.device_start_text,
        "recorded_start": local_iso(r.recorded_start, ctx.tz), "docked_at": local_iso(r.docked_at, ctx.tz),
        "status": r.status,
    }


def _uploads(media: list[Any], ctx: Context) -> tuple[list[dict[str, Any]], list[float], int]:
    """Late recordings, every known delay in hours (for the chart), and how many had no times."""
    late, delays, untimed = [], [], 0
    limit = ctx.rules.deadline.total_seconds() / 3600
    for r in media:
        if r.docked_at is None:
            untimed += 1
            continue
        end = _end_of(r.recorded_start, r.recorded_end, r.duration_seconds)
        hours = (r.docked_at - end).total_seconds() / 3600
        delays.append(hours)
        if hours > limit:
            late.append({**_media_row(r, ctx), "recorded_end": local_iso(end, ctx.tz),
                         "delay_hours": round(hours, 2)})
    late.sort(key=lambda x: -x["delay_hours"])
    return late, delays, untimed


def _unlinked(media: list[Any], ctx: Context) -> list[dict[str, Any]]:
    out = []
    for r in media:
        if r.linked:
            continue
        since = r.docked_at or _end_of(r.recorded_start, r.recorded_end, r.duration_seconds)
        age = ctx.now - since
        if age > ctx.rules.unlinked:
            out.append({**_media_row(r, ctx), "days_unlinked": round(age.total_seconds() / 86400, 1)})
    return out


def _unplayable(session: Session, media: list[Any], ctx: Context) -> list[dict[str, Any]]:
    bad = [r for r in media if "unplayable" in (r.flags or [])]
    reasons: dict[int, Any] = {}
    ids = [r.id for r in bad]
    for i in range(0, len(ids), 500):  # bounded IN lists
        reasons.update(session.execute(
            select(Media.id, Media.flag_reasons).where(Media.id.in_(ids[i:i + 500]))).all())
    return [{**_media_row(r, ctx), "reason": (reasons.get(r.id) or {}).get("unplayable")} for r in bad]


# ----------------------------------------------------------------------------- devices
def _undocked_devices(session: Session, ctx: Context) -> tuple[list[dict[str, Any]], int]:
    """Devices in service at as_of whose last dock before it is older than the limit."""
    as_of = ctx.as_of
    on = ctx.period.last if ctx.period.end_utc <= ctx.now else local_today(ctx.tz, ctx.now)
    docks = {r.device_id: (r.first, r.last) for r in session.execute(
        select(DockSession.device_id, func.min(DockSession.started_at).label("first"),
               func.max(DockSession.started_at).label("last"))
        .where(DockSession.device_id.is_not(None), DockSession.started_at < as_of).group_by(DockSession.device_id)
    ).all()}
    devices = session.execute(select(Device).order_by(Device.serial)).scalars().all()
    out, checked = [], 0
    for d in devices:
        if not ctx.scope.covers(d.unit_id):
            continue
        first, last = docks.get(d.id, (None, None))
        first_day = first.astimezone(ctx.tz).date() if first else None
        if device_exclusion(d, on, ctx.rules.kinds, first_day) is not None:
            continue
        checked += 1
        if last is None and d.last_docked_at is not None and d.last_docked_at < as_of:
            last = d.last_docked_at  # docks recorded before sessions were kept
        if last is None or as_of - last > ctx.rules.undocked:
            out.append({"device": d.serial, "kind": d.kind, "unit": ctx.devices[d.id]["unit"],
                        "never_docked": last is None, "last_docked_at": local_iso(last, ctx.tz),
                        "days_since_dock": round((as_of - last).total_seconds() / 86400, 1) if last else None})
    return out, checked


def _clock_errors(session: Session, ctx: Context) -> list[dict[str, Any]]:
    rows = session.execute(
        select(DockSession.device_id, DockSession.started_at, DockSession.clock_offset_seconds,
               DockSession.device_clock_text, DockSession.station_clock_at_read)
        .where(DockSession.device_id.is_not(None), DockSession.clock_offset_seconds.is_not(None),
               in_period(DockSession.started_at, ctx.period))
        .order_by(DockSession.started_at)
    ).all()
    per: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        if ctx.scope.covers(ctx.devices.get(r.device_id, {}).get("unit_id")):
            per[r.device_id].append(r)
    limit = ctx.rules.clock_seconds
    out = []
    for device_id, docks in per.items():
        over = [r for r in docks if abs(r.clock_offset_seconds) > limit]
        if over:
            worst = max(over, key=lambda r: abs(r.clock_offset_seconds))
            out.append(_clock_row(ctx, device_id, "dock_sessions", len(docks), len(over), worst))
    out.extend(_clock_from_devices(session, ctx, set(per)))
    out.sort(key=lambda x: -abs(x["worst_offset_seconds"]))
    return out


def _clock_row(ctx: Context, device_id: int, source: str, measured: int, over: int, worst: Any) -> dict[str, Any]:
    return {
        "device": ctx.serial(device_id), "unit": ctx.devices[device_id]["unit"], "source": source,
        "docks_measured": measured, "docks_over": over, "worst_offset_seconds": round(worst.clock_offset_seconds, 1),
        "device_clock_text": worst.device_clock_text, "station_clock_at_read": local_iso(worst.station_clock_at_read,
                                                                                           ctx.tz),
    }


def _clock_from_devices(session: Session, ctx: Context, measured: set[int]) -> list[dict[str, Any]]:
    """Devices with no measured dock in the period: fall back to the last offset the register holds."""
    rows = session.execute(
        select(Device.id, Device.unit_id, Device.last_clock_offset_seconds, Device.last_docked_at)
        .where(Device.last_clock_offset_seconds.is_not(None))
    ).all()
    out = []
    for r in rows:
        if r.id in measured or not ctx.scope.covers(r.unit_id) or abs(r.last_clock_offset_seconds) <= ctx.rules.clock_seconds:
            continue
        fake = _Reading(r.last_clock_offset_seconds, None, r.last_docked_at)
        out.append(_clock_row(ctx, r.id, "devices.last_clock_offset_seconds", 0, 0, fake))
    return out


@dataclass(frozen=True)
class _Reading:
    clock_offset_seconds: float
    device_clock_text: str | None
    station_clock_at_read: datetime | None


# ----------------------------------------------------------------------------- layout
def _charts(inspections: list[dict], status: Counter, delays: list[float], ctx: Context) -> list[Chart]:
    order = ["covered", "partial", "outside_window", "no_footage"]
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in inspections:
        m = months[r["start"][:7]]
        m[0] += 1
        m[1] += r["status"] == "covered"
    keys = sorted(months)
    deadline = ctx.rules.deadline.total_seconds() / 3600
    return [
        Chart("chart_inspection_status", "bar", order, {"inspections": [status[k] for k in order]},
              translate_categories=True),
        Chart("chart_monthly", "bar", keys, {"inspections": [months[k][0] for k in keys],
                                             "inspections_covered": [months[k][1] for k in keys]}),
        Chart("chart_upload_delay", "hist", [], {"recordings": [min(d, deadline * 4) for d in delays]},
              reference=deadline, reference_label="upload_deadline_hours", x_label="delay_hours",
              y_label="recordings"),
    ]


_INSPECTION_COLUMNS = [
    Column("case_no"), Column("enterprise"), Column("unit"), Column("start"), Column("end"),
    Column("assigned_officers", "int"), Column("linked_recordings", "int"),
    Column("status", translate=True), Column("covered_share", "share"), Column("largest_gap_minutes", "ratio"), Column("recording_officers", "int"),
    Column("badges"),
]
_MEDIA_COLUMNS = [
    Column("media_id", "int"), Column("recording"), Column("device"), Column("badge"), Column("device_start_text"),
    Column("recorded_start"), Column("docked_at"), Column("status", translate=True),
]
_LATE_COLUMNS = _MEDIA_COLUMNS[:6] + [Column("recorded_end"), Column("docked_at"), Column("delay_hours", "hours")]
_UNDOCKED_COLUMNS = [Column("device"), Column("kind", translate=True), Column("unit"), Column("never_docked", "bool"),
                     Column("last_docked_at"),
                     Column("days_since_dock", "ratio")]
_CLOCK_COLUMNS = [Column("device"), Column("unit"), Column("source", translate=True),
                  Column("docks_measured", "int"), Column("docks_over", "int"), Column("worst_offset_seconds", "seconds"), Column("device_clock_text"),
                  Column("station_clock_at_read")]
