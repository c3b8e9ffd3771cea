"""Devices that are not docked often enough, and devices whose clocks are wrong.

A camera left in a drawer uploads nothing; a clock that drifts or was reset puts
footage at the wrong time and outside the inspections it shows.  Dock state is
judged from the dock sessions as of the report's as_of instant, so a report for
a past year reads the same later.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.models import Device, DockSession
from reports.context import Context
from reports.numbers import round_half_up
from reports.periods import in_period, local_iso, local_today
from reports.ratio import device_exclusion


def undocked_devices(session: Session, ctx: Context) -> tuple[list[dict[str, Any]], int]:
    """Devices of the counted kinds in service at as_of whose last dock before it is too old."""
    as_of = ctx.as_of
    on = ctx.period.last if ctx.period.end_utc <= ctx.now else local_today(ctx.tz, ctx.now)
    docks = {r.device_id: (r.first, r.last) for r in session.execute(
        select(DockSession.device_id, func.min(DockSession.started_at).label("first"),
               func.max(DockSession.started_at).label("last"))
        .where(DockSession.device_id.is_not(None), DockSession.started_at < as_of).group_by(DockSession.device_id)
    ).all()}
    out, checked = [], 0
    for d in session.execute(select(Device).order_by(Device.serial)).scalars():
        if not ctx.scope.covers(d.unit_id):
            continue
        first, last = docks.get(d.id, (None, None))
        first_day = first.astimezone(ctx.tz).date() if first else None
        if device_exclusion(d, on, ctx.rules.kinds, first_day) is not None:
            continue
        checked += 1
        if last is None and d.last_docked_at is not None and d.last_docked_at < as_of:
            last = d.last_docked_at  # docked before dock sessions were kept
        if last is None or as_of - last > ctx.rules.undocked:
            out.append({"device": d.serial, "kind": d.kind, "unit": ctx.unit_of_device(d.id),
                        "never_docked": last is None, "last_docked_at": local_iso(last, ctx.tz),
                        "days_since_dock": round_half_up((as_of - last).total_seconds() / 86400, 1) if last else None})
    return out, checked


@dataclass(frozen=True)
class _Reading:
    clock_offset_seconds: float
    device_clock_text: str | None
    station_clock_at_read: datetime | None


def clock_errors(session: Session, ctx: Context) -> list[dict[str, Any]]:
    """Devices with a dock in the period whose measured offset exceeds the threshold, worst first."""
    rows = session.execute(
        select(DockSession.device_id, DockSession.clock_offset_seconds, DockSession.device_clock_text,
               DockSession.station_clock_at_read)
        .where(DockSession.device_id.is_not(None), DockSession.clock_offset_seconds.is_not(None),
               in_period(DockSession.started_at, ctx.period))
    ).all()
    per: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        if ctx.scope.covers(ctx.devices.get(r.device_id, {}).get("unit_id")):
            per[r.device_id].append(r)
    out = []
    for device_id, docks in per.items():
        over = [r for r in docks if abs(r.clock_offset_seconds) > ctx.rules.clock_seconds]
        if over:
            worst = max(over, key=lambda r: abs(r.clock_offset_seconds))
            out.append(_row(ctx, device_id, "dock_sessions", len(docks), len(over), worst))
    out.extend(_from_register(session, ctx, set(per)))
    out.sort(key=lambda x: (-abs(x["worst_offset_seconds"]), x["device"]))
    return out


def _from_register(session: Session, ctx: Context, measured: set[int]) -> list[dict[str, Any]]:
    """Devices with no measured dock in the period: the last offset the register holds."""
    rows = session.execute(
        select(Device.id, Device.unit_id, Device.last_clock_offset_seconds, Device.last_docked_at)
        .where(Device.last_clock_offset_seconds.is_not(None))
    ).all()
    return [_row(ctx, r.id, "devices.last_clock_offset_seconds", 0, 0,
                 _Reading(r.last_clock_offset_seconds, None, r.last_docked_at))
            for r in rows
            if r.id not in measured and ctx.scope.covers(r.unit_id)
            and abs(r.last_clock_offset_seconds) > ctx.rules.clock_seconds]


def _row(ctx: Context, device_id: int, source: str, measured: int, over: int, worst: Any) -> dict[str, Any]:
    return {
        "device": ctx.serial(device_id), "unit": ctx.unit_of_device(device_id), "source": source,
        "docks_measured": measured, "docks_over": over, "worst_offset_seconds": round_half_up(worst.clock_offset_seconds, 1),
        "device_clock_text": worst.device_clock_text,
        "station_clock_at_read": local_iso(worst.station_clock_at_read, ctx.tz),
    }
