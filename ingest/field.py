"""Field upload (issue 15): a terminal's tus upload written into the station spool, then the dock path.

The web layer (web/routes/uploads.py) speaks tus 1.0 and calls this module; everything that
touches bytes, the spool and the catalog is here.

Durability.  Each PATCH body is appended to `<spool>/uploads/<id>.part`, hashed in the same
pass (the whole-file SHA-256 and, when the client sent `Upload-Checksum`, the chunk's own),
then `fsync`ed; only then does one catalog transaction advance the upload's `offset` and
write the custody event.  The catalog's offset is the durable offset: bytes beyond it in the
file (a crash between the fsync and the commit) were never acknowledged and are cut off when
the upload is next touched.  A chunk whose checksum does not match is cut off again (nothing
of it stays) and the whole-file hasher is put back to its state before the chunk
(`hashlib` objects can be copied, not pickled).

Hash state across restarts.  A hashlib object cannot be saved, so the running hasher lives in
this process only.  When the server restarts (or the upload is first touched by this process)
the durable prefix `[0, offset)` is read and hashed once, then writing continues; this is the
only time bytes are read back, and only after a restart.  Chunk-boundary states cannot be
stored with hashlib, and a second SHA-256 implementation was not worth it.

Completion.  At the last byte our SHA-256 is final; when the device sent one in the metadata
and it differs, the upload is `rejected`: the bytes are kept in `<spool>/uploads/rejected/`
for inspection (never catalogued, never deleted silently) and a custody event says why.
Otherwise one transaction opens a dock session of kind `field_upload` for the token's device
and an offload item in phase `copied`, the file moves to `<spool>/objects/<sha256>` (the
name a docked copy has), and the ingest store stage takes it from there: store -> verify ->
catalog -> index job -> retain job (linking runs from the index job), exactly as for a dock.
The same bytes docked later are a second sighting of the same object.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog import custody_log
from catalog.app import App
from catalog.models import (Device, DeviceAssignment, DockSession, FieldUpload, Media, OffloadItem, Officer, Unit,
                            utcnow)
from catalog.tokens import DeviceIdentity
from core.errors import CustodyError, StorageIntegrityError, StorageUnavailable
from ingest.profiles import Profile, station_profiles
from ingest.spool import Spool
from ingest.states import ItemStatus, Phase, SessionState
from ingest.upload import add_copied_item, store_item
from storage.local import fsync_dir

log = logging.getLogger("custody.field")

CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
FIELD_KIND = "field_upload"
_SAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


# --------------------------------------------------------------------------- errors (the web layer maps .status)
class UploadError(CustodyError):
    status = 400


class Forbidden(UploadError):
    status = 403


class UploadNotFound(UploadError):
    status = 404


class UploadGone(UploadError):
    status = 410


class OffsetConflict(UploadError):
    status = 409


class UploadBusy(UploadError):
    status = 423


class TooLarge(UploadError):
    status = 413


class ChecksumMismatch(UploadError):
    status = 460


class WholeHashMismatch(UploadError):
    status = 422


class NoSpace(UploadError):
    status = 507


# --------------------------------------------------------------------------- metadata
@dataclass
class Meta:
    raw: dict[str, str]
    filename: str | None
    recorded_at_text: str | None
    sha256: str | None


def parse_metadata(header: str | None) -> Meta:
    """tus `Upload-Metadata`: comma-separated `key base64value` pairs.  Known keys: `filename`
    (or `name`), `recorded_at` (the device's recording time, ISO 8601), `sha256` (hex or base64)
    and `device_clock` (the device's clock when it sends, ISO 8601: the measured clock error)."""
    raw: dict[str, str] = {}
    for part in (header or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition(" ")
        if not key or key in raw:
            raise UploadError(f"Upload-Metadata: key {key!r} is empty or repeated")
        try:
            raw[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError) as e:
            raise UploadError(f"Upload-Metadata: value of {key!r} is not base64 UTF-8 text") from e
    name = raw.get("filename") or raw.get("name")
    if name is not None:
        name = _SAFE_NAME.sub("_", name.strip())[-255:] or None
    when = (raw.get("recorded_at") or "").strip()[:64] or None
    sha = (raw.get("sha256") or "").strip() or None
    if sha is not None:
        sha = _hex_sha256(sha)
    return Meta(raw, name, when, sha)


def _hex_sha256(text: str) -> str:
    t = text.lower()
    if re.fullmatch(r"[0-9a-f]{64}", t):
        return t
    try:
        b = base64.b64decode(text, validate=True)
    except binascii.Error:
        b = b""
    if len(b) != 32:
        raise UploadError("Upload-Metadata: sha256 must be 64 hex digits or the base64 of 32 bytes")
    return b.hex()


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """tus checksum extension: `Upload-Checksum: <algorithm> <base64 digest>`."""
    if not header:
        return None
    alg, _, value = header.strip().partition(" ")
    alg = alg.lower()
    if alg not in CHECKSUM_ALGORITHMS:
        raise UploadError(f"Upload-Checksum: algorithm {alg!r} is not supported ({', '.join(CHECKSUM_ALGORITHMS)})")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except binascii.Error as e:
        raise UploadError("Upload-Checksum: the digest is not base64") from e
    return alg, digest


def _recorded_at(text: str | None, tz: timezone) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("/", "-").replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=tz)).astimezone(timezone.utc)


# --------------------------------------------------------------------------- paths
def uploads_dir(app: App) -> Path:
    return Spool.of(app.settings).uploads


def part_path(app: App, upload_id: str) -> Path:
    return uploads_dir(app) / f"{upload_id}.part"


def rejected_dir(app: App) -> Path:
    return uploads_dir(app) / "rejected"


# --------------------------------------------------------------------------- the live state of this process
@dataclass
class _Live:
    fd: int
    hasher: Any
    offset: int  # == the catalog's durable offset whenever no chunk is in flight
    lock: threading.Lock = field(default_factory=threading.Lock)


_live: dict[str, _Live] = {}
_live_lock = threading.Lock()
_store_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="field-store")
_hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="field-hash")
_storing: set[str] = set()
_last_sweep = [0.0]


