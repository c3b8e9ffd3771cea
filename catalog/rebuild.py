"""`custody catalog rebuild --from-store`: a new catalog from the evidence store alone.

Every recording's object record (catalog.objrecord) gives back its media row: hash, size,
kind, device, officer, unit, original path, device and corrected times, dock session and
station.  Each object is confirmed in the store (size, and the store's checksum) before it is
listed.  Keyframes come back from their keys.  What lived only in the catalog is reported as
lost, never invented: the old custody history (its chain and last checkpoint are named in
the new log), case links, holds, tags, review decisions, accounts and retention plans.
Recordings stored before object records existed come back with their hash and size only.
"""
from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from catalog import custody_log, objrecord
from catalog.anchor import CHECKPOINTS, Checkpointer
from catalog.models import Derivative, Device, DockSession, Job, Media, Officer, Sighting, Unit, utcnow
from storage.base import media_key

log = logging.getLogger("custody.rebuild")

_MEDIA = re.compile(r"^media/sha256/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})$")
_DERIVED = re.compile(r"^derived/[0-9a-f]{2}/([0-9a-f]{64})/((kf|th)-(\d{9})|th-photo|contact-sheet)-[0-9a-f]{12}\.jpg$")
LOST_ALWAYS = ["custody history before the rebuild (see the old chain's checkpoints)", "case links",
               "legal holds", "retention tags", "review queue decisions", "accounts", "retention plans",
               "sightings other than the first dock", "clock corrections", "dock sessions' file lists"]


