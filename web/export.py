"""Export a case as a BagIt bag (RFC 8493) a court can verify offline.

    <bag>/bagit.txt                  BagIt version and encoding
    <bag>/bag-info.txt               who exported what, when; Payload-Oxum; the custody event
    <bag>/manifest-sha256.txt        "<sha256>  data/..." for every payload file (sha256sum -c)
    <bag>/tagmanifest-sha256.txt     the same for the tag files
    <bag>/VERIFY.txt                 how to check the bag with standard tools (zh-CN / English)
    <bag>/data/case.json             the inspection: details, officers, linked recordings
    <bag>/data/recordings/NNN_ID_SHA12.EXT    each original, byte for byte, under a safe name
    <bag>/data/recordings/NNN_ID_SHA12.json   its metadata, time sources, links and custody trail

Each original is streamed from the store once; that single read feeds the file and
the hasher, and the result must equal the catalog's SHA-256 or the export fails.
The bag is built beside the destination and renamed into place only when complete.
The export is written to the custody log (`exported`) for the case and for each
recording, in the same transaction; a failed export is logged with outcome `failed`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.accounts import Actor
from catalog.app import App
from core.errors import CustodyError, NotFound, PermissionDenied, StorageIntegrityError
from catalog import custody_log
from catalog.custody_log import event_fields
from catalog.models import Case, CustodyEvent, Media, MediaLink, utcnow
from storage.fixity import sha256_file
from catalog.access import can_see_case
from web.queries import case_view

CHUNK = 1024 * 1024
SOFTWARE = "Custody 0.1.0 (body-camera evidence)"
_SAFE_EXT = re.compile(r"^\.[a-z0-9]{1,8}$")


@dataclass
class ExportResult:
    bag_dir: Path
    name: str  # a safe directory name for the bag (used for the web download)
    case_no: str
    recordings: int
    payload_bytes: int
    manifest_sha256: str
    event_seq: int


def safe_ascii(text: str, limit: int = 60) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x")[:limit]


def bag_name(case: Case, now: datetime) -> str:
    return f"custody-case-{case.id}-{safe_ascii(case.case_no)}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def payload_stem(n: int, m: Media) -> str:
    return f"{n:03d}_{m.id}_{m.sha256[:12]}"


def payload_ext(m: Media) -> str:
    ext = PurePosixPath(m.original_name or "").suffix.lower()
    return ext if _SAFE_EXT.match(ext) else ".bin"


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")


def event_json(ev: CustodyEvent) -> dict[str, Any]:
    """An event with the fields its hash covers, so a reader can recompute the chain link."""
    return {**event_fields(ev), "prev_hash": ev.prev_hash, "hash": ev.hash}


# --------------------------------------------------------------------------- pieces
def copy_original(app: App, m: Media, dest: Path) -> int:
    """Stream one original into the bag; refuse bytes that do not hash to the catalog's SHA-256."""
    h = hashlib.sha256()
    n = 0
    with open(dest, "wb") as f:
        for block in app.store.iter_bytes(m.storage_key, 0, None, chunk=CHUNK):
            h.update(block)
            f.write(block)
            n += len(block)
        f.flush()
        os.fsync(f.fileno())
    if n != m.size or h.hexdigest() != m.sha256:
        raise StorageIntegrityError(
            f"recording {m.id}: the store returned {n} bytes hashing to {h.hexdigest()}, "
            f"the catalog records {m.size} bytes with SHA-256 {m.sha256}; export stopped")
    return n


def media_record(m: Media, link: MediaLink | None, s: Session, payload: str | None) -> dict[str, Any]:
    trail = s.execute(select(CustodyEvent).where(CustodyEvent.media_id == m.id).order_by(CustodyEvent.seq)).scalars()
    all_links = s.execute(select(MediaLink, Case.case_no).join(Case, Case.id == MediaLink.case_id)
                          .where(MediaLink.media_id == m.id).order_by(MediaLink.created_at)).all()
    return {
        "media_id": m.id, "payload_file": payload, "sha256": m.sha256, "size": m.size, "kind": m.kind,
        "status": m.status, "original_name": m.original_name, "original_path": m.original_path,
        "device_serial": m.device.serial if m.device else None,
        "officer_badge": m.officer.badge if m.officer else m.officer_badge,
        "officer_name": m.officer.name if m.officer else None, "unit_code": m.unit_code,
        "important": m.important, "flags": m.flags or [], "flag_reasons": m.flag_reasons or {},
        "time": {
            "device_start_text": m.device_start_text, "device_start": _iso(m.device_start),
            "recorded_start_utc": _iso(m.recorded_start), "recorded_end_utc": _iso(m.recorded_end),
            "duration_seconds": m.duration_seconds, "time_source": m.time_source,
            "clock_offset_seconds": m.clock_offset_seconds, "clock_offset_source": m.clock_offset_source,
        },
        "stored_at": _iso(m.stored_at), "verified_at": _iso(m.verified_at), "docked_at": _iso(m.docked_at),
        "probe": m.probe, "meta": m.meta or {},
        "link": ({"method": link.method, "score": link.score, "reason": link.reason, "created_by": link.created_by,
                  "created_at": _iso(link.created_at)} if link is not None else None),  # None: shared by itself
        "all_links": [{"case_no": no, "method": lk.method, "reason": lk.reason, "active": lk.active,
                       "created_by": lk.created_by, "created_at": _iso(lk.created_at), "removed_by": lk.removed_by,
                       "removed_at": _iso(lk.removed_at), "removed_reason": lk.removed_reason}
                      for lk, no in all_links],
        "custody_trail": [event_json(ev) for ev in trail],
    }