def _drop_live(upload_id: str) -> None:
    with _live_lock:
        lv = _live.pop(upload_id, None)
    if lv is not None:
        try:
            os.close(lv.fd)
        except OSError:
            pass


def _open_live(app: App, up: FieldUpload) -> _Live:
    """This process's writer for an upload; after a restart the durable prefix is re-hashed once."""
    with _live_lock:
        lv = _live.get(up.upload_id)
        if lv is not None:
            return lv
        path = part_path(app, up.upload_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise UploadGone(f"upload {up.upload_id}: its spool file is missing") from e
        size = os.fstat(fd).st_size
        if size < up.offset:
            os.close(fd)
            raise UploadGone(f"upload {up.upload_id}: the spool file has {size} bytes but {up.offset} were "
                             "acknowledged; it was damaged and cannot be resumed")
        if size > up.offset:  # written but never acknowledged (a crash before the commit)
            os.ftruncate(fd, up.offset)
            os.fsync(fd)
        h = hashlib.sha256()
        done, t0 = 0, time.monotonic()
        while done < up.offset:
            buf = os.pread(fd, min(8 << 20, up.offset - done), done)
            if not buf:
                break
            h.update(buf)
            done += len(buf)
        if up.offset:
            log.info("upload %s: re-hashed the durable %d bytes once after a restart (%.2fs)", up.upload_id,
                     up.offset, time.monotonic() - t0)
        lv = _live[up.upload_id] = _Live(fd=fd, hasher=h, offset=up.offset)
        return lv


# --------------------------------------------------------------------------- create / status / terminate
@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    length: int
    offset: int
    state: str
    expires_at: datetime
    metadata: dict[str, str]
    media_id: int | None = None
    reason: str | None = None
    sha256: str | None = None


def _info(s: Any, up: FieldUpload) -> UploadInfo:
    media_id = up.media_id
    if media_id is None and up.state == "complete" and up.session_id:
        media_id = s.execute(select(OffloadItem.media_id).where(OffloadItem.session_id == up.session_id)).scalar()
    state = "stored" if up.state == "complete" and media_id is not None else up.state
    return UploadInfo(up.upload_id, up.length, up.offset, state, up.expires_at, dict(up.upload_meta or {}),
                      media_id, up.reason, up.sha256)


def _event(s: Any, app: App, action: str, ident: DeviceIdentity, up: FieldUpload | None, remote: str | None,
           outcome: str = "ok", **detail: Any) -> None:
    custody_log.record(s, action, actor=ident.actor, outcome=outcome, remote_addr=remote,
                       session_id=up.session_id if up is not None else None,
                       subject=f"upload:{up.upload_id}" if up is not None else f"device:{ident.serial}",
                       detail={"station": app.station, "device": ident.serial, "token_id": ident.token_id, **detail})


def log_refused(app: App, actor: str, why: str, remote: str | None, subject: str, **detail: Any) -> None:
    """A refused request (unknown or revoked token, a web session, a foreign upload) in the custody log."""
    with app.catalog.session() as s:
        custody_log.record(s, "upload_refused", actor=actor, outcome="refused", remote_addr=remote, subject=subject,
                           detail={"station": app.station, "reason": why, **detail})


def create_upload(app: App, ident: DeviceIdentity, length_header: str | None, metadata_header: str | None,
                  remote: str | None) -> UploadInfo:
    sweep(app)
    if length_header is None:
        raise UploadError("Upload-Length is required (deferred length is not supported)")
    try:
        length = int(length_header)
    except ValueError:
        raise UploadError("Upload-Length must be a non-negative integer") from None
    if length < 0:
        raise UploadError("Upload-Length must be a non-negative integer")
    meta = parse_metadata(metadata_header)
    cfg = app.settings.field_upload
    floor = app.settings.station.min_free_spool_bytes
    refusal: UploadError | None = None
    if length > cfg.max_upload_bytes:
        refusal = TooLarge(f"Upload-Length {length} exceeds the largest upload this station takes "
                           f"({cfg.max_upload_bytes} bytes) / 超过单个上传上限")
    else:
        free = Spool.of(app.settings).free_bytes()
        if free - length < floor:
            refusal = NoSpace(f"station spool full: {free} bytes free, the upload needs {length} plus a floor of "
                              f"{floor}; nothing was deleted to make room, try later or dock the device / "
                              "工作站缓存空间不足，已拒绝上传（不会删除任何文件腾出空间），请稍后重试或到采集站拷贝")
    if refusal is not None:
        with app.catalog.session() as s:
            _event(s, app, "upload_refused", ident, None, remote, outcome="refused", reason=str(refusal),
                   length=length, filename=meta.filename)
        raise refusal
    upload_id = secrets.token_hex(16)
    d = uploads_dir(app)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(part_path(app, upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.fsync(fd)
    os.close(fd)
    fsync_dir(d)
    now = utcnow()
    with app.catalog.session() as s:
        up = FieldUpload(upload_id=upload_id, device_id=ident.device_id, token_id=ident.token_id,
                         station=app.station, length=length, offset=0, upload_meta=meta.raw, filename=meta.filename,
                         recorded_at_text=meta.recorded_at_text, client_sha256=meta.sha256, state="receiving",
                         remote_addr=(remote or "")[:64] or None, created_at=now, updated_at=now,
                         expires_at=now + timedelta(hours=cfg.upload_expiry_hours))
        s.add(up)
        s.flush()
        _event(s, app, "upload_created", ident, up, remote, length=length, filename=meta.filename,
               recorded_at=meta.recorded_at_text, device_sha256=meta.sha256)
        info = _info(s, up)
    if length == 0:  # nothing to send: complete at creation
        ChunkWriter(app, ident, upload_id, 0, None, remote).commit()
        return status(app, ident, upload_id, remote, log_use=False)
    return info


def _load(s: Any, ident: DeviceIdentity, upload_id: str) -> FieldUpload:
    up = s.execute(select(FieldUpload).where(FieldUpload.upload_id == upload_id)).scalar_one_or_none()
    if up is None:
        raise UploadNotFound(f"no upload {upload_id}")
    if up.device_id != ident.device_id:
        raise Forbidden(f"upload {upload_id} belongs to another device; a token uploads only as its own device")
    return up


def status(app: App, ident: DeviceIdentity, upload_id: str, remote: str | None, log_use: bool = True) -> UploadInfo:
    sweep(app)  # a client resuming after a restart asks here first: finish what the restart left
    with app.catalog.session() as s:
        up = _load(s, ident, upload_id)
        if log_use:
            _event(s, app, "upload_status", ident, up, remote, offset=up.offset, state=up.state)
        return _info(s, up)


def terminate(app: App, ident: DeviceIdentity, upload_id: str, remote: str | None) -> None:
    """tus termination: an unfinished upload's bytes are removed (a finished one is evidence: refused)."""
    with _locked(app, ident, upload_id, None):
        with app.catalog.session() as s:
            up = _load(s, ident, upload_id)
            if up.state != "receiving":
                raise UploadGone(f"upload {upload_id} is {up.state}; only an unfinished upload can be terminated")
            up.state, up.reason = "terminated", "terminated by the device (tus DELETE)"
            _event(s, app, "upload_terminated", ident, up, remote, offset=up.offset, length=up.length)
        _drop_live(upload_id)
        part_path(app, upload_id).unlink(missing_ok=True)


class _locked:
    """Hold one upload for one request (a second concurrent request gets 423)."""

    def __init__(self, app: App, ident: DeviceIdentity, upload_id: str, client_offset: int | None) -> None:
        self.app, self.ident, self.upload_id, self.client_offset = app, ident, upload_id, client_offset
        self.lv: _Live | None = None

    def __enter__(self) -> tuple[_Live | None, FieldUpload]:
        with self.app.catalog.session() as s:
            up = _load(s, self.ident, self.upload_id)
        if up.state != "receiving":
            return None, up
        lv = _open_live(self.app, up)
        if not lv.lock.acquire(blocking=False):
            raise UploadBusy(f"upload {self.upload_id} is being written by another request; retry shortly")
        self.lv = lv
        return lv, up

    def __exit__(self, *exc: object) -> None:
        if self.lv is not None:
            self.lv.lock.release()


# --------------------------------------------------------------------------- PATCH
def _pwrite_all(fd: int, view: memoryview, off: int) -> int:
    while view:
        n = os.pwrite(fd, view, off)
        view, off = view[n:], off + n
    return off


class ChunkWriter:
    """One PATCH body: `write()` pieces as they arrive, then `commit()` (or `abort()`).

    Holds the upload's lock from construction to commit/abort."""

    def __init__(self, app: App, ident: DeviceIdentity, upload_id: str, client_offset: int | None,
                 checksum: tuple[str, bytes] | None, remote: str | None) -> None:
        self.app, self.ident, self.upload_id, self.remote = app, ident, upload_id, remote
        self.checksum = checksum
        self._ctx = _locked(app, ident, upload_id, client_offset)
        lv, up = self._ctx.__enter__()
        if lv is None:
            if up.state in ("complete", "stored") and client_offset == up.length:
                raise OffsetConflict(f"upload {upload_id} is already complete")
            raise UploadGone(f"upload {upload_id} is {up.state}" + (f": {up.reason}" if up.reason else ""))
        try:
            if client_offset is not None and client_offset != lv.offset:
                raise OffsetConflict(f"Upload-Offset {client_offset} does not match the upload's offset {lv.offset}")
        except BaseException:
            self._ctx.__exit__(None, None, None)
            raise
        self.lv, self.length, self.start = lv, up.length, lv.offset
        self.pos = lv.offset
        self.saved = lv.hasher.copy()
        self.chunk_hash = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        self.done = False
        self.committed = False
        self._io = threading.Lock()
        self._closed = False
        self.state, self.sha256, self.expires_at = up.state, up.sha256, up.expires_at  # after commit: the new ones

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with self._io:  # a cut (abort) waits for a write still running in a worker thread
            if not self._closed:  # and no write lands after it
                self._write(data)

    def _close_writes(self) -> None:
        with self._io:
            self._closed = True

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self.pos + len(data) > self.length:
            raise TooLarge(f"the body runs past Upload-Length {self.length}")
        view = memoryview(data)
        # One pass over the bytes in memory, three workers at once (hashlib and os.pwrite release
        # the GIL): the chunk's own checksum and the write on pool threads, the whole-file hash here.
        side = _hash_pool.submit(self.chunk_hash.update, view) if self.chunk_hash is not None else None
        wrote = _hash_pool.submit(_pwrite_all, self.lv.fd, view, self.pos)
        self.lv.hasher.update(view)
        if side is not None:
            side.result()
        off = wrote.result()
        # Start write-back of these pages now (Linux: fadvise DONTNEED writes dirty pages out
        # asynchronously), so the fsync at the end of the chunk has little left to wait for.
        try:
            os.posix_fadvise(self.lv.fd, self.pos, off - self.pos, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        self.pos = off

    def _cut(self) -> None:
        with self._io:
            os.ftruncate(self.lv.fd, self.start)
            self.lv.hasher = self.saved
            self.pos = self.start

    def abort(self, why: str, keep_received: bool) -> int:
        """The body did not arrive whole (connection dropped) or was refused.  Without a chunk
        checksum the bytes that did arrive are kept (tus: the offset advances by what was
        received); with one, nothing of the chunk stays."""
        if self.done:
            return self.pos
        self._close_writes()
        try:
            if keep_received and self.chunk_hash is None and self.pos > self.start:
                try:
                    return self._commit_offset(partial=why)
                except BaseException:
                    if not self.committed:
                        self._cut()
                    raise
            self._cut()
            return self.start
        finally:
            self._release()

    def _release(self) -> None:
        if not self.done:
            self.done = True
            self._ctx.__exit__(None, None, None)

    def commit(self) -> int:
        """fsync, check the chunk checksum, advance the durable offset (and finish at the last byte)."""
        self._close_writes()
        try:
            if self.chunk_hash is not None and self.chunk_hash.digest() != self.checksum[1]:
                self._cut()
                with self.app.catalog.session() as s:
                    up = _load(s, self.ident, self.upload_id)
                    _event(s, self.app, "upload_chunk", self.ident, up, self.remote, outcome="refused",
                           offset=self.start, bytes=self.pos - self.start if self.pos > self.start else 0,
                           reason=f"Upload-Checksum ({self.checksum[0]}) mismatch; chunk not written")
                raise ChecksumMismatch(f"the chunk's {self.checksum[0]} does not match Upload-Checksum; "
                                       f"nothing of it was kept (offset stays {self.start}) / 分块校验值不符")
            return self._commit_offset()
        except BaseException:
            if not self.committed:  # e.g. the catalog did not answer: the chunk was never acknowledged
                self._cut()
            raise
        finally:
            self._release()

    def _commit_offset(self, partial: str | None = None) -> int:
        os.fsync(self.lv.fd)
        final = self.pos == self.length
        digest = self.lv.hasher.hexdigest() if final else None
        expiry = timedelta(hours=self.app.settings.field_upload.upload_expiry_hours)
        rejected = None
        with self.app.catalog.session() as s:
            up = _load(s, self.ident, self.upload_id)
            up.offset = self.pos
            up.expires_at = utcnow() + expiry
            _event(s, self.app, "upload_chunk", self.ident, up, self.remote, offset=self.start, to=self.pos,
                   bytes=self.pos - self.start, checksum=self.checksum[0] if self.checksum else None,
                   **({"interrupted": partial} if partial else {}))
            if final:
                up.sha256 = digest
                if up.client_sha256 and up.client_sha256 != digest:
                    rejected = (f"whole-file SHA-256 mismatch: the device sent {up.client_sha256}, the bytes "
                                f"received hash to {digest}; not catalogued, kept for inspection as "
                                f"uploads/rejected/{self.upload_id}.part / 整个文件的SHA-256与终端提供的不符，未入库，保留待查")
                    up.state, up.reason = "rejected", rejected
                    _event(s, self.app, "upload_rejected", self.ident, up, self.remote, outcome="refused",
                           device_sha256=up.client_sha256, sha256=digest, kept_as=f"uploads/rejected/{self.upload_id}.part")
                else:
                    _open_field_session(s, self.app, self.ident, up, digest, self.remote)
        self.committed = True
        self.lv.offset = self.pos
        self.state, self.sha256, self.expires_at = up.state, up.sha256, up.expires_at
        if final:
            _drop_live(self.upload_id)
            if rejected:
                rd = rejected_dir(self.app)
                rd.mkdir(parents=True, exist_ok=True)
                os.replace(part_path(self.app, self.upload_id), rd / f"{self.upload_id}.part")
                fsync_dir(rd)
                fsync_dir(uploads_dir(self.app))
                raise WholeHashMismatch(rejected)
            _to_objects(self.app, self.upload_id, digest)
            schedule_store(self.app, self.upload_id)
        return self.pos


# --------------------------------------------------------------------------- completion: into the dock path
def _officer_for(s: Any, device_id: int, at: datetime) -> str | None:
    row = s.execute(select(Officer.badge).join(DeviceAssignment, DeviceAssignment.officer_id == Officer.id)
                    .where(DeviceAssignment.device_id == device_id, DeviceAssignment.valid_from <= at,
                           (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > at))
                    .order_by(DeviceAssignment.valid_from.desc())).first()
    return row[0] if row else None


def _open_field_session(s: Any, app: App, ident: DeviceIdentity, up: FieldUpload, sha: str,
                        remote: str | None) -> None:
    """The same records a dock makes: a dock session (kind field_upload) and an item copied to the spool."""
    dev = s.get(Device, ident.device_id)
    unit = s.get(Unit, dev.unit_id) if dev.unit_id else None
    now = utcnow()
    recorded = _recorded_at(up.recorded_at_text, app.settings.tz)
    badge = _officer_for(s, dev.id, recorded or now)
    # The terminal's clock as it sent the upload (`device_clock`), against the station's clock at
    # creation: the measured clock error, as a dock measures it from the identity file.
    clock_text = (up.upload_meta or {}).get("device_clock", "").strip()[:64] or None
    clock = _recorded_at(clock_text, app.settings.tz)
    offset = round((clock - up.created_at).total_seconds(), 3) if clock else None
    if offset is not None:
        dev.last_clock_offset_seconds = offset
    ds = DockSession(station=app.station, volume_path=f"field-upload:{up.upload_id}", profile=dev.profile,
                     device_id=dev.id, officer_badge=badge, unit_code=unit.code if unit else None,
                     identity={"serial": dev.serial, "via": "tus", "upload_id": up.upload_id,
                               "token_id": ident.token_id, "remote_addr": remote},
                     state=SessionState.OFFLOADED, kind=FIELD_KIND, started_at=up.created_at, offloaded_at=now, heartbeat_at=now,
                     files_total=1, files_done=1, bytes_total=up.length, bytes_done=up.length,
                     device_clock_text=clock_text, station_clock_at_read=up.created_at if clock else None,
                     clock_offset_seconds=offset, clock_offset_source="field_upload" if offset is not None else None)
    s.add(ds)
    s.flush()
    name = up.filename or f"{up.upload_id}.bin"
    mtime_ns = int(recorded.timestamp() * 1_000_000_000) if recorded else None
    add_copied_item(s, session_id=ds.id, device_path=name, sha256=sha, size=up.length, mtime_ns=mtime_ns,
                    sidecar={"file": "tus Upload-Metadata", "content": dict(up.upload_meta or {})})
    up.state, up.session_id = "complete", ds.id
    custody_log.record(s, "docked", actor=ident.actor, session_id=ds.id, subject=f"device:{dev.serial}",
                       remote_addr=remote,
                       detail={"kind": FIELD_KIND, "upload_id": up.upload_id, "serial": dev.serial,
                               "officer": badge, "unit": unit.code if unit else None, "station": app.station,
                               "token_id": ident.token_id, "device_clock": clock_text,
                               "station_clock": up.created_at.isoformat(), "clock_offset_seconds": offset})
    custody_log.record(s, "copied", actor=ident.actor, session_id=ds.id, subject=f"sha256:{sha}", remote_addr=remote,
                       detail={"device_path": name, "size": up.length, "via": "tus", "device_sha256": up.client_sha256,
                               "station": app.station})


def _to_objects(app: App, upload_id: str, sha: str) -> None:
    """Move the finished upload to the spool's content-addressed name (as a docked copy)."""
    src = part_path(app, upload_id)
    if not src.exists():
        return  # moved already (the move happened, then the process stopped)
    Spool.of(app.settings).commit(src, sha)
    fsync_dir(src.parent)


def _profile_for(app: App, profile_name: str | None, kind: str) -> Profile | None:
    profiles = station_profiles(app.settings)
    for p in profiles:
        if p.name == profile_name:
            return p
    return next((p for p in profiles if p.kind == kind), None)


def schedule_store(app: App, upload_id: str) -> None:
    with _live_lock:
        if upload_id in _storing:
            return
        _storing.add(upload_id)
    _store_pool.submit(_store_safely, app, upload_id)


def _store_safely(app: App, upload_id: str) -> None:
    try:
        store_upload(app, upload_id)
    except Exception:  # noqa: BLE001 - the sweep tries again; the bytes stay in the spool
        log.exception("field upload %s: storing failed; it stays in the spool and is tried again", upload_id)
    finally:
        with _live_lock:
            _storing.discard(upload_id)


def store_upload(app: App, upload_id: str) -> str:
    """Run a completed upload through the store stage and close its session.  Returns the item status."""
    with app.catalog.session() as s:
        up = s.execute(select(FieldUpload).where(FieldUpload.upload_id == upload_id)).scalar_one()
        if up.state != "complete" or up.session_id is None:
            return up.state
        ds = s.get(DockSession, up.session_id)
        dev = s.get(Device, up.device_id)
        item = s.execute(select(OffloadItem).where(OffloadItem.session_id == ds.id)).scalar_one()
        item_id, actor, sha = item.id, f"device:{dev.serial}", up.sha256
        profile = _profile_for(app, dev.profile, dev.kind)
    _to_objects(app, upload_id, sha)
    try:
        out = store_item(app, item_id, profile, actor)
        outage = None
    except StorageUnavailable as e:
        out, outage = None, str(e)
    except StorageIntegrityError as e:
        out, outage = None, f"store integrity error: {e}"
    with app.catalog.session() as s:
        up = s.execute(select(FieldUpload).where(FieldUpload.upload_id == upload_id)).scalar_one()
        ds = s.get(DockSession, up.session_id)
        item = s.get(OffloadItem, item_id)
        done = out is not None and item.phase == Phase.STORED and item.media_id is not None
        ds.ended_at = utcnow()
        ds.counts = {"stored": int(item.status == ItemStatus.STORED), "duplicate": int(item.status == ItemStatus.DUPLICATE),
                     "flagged": int(item.status == ItemStatus.FLAGGED), "refused": 0, "skipped": int(not done),
                     "wiped": 0}
        if done:
            up.state, up.media_id = "stored", item.media_id
            ds.state = SessionState.COMPLETE
            custody_log.record(s, "session_complete", actor=actor, session_id=ds.id,
                               detail={"kind": FIELD_KIND, "counts": ds.counts, "upload_id": upload_id,
                                       "station": app.station})
        else:
            why = outage or (out.reason if out else None) or "not stored yet"
            # incomplete: the daemon's uploader stores what waits in the spool and closes the session
            ds.state, ds.message = SessionState.INCOMPLETE, f"upload pending: {why}"
            custody_log.record(s, "session_incomplete", actor=actor, session_id=ds.id, outcome="failed",
                               detail={"kind": FIELD_KIND, "reason": why, "upload_id": upload_id,
                                       "station": app.station})
        return item.status or "copied"


# --------------------------------------------------------------------------- housekeeping
def sweep(app: App, force: bool = False) -> None:
    """At most once a minute: remove expired incomplete uploads, and store completed uploads a
    stopped server left unstored."""
    now = time.monotonic()
    if not force and now - _last_sweep[0] < 60:
        return
    _last_sweep[0] = now
    expire_uploads(app)
    with app.catalog.session() as s:
        waiting = s.execute(select(FieldUpload.upload_id).where(FieldUpload.station == app.station,
                                                                FieldUpload.state == "complete")).scalars().all()
    for upload_id in waiting:
        schedule_store(app, upload_id)


def expire_uploads(app: App, now: datetime | None = None) -> list[str]:
    """Incomplete uploads untouched for `upload_expiry_hours` are removed, each a custody event."""
    now = now or utcnow()
    gone: list[str] = []
    with app.catalog.session() as s:
        rows = s.execute(select(FieldUpload).where(FieldUpload.station == app.station,
                                                   FieldUpload.state == "receiving",
                                                   FieldUpload.expires_at < now)).scalars().all()
        for up in rows:
            lv = _live.get(up.upload_id)
            if lv is not None and lv.lock.locked():
                continue  # being written right now
            up.state = "expired"
            up.reason = (f"incomplete upload ({up.offset} of {up.length} bytes) expired after "
                         f"{app.settings.field_upload.upload_expiry_hours:g} h without activity; partial bytes removed")
            dev = s.get(Device, up.device_id)
            custody_log.record(s, "upload_expired", actor=f"station:{app.station}", subject=f"upload:{up.upload_id}",
                               detail={"station": app.station, "device": dev.serial if dev else None,
                                       "offset": up.offset, "length": up.length, "filename": up.filename,
                                       "expired_at": up.expires_at.isoformat()})
            gone.append(up.upload_id)
    for upload_id in gone:
        _drop_live(upload_id)
        part_path(app, upload_id).unlink(missing_ok=True)
    return gone


def media_of(app: App, upload_id: str) -> Media | None:
    with app.catalog.session() as s:
        mid = s.execute(select(FieldUpload.media_id).where(FieldUpload.upload_id == upload_id)).scalar()
        return s.get(Media, mid) if mid else None
