"""Catalog schema (SQLAlchemy 2 typed ORM).  Alembic migrations live beside it.

Conventions: every instant is a timezone-aware UTC datetime (`UTCDateTime`);
what a device's own clock read is kept as text, exactly as read, beside the
corrected instant.  Rows describing evidence are never deleted: a purge leaves
a tombstone (status 'purged') with the hash, metadata and custody history.
"""

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC; refuses naive input (ambiguous time)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; instants must carry a zone")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


# --------------------------------------------------------------------------- people & devices
class Unit(Base):
    __tablename__ = "units"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # GA/T 947: 12-character unit code
    name: Mapped[str | None] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(String(32))
    standard_officers_per_device: Mapped[float | None] = mapped_column(Float)


class Officer(Base):
    __tablename__ = "officers"
    id: Mapped[int] = mapped_column(primary_key=True)
    badge: Mapped[str] = mapped_column(String(32), unique=True)  # officer number a device carries
    cert_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    certified_from: Mapped[date | None] = mapped_column(Date)
    certified_to: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|revoked|left|unknown
    status_changed_on: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16), default="import")  # import|device (seen on a dock)
    unit: Mapped[Unit | None] = relationship()


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="camera")  # camera|terminal|other
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    profile: Mapped[str | None] = mapped_column(String(64))
    vendor: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    firmware: Mapped[str | None] = mapped_column(String(100))
    in_service_from: Mapped[date | None] = mapped_column(Date)
    in_service_to: Mapped[date | None] = mapped_column(Date)
    last_docked_at: Mapped[datetime | None] = mapped_column()
    last_clock_offset_seconds: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="dock")  # import|dock
    unit: Mapped[Unit | None] = relationship()


class DeviceAssignment(Base):
    __tablename__ = "device_assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    valid_from: Mapped[datetime] = mapped_column()
    valid_to: Mapped[datetime | None] = mapped_column()
    __table_args__ = (UniqueConstraint("device_id", "officer_id", "valid_from"),)


