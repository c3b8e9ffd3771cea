"""The package a share's recipient downloads: a BagIt bag (RFC 8493), zipped, built when asked for.

Originals come in the layout of the case export (web/export.py, whose pieces are reused):

    <bag>/data/share.json                         the share: recipient, kind, who shared, items
    <bag>/data/recordings/NNN_ID_SHA12.EXT        each original, byte for byte
    <bag>/data/recordings/NNN_ID_SHA12.json       its metadata, time sources, links and custody trail

Redacted copies come with their redaction log and the hash of the original they were made from
(the original's bytes are not in the package):

    <bag>/data/share.json
    <bag>/data/redacted/NNN_ID_SHA12.mp4|jpg      the approved derived copy, byte for byte
    <bag>/data/redacted/NNN_ID_SHA12.json         its hash, size, time, approval, redaction log and
                                                  {"original": {"sha256", "size", ...}}

plus bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt and VERIFY.txt, so
`sha256sum -c` or any BagIt validator (bagit-python) checks it offline.  Every file is streamed
from the store once and must hash to the catalog's SHA-256 (export.copy_original).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog.app import App
from catalog.models import Case, MediaLink, Share, utcnow
from disclose import share as shares
from storage.fixity import sha256_file
from web.export import (
    SOFTWARE,
    VERIFY_TEXT,
    copy_original,
    manifest_lines,
    media_record,
    payload_ext,
    payload_oxum,
    payload_stem,
    safe_ascii,
    zip_bag,
)

REDACTED_VERIFY = """核验方法 / How to verify this package
=====================================

中文：本包中的文件为经过遮挡处理（人脸、车牌等）并经第二名审核人员批准的副本，不是原始录像。
在本目录（含 bagit.txt 的目录）中执行
    sha256sum -c tagmanifest-sha256.txt
    sha256sum -c manifest-sha256.txt
