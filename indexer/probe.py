"""Technical metadata: ffprobe (through ffmpeg-python) for video and audio, exifread for photos.

The raw tool output is kept whole (`ProbeResult.raw`, stored in Media.probe) so nothing a
device wrote is thrown away; `summary` is the small, typed reading the rest of the indexer
uses.  A file the tools cannot read is never an exception here: it comes back with
`unplayable` set to the tool's own reason, and the caller flags the recording.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import exifread
import ffmpeg
from PIL import Image, UnidentifiedImageError

PROBE_TIMEOUT_US = 30_000_000  # network reads (presigned URLs) must not hang a worker

# Container tags that describe the file format rather than the recording.
_FORMAT_ONLY_TAGS = {"major_brand", "minor_version", "compatible_brands"}
_LOCATION_TAGS = ("location", "com.apple.quicktime.location.ISO6709", "location-eng")
_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


@dataclass
class ProbeResult:
    tool: str  # ffprobe|exifread
    raw: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    unplayable: str | None = None  # the tool's reason, when the file cannot be read

    @property
    def duration(self) -> float | None:
        d = self.summary.get("duration_seconds")
        return float(d) if d else None


# --------------------------------------------------------------------------- video / audio
def probe_av(source: str, kind: str) -> ProbeResult:
    """ffprobe a video or audio file (a path or an http(s) URL)."""
    extra: dict[str, Any] = {"v": "error"}
    if source.startswith(("http://", "https://")):
        extra["rw_timeout"] = PROBE_TIMEOUT_US
    try:
        raw = ffmpeg.probe(source, **extra)
    except ffmpeg.Error as e:
        return ProbeResult("ffprobe", {"error": _last_line(e.stderr)}, unplayable=_reason(e.stderr, source))
    except (OSError, ValueError) as e:  # ffprobe missing, or output that is not JSON
        return ProbeResult("ffprobe", {"error": str(e)}, unplayable=f"ffprobe could not run: {_unspool(str(e), source)}")
    summary = summarise_av(raw)
    return ProbeResult("ffprobe", raw, summary, unplayable=_av_problem(summary, kind))


def _last_line(stderr: bytes | None) -> str:
    lines = [ln for ln in (stderr or b"").decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _reason(stderr: bytes | None, source: str) -> str:
    return f"ffprobe: {_unspool(_last_line(stderr), source) or 'failed without a message'}"


def _unspool(text: str, source: str) -> str:
    """The tools name the file they read (a spool path or a presigned URL): meaningless to a
    reviewer, and a URL carries a signature.  Say "<recording>" instead."""
    return text.replace(source, "<recording>")


def _av_problem(s: dict[str, Any], kind: str) -> str | None:
    """A file ffprobe opened can still hold nothing playable (no stream, zero length)."""
    if kind == "video" and not s.get("video_codec"):
        return "ffprobe: no video stream in the file"
    if kind == "audio" and not (s.get("audio_codec") or s.get("video_codec")):
        return "ffprobe: no audio stream in the file"
    if kind == "video" and not (s.get("width") and s.get("height")):
        return "ffprobe: the video stream has no picture size"
    if not s.get("duration_seconds"):
        return "ffprobe: the file has no duration (empty or truncated)"
    return None


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    try:
        return round(float(Fraction(text)), 3)
    except (ValueError, ZeroDivisionError):
        return None


def _rotation(stream: dict[str, Any]) -> int | None:
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            return int(_num(sd["rotation"]) or 0)
    rot = (stream.get("tags") or {}).get("rotate")
    return int(_num(rot) or 0) if rot is not None else None


def summarise_av(raw: dict[str, Any]) -> dict[str, Any]:
    fmt = raw.get("format") or {}
    streams = raw.get("streams") or []
    # Attached cover pictures are "video" streams in ffprobe's eyes; they are not the recording.
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    tags = dict(fmt.get("tags") or {})
    duration = _num(fmt.get("duration")) or _num((video or audio or {}).get("duration"))
    out: dict[str, Any] = {
        "container": fmt.get("format_name"),
        "duration_seconds": round(duration, 3) if duration else None,
        "bit_rate": int(_num(fmt.get("bit_rate")) or 0) or None,
        "creation_time": creation_time_tag(raw),
        "location": next((tags[k] for k in _LOCATION_TAGS if tags.get(k)), None),
        "tags": {k: v for k, v in tags.items() if k not in _FORMAT_ONLY_TAGS},
    }
    if out["location"]:
        out["gps"] = parse_iso6709(out["location"])
    if video:
        out.update(video_codec=video.get("codec_name"), width=video.get("width"), height=video.get("height"),
                   frame_rate=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
                   rotation=_rotation(video), video_frames=int(_num(video.get("nb_frames")) or 0) or None)
    if audio:
        out.update(audio_codec=audio.get("codec_name"), audio_channels=audio.get("channels"),
                   audio_sample_rate=int(_num(audio.get("sample_rate")) or 0) or None)
    return out


def creation_time_tag(raw: dict[str, Any]) -> str | None:
    """The container's creation_time, else the first stream that carries one."""
    fmt_tags = (raw.get("format") or {}).get("tags") or {}
    if fmt_tags.get("creation_time"):
        return str(fmt_tags["creation_time"])
    for s in raw.get("streams") or []:
        ct = (s.get("tags") or {}).get("creation_time")
        if ct:
            return str(ct)
    return None