# --------------------------------------------------------------------------- docking & offload
class DockSession(Base):
    """One docking of one device volume: the unit of offload, resume and wipe."""

    __tablename__ = "dock_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(64), index=True)
    volume_path: Mapped[str] = mapped_column(Text)
    profile: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), index=True)
    officer_badge: Mapped[str | None] = mapped_column(String(32))  # as the identity file says
    unit_code: Mapped[str | None] = mapped_column(String(32))
    identity: Mapped[dict[str, Any]] = mapped_column(default=dict)  # raw identity fields
    # state: offloading|offloaded|complete|incomplete|unrecognised|failed
    state: Mapped[str] = mapped_column(String(16), default="offloading", index=True)
    message: Mapped[str | None] = mapped_column(Text)
    resumed_from_id: Mapped[int | None] = mapped_column(ForeignKey("dock_sessions.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    offloaded_at: Mapped[datetime | None] = mapped_column()  # device safe to remove
    ended_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    # Clock: what the device said, when the station read it, and the measured error.
    device_clock_text: Mapped[str | None] = mapped_column(String(64))
    station_clock_at_read: Mapped[datetime | None] = mapped_column()
    clock_offset_seconds: Mapped[float | None] = mapped_column(Float)  # device minus true UTC
    clock_offset_source: Mapped[str | None] = mapped_column(String(64))
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    kind: Mapped[str] = mapped_column(String(16), default="dock")  # dock|field_upload (issue 15)
    device: Mapped[Device | None] = relationship()


class OffloadItem(Base):
    """Explicit per-file state: pending -> copied (in spool) -> stored -> (wiped).

    Terminal states: stored, duplicate, flagged (stored but flagged), refused, skipped.
    `phase` tracks the durable progress used for resume; `status` is what users see.
    """

    __tablename__ = "offload_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("dock_sessions.id"), index=True)
    device_path: Mapped[str] = mapped_column(Text)  # relative to the volume, as data
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    # phase: pending|copied|stored|wiped|done (done = terminal without store)
    phase: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    status: Mapped[str | None] = mapped_column(String(16))  # stored|duplicate|flagged|refused|skipped
    reason: Mapped[str | None] = mapped_column(Text)
    spool_name: Mapped[str | None] = mapped_column(String(128))
    # A sidecar (same stem, .txt/.json/.xml) read at offload: {"file": ..., "content": str|dict}
    sidecar: Mapped[dict[str, Any] | None] = mapped_column()
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    station: Mapped[str | None] = mapped_column(String(64), index=True)  # whose spool holds the copy (issue 16)
    __table_args__ = (UniqueConstraint("session_id", "device_path"),)


# --------------------------------------------------------------------------- evidence
class Media(Base):
    """One stored recording, identified by its SHA-256 (content-addressed)."""

    __tablename__ = "media"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # video|audio|photo|other
    storage_key: Mapped[str] = mapped_column(Text)
    storage_checksum: Mapped[str | None] = mapped_column(String(128))  # what the store confirmed
    status: Mapped[str] = mapped_column(String(16), default="stored", index=True)  # stored|purged
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"), index=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"), index=True)
    officer_badge: Mapped[str | None] = mapped_column(String(32))  # as read at dock / from name
    unit_code: Mapped[str | None] = mapped_column(String(32))
    first_session_id: Mapped[int | None] = mapped_column(ForeignKey("dock_sessions.id"))
    original_path: Mapped[str] = mapped_column(Text)  # device-relative path, data only
    original_name: Mapped[str] = mapped_column(Text)
    original_mtime: Mapped[datetime | None] = mapped_column()
    important: Mapped[bool] = mapped_column(Boolean, default=False)
    flags: Mapped[list[Any]] = mapped_column(default=list)  # e.g. ["unplayable", "empty"]
    flag_reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Time: device reading kept as read; corrected UTC instants beside it.
    device_start_text: Mapped[str | None] = mapped_column(String(64))
    device_start: Mapped[datetime | None] = mapped_column()  # device clock, interpreted in its zone
    recorded_start: Mapped[datetime | None] = mapped_column(index=True)  # corrected UTC
    recorded_end: Mapped[datetime | None] = mapped_column(index=True)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    time_source: Mapped[str | None] = mapped_column(String(32))
    clock_offset_seconds: Mapped[float | None] = mapped_column(Float)
    clock_offset_source: Mapped[str | None] = mapped_column(String(64))
    docked_at: Mapped[datetime | None] = mapped_column()
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column()
    # Indexer output
    index_state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed
    probe: Mapped[dict[str, Any] | None] = mapped_column()
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # Retention (cached decision; the pure function is the authority)
    keep_until: Mapped[datetime | None] = mapped_column()
    keep_rule: Mapped[str | None] = mapped_column(String(64))
    lock_until: Mapped[datetime | None] = mapped_column()  # retain-until applied in the store
    legal_hold_applied: Mapped[bool] = mapped_column(Boolean, default=False)
    purged_at: Mapped[datetime | None] = mapped_column()
    # Disclosure (issue 18): a derived (redacted) recording names the original it was made from.
    derived_from: Mapped[int | None] = mapped_column(ForeignKey("media.id"), index=True)
    device: Mapped[Device | None] = relationship()
    officer: Mapped[Officer | None] = relationship()
    __table_args__ = (
        Index("ix_media_officer_start", "officer_id", "recorded_start"),
        Index("ix_media_device_start", "device_id", "recorded_start"),
    )


class Sighting(Base):
    """Each time the same bytes were seen on a device (stored once, seen many)."""

    __tablename__ = "sightings"
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("dock_sessions.id"), index=True)
    device_path: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Derivative(Base):
    """Keyframes, thumbnails and contact sheets stored for a recording."""

    __tablename__ = "derivatives"
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # keyframe|thumbnail|contact_sheet
    offset_seconds: Mapped[float | None] = mapped_column(Float)
    storage_key: Mapped[str] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(64))  # interval|scene_change|first
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column()


class Job(Base):
    """Work queue in the catalog (index, reindex, relink...).  Leased, retried."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="index")
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column()
    not_before: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    station: Mapped[str | None] = mapped_column(String(64))  # the station of the latest claim (issue 16)
    # what the job needs beyond the recording (a web redaction: plan, reason, who asked; its result)
    params: Mapped[dict[str, Any] | None] = mapped_column()


class ClockCorrection(Base):
    """An administrator's correction of a device clock over a time range."""

    __tablename__ = "clock_corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    valid_from: Mapped[datetime] = mapped_column()  # device-clock instants
    valid_to: Mapped[datetime | None] = mapped_column()
    offset_seconds: Mapped[float] = mapped_column(Float)  # device minus true UTC
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


# --------------------------------------------------------------------------- cases
class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="inspection")  # inspection|penalty|coercive
    enterprise: Mapped[str | None] = mapped_column(String(200), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    start: Mapped[datetime | None] = mapped_column(index=True)
    end: Mapped[datetime | None] = mapped_column()
    hazards_found: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32), default="open")
    closed_at: Mapped[datetime | None] = mapped_column()
    follow_up_closed_at: Mapped[datetime | None] = mapped_column()
    parent_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Issue 13: the enforcement system's own record id (unique when present), the record id or
    # case number of the inspection a follow-up (复查) follows up, and a mark for cases imported
    # with fewer than two officers (行政处罚法 Art. 42), reported by the coverage report.
    record_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    follows_up: Mapped[str | None] = mapped_column(String(64))
    fewer_than_two_officers: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CaseOfficer(Base):
    __tablename__ = "case_officers"
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), primary_key=True, index=True)


