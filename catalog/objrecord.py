"""Self-describing objects: beside each stored recording, a small JSON record of what the dock knew.

    media/sha256/ab/cd/<sha256>               the recording (write-once, locked)
    media/sha256/ab/cd/<sha256>.record.json   its record (write-once, locked the same way)

The record is written once, when the recording is first stored, and never changes (later
clock corrections, links and holds live in the catalog and its custody log).  It is what
`custody catalog rebuild --from-store` rebuilds a lost catalog from.  A redacted copy's
record names the original (`derived_from`); keyframes, thumbnails and contact sheets say
whose they are by their key (`derived/ab/<sha256 of the recording>/...`) and their
`derived-from` metadata.  Every text in a record is data (a device file name is never a
path here).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from catalog.models import Device, DockSession, Media, Officer, utcnow

log = logging.getLogger("custody.objrecord")

FORMAT = "custody-object/1"
SUFFIX = ".record.json"


def record_key(object_key: str) -> str:
    return object_key + SUFFIX


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).isoformat() if dt else None


def build(session: Session, media: Media, station: str) -> dict[str, Any]:
    """The record of one recording, from its catalog row and the dock session that brought it."""
    dev = session.get(Device, media.device_id) if media.device_id else None
    ds = session.get(DockSession, media.first_session_id) if media.first_session_id else None
    officer = session.get(Officer, media.officer_id) if media.officer_id else None
    parent_id = getattr(media, "derived_from", None)
    parent = session.get(Media, parent_id) if parent_id else None
    return {
        "format": FORMAT,
        "object": media.storage_key,
        "sha256": media.sha256,
        "size": media.size,
        "kind": media.kind,
        "role": "redacted" if parent else "recording",
        "derived_from": parent.sha256 if parent else None,
        "device": {"serial": dev.serial, "kind": dev.kind, "profile": dev.profile, "vendor": dev.vendor,
                   "model": dev.model} if dev else None,
        "officer": media.officer_badge or (officer.badge if officer else None),
        "unit": media.unit_code,
        "original_path": media.original_path,
        "original_name": media.original_name,
        "original_mtime": _iso(media.original_mtime),
        "important": bool(media.important) or "important" in (media.flags or []),
        "flags": list(media.flags or []),
        "flag_reasons": dict(media.flag_reasons or {}),
        "time": {
            "device_start_text": media.device_start_text,
            "device_start": _iso(media.device_start),
            "recorded_start": _iso(media.recorded_start),
            "recorded_end": _iso(media.recorded_end),
            "duration_seconds": media.duration_seconds,
            "time_source": media.time_source,
            "clock_offset_seconds": media.clock_offset_seconds,
            "clock_offset_source": media.clock_offset_source,
        },
        "dock": {
            "session": ds.id if ds else media.first_session_id,
            "station": ds.station if ds else station,
            "volume": ds.volume_path if ds else None,
            "docked_at": _iso(media.docked_at),
            "device_clock_text": ds.device_clock_text if ds else None,
            "station_clock_at_read": _iso(ds.station_clock_at_read) if ds else None,
        },
        "stored_at": _iso(media.stored_at),
        "storage_checksum": media.storage_checksum,
        "sidecar": (media.meta or {}).get("sidecar"),
        "sidecar_file": (media.meta or {}).get("sidecar_file"),
        "written_by": station,
    }


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, indent=1).encode()


def write_for_media(app: Any, media_id: int) -> str | None:
    """Put the record of media `media_id` beside its object (once; an existing record is kept).
    Its lock follows the recording's: retention.lock extends both together.  Returns the key,
    or None when it could not be written (logged; the catalog still has everything, and
    `custody catalog records` writes missing ones later)."""
    try:
        with app.catalog.session() as s:
            m = s.get(Media, media_id)
            if m is None or m.status != "stored":
                return None
            rec = build(s, m, app.station)
            lock_until, held = m.lock_until, bool(m.legal_hold_applied)
        key = record_key(rec["object"])
        if app.store.head(key) is None:
            app.store.put_bytes(key, encode(rec), content_type="application/json")
            # written after the recording was locked (an older catalog): lock it the same way now
            if lock_until is not None and lock_until > utcnow():
                app.store.set_retention(key, lock_until, app.settings.storage.object_lock_mode)
            if held:
                app.store.set_legal_hold(key, True)
        return key
    except Exception as e:  # noqa: BLE001 - never lose an upload over its record
        log.error("object record for media %s not written: %s", media_id, e)
        return None


def parse(data: bytes) -> dict[str, Any]:
    rec = json.loads(data.decode("utf-8"))
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ValueError("not a custody object record")
    return rec