def case_record(view: Any, recordings: list[dict[str, Any]], tz_name: str) -> dict[str, Any]:
    c = view.case
    return {
        "case_no": c.case_no, "kind": c.kind, "enterprise": c.enterprise, "address": c.address,
        "unit_code": view.unit.code if view.unit else None, "unit_name": view.unit.name if view.unit else None,
        "start_utc": _iso(c.start), "end_utc": _iso(c.end), "status": c.status, "hazards_found": c.hazards_found,
        "officers": [{"badge": o.badge, "name": o.name, "cert_no": o.cert_no} for o in view.officers],
        "display_time_zone": tz_name,
        "recordings": [{"media_id": r["media_id"], "payload_file": r["payload_file"], "sha256": r["sha256"],
                        "recorded_start_utc": r["time"]["recorded_start_utc"], "link_reason": r["link"]["reason"]}
                       for r in recordings],
    }


VERIFY_TEXT = """核验方法 / How to verify this package
=====================================

中文：在本目录（含 bagit.txt 的目录）中执行
    sha256sum -c tagmanifest-sha256.txt
    sha256sum -c manifest-sha256.txt
两条命令的每一行都应显示“OK”（或“成功”）。data/recordings/*.json 中的 sha256 与系统
登记的原始文件哈希一致；custody_trail 为该录像的保管链记录（含每条记录的哈希链）。

English: in this directory (the one holding bagit.txt) run
    sha256sum -c tagmanifest-sha256.txt
    sha256sum -c manifest-sha256.txt
Every line of both must report OK.  Any BagIt validator (e.g. `bagit.py --validate .`)
also accepts the package.  Each data/recordings/*.json holds the catalog's SHA-256 of
the original and the recording's custody trail with its hash chain.
"""


# --------------------------------------------------------------------------- the export
def export_case(app: App, actor: Actor, case_no: str, out: Path, *, remote_addr: str | None = None,
                via: str = "cli") -> ExportResult:
    """Write the bag to `out` (which must not exist, or be an empty directory)."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CustodyError(f"{out} already exists and is not an empty directory; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    placed = False
    try:
        # Read, copy, then write: no catalog transaction stays open while gigabytes are copied
        # (on SQLite an open write transaction would stall every other writer).
        with app.catalog.session() as s:
            plan = _plan(s, actor, case_no)
        payload_bytes = _copy_payload(app, plan, work)
        manifest_digest = _write_payload_tags(app, plan, work)
        with app.catalog.session() as s:
            ev = _record(s, actor, plan, manifest_digest, payload_bytes, remote_addr, via)
            _write_bag_info(app, actor, plan, work, ev, manifest_digest)
            if out.exists():
                out.rmdir()
            os.replace(work, out)  # the complete bag appears at once, as its event commits
            placed = True
        return ExportResult(bag_dir=out, name=plan.name, case_no=case_no, recordings=len(plan.records),
                            payload_bytes=payload_bytes, manifest_sha256=manifest_digest, event_seq=ev.seq)
    except BaseException as e:
        shutil.rmtree(out if placed else work, ignore_errors=True)
        # Logged after the export's transaction rolled back (a nested writer would wait on it).
        _log_failure(app, actor, case_no, remote_addr, via, e)
        raise


@dataclass
class _Plan:
    case: Case
    view: Any  # CaseView
    name: str
    now: datetime
    records: list[dict[str, Any]]
    sources: list[tuple[Media, str]]  # (recording, payload path) to copy


def _plan(s: Session, actor: Actor, case_no: str) -> _Plan:
    case = _find_case(s, actor, case_no)
    view = case_view(s, actor, case)
    now = utcnow()
    records: list[dict[str, Any]] = []
    sources: list[tuple[Media, str]] = []
    for n, entry in enumerate(view.entries, start=1):
        m = entry.media
        payload = None
        if m.status != "purged":  # a purged recording is exported as its record only
            payload = f"data/recordings/{payload_stem(n, m)}{payload_ext(m)}"
            sources.append((m, payload))
        records.append({**media_record(m, entry.link, s, payload), "_stem": payload_stem(n, m)})
    return _Plan(case=case, view=view, name=bag_name(case, now), now=now, records=records, sources=sources)


def _log_failure(app: App, actor: Actor, case_no: str, addr: str | None, via: str, err: BaseException) -> None:
    outcome = "refused" if isinstance(err, PermissionDenied) else "failed"
    with app.catalog.session() as s:
        custody_log.record(s, "exported", actor=actor.username, outcome=outcome, subject=f"case:{case_no}",
                           remote_addr=addr, detail={"via": via, "error": str(err)[:500] or type(err).__name__})


def _find_case(s: Session, actor: Actor, case_no: str) -> Case:
    case = s.execute(select(Case).where(Case.case_no == case_no)).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case numbered {case_no!r}")
    if not can_see_case(s, actor, case):
        raise PermissionDenied(f"{actor.username} does not cover the unit of case {case_no}")
    return case


def _copy_payload(app: App, plan: _Plan, bag: Path) -> int:
    (bag / "data" / "recordings").mkdir(parents=True)
    return sum(copy_original(app, m, bag / payload) for m, payload in plan.sources)


def _write_payload_tags(app: App, plan: _Plan, bag: Path) -> str:
    """Metadata files, the payload manifest and bagit.txt; returns the manifest's own SHA-256."""
    for rec in plan.records:
        stem = rec.pop("_stem")
        _write_json(bag / "data" / "recordings" / f"{stem}.json", rec)
    _write_json(bag / "data" / "case.json", case_record(plan.view, plan.records, app.settings.station.timezone))
    # The originals were hashed as they were copied in and proved equal to the catalog's SHA-256:
    # they are not read a second time; only the small metadata files are hashed here.
    known = {bag / payload: m.sha256 for m, payload in plan.sources}
    manifest = manifest_lines(bag, bag / "data", known)
    (bag / "manifest-sha256.txt").write_text(manifest, encoding="utf-8")
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8")
    (bag / "VERIFY.txt").write_text(VERIFY_TEXT, encoding="utf-8")
    return hashlib.sha256(manifest.encode()).hexdigest()