class MediaLink(Base):
    """A recording attached to a case, with how and why.  Unlinking keeps the row."""

    __tablename__ = "media_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # auto|name|sidecar|manual
    score: Mapped[float] = mapped_column(Float, default=1.0)
    reason: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_by: Mapped[str] = mapped_column(String(64), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_by: Mapped[str | None] = mapped_column(String(64))
    removed_at: Mapped[datetime | None] = mapped_column()
    removed_reason: Mapped[str | None] = mapped_column(Text)


class ReviewItem(Base):
    """A doubtful match queued for a person instead of being guessed."""

    __tablename__ = "review_queue"
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    candidates: Mapped[list[Any]] = mapped_column(default=list)  # [{case_no, score, reason}]
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open|resolved
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolution: Mapped[str | None] = mapped_column(Text)


class Redaction(Base):
    """A derived (redacted) recording's log and its approval by a second reviewer (issue 18).

    `log` holds who/when/why, the detector with version and threshold, every box and range.
    A copy is approved when approved_by/approved_at are set; approved_by != created_by.
    """

    __tablename__ = "redactions"
    id: Mapped[int] = mapped_column(primary_key=True)
    derived_media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), unique=True)
    original_media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    log: Mapped[dict[str, Any]] = mapped_column(default=dict)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column()


class Share(Base):
    """A revocable link through which a recipient with no account downloads evidence (issue 18).

    Only the SHA-256 of the link's token is kept (the link is shown once, at creation), and an
    argon2 hash of the access code when one is set.  What the recipient does (views,
    downloads, refusals) is written to the custody log with subject `share:<id>`.
    """

    __tablename__ = "shares"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    recipient: Mapped[str] = mapped_column(String(200))
    recipient_kind: Mapped[str] = mapped_column(String(16))  # public|court|prosecutor|reconsideration|complainant
    content: Mapped[str] = mapped_column(String(16))  # originals|redacted
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    code_hash: Mapped[str | None] = mapped_column(Text)
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    failed_code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    code_locked_until: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class ShareItem(Base):
    """One recording in a share, with the hash and size it had when shared."""

    __tablename__ = "share_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    original_media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"))  # a redacted copy's original
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("share_id", "media_id"),)


class ShareGrant(Base):
    """The right of one account to share originals (court/prosecutor/reconsideration), given by an
    administrator; revoking keeps the row."""

    __tablename__ = "share_grants"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    right: Mapped[str] = mapped_column(String(32), default="share_originals")
    reason: Mapped[str | None] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()


# --------------------------------------------------------------------------- accounts & retention
class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))  # inspector|reviewer|administrator|auditor
    os_user: Mapped[str | None] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    units: Mapped[list[Any]] = mapped_column(default=list)  # unit codes a reviewer covers; [] = all
    officer_badge: Mapped[str | None] = mapped_column(String(32))  # an inspector's own officer number
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    # issue 17 (0009_access): access follows duty, TOTP second factor, access review
    disabled_at: Mapped[datetime | None] = mapped_column()
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    last_login_at: Mapped[datetime | None] = mapped_column()
    totp_secret: Mapped[str | None] = mapped_column(String(64))  # base32; set at enrolment, confirmed by a code
    totp_enrolled_at: Mapped[datetime | None] = mapped_column()
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code is accepted once (no replay)
    recovery_codes: Mapped[list[Any] | None] = mapped_column()  # SHA-256 of unused one-time recovery codes


class LoginSession(Base):
    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()
    mfa_pending: Mapped[bool] = mapped_column(Boolean, default=False)  # password checked, second factor not yet


class LoginFailure(Base):
    """Wrong passwords per (account name, remote address): the lockout is per pair, so an
    outsider who knows a name locks only their own address out (issue 17)."""
    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("username", "remote_addr", name="uq_login_failures_pair"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column()


class Hold(Base):
    __tablename__ = "holds"
    id: Mapped[int] = mapped_column(primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16))  # media|case|device|officer
    target_ref: Mapped[str] = mapped_column(String(128), index=True)  # media id / case no / serial / badge
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(64))
    released_at: Mapped[datetime | None] = mapped_column()
    release_reason: Mapped[str | None] = mapped_column(Text)


class MediaTag(Base):
    """Reviewer flags with retention meaning (obstruction, complaint, accident...)."""

    __tablename__ = "media_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    tag: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column()
    removed_by: Mapped[str | None] = mapped_column(String(64))


