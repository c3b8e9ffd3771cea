"""Dock sessions: who docked (device, officer, unit), when, and the device clock's error."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.models import Device, DockSession, Officer, Unit, utcnow
from ingest.profiles import Identity, Profile, device_clock_offset
from ingest.states import RESUMABLE_SESSION_STATES, SessionState
from ingest.volume import shown_path

T = TypeVar("T")


def _insert_once(s: Session, model: type[T], where: Any, make: Callable[[], T]) -> T:
    """The row, created if missing.  Several stations (or offloads) may create the same unit,
    officer or device at the same moment: the insert runs in a savepoint and the loser of the
    race reads the winner's row."""
    row = s.execute(select(model).where(where)).scalar_one_or_none()
    if row is not None:
        return row
    try:
        with s.begin_nested():
            row = make()
            s.add(row)
            s.flush()
        return row
    except IntegrityError:
        return s.execute(select(model).where(where)).scalar_one()


def upsert_unit(s: Session, code: str | None) -> Unit | None:
    if not code:
        return None
    return _insert_once(s, Unit, Unit.code == code, lambda: Unit(code=code))


def upsert_officer(s: Session, badge: str | None, unit: Unit | None) -> Officer | None:
    """An officer number seen on a device but not yet imported is recorded as such."""
    if not badge:
        return None
    return _insert_once(s, Officer, Officer.badge == badge, lambda: Officer(
        badge=badge, unit_id=unit.id if unit else None, status="unknown", source="device"))


def upsert_device(s: Session, ident: Identity, profile: Profile, unit: Unit | None, docked_at: datetime) -> Device:
    dev = _insert_once(s, Device, Device.serial == ident.serial, lambda: Device(
        serial=ident.serial, kind=profile.kind, unit_id=unit.id if unit else None, source="dock"))
    dev.profile = profile.name
    dev.vendor = ident.vendor or dev.vendor
    dev.model = ident.model or dev.model
    dev.firmware = ident.firmware or dev.firmware
    if dev.unit_id is None and unit is not None:
        dev.unit_id = unit.id
    dev.last_docked_at = docked_at
    s.flush()
    return dev


def open_session(s: Session, *, station: str, volume: Path, profile: Profile, ident: Identity,
                 read_at: datetime, actor: str) -> DockSession:
    unit = upsert_unit(s, ident.unit)
    dev = upsert_device(s, ident, profile, unit, read_at)
    upsert_officer(s, ident.officer, unit)
    offset = device_clock_offset(ident, read_at)
    if offset is not None:
        dev.last_clock_offset_seconds = offset
    prev = s.execute(
        select(DockSession).where(DockSession.device_id == dev.id, DockSession.state.in_(RESUMABLE_SESSION_STATES))
        .order_by(DockSession.id.desc())
    ).scalars().first()
    ds = DockSession(
        station=station, volume_path=shown_path(volume), profile=profile.name, device_id=dev.id,
        officer_badge=ident.officer, unit_code=ident.unit, identity=ident.raw, state=SessionState.OFFLOADING,
        resumed_from_id=prev.id if prev else None, started_at=utcnow(), heartbeat_at=utcnow(),
        device_clock_text=ident.clock_text, station_clock_at_read=read_at, clock_offset_seconds=offset,
        clock_offset_source="identity_file" if offset is not None else None,
    )
    s.add(ds)
    s.flush()
    custody_log.record(s, "docked", actor=actor, session_id=ds.id, subject=f"device:{ident.serial}", detail={
        "volume": shown_path(volume), "profile": profile.name, "serial": ident.serial, "officer": ident.officer,
        "unit": ident.unit, "device_clock": ident.clock_text, "station_clock": read_at.isoformat(),
        "clock_offset_seconds": offset, "resumes_session": prev.id if prev else None})
    return ds


def record_unrecognised(s: Session, *, station: str, volume: Path, reason: str, actor: str) -> DockSession:
    ds = DockSession(station=station, volume_path=shown_path(volume), state=SessionState.UNRECOGNISED, message=reason,
                     started_at=utcnow(), ended_at=utcnow())
    s.add(ds)
    s.flush()
    custody_log.record(s, "unrecognised", actor=actor, session_id=ds.id, outcome="refused",
                       subject=f"volume:{shown_path(volume).rsplit('/', 1)[-1]}", detail={"volume": shown_path(volume), "reason": reason})
    return ds