每一行都应显示“OK”。data/redacted/*.json 记录了副本的 SHA-256、处理记录（操作人、时间、理由、
检测器及阈值、每个遮挡框和静音区间）、批准人，以及原始录像的 SHA-256 和大小（原始录像另行保存，未随包提供）。

English: the files in this package are redacted copies (faces, plates and the like blurred),
approved by a second reviewer; they are not the original recordings.  In this directory (the one
holding bagit.txt) run
    sha256sum -c tagmanifest-sha256.txt
    sha256sum -c manifest-sha256.txt
Every line must report OK; any BagIt validator (e.g. `bagit.py --validate .`) accepts the package.
Each data/redacted/*.json holds the copy's SHA-256, its redaction log (who, when, why, detector and
threshold, every box and muted range), who approved it, and the SHA-256 and size of the original
it was made from (the original is kept by the bureau and is not in this package).
"""


@dataclass
class Package:
    zip_path: Path
    work: Path  # remove after sending
    name: str
    files: int
    payload_bytes: int
    manifest_sha256: str

    def describe(self) -> dict[str, Any]:
        return {"package": self.name, "files": self.files, "payload_bytes": self.payload_bytes,
                "manifest_sha256": self.manifest_sha256}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")


def package_name(share: Share, now: datetime) -> str:
    return f"custody-share-{share.id}-{share.content}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def build_package(app: App, share_id: int, *, now: datetime | None = None) -> Package:
    """Build the share's bag in a temporary directory and zip it; the caller removes `work`."""
    now = now or utcnow()
    work = Path(tempfile.mkdtemp(prefix="custody-share-"))
    try:
        with app.catalog.session() as s:
            share = s.get(Share, share_id)
            assert share is not None
            name = package_name(share, now)
            bag = work / name
            folder = "recordings" if share.content == "originals" else "redacted"
            (bag / "data" / folder).mkdir(parents=True)
            summary = shares.summary(s, share, now)
            rows = shares.items_of(s, share)
            case = s.get(Case, share.case_id) if share.case_id else None
            plan: list[tuple[Any, str, dict[str, Any]]] = []
            for it, m, orig, red in rows:
                stem = payload_stem(it.position, m)
                payload = f"data/{folder}/{stem}{payload_ext(m)}"
                if share.content == "originals":
                    link = None
                    if case is not None:
                        link = s.execute(select(MediaLink).where(MediaLink.media_id == m.id, MediaLink.case_id == case.id)
                                         .order_by(MediaLink.active.desc(), MediaLink.id.desc())).scalars().first()
                    record = media_record(m, link, s, payload)
                else:
                    record = _redacted_record(m, orig, red, payload)
                plan.append((m, payload, record))
            info = _share_record(summary, plan, app.settings.station.name)
        payload_bytes = 0
        for m, payload, record in plan:  # no transaction open while the bytes are copied
            payload_bytes += copy_original(app, m, bag / payload)
            _write_json(bag / Path(payload).with_suffix(".json"), record)
        _write_json(bag / "data" / "share.json", info)
        known = {bag / payload: m.sha256 for m, payload, _ in plan}
        manifest = manifest_lines(bag, bag / "data", known)
        (bag / "manifest-sha256.txt").write_text(manifest, encoding="utf-8")
        digest = hashlib.sha256(manifest.encode()).hexdigest()
        (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8")
        (bag / "VERIFY.txt").write_text(VERIFY_TEXT if info["content"] == "originals" else REDACTED_VERIFY,
                                        encoding="utf-8")
        tz = app.settings.tz
        bag_info = {
            "Source-Organization": app.settings.station.name,
            "Bagging-Date": now.astimezone(tz).date().isoformat(),
            "Bag-Software-Agent": SOFTWARE,
            "External-Identifier": f"share-{info['id']}",
            "External-Description": (f"{'Original recordings' if info['content'] == 'originals' else 'Redacted copies'}"
                                     f" shared with {info['recipient']} ({info['kind']})"),
            "Payload-Oxum": payload_oxum(bag),
            "Custody-Shared-By": info["created_by"],
            "Custody-Shared-At": info["created_at"],
            "Custody-Recipient": info["recipient"],
            "Custody-Recipient-Kind": info["kind"],
            "Custody-Manifest-SHA256": digest,
        }
        (bag / "bag-info.txt").write_text("".join(f"{k}: {' '.join(str(v).split())}\n" for k, v in bag_info.items()),
                                          encoding="utf-8")
        tags = [bag / "bagit.txt", bag / "bag-info.txt", bag / "manifest-sha256.txt", bag / "VERIFY.txt"]
        (bag / "tagmanifest-sha256.txt").write_text("".join(f"{sha256_file(p)}  {p.name}\n" for p in tags),
                                                    encoding="utf-8")
        archive = zip_bag(bag, work / f"{safe_ascii(name, 120)}.zip")
        shutil.rmtree(bag)
        return Package(zip_path=archive, work=work, name=name, files=len(plan), payload_bytes=payload_bytes,
                       manifest_sha256=digest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _redacted_record(m: Any, orig: Any, red: Any, payload: str) -> dict[str, Any]:
    """What a recipient of a redacted copy learns: the copy, how it was made, and the original's hash only
    (no device path, serial or officer number of the original)."""
    return {
        "media_id": m.id, "payload_file": payload, "sha256": m.sha256, "size": m.size, "kind": m.kind,
        "duration_seconds": m.duration_seconds, "width": m.width, "height": m.height,
        "recorded_start_utc": _iso(m.recorded_start), "recorded_end_utc": _iso(m.recorded_end),
        "original": ({"media_id": orig.id, "sha256": orig.sha256, "size": orig.size, "kind": orig.kind,
                      "recorded_start_utc": _iso(orig.recorded_start)} if orig is not None else None),
        "redaction": ({"id": red.id, "created_by": red.created_by, "created_at": _iso(red.created_at),
                       "reason": red.reason, "approved_by": red.approved_by, "approved_at": _iso(red.approved_at),
                       "log": red.log or {}} if red is not None else None),
    }


def _share_record(summary: dict[str, Any], plan: list[tuple[Any, str, dict[str, Any]]], org: str) -> dict[str, Any]:
    return {
        "id": summary["id"], "organisation": org, "recipient": summary["recipient"], "kind": summary["kind"],
        "content": summary["content"], "case_no": summary["case_no"], "created_by": summary["created_by"],
        "created_at": _iso(summary["created_at"]), "expires_at": _iso(summary["expires_at"]),
        "items": [{"media_id": m.id, "payload_file": payload, "sha256": m.sha256, "size": m.size,
                   "original_sha256": (record.get("original") or {}).get("sha256") if isinstance(record.get("original"), dict) else None}
                  for m, payload, record in plan],
    }