class RetentionPlan(Base):
    __tablename__ = "retention_plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")  # draft|approved|swept|superseded
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    as_of: Mapped[datetime] = mapped_column()
    rules_digest: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column()
    swept_at: Mapped[datetime | None] = mapped_column()
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RetentionPlanItem(Base):
    __tablename__ = "retention_plan_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("retention_plans.id"), index=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"), index=True)
    keep_until: Mapped[datetime | None] = mapped_column()
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    change: Mapped[str | None] = mapped_column(String(32))  # new|unchanged|rule_shortened...
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|deleted|kept|failed
    note: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column()


# --------------------------------------------------------------------------- custody log
class CustodyEvent(Base):
    """Append-only, hash-chained: hash = SHA-256(prev_hash + canonical fields).

    Database triggers refuse UPDATE and DELETE; `custody verify` recomputes the
    chain so an edit or deletion made around the triggers is still detected.
    """

    __tablename__ = "custody_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok|refused|failed
    media_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no FK: survives purge
    session_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str | None] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    station: Mapped[str | None] = mapped_column(String(64))  # the writing station, hashed when set (issue 16)


class ChainHead(Base):
    """Single row locked to serialise appends to the custody chain across workers/stations."""

    __tablename__ = "custody_chain_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class CustodySignature(Base):
    """The writing station's Ed25519 signature over one event (its seq and hash), issue 17.

    Kept beside the event, append-only like it: a row written around the custody writer
    carries no valid signature, and nobody without the station's key file can make one.
    """

    __tablename__ = "custody_signatures"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    key_id: Mapped[str] = mapped_column(String(32))
    sig: Mapped[str] = mapped_column(String(128))


class LogAnchor(Base):
    """Which chain this catalog holds (checkpoints in the store name it), issue 17.

    `chain_id` changes when a catalog is rebuilt from the store or restored from a backup
    (an event in the log says so and names the chain it replaces); `signed_from` is the first
    event written with signatures (older catalogs were migrated with a log already in them).
    """

    __tablename__ = "custody_log_anchor"
    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(32))
    signed_from: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- field upload & API (issue 15)
class DeviceToken(Base):
    """A terminal's upload token (`custody devices enrol`): only its SHA-256 is kept."""

    __tablename__ = "device_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column()


class ApiToken(Base):
    """A token the enforcement system pushes cases with, acting as one account (its role decides)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column()


class FieldUpload(Base):
    """One tus upload from a terminal: receiving -> complete -> stored (or rejected/expired/terminated).

    `offset` is the durable offset: bytes up to it are fsynced in the spool before it advances.
    """

    __tablename__ = "field_uploads"
    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[str] = mapped_column(String(64), unique=True)  # the random id in the upload URL
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("device_tokens.id"))
    station: Mapped[str] = mapped_column(String(64), index=True)  # whose spool holds the bytes
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    upload_meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # tus Upload-Metadata, decoded
    filename: Mapped[str | None] = mapped_column(Text)
    recorded_at_text: Mapped[str | None] = mapped_column(String(64))  # the device's recording time, as sent
    client_sha256: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # ours, computed while writing
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    session_id: Mapped[int | None] = mapped_column(ForeignKey("dock_sessions.id"))
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id"))


# --------------------------------------------------------------------------- stations (issue 16)
class Station(Base):
    """One dock station (or web server) sharing the catalog: who it is and its last heartbeat.

    The daemon rewrites its row every `[station].heartbeat_seconds`; a row whose heartbeat is
    older than three beats shows as down.  What it reports (docked devices, running offloads,
    spool free space) is a snapshot from that beat.
    """

    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[str | None] = mapped_column(String(64))  # the catalog schema revision it runs
    started_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    stopped_at: Mapped[datetime | None] = mapped_column()  # a clean stop (SIGTERM); None while running
    dock_root: Mapped[str | None] = mapped_column(Text)
    spool_dir: Mapped[str | None] = mapped_column(Text)
    spool_free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    docked: Mapped[list[Any]] = mapped_column(default=list)  # [{"volume", "serial"?}] at the last beat
    running_offloads: Mapped[int] = mapped_column(Integer, default=0)


class DeviceLease(Base):
    """One offload per device across every station: the lease row of a device serial.

    Held by (station, holder token) until `expires_at`; the holder renews it while it copies.
    An expired lease (its station died) may be taken by any station; a released one too.
    """

    __tablename__ = "device_leases"
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    station: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    released_at: Mapped[datetime | None] = mapped_column()
    taken_from: Mapped[str | None] = mapped_column(String(64))  # the station whose expired lease was taken
