"""Device profiles: how a docked volume is recognised and read.  Config, not code.

Each `config/devices/*.toml` declares the marker globs that recognise a volume, the
identity file and its format, which fields carry serial / officer / unit / clock,
which globs hold media, and an optional file-name pattern.  See README "Device profiles".
"""
from __future__ import annotations

import codecs
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError
from core.settings import parse_utc_offset
from ingest.globs import any_match
from ingest.volume import Entry

IDENTITY_MAX_BYTES = 1024 * 1024
IDENTITY_VALUE_MAX = 200  # a serial or badge is short; a longer value is hostile or garbage
# Plausible device clock readings (wall time).  A camera whose battery ran flat restarts near
# 1970/2000, which is a real (wrong) reading; years like 0001 or 9999 are not, and 9999 overflows
# once an offset is applied.
CLOCK_MIN = datetime(1970, 1, 1)
CLOCK_MAX = datetime(2100, 12, 31, 23, 59, 59, 999999)

MEDIA_KINDS: dict[str, str] = {
    **dict.fromkeys(["mp4", "mov", "avi", "mkv", "ts", "mts", "3gp", "m4v", "h264", "h265", "asf", "wmv"], "video"),
    **dict.fromkeys(["wav", "aac", "m4a", "mp3", "amr", "ogg", "opus", "flac", "3ga"], "audio"),
    **dict.fromkeys(["jpg", "jpeg", "png", "heic", "heif", "bmp", "tif", "tiff", "dng"], "photo"),
}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchSpec(_M):
    all: list[str] = Field(default_factory=list)  # every glob must match at least one entry
    any: list[str] = Field(default_factory=list)  # at least one of these must match (if given)
    none: list[str] = Field(default_factory=list)  # none of these may match


class IdentitySpec(_M):
    path: str  # glob, case-insensitive; the first match is read
    format: Literal["ini", "json", "properties", "keyvalue"]
    section: str | None = None  # ini section
    serial: str
    officer: str | None = None
    unit: str | None = None
    clock: str | None = None
    clock_format: str = "%Y-%m-%d %H:%M:%S"  # strptime format, or "iso" for ISO 8601
    clock_timezone: str = "+08:00"  # zone of a clock reading that carries none
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None


class MediaSpec(_M):
    globs: list[str]
    exclude: list[str] = Field(default_factory=list)
    # Files beside a recording with the same stem and one of these extensions are read as its
    # sidecar (case numbers, notes); they are not media themselves.
    sidecar_extensions: list[str] = Field(default_factory=lambda: ["txt", "json", "xml"])
    kinds: dict[str, str] = Field(default_factory=dict)  # extension -> video|audio|photo|other


class NameSpec(_M):
    pattern: str  # regex on the file name; groups: serial, officer, start, seq, important
    time_format: str = "%Y%m%d%H%M%S"
    timezone: str = "+08:00"
    match_on: Literal["name", "path"] = "name"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        re.compile(v)
        return v


class Profile(_M):
    name: str
    description: str = ""
    kind: Literal["camera", "terminal", "other"] = "camera"
    priority: int = 0
    match: MatchSpec
    identity: IdentitySpec
    media: MediaSpec
    filename: NameSpec | None = None
    container_time_is_local: bool = False  # firmware writes local wall time tagged as UTC
    source_file: str | None = None

    def recognises(self, entries: list[Entry]) -> bool:
        rels = [e.rel for e in entries if e.kind == "file"]
        dirs = {r.rsplit("/", i)[0] for r in rels for i in range(1, r.count("/") + 1)}
        names = rels + sorted(dirs)
        if not all(any(any_match([g], r) for r in names) for g in self.match.all):
            return False
        if self.match.any and not any(any_match(self.match.any, r) for r in names):
            return False
        return not any(any_match(self.match.none, r) for r in names)

    def is_media(self, rel: str) -> bool:
        return any_match(self.media.globs, rel) and not any_match(self.media.exclude, rel)

    def media_kind(self, rel: str) -> str:
        ext = rel.rsplit(".", 1)[-1].lower() if "." in rel else ""
        return self.media.kinds.get(ext) or MEDIA_KINDS.get(ext, "other")

    def parse_name(self, rel: str) -> "NameInfo":
        if not self.filename:
            return NameInfo()
        target = rel if self.filename.match_on == "path" else rel.rsplit("/", 1)[-1]
        m = re.search(self.filename.pattern, target)
        if not m:
            return NameInfo()
        g = m.groupdict()
        info = NameInfo(matched=True, serial=g.get("serial"), officer=g.get("officer"), seq=g.get("seq"),
                        important=bool(g.get("important")))
        if g.get("start"):
            info.start_text = g["start"]
            info.start = _name_time(g["start"], self.filename.time_format, self.filename.timezone)
        return info


