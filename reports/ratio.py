"""Officer-to-device ratio on one date: certified officers in post per recording device.

The bureau's annual report states "one audio/video recording set per 4 enforcement
officers"; here each unit is held to its own standard and the total to the standard
of the unit asked for (or the configured default).  Every officer and device the
catalog holds is listed as counted or excluded with the reason, so a figure can be
checked name by name.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from catalog.models import Device, DockSession, Officer
from reports.model import Chart, Column, Report, Table
from reports.periods import offset_text
from reports.numbers import round_half_up
from reports.scope import Scope, UnitInfo, load_scope, standard_of

TOTAL = "TOTAL"
_LEFT_STATUSES = ("revoked", "left")


@dataclass(frozen=True)
class RatioOptions:
    at: date
    unit: str | None = None
    standard: float | None = None
    kinds: tuple[str, ...] | None = None  # None: settings.reports.counted_device_kinds


# ----------------------------------------------------------------------------- who counts
def officer_exclusion(o: Officer, on: date) -> str | None:
    """None if the officer is a certified officer in post on `on`, else why not.

    A revocation or departure takes effect on status_changed_on: the officer is
    no longer counted from that day.  One with no recorded date is never counted.
    """
    if o.cert_no is None and o.certified_from is None:
        return "no_certificate"
    if o.certified_from is not None and on < o.certified_from:
        return "not_yet_certified"
    if o.certified_to is not None and on > o.certified_to:
        return "certificate_expired"
    if o.status in _LEFT_STATUSES and (o.status_changed_on is None or o.status_changed_on <= on):
        return o.status
    return None


def device_exclusion(d: Device, on: date, kinds: tuple[str, ...], first_docked: date | None) -> str | None:
    """None if the device is a counted recording device in service on `on`.

    A device with no in-service date (registered by a dock, not by an import) is
    taken to be in service from the day it was first docked.
    """
    if d.kind not in kinds:
        return "kind_not_counted"
    start = d.in_service_from or first_docked
    if start is None:
        return "no_service_date"
    if on < start:
        return "not_yet_in_service"
    if d.in_service_to is not None and on > d.in_service_to:
        return "out_of_service"
    return None


def _first_docks(session: Session, tz: timezone) -> dict[int, date]:
    rows = session.execute(
        select(DockSession.device_id, func.min(DockSession.started_at))
        .where(DockSession.device_id.is_not(None)).group_by(DockSession.device_id)
    ).all()
    # min() keeps the column's UTCDateTime type, so these are aware UTC instants.
    return {device_id: first.astimezone(tz).date() for device_id, first in rows if first is not None}


# ----------------------------------------------------------------------------- arithmetic
def ratio_row(unit: str | None, name: str | None, officers: int, devices: int, standard: float) -> dict[str, object]:
    """One line of the report.  `required` devices = officers / standard, rounded up.

    `officers_per_device` is rounded half up to 2 decimals (四舍五入: 34 / 16 = 2.125 -> 2.13),
    as the report is read; `officers_per_device_raw` keeps the unrounded quotient."""
    required = math.ceil(officers / standard - 1e-9) if officers else 0
    shortfall = max(0, required - devices)
    raw = officers / devices if devices else None
    return {
        "unit": unit, "name": name, "officers": officers, "devices": devices,
        "officers_per_device": round_half_up(raw, 2), "officers_per_device_raw": raw,
        "standard": standard, "required": required, "meets": shortfall == 0, "shortfall": shortfall,
    }


# ----------------------------------------------------------------------------- the report
def ratio_report(session: Session, settings: Settings, opts: RatioOptions) -> Report:
    tz = settings.tz
    kinds = tuple(opts.kinds or settings.reports.counted_device_kinds)
    scope = load_scope(session, opts.unit)
    officers = session.execute(select(Officer).order_by(Officer.badge)).scalars().all()
    devices = session.execute(select(Device).order_by(Device.serial)).scalars().all()
    first_docks = _first_docks(session, tz)

    off_in, off_out = _sort_officers([o for o in officers if scope.covers(o.unit_id)], opts.at, scope)
    dev_in, dev_out = _sort_devices([d for d in devices if scope.covers(d.unit_id)], opts.at, kinds,
                                    first_docks, scope)
    rows, sources = _unit_rows(scope, off_in, dev_in, settings, opts.standard)
    total = _total_row(scope, off_in, dev_in, settings, opts.standard)
    rows.append(total)

    statement = _statement(opts.at, tz, scope, kinds, total, sources, (off_in, off_out), (dev_in, dev_out))
    return Report(
        kind="ratio", statement=statement,
        tables=[
            Table("rows", _ROW_COLUMNS, rows),
            Table("officers", _OFFICER_COLUMNS, off_in, detail=True),
            Table("officers_excluded", _OFFICER_COLUMNS + [Column("reason", translate=True)], off_out, detail=True),
            Table("devices", _DEVICE_COLUMNS, dev_in, detail=True),
            Table("devices_excluded", _DEVICE_COLUMNS + [Column("reason", translate=True)], dev_out, detail=True),
        ],
        charts=[_chart(rows)],
    )


def _statement(at: date, tz: timezone, scope: Scope, kinds: tuple[str, ...], total: dict, sources: dict[str, dict],
               officers: tuple[list, list], devices: tuple[list, list]) -> dict[str, Any]:
    (off_in, off_out), (dev_in, dev_out) = officers, devices
    return {
        "report": "ratio",
        "at": at.isoformat(),
        "timezone": offset_text(tz),
        "scope": scope.describe(),
        "standard": {
            "total": total["standard"],
            "total_source": total["standard_source"],
            # Only units held to something other than the total's standard are named.
            "units_with_own_standard": {k: v for k, v in sources.items() if v["standard"] != total["standard"]},
        },
        "definitions": ["def_ratio_standard", "def_ratio_officers", "def_ratio_devices", "def_ratio_tree",
                        "def_ratio_rounding"],
        "counted": {
            "device_kinds": list(kinds),
            "officer_records": len(off_in) + len(off_out),
            "officers_counted": len(off_in),
            "officers_excluded": len(off_out),
            "device_records": len(dev_in) + len(dev_out),
            "devices_counted": len(dev_in),
            "devices_excluded": len(dev_out),
        },
    }


def _unit_key(u: UnitInfo | None) -> str | None:
    return u.code if u else None


def _sort_officers(officers: list[Officer], on: date, scope: Scope) -> tuple[list[dict], list[dict]]:
    counted, excluded = [], []
    for o in officers:
        u = scope.by_id(o.unit_id)
        row = {"badge": o.badge, "name": o.name, "unit": _unit_key(u), "cert_no": o.cert_no,
               "certified_from": _d(o.certified_from), "certified_to": _d(o.certified_to),
               "status": o.status, "status_changed_on": _d(o.status_changed_on)}
        reason = officer_exclusion(o, on)
        if reason is None:
            counted.append(row)
        else:
            excluded.append({**row, "reason": reason})
    return counted, excluded


def _sort_devices(devices: list[Device], on: date, kinds: tuple[str, ...], first_docks: dict[int, date],
                  scope: Scope) -> tuple[list[dict], list[dict]]:
    counted, excluded = [], []
    for d in devices:
        u = scope.by_id(d.unit_id)
        first = first_docks.get(d.id)
        row = {"serial": d.serial, "kind": d.kind, "unit": _unit_key(u), "model": d.model,
               "in_service_from": _d(d.in_service_from), "in_service_to": _d(d.in_service_to),
               "first_docked_on": _d(first)}
        reason = device_exclusion(d, on, kinds, first)
        if reason is None:
            counted.append(row)
        else:
            excluded.append({**row, "reason": reason})
    return counted, excluded


def _unit_rows(scope: Scope, officers: list[dict], devices: list[dict], settings: Settings,
               override: float | None) -> tuple[list[dict], dict[str, dict]]:
    """One row per unit in tree order (a parent before its children).  A parent's row counts its
    whole subtree (`subtotal: true`; its own records are in `own_officers`/`own_devices`)."""
    n_off: dict[str | None, int] = defaultdict(int)
    n_dev: dict[str | None, int] = defaultdict(int)
    for o in officers:
        n_off[o["unit"]] += 1
    for d in devices:
        n_dev[d["unit"]] += 1
    rows: list[dict] = []
    sources: dict[str, dict] = {}
    for u, level in scope.tree():
        sub = scope.subtree_codes(u.code)
        std, source, owner = standard_of(u, settings.reports, override, scope)
        row = ratio_row(u.code, u.name, sum(n_off[c] for c in sub), sum(n_dev[c] for c in sub), std)
        rows.append({**row, "parent": u.parent_code, "level": level, "subtotal": len(sub) > 1,
                     "own_officers": n_off[u.code], "own_devices": n_dev[u.code],
                     "standard_source": source, "standard_unit": owner})
        sources[u.code] = {"standard": std, "source": source, "unit": owner}
    if scope.includes_unassigned and (n_off[None] or n_dev[None]):
        std, source, owner = standard_of(None, settings.reports, override, scope)
        rows.append({**ratio_row(None, None, n_off[None], n_dev[None], std), "parent": None, "level": 0,
                     "subtotal": False, "own_officers": n_off[None], "own_devices": n_dev[None],
                     "standard_source": source, "standard_unit": owner})
        sources["(unassigned)"] = {"standard": std, "source": source, "unit": owner}
    return rows, sources


def _total_row(scope: Scope, officers: list[dict], devices: list[dict], settings: Settings,
               override: float | None) -> dict:
    root = next((u for u in scope.units if u.code == scope.root), None)
    name = root.name if root else None
    if root is None:  # a whole-catalog report: a catalog with one top unit is that unit's report
        tops = [u for u, level in scope.tree() if level == 0]
        root = tops[0] if len(tops) == 1 else None
    std, source, owner = standard_of(root, settings.reports, override, scope)
    return {**ratio_row(TOTAL, name, len(officers), len(devices), std), "parent": None, "level": None,
            "subtotal": True, "own_officers": None, "own_devices": None,
            "standard_source": source, "standard_unit": owner}


def _chart(rows: list[dict]) -> Chart:
    def label(r: dict) -> str:
        if r["unit"] == TOTAL:
            return "total"
        return "  " * (r["level"] or 0) + (r["name"] or r["unit"] or "unassigned")

    shown = [r for r in rows if r["officers_per_device"] is not None]  # units with no device have no ratio
    return Chart(
        key="chart_ratio", type="bar", categories=[label(r) for r in shown],
        series={"officers_per_device": [r["officers_per_device"] for r in shown]},
        reference=rows[-1]["standard"], reference_label="standard", y_label="officers_per_device",
        translate_categories=True,
    )


def _d(d: date | None) -> str | None:
    return d.isoformat() if d else None


_ROW_COLUMNS = [
    Column("unit"), Column("name", label="unit_name"), Column("parent", label="parent_unit"), Column("level", "int"),
    Column("subtotal", "bool"), Column("officers", "int"), Column("devices", "int"),
    Column("officers_per_device", "ratio"), Column("standard", "ratio"), Column("required", "int"),
    Column("meets", "bool"), Column("shortfall", "int"),
]
_OFFICER_COLUMNS = [
    Column("badge"), Column("name", label="officer_name"), Column("unit"), Column("cert_no"),
    Column("certified_from"), Column("certified_to"), Column("status", translate=True), Column("status_changed_on"),
]
_DEVICE_COLUMNS = [
    Column("serial"), Column("kind", translate=True), Column("unit"), Column("model"), Column("in_service_from"),
    Column("in_service_to"), Column("first_docked_on"),
]
