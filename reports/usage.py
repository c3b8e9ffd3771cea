"""Usage per device and per officer: hours recorded, docks, last dock.

Shows which cameras sit in a drawer and who never docks.  Every device and every
registered officer in scope gets a row, idle ones included (zero is the finding);
recordings carrying a badge no officer record matches get rows of their own so
their hours are not silently dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from catalog.models import Device, DockSession, Media, Officer, Unit
from reports.model import Chart, Column, Report, Table
from reports.numbers import round_half_up
from reports.periods import Period, in_period, local_iso
from reports.scope import Scope, load_scope

TOP_IN_CHART = 25


@dataclass(frozen=True)
class UsageOptions:
    first: date | None
    last: date
    unit: str | None = None
    kinds: tuple[str, ...] | None = None  # None: every device kind


def usage_report(session: Session, settings: Settings, opts: UsageOptions) -> Report:
    period = Period.of(opts.first, opts.last, settings.tz)
    scope = load_scope(session, opts.unit)
    devices = _device_rows(session, period, scope, opts.kinds)
    officers = _officer_rows(session, period, scope)
    no_duration = session.execute(
        select(func.count()).select_from(Media)
        .where(in_period(Media.recorded_start, period), Media.duration_seconds.is_(None))
    ).scalar_one()
    statement = {
        "report": "usage",
        "period": period.describe(),
        "scope": scope.describe(),
        "standard": None,  # usage is descriptive: no standard is applied
        "definitions": ["def_use_recordings", "def_use_hours", "def_use_docks"],
        "counted": {
            "recordings_without_duration": no_duration,
            "docks": "dock sessions started in the period (per officer: by the badge the device reported)",
            "device_kinds": list(opts.kinds) if opts.kinds else ["all"],
            "devices": len(devices),
            "officers": len(officers),
        },
    }
    return Report(
        kind="usage", statement=statement,
        tables=[Table("devices", _DEVICE_COLUMNS, devices), Table("officers", _OFFICER_COLUMNS, officers)],
        charts=[_chart("chart_hours_device", devices, "device"), _chart("chart_hours_officer", officers, "badge")],
    )


def _recording_totals(session: Session, period: Period, key: Any) -> dict[Any, tuple[int, float]]:
    rows = session.execute(
        select(key, func.count(), func.coalesce(func.sum(Media.duration_seconds), 0.0))
        .where(in_period(Media.recorded_start, period), Media.derived_from.is_(None)).group_by(key)
    ).all()
    return {k: (n, float(s or 0.0)) for k, n, s in rows}


def _dock_totals(session: Session, period: Period, key: Any) -> dict[Any, tuple[int, datetime | None]]:
    rows = session.execute(
        select(key, func.count(), func.max(DockSession.started_at))
        .where(in_period(DockSession.started_at, period)).group_by(key)
    ).all()
    return {k: (n, last) for k, n, last in rows}


def _device_rows(session: Session, period: Period, scope: Scope, kinds: tuple[str, ...] | None) -> list[dict]:
    rec = _recording_totals(session, period, Media.device_id)
    docks = _dock_totals(session, period, DockSession.device_id)
    rows = session.execute(
        select(Device.id, Device.serial, Device.kind, Device.unit_id, Unit.code)
        .outerjoin(Unit, Unit.id == Device.unit_id).order_by(Device.serial)
    ).all()
    out = []
    for d in rows:
        if not scope.covers(d.unit_id) or (kinds and d.kind not in kinds):
            continue
        n, seconds = rec.get(d.id, (0, 0.0))
        nd, last = docks.get(d.id, (0, None))
        out.append({"device": d.serial, "kind": d.kind, "unit": d.code, "recordings": n,
                    "hours": round_half_up(seconds / 3600, 2), "docks": nd, "last_dock": local_iso(last, period.tz)})
    return out


def _officer_rows(session: Session, period: Period, scope: Scope) -> list[dict]:
    by_id = _recording_totals(session, period, Media.officer_id)
    docks = _dock_totals(session, period, DockSession.officer_badge)
    rows = session.execute(
        select(Officer.id, Officer.badge, Officer.name, Officer.unit_id, Unit.code)
        .outerjoin(Unit, Unit.id == Officer.unit_id).order_by(Officer.badge)
    ).all()
    out = []
    for o in rows:
        if not scope.covers(o.unit_id):
            continue
        n, seconds = by_id.get(o.id, (0, 0.0))
        out.append(_officer_row(o.badge, o.name, o.code, True, n, seconds, docks.get(o.badge), period))
    if scope.includes_unassigned:
        out.extend(_unregistered_rows(session, period, {o.badge for o in rows}, docks))
    return out


def _unregistered_rows(session: Session, period: Period, known: set[str], docks: dict) -> list[dict]:
    """Badges seen on recordings with no officer record: their hours still show."""
    rows = session.execute(
        select(Media.officer_badge, func.count(), func.coalesce(func.sum(Media.duration_seconds), 0.0))
        .where(in_period(Media.recorded_start, period), Media.officer_id.is_(None), Media.derived_from.is_(None),
               Media.officer_badge.is_not(None)).group_by(Media.officer_badge).order_by(Media.officer_badge)
    ).all()
    return [_officer_row(b, None, None, False, n, float(s or 0.0), docks.get(b), period)
            for b, n, s in rows if b not in known]


def _officer_row(badge: str, name: str | None, unit: str | None, registered: bool, n: int, seconds: float,
                 dock: tuple[int, datetime | None] | None, period: Period) -> dict:
    nd, last = dock or (0, None)
    return {"badge": badge, "name": name, "unit": unit, "registered": registered, "recordings": n,
            "hours": round_half_up(seconds / 3600, 2), "docks": nd, "last_dock": local_iso(last, period.tz)}


def _chart(key: str, rows: list[dict], label: str) -> Chart:
    top = sorted(rows, key=lambda r: -r["hours"])[:TOP_IN_CHART]
    return Chart(key, "barh", [r.get("name") or r[label] for r in top], {"hours": [r["hours"] for r in top]},
                 x_label="hours")


_DEVICE_COLUMNS = [Column("device"), Column("kind", translate=True), Column("unit"), Column("recordings", "int"),
                   Column("hours", "hours"), Column("docks", "int"), Column("last_dock")]
_OFFICER_COLUMNS = [Column("badge"), Column("name", label="officer_name"), Column("unit"),
                    Column("registered", "bool"), Column("recordings", "int"), Column("hours", "hours"),
                    Column("docks", "int"), Column("last_dock")]