@dataclass
class RebuildReport:
    recordings: int = 0
    without_record: int = 0
    purged: int = 0
    derivatives: int = 0
    problems: list[str] = field(default_factory=list)
    replaced_chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost: list[str] = field(default_factory=lambda: list(LOST_ALWAYS))

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _dt(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return dt if dt.tzinfo else None


def _old_chains(app: Any) -> dict[str, dict[str, Any]]:
    """The chains the store's checkpoints name, with the last checkpoint of each."""
    last: dict[str, str] = {}
    for key in app.store.list_keys(CHECKPOINTS):
        parts = key[len(CHECKPOINTS):].split("/")
        if len(parts) == 2:
            last[parts[0]] = max(last.get(parts[0], ""), parts[1])
    out = {}
    for chain, name in last.items():
        try:
            body = json.loads(b"".join(app.store.iter_bytes(f"{CHECKPOINTS}{chain}/{name}")))
            out[chain] = {"last_checkpoint": f"{CHECKPOINTS}{chain}/{name}", "seq": body.get("seq"),
                          "hash": body.get("hash"), "at": body.get("at"), "station": body.get("station")}
        except Exception as e:  # noqa: BLE001
            out[chain] = {"last_checkpoint": f"{CHECKPOINTS}{chain}/{name}", "error": str(e)}
    return out


def rebuild(app: Any, actor: str) -> RebuildReport:
    """Fill the (empty, freshly migrated) catalog of `app` from its store."""
    rep = RebuildReport()
    objects: dict[str, str] = {}
    records: dict[str, str] = {}
    derived: dict[str, list[tuple[str, re.Match[str]]]] = defaultdict(list)
    for key in app.store.list_keys("media/sha256/"):
        m = _MEDIA.match(key)
        if m:
            objects[m.group(1)] = key
        elif key.endswith(objrecord.SUFFIX) and _MEDIA.match(key[: -len(objrecord.SUFFIX)]):
            records[_MEDIA.match(key[: -len(objrecord.SUFFIX)]).group(1)] = key  # type: ignore[union-attr]
    for key in app.store.list_keys("derived/"):
        m = _DERIVED.match(key)
        if m:
            derived[m.group(1)].append((key, m))
    rep.replaced_chains = _old_chains(app)
    with app.catalog.session() as s:
        for chain, last in sorted(rep.replaced_chains.items()):
            custody_log.record(s, "catalog_rebuilt", actor=actor, subject="catalog",
                               detail={"replaces_chain": chain, "kept_through": 0, "last_checkpoint": last,
                                       "lost": rep.lost, "reason": "catalog rebuilt from the store's objects "
                                                                   "and records; the old custody log is lost"})
        if not rep.replaced_chains:
            custody_log.record(s, "catalog_rebuilt", actor=actor, subject="catalog",
                               detail={"lost": rep.lost, "reason": "catalog rebuilt from the store"})
    # Recordings first, then their redacted copies (which name their original).
    shas = sorted(set(objects) | set(records))
    order = []
    parsed: dict[str, dict[str, Any] | None] = {}
    for sha in shas:
        rec = None
        if sha in records:
            try:
                rec = objrecord.parse(b"".join(app.store.iter_bytes(records[sha])))
                if rec.get("sha256") != sha:
                    rep.problems.append(f"record {records[sha]} names sha256 {rec.get('sha256')}: ignored")
                    rec = None
            except Exception as e:  # noqa: BLE001
                rep.problems.append(f"record {records[sha]} unreadable: {e}")
        parsed[sha] = rec
        order.append((1 if rec and rec.get("derived_from") else 0, sha))
    ids: dict[str, int] = {}
    sessions: dict[tuple[str, Any], int] = {}
    for _, sha in sorted(order):
        rec = parsed[sha]
        with app.catalog.session() as s:
            mid = _restore_media(app, s, sha, objects.get(sha), rec, ids, rep, actor, sessions)
            if mid is not None:
                ids[sha] = mid
                for key, m in derived.get(sha, []):
                    kind = ("thumbnail" if m.group(2) == "th-photo" else
                            {"kf": "keyframe", "th": "thumbnail"}.get(m.group(3) or "", "contact_sheet"))
                    off = int(m.group(4)) / 1000 if m.group(4) else None
                    s.add(Derivative(media_id=mid, kind=kind, offset_seconds=off, storage_key=key,
                                     reason="rebuilt from the store"))
                    rep.derivatives += 1
    Checkpointer(app).checkpoint("rebuild")
    return rep


def _get_or_add(s: Any, table: Any, col: Any, value: str, **kw: Any) -> Any:
    row = s.execute(select(table).where(col == value)).scalar_one_or_none()
    if row is None:
        row = table(**kw)
        s.add(row)
        s.flush()
    return row


def _dock_session(s: Any, rec: dict[str, Any], device: Any, sessions: dict[tuple[str, Any], int]) -> Any:
    """The dock that brought a recording, as its record tells it (one row per old session): the
    clock reading and measured offset are what the indexer's true time is worked out from."""
    dock, t = rec.get("dock") or {}, rec.get("time") or {}
    ident = (str(dock.get("station")), dock.get("session"))
    if ident in sessions:
        return s.get(DockSession, sessions[ident])
    when = _dt(dock.get("docked_at")) or utcnow()
    ds = DockSession(station=dock.get("station") or "unknown", volume_path=dock.get("volume") or "(rebuilt)",
                     profile=(rec.get("device") or {}).get("profile"), device_id=device.id if device else None,
                     officer_badge=rec.get("officer"), unit_code=rec.get("unit"), state="complete",
                     message=f"rebuilt from object records (was dock session {dock.get('session')} "
                             f"at {dock.get('station')})",
                     started_at=when, offloaded_at=when, ended_at=when,
                     device_clock_text=dock.get("device_clock_text"),
                     station_clock_at_read=_dt(dock.get("station_clock_at_read")),
                     clock_offset_seconds=t.get("clock_offset_seconds"),
                     clock_offset_source=t.get("clock_offset_source"))
    s.add(ds)
    s.flush()
    sessions[ident] = ds.id
    return ds


def _restore_media(app: Any, s: Any, sha: str, key: str | None, rec: dict[str, Any] | None,
                   ids: dict[str, int], rep: RebuildReport, actor: str,
                   sessions: dict[tuple[str, Any], int]) -> int | None:
    info = app.store.head(key) if key else None
    if rec is None and info is None:
        return None
    size = int(rec["size"]) if rec else info.size  # type: ignore[union-attr]
    if info is not None and info.size != size:
        rep.problems.append(f"object {key} holds {info.size} bytes, its record says {size}")
    rec = rec or {}
    t = rec.get("time") or {}
    dock = rec.get("dock") or {}
    dev = rec.get("device") or None
    device = officer = None
    if dev and dev.get("serial"):
        device = _get_or_add(s, Device, Device.serial, dev["serial"], serial=dev["serial"],
                             kind=dev.get("kind") or "camera", profile=dev.get("profile"), vendor=dev.get("vendor"),
                             model=dev.get("model"), source="dock")
    if rec.get("unit"):
        _get_or_add(s, Unit, Unit.code, rec["unit"], code=rec["unit"])
    if rec.get("officer"):
        officer = _get_or_add(s, Officer, Officer.badge, rec["officer"], badge=rec["officer"], source="device",
                              status="unknown")
    status = "stored" if info is not None else "purged"
    path = rec.get("original_path") or ""
    ds = _dock_session(s, rec, device, sessions) if dock else None
    m = Media(sha256=sha, size=size, kind=rec.get("kind") or "other", storage_key=key or media_key(sha),
              storage_checksum=(info.checksum if info else None) or rec.get("storage_checksum"), status=status,
              device_id=device.id if device else None, officer_id=officer.id if officer else None,
              first_session_id=ds.id if ds else None,
              officer_badge=rec.get("officer"), unit_code=rec.get("unit"), original_path=path,
              original_name=rec.get("original_name") or path.rsplit("/", 1)[-1],
              original_mtime=_dt(rec.get("original_mtime")), important=bool(rec.get("important")),
              flags=list(rec.get("flags") or []) + ([] if rec.get("format") else ["no_record"]),
              flag_reasons=dict(rec.get("flag_reasons") or {}),
              device_start_text=t.get("device_start_text"), device_start=_dt(t.get("device_start")),
              recorded_start=_dt(t.get("recorded_start")), recorded_end=_dt(t.get("recorded_end")),
              duration_seconds=t.get("duration_seconds"), time_source=t.get("time_source"),
              clock_offset_seconds=t.get("clock_offset_seconds"), clock_offset_source=t.get("clock_offset_source"),
              docked_at=_dt(dock.get("docked_at")),
              meta={"rebuilt": {"dock_session": dock.get("session"), "station": dock.get("station"),
                                "volume": dock.get("volume"), "record": bool(rec)},
                    **({"sidecar": rec["sidecar"], "sidecar_file": rec.get("sidecar_file")} if rec.get("sidecar")
                       else {})})
    if rec.get("stored_at"):
        m.stored_at = _dt(rec["stored_at"]) or m.stored_at
    if hasattr(Media, "derived_from") and rec.get("derived_from"):
        m.derived_from = ids.get(rec["derived_from"])
    if status == "stored":
        m.verified_at = None
    else:
        rep.purged += 1
    s.add(m)
    s.flush()
    if ds is not None:
        s.add(Sighting(media_id=m.id, session_id=ds.id, device_path=path, seen_at=ds.started_at))
    if status == "stored":
        rep.recordings += 1
        if not rec:
            rep.without_record += 1
        s.add(Job(kind="index", media_id=m.id))
    custody_log.record(s, "recovered", actor=actor, media_id=m.id, subject=f"sha256:{sha}",
                       detail={"key": m.storage_key, "size": size, "status": status, "from": "object record"
                               if rec else "object only (no record)", "device_path": path})
    return m.id
