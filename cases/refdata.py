"""Reference data imports: units, officers, devices, device assignments and cases.

Files are CSV (UTF-8, optional BOM, header row) or JSON (a list of objects keyed by the
same column names).  Every row is checked before anything is written; a file with any
bad row changes nothing and every problem is reported with its line number.  Rows are
upserted on their natural key, so importing the same file twice changes nothing, and
re-importing an updated case (new end time, closed) updates it.  Linking re-runs for
what an import may change (cases, assignments, officers) in the same transaction.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import CustodyError
from core.settings import Settings
from cases import linking
from catalog import custody_log
from catalog.duty import enforce_duty, station_today
from catalog.models import Case, CaseOfficer, Device, DeviceAssignment, Media, Officer, Unit

KINDS = ("units", "officers", "devices", "assignments", "cases")

# Columns per import; the first is the natural key, `required` must be non-blank.
COLUMNS: dict[str, tuple[str, ...]] = {
    "units": ("code", "name", "parent_code", "standard_officers_per_device"),
    "officers": ("badge", "cert_no", "name", "unit_code", "certified_from", "certified_to", "status",
                 "status_changed_on"),
    "devices": ("serial", "kind", "unit_code", "vendor", "model", "in_service_from", "in_service_to"),
    "assignments": ("device_serial", "officer_badge", "valid_from", "valid_to"),
    "cases": ("case_no", "kind", "enterprise", "address", "unit_code", "officers", "start", "end",
              "hazards_found", "status", "closed_at", "parent_case_no", "follow_up_closed_at", "record_id",
              "follows_up"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "units": ("code",),
    "officers": ("badge",),
    "devices": ("serial",),
    "assignments": ("device_serial", "officer_badge", "valid_from"),
    "cases": ("case_no", "officers", "start"),
}

CASE_KINDS = {"inspection": "inspection", "检查": "inspection", "执法检查": "inspection",
              "penalty": "penalty", "处罚": "penalty", "行政处罚": "penalty",
              "coercive": "coercive", "强制": "coercive", "行政强制": "coercive", "强制措施": "coercive"}
DEVICE_KINDS = {"camera": "camera", "执法记录仪": "camera", "terminal": "terminal", "移动执法终端": "terminal",
                "other": "other", "其他": "other"}
OFFICER_STATUSES = {"active": "active", "在岗": "active", "revoked": "revoked", "吊销": "revoked",
                    "left": "left", "离岗": "left", "unknown": "unknown"}
TRUE_WORDS = {"1", "true", "yes", "y", "是", "有"}
FALSE_WORDS = {"0", "false", "no", "n", "否", "无"}
OFFICER_SPLIT = re.compile(r"[;,，；、|\s]+")
MIN_CASE_OFFICERS = 2  # 行政处罚法 Art. 42: enforcement by at least two officers


# --------------------------------------------------------------------------- results & errors
@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportRejected(CustodyError):
    """The file has bad rows; nothing was imported."""

    def __init__(self, path: str, errors: list[RowError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{path}: {len(errors)} problem(s), nothing imported\n{lines}")


@dataclass
class ImportReport:
    kind: str
    file: str
    sha256: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0  # open-ended assignments closed by a later one for the same device
    relinked: int = 0
    notes: list[str] = field(default_factory=list)
    # Rows imported with a warning (e.g. a case with fewer than two officers): "line N: ...".
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file, "sha256": self.sha256, "rows": self.rows,
                "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "closed": self.closed, "relinked": self.relinked, "notes": self.notes,
                "warnings": self.warnings}


class _RowFault(Exception):
    """One bad value in one row (turned into a RowError with the row's line)."""


Row = tuple[int, dict[str, Any]]  # (line number, {column: value}) — only columns the file has


# --------------------------------------------------------------------------- reading files
def read_rows(raw: bytes, suffix: str, kind: str) -> tuple[list[Row], list[RowError]]:
    """Rows of a CSV or JSON file with the line each starts on; header problems as errors."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [], [RowError(raw[: e.start].count(b"\n") + 1, "file is not UTF-8 text")]
    is_json = suffix.lower() == ".json" or text.lstrip().startswith("[")
    rows, errors = _json_rows(text) if is_json else _csv_rows(text)
    allowed = set(COLUMNS[kind])
    # CSV rows share the header: name its unknown columns once, on line 1.
    checked = rows if is_json else [(1, rows[0][1])] if rows else []
    for line, row in checked:
        unknown = sorted(k for k in row if k not in allowed)
        if unknown:
            errors.append(RowError(line, f"unknown column(s) {', '.join(unknown)}; expected {', '.join(COLUMNS[kind])}"))
    return rows, errors


def _csv_rows(text: str) -> tuple[list[Row], list[RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], [RowError(1, "file is empty (a header row is needed)")]
    except csv.Error as e:
        return [], [RowError(1, f"unreadable CSV header: {e}")]
    errors: list[RowError] = []
    if len(set(header)) != len(header):
        errors.append(RowError(1, "a column name appears twice in the header"))
    rows: list[Row] = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append(RowError(start, f"unreadable CSV: {e}"))
            break
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            errors.append(RowError(start, f"{len(cells)} fields but the header has {len(header)}"))
            continue
        rows.append((start, dict(zip(header, cells, strict=True))))
    return rows, errors


def _json_rows(text: str) -> tuple[list[Row], list[RowError]]:
    """Parse a JSON array element by element so each object keeps its line number."""
    dec = json.JSONDecoder()
    ws = re.compile(r"\s*")
    rows: list[Row] = []
    i = ws.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", i):
        return [], [RowError(text.count("\n", 0, i) + 1, "a JSON import must be a list of objects")]
    i = ws.match(text, i + 1).end()  # type: ignore[union-attr]
    while i < len(text) and text[i] != "]":
        line = text.count("\n", 0, i) + 1
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            return rows, [RowError(e.lineno, f"invalid JSON: {e.msg}")]
        if not isinstance(obj, dict):
            return rows, [RowError(line, "each item of the list must be an object")]
        rows.append((line, obj))
        i = ws.match(text, end).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] == ",":
            i = ws.match(text, i + 1).end()  # type: ignore[union-attr]
        elif i < len(text) and text[i] != "]":
            return rows, [RowError(text.count("\n", 0, i) + 1, "invalid JSON: expected ',' or ']'")]
    if i >= len(text) or text[i:].strip() != "]":
        return rows, [RowError(text.count("\n", 0, i) + 1, "invalid JSON: the list is not closed by ']'")]
    return rows, []


# --------------------------------------------------------------------------- value parsing
def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool | dict | list):
        raise _RowFault(f"expected text, got {json.dumps(v, ensure_ascii=False)}")
    s = str(v).strip()
    return s or None


def _date(v: Any, col: str) -> date | None:
    s = _text(v)
    if s is None:
        return None
    try:
        return date.fromisoformat(s.replace("/", "-"))
    except ValueError:
        raise _RowFault(f"{col}: {s!r} is not a date like 2026-11-28") from None


def _instant(v: Any, col: str, tz: tzinfo) -> datetime | None:
    """ISO 8601; a time without an offset is the station's local time (UTC+08:00)."""
    s = _text(v)
    if s is None:
        return None
    try:
        dt = datetime.fromisoformat(s.replace("/", "-"))
    except ValueError:
        raise _RowFault(f"{col}: {s!r} is not a time like 2026-11-28 09:30 or 2026-11-28T09:30:00+08:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(timezone.utc)


def _number(v: Any, col: str) -> float | None:
    s = _text(v)
    if s is None:
        return None
    try:
        x = float(s)
    except ValueError:
        raise _RowFault(f"{col}: {s!r} is not a number") from None
    if x <= 0:
        raise _RowFault(f"{col}: must be greater than 0")
    return x


def _bool(v: Any, col: str) -> bool | None:
    if isinstance(v, bool):
        return v
    s = _text(v)
    if s is None:
        return None
    if s.lower() in TRUE_WORDS:
        return True
    if s.lower() in FALSE_WORDS:
        return False
    raise _RowFault(f"{col}: {s!r} is not yes/no (true/false, 1/0, 是/否)")


def _choice(v: Any, col: str, allowed: dict[str, str]) -> str | None:
    s = _text(v)
    if s is None:
        return None
    key = s.lower()
    if key not in allowed:
        raise _RowFault(f"{col}: {s!r} is not one of {', '.join(sorted(set(allowed.values())))}")
    return allowed[key]


def _badges(v: Any) -> list[str]:
    items = v if isinstance(v, list) else OFFICER_SPLIT.split(_text(v) or "")
    out: list[str] = []
    for item in items:
        b = _text(item)
        if b and b not in out:
            out.append(b)
    return out


# --------------------------------------------------------------------------- lookups
class _Lookup:
    """Catalog rows by natural key, loaded once per import."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[type, str], dict[str, Any]] = {}

    def get(self, model: type, col: str, keys: set[str]) -> dict[str, Any]:
        cache = self._cache.setdefault((model, col), {})
        missing = [k for k in keys if k not in cache]
        attr = getattr(model, col)
        for i in range(0, len(missing), 500):
            chunk = missing[i:i + 500]
            for obj in self.session.execute(select(model).where(attr.in_(chunk))).scalars():
                cache[getattr(obj, col)] = obj
        return {k: cache[k] for k in keys if k in cache}


def _keys(rows: list[Row], col: str, split: bool = False) -> set[str]:
    out: set[str] = set()
    for _, r in rows:
        try:
            out.update(_badges(r.get(col)) if split else filter(None, [_text(r.get(col))]))
        except _RowFault:
            pass
    return out


def _set(obj: Any, values: dict[str, Any]) -> bool:
    """Assign values; True when anything changed."""
    changed = False
    for k, v in values.items():
        if getattr(obj, k) != v:
            setattr(obj, k, v)
            changed = True
    return changed


def _present(row: dict[str, Any], mapping: dict[str, tuple[str, Callable[[Any], Any]]],
             *checks: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Parse only the columns the file has (an absent column leaves the stored value alone),
    then run `checks`; every problem in the row is reported at once."""
    vals: dict[str, Any] = {}
    faults: list[str] = []
    for col, (attr, fn) in mapping.items():
        if col in row:
            try:
                vals[attr] = fn(row[col])
            except _RowFault as e:
                faults.append(str(e))
    for check in checks:
        try:
            vals.update(check())
        except _RowFault as e:
            faults.append(str(e))
    if faults:
        raise _RowFault("; ".join(faults))
    return vals


def _check_required(kind: str, row: dict[str, Any], cols: tuple[str, ...] | None = None) -> None:
    for col in cols or REQUIRED[kind]:
        val = row.get(col)
        if val is None or (not isinstance(val, list) and not str(val).strip()) or val == []:
            raise _RowFault(f"{col} is required")


def _duplicate_guard(seen: dict[str, int], key: str, line: int, what: str) -> None:
    if key in seen:
        raise _RowFault(f"{what} {key!r} appears twice in this file (also line {seen[key]})")
    seen[key] = line


# --------------------------------------------------------------------------- per kind
Planned = tuple[int, dict[str, Any]]  # (line, parsed values incl. references resolved)


def _plan_units(session: Session, rows: list[Row], settings: Settings, errors: list[RowError]) -> list[Planned]:
    seen: dict[str, int] = {}
    out: list[Planned] = []
    for line, r in rows:
        try:
            _check_required("units", r)
            code = _text(r["code"]) or ""
            _duplicate_guard(seen, code, line, "unit")
            vals = _present(r, {"name": ("name", _text), "parent_code": ("parent_code", _text),
                                "standard_officers_per_device": ("standard_officers_per_device",
                                                                 lambda v: _number(v, "standard_officers_per_device"))})
            if vals.get("parent_code") == code:
                raise _RowFault("a unit cannot be its own parent")
            out.append((line, {"code": code, **vals}))
        except _RowFault as e:
            errors.append(RowError(line, str(e)))
    _check_unit_tree(session, out, errors)
    return out


def _check_unit_tree(session: Session, plans: list[Planned], errors: list[RowError]) -> None:
    """A parent must be a unit (stored, or in this file) and the units must form a tree (no cycle)."""
    parent_of = {u.code: u.parent_code for u in session.execute(select(Unit)).scalars()}
    for _, p in plans:
        parent_of[p["code"]] = p.get("parent_code", parent_of.get(p["code"]))
    for line, p in plans:
        parent = p.get("parent_code")
        if not parent:
            continue
        if parent not in parent_of:
            errors.append(RowError(line, f"parent_code {parent!r} is not a known unit (import it first or in the same file)"))
            continue
        seen, at = {p["code"]}, parent
        while at:
            if at in seen:
                errors.append(RowError(line, f"parent_code {parent!r} makes a cycle: a unit cannot be under itself"))
                break
            seen.add(at)
            at = parent_of.get(at)


def _upsert_by_key(session: Session, model: type, key: str, plans: list[Planned], rep: ImportReport,
                   **new_defaults: Any) -> None:
    """Insert rows whose key is new; update the others only where a value changed."""
    existing = _Lookup(session).get(model, key, {p[key] for _, p in plans})
    for _, p in plans:
        row = existing.get(p[key])
        if row is None:
            session.add(model(**new_defaults, **p))
            rep.created += 1
        elif _set(row, {k: v for k, v in p.items() if k != key}):
            rep.updated += 1
        else:
            rep.unchanged += 1


def _apply_units(session: Session, plans: list[Planned], rep: ImportReport) -> None:
    _upsert_by_key(session, Unit, "code", plans, rep)


def _apply_officers(session: Session, plans: list[Planned], rep: ImportReport) -> None:
    _upsert_by_key(session, Officer, "badge", plans, rep, source="import")


def _apply_devices(session: Session, plans: list[Planned], rep: ImportReport) -> None:
    _upsert_by_key(session, Device, "serial", plans, rep, source="import")


def _unit_ref(lookup: _Lookup, r: dict[str, Any]) -> dict[str, Any]:
    if "unit_code" not in r:
        return {}
    code = _text(r["unit_code"])
    if code is None:
        return {"unit_id": None}
    unit = lookup.get(Unit, "code", {code}).get(code)
    if unit is None:
        raise _RowFault(f"unit_code {code!r} is not a known unit (import units first)")
    return {"unit_id": unit.id}


def _plan_officers(session: Session, rows: list[Row], settings: Settings, errors: list[RowError]) -> list[Planned]:
    lookup = _Lookup(session)
    certs = lookup.get(Officer, "cert_no", _keys(rows, "cert_no"))
    seen: dict[str, int] = {}
    seen_cert: dict[str, int] = {}
    out: list[Planned] = []
    for line, r in rows:
        try:
            _check_required("officers", r)
            badge = _text(r["badge"]) or ""
            _duplicate_guard(seen, badge, line, "officer badge")
            vals = _present(r, {
                "cert_no": ("cert_no", _text), "name": ("name", _text),
                "certified_from": ("certified_from", lambda v: _date(v, "certified_from")),
                "certified_to": ("certified_to", lambda v: _date(v, "certified_to")),
                "status": ("status", lambda v: _choice(v, "status", OFFICER_STATUSES) or "active"),
                "status_changed_on": ("status_changed_on", lambda v: _date(v, "status_changed_on")),
            }, lambda: _unit_ref(lookup, r))
            if vals.get("certified_from") and vals.get("certified_to") and vals["certified_to"] < vals["certified_from"]:
                raise _RowFault("certified_to is before certified_from")
            cert = vals.get("cert_no")
            if cert:
                _duplicate_guard(seen_cert, cert, line, "certificate number")
                holder = certs.get(cert)
                if holder is not None and holder.badge != badge:
                    raise _RowFault(f"certificate {cert!r} already belongs to officer {holder.badge}")
            out.append((line, {"badge": badge, **vals}))
        except _RowFault as e:
            errors.append(RowError(line, str(e)))
    return out


def _plan_devices(session: Session, rows: list[Row], settings: Settings, errors: list[RowError]) -> list[Planned]:
    lookup = _Lookup(session)
    seen: dict[str, int] = {}
    out: list[Planned] = []
    for line, r in rows:
        try:
            _check_required("devices", r)
            serial = _text(r["serial"]) or ""
            _duplicate_guard(seen, serial, line, "device serial")
            vals = _present(r, {
                "kind": ("kind", lambda v: _choice(v, "kind", DEVICE_KINDS) or "camera"),
                "vendor": ("vendor", _text), "model": ("model", _text),
                "in_service_from": ("in_service_from", lambda v: _date(v, "in_service_from")),
                "in_service_to": ("in_service_to", lambda v: _date(v, "in_service_to")),
            }, lambda: _unit_ref(lookup, r))
            if vals.get("in_service_from") and vals.get("in_service_to") and vals["in_service_to"] < vals["in_service_from"]:
                raise _RowFault("in_service_to is before in_service_from")
            out.append((line, {"serial": serial, **vals}))
        except _RowFault as e:
            errors.append(RowError(line, str(e)))
    return out


def _overlaps(a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None) -> bool:
    far = datetime.max.replace(tzinfo=timezone.utc)
    return a_from < (b_to or far) and b_from < (a_to or far)


def _fmt(dt: datetime | None, tz: tzinfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M") if dt else "open end"


def _plan_assignments(session: Session, rows: list[Row], settings: Settings,
                      errors: list[RowError]) -> list[Planned]:
    tz = settings.tz
    lookup = _Lookup(session)
    devices = lookup.get(Device, "serial", _keys(rows, "device_serial"))
    officers = lookup.get(Officer, "badge", _keys(rows, "officer_badge"))
    out: list[Planned] = []
    for line, r in rows:
        try:
            _check_required("assignments", r)
            serial, badge = _text(r["device_serial"]) or "", _text(r["officer_badge"]) or ""
            if serial not in devices:
                raise _RowFault(f"device_serial {serial!r} is not a known device (import devices first)")
            if badge not in officers:
                raise _RowFault(f"officer_badge {badge!r} is not a known officer (import officers first)")
            start = _instant(r["valid_from"], "valid_from", tz)
            end = _instant(r.get("valid_to"), "valid_to", tz)
            assert start is not None  # required
            if end is not None and end <= start:
                raise _RowFault("valid_to must be after valid_from")
            out.append((line, {"device": devices[serial], "officer": officers[badge], "valid_from": start,
                               "valid_to": end, "serial": serial, "badge": badge}))
        except _RowFault as e:
            errors.append(RowError(line, str(e)))
    _check_assignment_overlaps(session, out, tz, errors)
    return out


def _check_assignment_overlaps(session: Session, plans: list[Planned], tz: tzinfo, errors: list[RowError]) -> None:
    """A device is carried by one officer at a time.  A stored open-ended assignment followed by
    a new open-ended one is a hand-over: it is closed on apply, so it is no overlap here."""
    by_device: dict[int, list[Planned]] = {}
    for pl in plans:
        by_device.setdefault(pl[1]["device"].id, []).append(pl)
    for dev_id, group in by_device.items():
        stored = session.execute(select(DeviceAssignment).where(DeviceAssignment.device_id == dev_id)).scalars().all()
        in_file = {(p["officer"].id, p["valid_from"]) for _, p in group}
        for line, p in group:
            for other_line, o in group:
                if other_line < line and _overlaps(p["valid_from"], p["valid_to"], o["valid_from"], o["valid_to"]):
                    errors.append(RowError(line, f"device {p['serial']} overlaps line {other_line} "
                                                 f"({o['badge']} {_fmt(o['valid_from'], tz)} – {_fmt(o['valid_to'], tz)})"))
            for a in stored:
                if (a.officer_id, a.valid_from) in in_file:
                    continue  # the same assignment, updated by this file
                if a.valid_to is None and p["valid_to"] is None and a.valid_from < p["valid_from"]:
                    continue  # a hand-over: the stored open-ended one is closed where this one starts
                if _overlaps(p["valid_from"], p["valid_to"], a.valid_from, a.valid_to):
                    who = session.get(Officer, a.officer_id)
                    errors.append(RowError(line, f"device {p['serial']} is already assigned to "
                                                 f"{who.badge if who else a.officer_id} "
                                                 f"{_fmt(a.valid_from, tz)} – {_fmt(a.valid_to, tz)}"))


def _apply_assignments(session: Session, plans: list[Planned], rep: ImportReport) -> list[tuple[int, datetime, datetime | None]]:
    """Upsert on (device, officer, valid_from); returns the device time ranges that changed."""
    touched: list[tuple[int, datetime, datetime | None]] = []
    for _, p in plans:
        dev, off = p["device"], p["officer"]
        row = session.execute(select(DeviceAssignment).where(
            DeviceAssignment.device_id == dev.id, DeviceAssignment.officer_id == off.id,
            DeviceAssignment.valid_from == p["valid_from"])).scalar_one_or_none()
        if row is None:
            if p["valid_to"] is None:
                _close_open_assignments(session, dev.id, p["valid_from"], rep)
            session.add(DeviceAssignment(device_id=dev.id, officer_id=off.id, valid_from=p["valid_from"],
                                         valid_to=p["valid_to"]))
            rep.created += 1
            touched.append((dev.id, p["valid_from"], p["valid_to"]))
        elif row.valid_to != p["valid_to"]:
            old_to, row.valid_to = row.valid_to, p["valid_to"]
            rep.updated += 1
            # Recordings between the old and the new end change hands: relink up to the later one.
            hi = None if old_to is None or p["valid_to"] is None else max(old_to, p["valid_to"])
            touched.append((dev.id, p["valid_from"], hi))
        else:
            rep.unchanged += 1
        session.flush()
    return touched


def _close_open_assignments(session: Session, device_id: int, at: datetime, rep: ImportReport) -> None:
    for a in session.execute(select(DeviceAssignment).where(
            DeviceAssignment.device_id == device_id, DeviceAssignment.valid_to.is_(None),
            DeviceAssignment.valid_from < at)).scalars():
        a.valid_to = at
        rep.closed += 1
        rep.notes.append(f"closed the open assignment of device id {device_id} (from {a.valid_from.isoformat()}) "
                         f"at {at.isoformat()} where the next one starts")


def _plan_cases(session: Session, rows: list[Row], settings: Settings, errors: list[RowError],
                warnings: list[RowError] | None = None) -> list[Planned]:
    tz = settings.tz
    lookup = _Lookup(session)
    officers = lookup.get(Officer, "badge", _keys(rows, "officers", split=True))
    in_file = {k for k in _keys(rows, "case_no")}
    parents = lookup.get(Case, "case_no", _keys(rows, "parent_case_no"))
    known = lookup.get(Case, "case_no", in_file)
    by_record = lookup.get(Case, "record_id", _keys(rows, "record_id"))
    seen: dict[str, int] = {}
    seen_record: dict[str, int] = {}
    seen_stored: dict[int, int] = {}  # stored case id -> the line updating it
    out: list[Planned] = []
    for line, r in rows:
        try:
            # A case already in the catalog may be updated by a row carrying only what changed
            # (e.g. the end time and closed_at entered days later); a new one needs the rest.
            _check_required("cases", r, ("case_no",))
            case_no = _text(r["case_no"]) or ""
            record_id = _text(r.get("record_id"))
            if record_id:
                _duplicate_guard(seen_record, record_id, line, "record_id")
            stored = _case_by_keys(case_no, record_id, known, by_record)
            if stored is None:
                _check_required("cases", r)
            elif stored.id in seen_stored and seen_stored[stored.id] != line:
                raise _RowFault(f"updates case {stored.case_no} (record_id {stored.record_id}) like line "
                                f"{seen_stored[stored.id]} does")
            else:
                seen_stored[stored.id] = line
            _duplicate_guard(seen, case_no, line, "case")
            badges = _badges(r["officers"]) if "officers" in r else None
            parent = _text(r.get("parent_case_no"))
            vals = _present(r, {
                "kind": ("kind", lambda v: _choice(v, "kind", CASE_KINDS) or "inspection"),
                "enterprise": ("enterprise", _text), "address": ("address", _text),
                "start": ("start", lambda v: _instant(v, "start", tz)),
                "end": ("end", lambda v: _instant(v, "end", tz)),
                "hazards_found": ("hazards_found", lambda v: bool(_bool(v, "hazards_found"))),
                "status": ("status", lambda v: _text(v) or "open"),
                "closed_at": ("closed_at", lambda v: _instant(v, "closed_at", tz)),
                "follow_up_closed_at": ("follow_up_closed_at", lambda v: _instant(v, "follow_up_closed_at", tz)),
                "record_id": ("record_id", _text), "follows_up": ("follows_up", _text),
            }, lambda: _unit_ref(lookup, r),
                lambda: _case_officers_check(badges, officers) if badges is not None else {},
                lambda: _parent_check(case_no, parent, parents, in_file))
            if vals.get("follows_up") is not None and vals["follows_up"] in (case_no, record_id):
                raise _RowFault("a case cannot follow itself up (follows_up names its own case_no or record_id)")
            start = vals.get("start", stored.start if stored is not None else None)
            end = vals.get("end", stored.end if stored is not None else None)
            if start and end and _aware(end) < _aware(start):
                raise _RowFault("end is before start")
            if badges is not None:
                vals["fewer_than_two_officers"] = len(badges) < MIN_CASE_OFFICERS
                if len(badges) < MIN_CASE_OFFICERS and warnings is not None:
                    warnings.append(RowError(line, f"case {case_no} has {len(badges)} officer(s); imported and marked "
                                                   "as a two-officer-rule violation (行政处罚法 Art. 42: 少于两名执法人员, "
                                                   "已导入并标记)"))
            out.append((line, {"case_no": case_no, "stored_id": stored.id if stored is not None else None,
                               "vals": vals, "parent": parent, "has_parent": "parent_case_no" in r,
                               "officer_ids": None if badges is None else [officers[b].id for b in badges]}))
        except _RowFault as e:
            errors.append(RowError(line, str(e)))
    return out


def _case_by_keys(case_no: str, record_id: str | None, by_no: dict[str, Case],
                  by_record: dict[str, Case]) -> Case | None:
    """The stored case a row updates: by record_id when the row has one that is known (the
    enforcement system's id survives a corrected document number), else by case_no."""
    if record_id and record_id in by_record:
        case = by_record[record_id]
        other = by_no.get(case_no)
        if other is not None and other.id != case.id:
            raise _RowFault(f"record_id {record_id!r} belongs to case {case.case_no} but case_no {case_no!r} "
                            f"is another case (record_id {other.record_id!r})")
        return case
    case = by_no.get(case_no)
    if case is not None and record_id and case.record_id and case.record_id != record_id:
        raise _RowFault(f"case {case_no!r} already has record_id {case.record_id!r}, not {record_id!r}")
    return case


def _aware(t: datetime) -> datetime:
    """SQLite hands back naive UTC; imported values are aware: compare like with like."""
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _case_officers_check(badges: list[str], officers: dict[str, Officer]) -> dict[str, Any]:
    unknown = [b for b in badges if b not in officers]
    if unknown:
        raise _RowFault(f"officer(s) {', '.join(unknown)} not known (import officers first)")
    if not badges:
        raise _RowFault("officers is required")
    return {}


def _parent_check(case_no: str, parent: str | None, known: dict[str, Case], in_file: set[str]) -> dict[str, Any]:
    if parent == case_no:
        raise _RowFault("a case cannot reference itself as parent_case_no")
    if parent and parent not in known and parent not in in_file:
        raise _RowFault(f"parent_case_no {parent!r} is not a known case")
    return {}


@dataclass
class _CaseChange:
    case: Case
    old_window: tuple[datetime | None, datetime | None]


def _apply_cases(session: Session, plans: list[Planned], rep: ImportReport) -> list[_CaseChange]:
    existing = _Lookup(session).get(Case, "case_no", {p["case_no"] for _, p in plans})
    # Rows matched by record_id may carry a corrected case number: rename before anything else.
    for _, p in plans:
        if p["stored_id"] is not None and p["case_no"] not in existing:
            case = session.get(Case, p["stored_id"])
            assert case is not None
            existing.pop(case.case_no, None)
            rep.notes.append(f"case {case.case_no} (record_id {case.record_id}) renamed to {p['case_no']}")
            case.case_no = p["case_no"]
            existing[p["case_no"]] = case
    session.flush()
    changes: dict[str, _CaseChange] = {}
    for _, p in plans:
        case = existing.get(p["case_no"])
        if case is None:
            case = existing[p["case_no"]] = Case(case_no=p["case_no"], **p["vals"])
            session.add(case)
            session.flush()
            changes[case.case_no] = _CaseChange(case, (None, None))
            rep.created += 1
        old = (case.start, case.end)
        changed = _set(case, p["vals"])
        if p["officer_ids"] is not None:  # absent column: the case keeps its officers
            changed = _set_case_officers(session, case, p["officer_ids"]) or changed
        if changed and case.case_no not in changes:
            changes[case.case_no] = _CaseChange(case, old)
    # Parents after every case exists: a parent may come later in the same file.
    for _, p in plans:
        if p["has_parent"] and _set_parent(session, existing, existing[p["case_no"]], p["parent"]):
            changes.setdefault(p["case_no"], _CaseChange(existing[p["case_no"]], (None, None)))
    updated = len(changes) - rep.created
    rep.updated += updated
    rep.unchanged += len(plans) - rep.created - updated
    session.flush()
    return list(changes.values())


def _set_parent(session: Session, known: dict[str, Case], case: Case, parent_no: str | None) -> bool:
    parent = None
    if parent_no:
        parent = known.get(parent_no) or session.execute(select(Case).where(Case.case_no == parent_no)).scalar_one()
    pid = parent.id if parent else None
    if case.parent_case_id == pid:
        return False
    case.parent_case_id = pid
    return True


def _set_case_officers(session: Session, case: Case, officer_ids: list[int]) -> bool:
    current = set(session.execute(select(CaseOfficer.officer_id).where(CaseOfficer.case_id == case.id)).scalars())
    wanted = set(officer_ids)
    if current == wanted:
        return False
    for oid in current - wanted:
        session.delete(session.get(CaseOfficer, (case.id, oid)))
    for oid in wanted - current:
        session.add(CaseOfficer(case_id=case.id, officer_id=oid))
    session.flush()
    return True


# --------------------------------------------------------------------------- relinking after imports
def _relink_after(session: Session, settings: Settings, kind: str, plans: list[Planned], applied: Any) -> int:
    if kind == "cases":
        ids: set[int] = set()
        for ch in applied:
            ids |= linking.media_for_case(session, settings, ch.case, extra_window=ch.old_window)
        return linking.relink_media_ids(session, settings, sorted(ids))
    if kind == "assignments":
        ids = set()
        for device_id, start, end in applied:
            ids |= linking.media_for_device(session, device_id, start, end)
        return linking.relink_media_ids(session, settings, sorted(ids))
    if kind == "officers":
        badges = [p["badge"] for _, p in plans]
        ids = set()
        for i in range(0, len(badges), 500):
            ids |= set(session.execute(select(Media.id).where(
                Media.officer_id.is_(None), Media.officer_badge.in_(badges[i:i + 500]))).scalars())
        return linking.relink_media_ids(session, settings, sorted(ids))
    return 0


# --------------------------------------------------------------------------- entry point
_PLANNERS = {"units": _plan_units, "officers": _plan_officers, "devices": _plan_devices,
             "assignments": _plan_assignments, "cases": _plan_cases}
_APPLIERS: dict[str, Callable[[Session, list[Planned], ImportReport], Any]] = {
    "units": _apply_units, "officers": _apply_officers, "devices": _apply_devices,
    "assignments": _apply_assignments, "cases": _apply_cases}


def import_file(session: Session, settings: Settings, kind: str, path: Path, actor: str) -> ImportReport:
    """Check every row, then upsert them all in the caller's transaction (raises ImportRejected
    before writing anything when any row is bad) and relink what the change affects."""
    if kind not in KINDS:
        raise CustodyError(f"unknown import {kind!r}; choose one of {', '.join(KINDS)}")
    if not path.is_file():
        raise CustodyError(f"{path}: no such file")
    return import_bytes(session, settings, kind, path.read_bytes(), str(path), actor, suffix=path.suffix)


def import_bytes(session: Session, settings: Settings, kind: str, raw: bytes, source: str, actor: str,
                 suffix: str = ".json") -> ImportReport:
    """`import_file` for data that is not a file (the case push API, issue 15): the same rows, checks
    and all-or-nothing rule; `source` names where it came from in the report and the custody log."""
    if kind not in KINDS:
        raise CustodyError(f"unknown import {kind!r}; choose one of {', '.join(KINDS)}")
    path = source
    rep = ImportReport(kind=kind, file=source, sha256=hashlib.sha256(raw).hexdigest())
    rows, errors = read_rows(raw, suffix, kind)
    warnings: list[RowError] = []
    if kind == "cases":
        plans = _plan_cases(session, rows, settings, errors, warnings)
    else:
        plans = _PLANNERS[kind](session, rows, settings, errors)  # planned even after header errors: report all
    if errors:
        raise ImportRejected(str(path), sorted(errors, key=lambda e: e.line))
    rep.warnings = [str(w) for w in sorted(warnings, key=lambda e: e.line)]
    rep.rows = len(plans)
    applied = _APPLIERS[kind](session, plans, rep)
    session.flush()
    rep.relinked = _relink_after(session, settings, kind, plans, applied)
    custody_log.record(session, "imported", actor=actor, subject=f"refdata:{kind}", detail=rep.as_dict())
    if kind == "officers":  # access follows duty: accounts of revoked/ended certificates stop working
        for username, why in enforce_duty(session, station_today(settings.tz), by=actor):
            rep.notes.append(f"account {username} disabled: {why}")
    return rep


def record_rejected(session: Session, kind: str, path: Path, actor: str, err: ImportRejected) -> None:
    """Log a refused import (in its own transaction: the data itself stays untouched)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    custody_log.record(session, "imported", actor=actor, outcome="refused", subject=f"refdata:{kind}",
                       detail={"file": str(path), "sha256": digest,
                               "errors": [str(e) for e in err.errors[:50]], "error_count": len(err.errors)})


__all__ = ["COLUMNS", "KINDS", "ImportRejected", "ImportReport", "RowError", "import_bytes", "import_file", "read_rows",
           "record_rejected"]

