"""A recording's true start and end time, and how we know it.

Two separate questions, answered openly:

1. What did the *device's* clock say when the recording started?  Sources, in order of
   trust: the device profile's file-name time, the container / EXIF time, the file's
   modification time (which marks the end of writing, so the duration is taken off).
   Every reading found is kept in `Media.meta["time_readings"]`, exactly as read.
2. How wrong was that clock?  An administrator's correction for the device and time
   range, else the offset measured at the dock (identity file clock vs station clock),
   else an estimate from photos of the same dock session whose EXIF carries both the
   device time and the GPS time (GPS time is true UTC), else unknown.

Corrected UTC = device time - offset (offset = device minus true UTC, positive when
the device runs fast).  The device reading is never overwritten by a correction.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.settings import Settings, parse_utc_offset
from catalog.models import ClockCorrection, DockSession, Media, Sighting

TRUST_ORDER = ("filename", "container", "exif", "mtime")
PHOTO_GPS_SOURCE = "photo_gps"
_UNSET_BEFORE_YEAR = 1990  # MP4 epoch 1904 / Unix 1970 mean "clock never set", not a time


@dataclass
class Reading:
    """One clock reading of the recording's start, on the device's clock."""

    source: str  # filename|container|exif|mtime
    text: str  # exactly as the device wrote it
    device_time: datetime  # zone-aware instant on the device clock
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["device_time"] = self.device_time.isoformat()
        return d

    @classmethod
    def from_json(cls, source: str, d: dict[str, Any]) -> "Reading":
        return cls(source=source, text=d["text"], device_time=datetime.fromisoformat(d["device_time"]),
                   note=d.get("note"))


@dataclass
class Offset:
    seconds: float | None
    source: str | None


# --------------------------------------------------------------------------- readings
def filename_reading(profile: Any, original_path: str) -> Reading | None:
    if profile is None:
        return None
    info = profile.parse_name(original_path)
    if info.start is None or not info.start_text:
        return None
    return Reading("filename", info.start_text, info.start)


def container_reading(summary: dict[str, Any], zone: tzinfo, local_as_utc: bool) -> Reading | None:
    """MP4 `creation_time` is meant to be UTC; some firmware writes local wall time instead."""
    text = summary.get("creation_time")
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.year < _UNSET_BEFORE_YEAR:
        return None
    if dt.tzinfo is None:
        return Reading("container", text, dt.replace(tzinfo=zone), "no zone in the tag; device zone assumed")
    if local_as_utc:
        # The digits are the device's wall clock; the "Z" is the firmware's mistake.
        return Reading("container", text, dt.replace(tzinfo=None).replace(tzinfo=zone),
                       "profile: container time is local wall time written as UTC")
    return Reading("container", text, dt)


def exif_reading(summary: dict[str, Any], zone: tzinfo) -> Reading | None:
    text = summary.get("datetime_original")
    if not text:
        return None
    try:
        naive = datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if naive.year < _UNSET_BEFORE_YEAR:
        return None
    off = summary.get("offset_time_original")
    note = None
    try:
        tz = parse_utc_offset(off) if off else zone
    except Exception:  # noqa: BLE001 - a malformed offset tag: fall back to the device zone
        tz, note = zone, f"unreadable OffsetTimeOriginal {off!r}; device zone assumed"
    full = f"{text} {off}" if off else text
    return Reading("exif", full, naive.replace(tzinfo=tz), note)


def mtime_reading(mtime: datetime | None, duration: float | None, kind: str) -> Reading | None:
    """The modification time is written when the recorder closes the file: its end."""
    if mtime is None or mtime.year < _UNSET_BEFORE_YEAR:
        return None
    if kind in ("video", "audio") and duration:
        return Reading("mtime", mtime.isoformat(), mtime - timedelta(seconds=duration),
                       f"file closed at {mtime.isoformat()}; start = close - {duration:.3f} s")
    return Reading("mtime", mtime.isoformat(), mtime)


def gps_utc(summary: dict[str, Any]) -> datetime | None:
    text = (summary.get("gps") or {}).get("utc_text")
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y:%m:%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def choose(readings: dict[str, Reading]) -> Reading | None:
    for source in TRUST_ORDER:
        if source in readings:
            return readings[source]
    return None


def collect_readings(media: Media, summary: dict[str, Any], profile: Any, zone: tzinfo,
                     duration: float | None) -> dict[str, Reading]:
    out: dict[str, Reading] = {}
    name = filename_reading(profile, media.original_path)
    if name is None and media.time_source == "filename" and media.device_start and media.device_start_text:
        # The spine parsed the name at the dock with a profile we no longer have: keep its reading.
        name = Reading("filename", media.device_start_text, media.device_start, "read at the dock")
    local_bug = bool(getattr(profile, "container_time_is_local", False))
    candidates = [name, container_reading(summary, zone, local_bug), exif_reading(summary, zone),
                  mtime_reading(media.original_mtime, duration, media.kind)]
    for r in candidates:
        if r is not None:
            out[r.source] = r
    return out


# --------------------------------------------------------------------------- clock offset
def correction_for(session: Session, device_id: int | None, device_time: datetime) -> ClockCorrection | None:
    """The newest standing administrator correction covering this device-clock instant."""
    if device_id is None:
        return None
    return session.execute(
        select(ClockCorrection)
        .where(ClockCorrection.device_id == device_id, ClockCorrection.revoked_at.is_(None),
               ClockCorrection.valid_from <= device_time,
               or_(ClockCorrection.valid_to.is_(None), ClockCorrection.valid_to > device_time))
        .order_by(ClockCorrection.created_at.desc(), ClockCorrection.id.desc())
    ).scalars().first()


def resolve_offset(session: Session, media: Media, device_time: datetime) -> Offset:
    corr = correction_for(session, media.device_id, device_time)
    if corr is not None:
        return Offset(corr.offset_seconds, f"correction #{corr.id} by {corr.created_by}")
    ds = session_for_update(session, media.first_session_id)
    if ds is not None and ds.clock_offset_seconds is not None:
        return Offset(ds.clock_offset_seconds, ds.clock_offset_source or "dock clock reading")
    return Offset(None, None)


def session_for_update(session: Session, dock_session_id: int | None) -> DockSession | None:
    """The dock session row, locked: reading its offset and setting it from photos serialise,
    so a recording indexed alongside a photo either sees the estimate or gets re-timed by it."""
    if dock_session_id is None:
        return None
    return session.get(DockSession, dock_session_id, with_for_update=True, populate_existing=True)


def session_photo_offsets(session: Session, dock_session_id: int, zone: tzinfo) -> list[float]:
    """Device-minus-GPS offsets of the indexed photos seen in one dock session."""
    seen = select(Sighting.media_id).where(Sighting.session_id == dock_session_id)
    photos = session.execute(
        select(Media).where(Media.kind == "photo",
                            or_(Media.first_session_id == dock_session_id, Media.id.in_(seen)))
    ).scalars().all()
    out = []
    for p in photos:
        tech = (p.meta or {}).get("technical") or {}
        dev, gps = exif_reading(tech, zone), gps_utc(tech)
        if dev is not None and gps is not None:
            out.append((dev.device_time - gps).total_seconds())
    return out


def estimate_from_photos(session: Session, ds: DockSession, zone: tzinfo) -> Offset | None:
    """Set the session's offset from photo EXIF vs GPS time, unless the dock measured it.

    Returns the new offset when it changed (the caller re-times the session's other media).
    """
    if ds.clock_offset_seconds is not None and not (ds.clock_offset_source or "").startswith(PHOTO_GPS_SOURCE):
        return None  # a dock reading of the device clock beats an estimate
    offsets = session_photo_offsets(session, ds.id, zone)
    if not offsets:
        return None
    value = round(statistics.median(offsets), 3)
    source = f"{PHOTO_GPS_SOURCE}: median of {len(offsets)} photo(s), EXIF time vs GPS time"
    if ds.clock_offset_seconds == value and ds.clock_offset_source == source:
        return None
    ds.clock_offset_seconds, ds.clock_offset_source = value, source
    return Offset(value, source)


# --------------------------------------------------------------------------- applying
def device_zone(profile: Any, settings: Settings) -> tzinfo:
    """The zone a device writes wall time in: its profile's, else the station's."""
    if profile is not None:
        if getattr(profile, "filename", None) is not None:
            return parse_utc_offset(profile.filename.timezone)
        return parse_utc_offset(profile.identity.clock_timezone)
    return settings.tz


def readings_json(readings: dict[str, Reading]) -> dict[str, Any]:
    return {k: r.to_json() for k, r in readings.items()}


def stored_readings(media: Media) -> dict[str, Reading]:
    raw = (media.meta or {}).get("time_readings") or {}
    return {k: Reading.from_json(k, v) for k, v in raw.items()}


DOCK_SLACK = timedelta(minutes=10)  # a recording ends before its device is docked; allow for clock grain
FLOOR = datetime(_UNSET_BEFORE_YEAR, 1, 1, tzinfo=timezone.utc)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


def _corrected(device_time: datetime, offset: float | None) -> datetime | None:
    try:
        return device_time - timedelta(seconds=offset or 0.0)
    except OverflowError:
        return None


def _plausible_start(t: datetime | None, media: Media) -> bool:
    """Not before body cameras kept time (the 1990 floor readings use too), not after the dock."""
    return t is not None and t >= FLOOR and (media.docked_at is None or t <= _utc(media.docked_at) + DOCK_SLACK)


# --------------------------------------------------------------------------- plausible duration
# A container's duration is data the device (or an attacker) wrote: a patched `mvhd`/`mdhd`
# can claim 4,294,967 s or, through its timescale, 136 years.  Before it becomes a recording's
# interval it is bounded by what the bytes and the other clocks allow (issue 17).
DURATION_IMPLAUSIBLE = "duration_implausible"
MAX_RECORDING_SECONDS = 24 * 3600  # recorders split files at ~15 min; no single file runs a day
MIN_BITS_PER_SECOND = {"video": 16_000, "audio": 4_000}  # below this no recorder encodes anything
WRITE_SLACK_SECONDS = 120.0  # name time -> mtime: the file is closed a little after its last frame


def duration_doubt(media: Media, duration: float | None, name_start: datetime | None,
                   start: datetime | None = None, offset_seconds: float | None = None) -> str | None:
    """Why `duration` cannot be this recording's (None: plausible).

    Bounds: an absolute ceiling; the file's size at the lowest bitrate a recorder writes; the
    time from the device's file-name start to the file's mtime (same clock: the file was closed
    then); and the dock (a recording ends before its device is docked; `start` is the device's
    reading of the start, `offset_seconds` its clock error when measured, else a day is allowed)."""
    if duration is None:
        return None
    if not duration > 0 or duration != duration:  # negative, zero or NaN
        return f"duration {duration!r} s is not a length of time"
    if duration > MAX_RECORDING_SECONDS:
        return f"container says {duration:.0f} s, longer than any single recording ({MAX_RECORDING_SECONDS} s)"
    floor = MIN_BITS_PER_SECOND.get(media.kind or "")
    if floor and media.size and media.size * 8 / duration < floor:
        return (f"container says {duration:.0f} s for {media.size} bytes: "
                f"{media.size * 8 / duration:.1f} bit/s, below any recorder's {floor} bit/s")
    mtime = media.original_mtime
    if name_start is not None and mtime is not None and mtime.year >= _UNSET_BEFORE_YEAR:
        written = (_utc(mtime) - name_start).total_seconds()
        if written >= 0 and duration > written * 1.1 + WRITE_SLACK_SECONDS:
            return (f"container says {duration:.0f} s but the file was closed {written:.0f} s after the "
                    "start in its name (same device clock)")
    start = start or name_start
    if start is not None and media.docked_at is not None:
        known = offset_seconds is not None
        slack = DOCK_SLACK + (timedelta(seconds=abs(offset_seconds)) if known else timedelta(days=1))
        try:
            end = start - timedelta(seconds=offset_seconds or 0.0) + timedelta(seconds=duration)
        except OverflowError:
            return f"container says {duration:.0f} s: beyond the calendar"
        if end > _utc(media.docked_at) + slack:
            return (f"container says {duration:.0f} s: the recording would end after its device was docked "
                    f"({_utc(media.docked_at).isoformat()})")
    return None


def bound_duration(media: Media, claimed: float | None, name_start: datetime | None,
                   start: datetime | None = None, offset_seconds: float | None = None) -> float | None:
    """Set the recording's duration from the container's claim, unless the claim is implausible:
    then the duration is unknown (None), the claim is kept in `meta.duration_claimed`, and the
    recording is flagged `duration_implausible` (never linked by time; see cases/linking.py)."""
    doubt = duration_doubt(media, claimed, name_start, start, offset_seconds)
    flags = list(media.flags or [])
    reasons = dict(media.flag_reasons or {})
    meta = dict(media.meta or {})
    if doubt:
        if DURATION_IMPLAUSIBLE not in flags:
            flags.append(DURATION_IMPLAUSIBLE)
        reasons[DURATION_IMPLAUSIBLE] = doubt
        meta["duration_claimed"] = claimed
        media.duration_seconds = None
    else:
        if DURATION_IMPLAUSIBLE in flags:
            flags.remove(DURATION_IMPLAUSIBLE)
        reasons.pop(DURATION_IMPLAUSIBLE, None)
        meta.pop("duration_claimed", None)
        if claimed:
            media.duration_seconds = claimed
    media.flags, media.flag_reasons, media.meta = flags, reasons, meta
    return media.duration_seconds


def _flag_clock(media: Media, suspect: bool) -> None:
    flags = list(media.flags or [])
    reasons = dict(media.flag_reasons or {})
    if suspect and "clock_suspect" not in flags:
        flags.append("clock_suspect")
        reasons["clock_suspect"] = ("the device clock was wrong for this recording (corrected, its time would "
                                    "lie after its dock or before 1990): the time shown is the device's own reading")
    elif not suspect and "clock_suspect" in flags:
        flags.remove("clock_suspect")
        reasons.pop("clock_suspect", None)
    media.flags, media.flag_reasons = flags, reasons


def apply_time(session: Session, media: Media, readings: dict[str, Reading]) -> bool:
    """Fix the corrected start/end from the most trusted reading and the best offset.

    Returns True when the corrected start changed.  Never touches the readings themselves.
    """
    before = (media.recorded_start, media.clock_offset_seconds)
    chosen = choose(readings)
    if chosen is None:
        media.time_source = None
        return before != (media.recorded_start, media.clock_offset_seconds)
    off = resolve_offset(session, media, chosen.device_time)
    media.device_start_text = chosen.text[:64]
    media.device_start = chosen.device_time
    media.time_source = chosen.source
    media.clock_offset_seconds = off.seconds
    media.clock_offset_source = off.source[:64] if off.source else None
    start = _corrected(chosen.device_time, off.seconds)
    rejected = bool(off.seconds) and not _plausible_start(start, media)
    if rejected:
        # The offset cannot be right for this recording: corrected, it would start after it was
        # docked (the clock was reset between recording and dock, or misread).  Keep the
        # device's own reading, say why, and flag it for a reviewer instead of inventing a time.
        start = chosen.device_time
        media.clock_offset_seconds = None
        media.clock_offset_source = f"{off.seconds:+.0f} s not applied: implausible for this recording"[:64]
    _flag_clock(media, rejected or not _plausible_start(start, media))
    media.recorded_start = start.astimezone(timezone.utc) if start is not None else None
    media.recorded_end = (media.recorded_start + timedelta(seconds=media.duration_seconds)
                          if media.duration_seconds else media.recorded_start)
    return before != (media.recorded_start, media.clock_offset_seconds)