def _name_time(text: str, fmt: str, tz: str) -> datetime | None:
    """A file-name time, or None when the name looks right but carries no real/plausible time."""
    try:
        naive = datetime.strptime(text, fmt)
    except (ValueError, OverflowError):
        return None
    if plausible_time(naive) is None:
        return None  # e.g. 99991231235959: not a time the device can have written
    return naive.replace(tzinfo=parse_utc_offset(tz))


def plausible_time(dt: datetime | None) -> datetime | None:
    """`dt` if its wall time lies in CLOCK_MIN..CLOCK_MAX, else None ("unknown", never a guess)."""
    return dt if dt is not None and CLOCK_MIN <= dt.replace(tzinfo=None) <= CLOCK_MAX else None


@dataclass
class NameInfo:
    matched: bool = False
    serial: str | None = None
    officer: str | None = None
    start_text: str | None = None
    start: datetime | None = None  # device clock, in the profile's zone
    seq: str | None = None
    important: bool = False


@dataclass
class Identity:
    serial: str
    officer: str | None
    unit: str | None
    vendor: str | None
    model: str | None
    firmware: str | None
    clock_text: str | None
    clock: datetime | None  # what the device clock read, zone-aware
    raw: dict[str, str]
    path: str


class IdentityError(Exception):
    """The identity file is missing, unreadable or lacks the serial."""


