"""Administrator corrections of a device clock, applied openly.

A correction names a device, a range on the device's own clock and the offset (device
minus true UTC).  Adding or revoking one re-times the affected recordings in the same
transaction; each change is a `clock_corrected` custody event saying who, why, and the
corrected time before and after.  The device's readings are never touched.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import CustodyError, NotFound
from catalog import custody_log
from catalog.models import ClockCorrection, Device, Media, utcnow
from indexer.worker import Outcome, retime_in_session


def affected_media(s: Session, device_id: int, start: datetime, end: datetime | None) -> list[Media]:
    q = select(Media).where(Media.device_id == device_id, Media.status == "stored",
                            Media.device_start >= start)
    if end is not None:
        q = q.where(Media.device_start < end)
    return list(s.execute(q.order_by(Media.device_start)).scalars())


def add_correction(app: Any, s: Session, serial: str, start: datetime, end: datetime | None, offset_seconds: float,
                   reason: str, actor: str) -> tuple[ClockCorrection, list[Outcome]]:
    if not reason.strip():
        raise CustodyError("a clock correction needs a reason")
    if end is not None and end <= start:
        raise CustodyError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    if abs(offset_seconds) > 10 * 365 * 86400:
        raise CustodyError(f"offset {offset_seconds} s is more than ten years; check the units (seconds)")
    dev = s.execute(select(Device).where(Device.serial == serial)).scalar_one_or_none()
    if dev is None:
        raise NotFound(f"no device with serial {serial!r}")
    corr = ClockCorrection(device_id=dev.id, valid_from=start, valid_to=end, offset_seconds=offset_seconds,
                           reason=reason.strip(), created_by=actor)
    s.add(corr)
    s.flush()
    custody_log.record(s, "clock_corrected", actor=actor, subject=f"device:{serial}",
                       detail={"correction_id": corr.id, "from": start.isoformat(),
                               "to": end.isoformat() if end else None, "offset_seconds": offset_seconds,
                               "reason": corr.reason})
    return corr, _retime(app, s, dev.id, start, end, actor, corr.id, f"correction #{corr.id}: {corr.reason}")


def revoke_correction(app: Any, s: Session, correction_id: int, reason: str, actor: str) -> list[Outcome]:
    if not reason.strip():
        raise CustodyError("revoking a clock correction needs a reason")
    corr = s.get(ClockCorrection, correction_id)
    if corr is None:
        raise NotFound(f"no clock correction #{correction_id}")
    if corr.revoked_at is not None:
        raise CustodyError(f"clock correction #{correction_id} was already revoked")
    corr.revoked_at = utcnow()
    dev = s.get(Device, corr.device_id)
    custody_log.record(s, "clock_corrected", actor=actor, subject=f"device:{dev.serial if dev else corr.device_id}",
                       detail={"correction_id": corr.id, "revoked": True, "reason": reason.strip()})
    s.flush()
    return _retime(app, s, corr.device_id, corr.valid_from, corr.valid_to, actor, corr.id,
                   f"correction #{corr.id} revoked: {reason.strip()}")


def _retime(app: Any, s: Session, device_id: int, start: datetime, end: datetime | None, actor: str,
            correction_id: int, why: str) -> list[Outcome]:
    out = []
    for m in affected_media(s, device_id, start, end):
        res = retime_in_session(app, s, m, actor=actor, why=why, action="clock_corrected",
                                extra={"correction_id": correction_id})
        if res.state == "retimed":
            out.append(res)
    return out