def _record(s: Session, actor: Actor, plan: _Plan, manifest_digest: str, payload_bytes: int, addr: str | None,
            via: str) -> CustodyEvent:
    """One `exported` event per recording (its own trail shows the copy) and one for the case."""
    subject = f"case:{plan.case.case_no}"
    detail = {"via": via, "bag": plan.name, "recordings": len(plan.records), "payload_bytes": payload_bytes,
              "manifest_sha256": manifest_digest, "hidden_recordings": plan.view.hidden}
    for rec in plan.records:
        custody_log.record(s, "exported", actor=actor.username, media_id=rec["media_id"], subject=subject,
                           remote_addr=addr, detail={**detail, "payload_file": rec["payload_file"]}, at=plan.now)
    return custody_log.record(s, "exported", actor=actor.username, subject=subject, remote_addr=addr,
                              detail=detail, at=plan.now)


def _write_bag_info(app: App, actor: Actor, plan: _Plan, bag: Path, ev: CustodyEvent, manifest_digest: str) -> None:
    case, tz = plan.case, app.settings.tz
    info = {
        "Source-Organization": app.settings.station.name,
        "Bagging-Date": plan.now.astimezone(tz).date().isoformat(),
        "Bag-Software-Agent": SOFTWARE,
        "External-Identifier": case.case_no,
        "External-Description": f"Evidence export of case {case.case_no} ({case.enterprise or ''})",
        "Payload-Oxum": payload_oxum(bag),
        "Custody-Exported-By": actor.username,
        "Custody-Exported-At": plan.now.astimezone(tz).isoformat(timespec="seconds"),
        "Custody-Export-Event": f"seq {ev.seq} sha256 {ev.hash}",
        "Custody-Manifest-SHA256": manifest_digest,
    }
    (bag / "bag-info.txt").write_text("".join(f"{k}: {_one_line(v)}\n" for k, v in info.items()), encoding="utf-8")
    tags = [bag / "bagit.txt", bag / "bag-info.txt", bag / "manifest-sha256.txt", bag / "VERIFY.txt"]
    (bag / "tagmanifest-sha256.txt").write_text(
        "".join(f"{sha256_file(p)}  {p.name}\n" for p in tags), encoding="utf-8")


def _one_line(v: str) -> str:
    return " ".join(str(v).split())


def manifest_lines(bag: Path, data: Path, known: dict[Path, str] | None = None) -> str:
    """`sha256sum` format: '<hex>  <path>' — two spaces (text mode), paths relative to the bag.
    `known`: files whose digest was proved while they were written."""
    known = known or {}
    lines = []
    for p in sorted(x for x in data.rglob("*") if x.is_file()):
        lines.append(f"{known.get(p) or sha256_file(p)}  {p.relative_to(bag).as_posix()}\n")
    return "".join(lines)


def payload_oxum(bag: Path) -> str:
    """BagIt's quick completeness check: '<total payload bytes>.<payload file count>'."""
    files = [p for p in (bag / "data").rglob("*") if p.is_file()]
    return f"{sum(p.stat().st_size for p in files)}.{len(files)}"


def zip_bag(bag: Path, dest: Path) -> Path:
    """A serialized bag (one top directory inside the zip); stored, not compressed — video does not shrink."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for p in sorted(bag.rglob("*")):
            if p.is_file():
                z.write(p, f"{bag.name}/{p.relative_to(bag).as_posix()}")
    return dest