# --------------------------------------------------------------------------- identity formats
def _decode(data: bytes) -> str:
    """Text of an identity file.  A UTF-16 BOM is an explicit declaration (some Windows-built
    firmware writes one); otherwise utf-8, then gb18030 (Chinese firmware), then latin-1, which
    never fails.  NULs are dropped: firmware pads files with them."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", "replace")  # the BOM picks the byte order
    else:
        text = _decode_8bit(data)
    return text.replace("\x00", "")


def _decode_8bit(data: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def parse_ini(text: str, section: str | None) -> dict[str, str]:
    """A tolerant INI reader (configparser refuses what device firmware really writes).

    Section names match case-insensitively; keys keep their case; the last duplicate wins;
    lines that are neither a section, a key (`=` or `:`) nor a comment are ignored; indented
    lines are keys, never continuations.  A file with no section header at all is read as if
    every key were in the wanted section."""
    sections: dict[str | None, dict[str, str]] = {}
    current: str | None = None  # keys before any header
    for line in re.split(r"\r\n|\r|\n", text):  # CRLF, LF and old-Mac CR line ends
        s = line.strip()
        if not s or s.startswith((";", "#", "//")):
            continue
        if s.startswith("[") and "]" in s:
            current = s[1:s.index("]")].strip().lower()
            sections.setdefault(current, {})
            continue
        kv = _ini_pair(s)
        if kv:
            sections.setdefault(current, {})[kv[0]] = kv[1]
    return _ini_pick(sections, section)


def _ini_pick(sections: dict[str | None, dict[str, str]], section: str | None) -> dict[str, str]:
    if not section:
        return {k: v for keys in sections.values() for k, v in keys.items()}
    if all(name is None for name in sections):
        return sections.get(None, {})  # no header at all: the keys are the device's
    if section.lower() not in sections:
        raise IdentityError(f"section [{section}] not found")
    return sections[section.lower()]


def _ini_pair(s: str) -> tuple[str, str] | None:
    """(key, value) of a stripped line, split at the first '=' or ':' (as configparser did)."""
    cut = [i for i in (s.find("="), s.find(":")) if i > 0]
    if not cut:
        return None  # a stray line (`// note`, junk): not data
    key, val = s[:min(cut)].strip(), s[min(cut) + 1:].strip()
    return key, _ini_value(val)


def _ini_value(val: str) -> str:
    """`"A6" ; c` -> A6, `A5 ; serial` -> A5, `A#5` -> A#5 (a comment needs whitespace before it)."""
    if val[:1] in ('"', "'") and (end := val.find(val[0], 1)) > 0:
        return val[1:end]
    m = re.search(r"\s[;#]", val)
    return (val[:m.start()] if m else val).strip()


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties: '=', ':' or space separators, '#'/'!' comments, '\\' continuations, \\uXXXX."""
    out: dict[str, str] = {}
    logical: list[str] = []
    buf = ""
    for line in text.splitlines():
        s = line.lstrip() if not buf else line.lstrip()
        if not buf and (not s or s[0] in "#!"):
            continue
        trailing = len(s) - len(s.rstrip("\\"))
        if trailing % 2 == 1:
            buf += s[:-1]
            continue
        logical.append(buf + s)
        buf = ""
    if buf:
        logical.append(buf)
    for entry in logical:
        m = re.match(r"((?:\\.|[^=:\s\\])*)\s*[=:\s]?\s*(.*)$", entry)
        if not m:
            continue
        key, val = _unescape(m.group(1)), _unescape(m.group(2))
        out[key] = val
    return out


def _unescape(s: str) -> str:
    def rep(m: re.Match[str]) -> str:
        c = m.group(1)
        if c.startswith("u"):
            return chr(int(c[1:], 16))
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(c, c)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", rep, s)


def parse_keyvalue(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip().strip('"')
    return out


def _flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        out[prefix[:-1]] = json.dumps(obj, ensure_ascii=False)
    else:
        out[prefix[:-1]] = "" if obj is None else str(obj)
    return out


def parse_clock(text: str | None, fmt: str, tz: str) -> datetime | None:
    """The device clock reading, zone-aware, or None when unreadable or implausible."""
    if not text:
        return None
    t = text.strip()
    if re.fullmatch(r"[0-9]{10}", t):
        # Ten bare digits are epoch seconds; read as a compact date, 1798560000 would be 1798.
        return plausible_time(datetime.fromtimestamp(int(t), timezone.utc))
    dt: datetime | None = None
    for f in (fmt, "iso", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y/%m/%d %H:%M:%S"):
        try:
            dt = datetime.fromisoformat(t.replace("Z", "+00:00")) if f == "iso" else datetime.strptime(t, f)
            break
        except (ValueError, OverflowError):
            continue
    if dt is None or plausible_time(dt) is None:
        return None  # an unreadable or impossible clock is "unknown", never a guess
    return dt if dt.tzinfo else dt.replace(tzinfo=parse_utc_offset(tz))


def read_identity(profile: Profile, volume: Path, entries: list[Entry]) -> Identity:
    spec = profile.identity
    candidates = [e for e in entries if any_match([spec.path], e.rel)]
    if not candidates:
        raise IdentityError(f"identity file {spec.path} not found on the volume")
    ent = candidates[0]
    if ent.kind != "file":
        raise IdentityError(f"identity file {ent.rel} is a {ent.kind}; refused unread")
    data = _read_small_regular(ent.abspath)
    raw = _parse_identity(spec, _decode(data), ent.rel)
    any_case = spec.format == "ini"  # INI keys are case-insensitive on the firmware's side too
    serial = _field(raw, spec.serial, any_case) or ""
    if not _BROKEN.sub("", serial).replace("\ufffd", "").strip():
        raise IdentityError(f"identity file {ent.rel} has no usable {spec.serial}")

    def f(key: str | None) -> str | None:
        return _field(raw, key, any_case)

    clock_text = f(spec.clock)
    return Identity(serial=serial, officer=f(spec.officer), unit=f(spec.unit), vendor=f(spec.vendor),
                    model=f(spec.model), firmware=f(spec.firmware), clock_text=clock_text,
                    clock=parse_clock(clock_text, spec.clock_format, spec.clock_timezone), raw=raw, path=ent.rel)


def _parse_identity(spec: IdentitySpec, text: str, rel: str) -> dict[str, str]:
    """The file's key/value pairs, cleaned.  Bad content only ever raises IdentityError: the
    pipeline records an unrecognised volume for that, anything else would crash the run."""
    try:
        if spec.format == "ini":
            raw = parse_ini(text, spec.section)
        elif spec.format == "json":
            raw = _flatten(json.loads(text))
        elif spec.format == "properties":
            raw = parse_properties(text)
        else:
            raw = parse_keyvalue(text)
        return {_clean(k): _clean(v) for k, v in raw.items()}
    except RecursionError as e:
        raise IdentityError(f"identity file {rel} is nested too deeply to read") from e
    except (ValueError, UnicodeError) as e:  # JSONDecodeError is a ValueError
        raise IdentityError(f"identity file {rel}: {e}") from e


_BROKEN = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # what _clean makes of a lone surrogate


def _clean(s: str) -> str:
    """Valid text that encodes to UTF-8, at most IDENTITY_VALUE_MAX characters.  `\\uD800`
    escapes (JSON, properties) yield lone surrogates that later crash str.encode and SQLite:
    a lone one becomes its escape text `\\udXXX` (the value stays data, and two different broken
    serials stay two devices), an escaped pair is joined."""
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    s = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    return s.replace("\x00", "")[:IDENTITY_VALUE_MAX]


def _field(raw: dict[str, str], key: str | None, any_case: bool) -> str | None:
    if not key:
        return None
    val = raw.get(key)
    if val is None and any_case:  # firmware writes `devicesn=` as well as `DeviceSN=`
        val = next((v for k, v in raw.items() if k.lower() == key.lower()), None)
    return (val or "").strip() or None


def _read_small_regular(path: bytes) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IdentityError("identity file is not a regular file; refused")
        if st.st_size > IDENTITY_MAX_BYTES:
            raise IdentityError(f"identity file is {st.st_size} bytes; refusing more than {IDENTITY_MAX_BYTES}")
        return os.read(fd, IDENTITY_MAX_BYTES + 1)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- loading & recognition
_LOADED: dict[tuple[str, tuple[tuple[str, int], ...]], list[Profile]] = {}


def station_profiles(settings: Any) -> list[Profile]:
    """The station's device profiles (`settings.profiles_dir`), parsed once per set of files."""
    directory = settings.profiles_dir
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(directory.glob("*.toml"))) \
        if directory.is_dir() else ()
    key = (str(directory), stamp)
    if key not in _LOADED:
        _LOADED[key] = load_profiles(directory)
    return _LOADED[key]