def parse_iso6709(text: str) -> dict[str, float] | None:
    """'+30.2500+120.1667+010.000/' -> {'lat': 30.25, 'lon': 120.1667, 'alt': 10.0}."""
    m = _ISO6709.match(text.strip())
    if not m:
        return None
    out = {"lat": float(m.group(1)), "lon": float(m.group(2))}
    if m.group(3):
        out["alt"] = float(m.group(3))
    return out


# --------------------------------------------------------------------------- photos
def probe_photo(path: str) -> ProbeResult:
    """EXIF with exifread; the picture itself is opened with Pillow to prove it decodes."""
    try:
        with open(path, "rb") as f:
            tags = exifread.process_file(f, details=False, extract_thumbnail=False)
    except Exception as e:  # noqa: BLE001 - exifread raises assorted errors on damaged files
        tags, exif_error = {}, f"exifread: {e}"
    else:
        exif_error = None
    raw: dict[str, Any] = {k: str(v) for k, v in tags.items() if k != "JPEGThumbnail"}
    if exif_error:
        raw["error"] = exif_error
    summary = summarise_exif(tags)
    try:
        with Image.open(path) as img:
            summary.update(container=(img.format or "").lower() or None, width=img.width, height=img.height)
            img.load()  # decode: a truncated JPEG fails here, not in header parsing
    except Image.DecompressionBombError as e:  # a header claiming gigapixels: damaged, never decoded
        return ProbeResult("exifread", raw, summary, unplayable=f"image decode refused: {_unspool(str(e), path)}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return ProbeResult("exifread", raw, summary, unplayable=f"image cannot be decoded: {_unspool(str(e), path)}")
    except Exception as e:  # noqa: BLE001 - a decoder fault on hostile bytes is a flag, not a failed job
        return ProbeResult("exifread", raw, summary,
                           unplayable=f"image decode failed: {type(e).__name__}: {_unspool(str(e), path)}")
    return ProbeResult("exifread", raw, summary)


def _tag(tags: dict[str, Any], key: str) -> str | None:
    v = tags.get(key)
    s = str(v).strip() if v is not None else ""
    return s or None


def _ratios(tag: Any) -> list[float]:
    return [float(Fraction(v.num, v.den)) if hasattr(v, "num") else float(v) for v in getattr(tag, "values", [])]


def summarise_exif(tags: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datetime_original": _tag(tags, "EXIF DateTimeOriginal") or _tag(tags, "Image DateTime"),
        "offset_time_original": _tag(tags, "EXIF OffsetTimeOriginal") or _tag(tags, "EXIF OffsetTime"),
        "make": _tag(tags, "Image Make"),
        "model": _tag(tags, "Image Model"),
        "serial": _tag(tags, "EXIF BodySerialNumber") or _tag(tags, "MakerNote SerialNumber"),
    }
    gps = _gps(tags)
    if gps:
        out["gps"] = gps
    return out


def _gps(tags: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    try:
        for axis, ref_neg in (("Latitude", "S"), ("Longitude", "W")):
            vals = _ratios(tags.get(f"GPS GPS{axis}"))
            if len(vals) == 3:
                deg = vals[0] + vals[1] / 60 + vals[2] / 3600
                out["lat" if axis == "Latitude" else "lon"] = round(
                    -deg if _tag(tags, f"GPS GPS{axis}Ref") == ref_neg else deg, 7)
        hms = _ratios(tags.get("GPS GPSTimeStamp"))
        date = _tag(tags, "GPS GPSDate")
        if len(hms) == 3 and date:
            h, m, s = hms
            # GPS time is true UTC: the one clock on a device nobody can set wrong.
            out["utc_text"] = f"{date} {int(h):02d}:{int(m):02d}:{s:06.3f}"
    except (ValueError, ZeroDivisionError, TypeError):
        return out or None
    return out or None


def probe_media(path_or_url: str, kind: str) -> ProbeResult:
    """Dispatch on the catalog's media kind; `other` files are tried with ffprobe."""
    if kind == "photo":
        return probe_photo(path_or_url)
    res = probe_av(path_or_url, kind)
    if kind not in ("video", "audio") and res.unplayable:
        # An "other" file (a document, a log) is not a recording: not being playable is no fault.
        res.raw.setdefault("note", res.unplayable)
        res.unplayable = None
    return res