def load_profiles(directory: Path) -> list[Profile]:
    if not directory.is_dir():
        raise ConfigError(f"device profile folder {directory} not found")
    out = []
    for p in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
            out.append(Profile.model_validate({**data, "source_file": str(p)}))
        except (tomllib.TOMLDecodeError, ValidationError, re.error) as e:
            raise ConfigError(f"device profile {p}: {e}") from e
    if not out:
        raise ConfigError(f"no device profiles (*.toml) in {directory}")
    return out


def recognise(profiles: list[Profile], entries: list[Entry]) -> Profile | None:
    """The matching profile with the highest priority, then the one that finds the most media
    on the volume (a terminal's identity folder copied onto a camera card must not hide the
    camera's recordings), then the most markers."""
    matching = recognising(profiles, entries)
    if not matching:
        return None
    files = [e.rel for e in entries if e.kind == "file"]

    def found(p: Profile) -> int:
        return sum(1 for r in files if p.is_media(r))
    return sorted(matching, key=lambda p: (-p.priority, -found(p), -len(p.match.all), p.name))[0]


def recognising(profiles: list[Profile], entries: list[Entry]) -> list[Profile]:
    return [p for p in profiles if p.recognises(entries)]


def device_clock_offset(identity: Identity, read_at: datetime) -> float | None:
    """Device clock minus true UTC, in seconds (positive: the device runs fast)."""
    if identity.clock is None:
        return None
    delta = (identity.clock - read_at).total_seconds()
    # A reading with whole-second resolution cannot measure better than a second.
    return float(round(delta)) if identity.clock.microsecond == 0 else round(delta, 3)


__all__ = ["Identity", "IdentityError", "NameInfo", "Profile", "load_profiles", "read_identity", "recognise", "recognising",
           "device_clock_offset", "timezone"]
