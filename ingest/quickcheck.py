"""A fast playability check at ingest, so truncated or fake media is flagged the moment it
is stored (the indexer's full probe comes later).  Runs on the spool copy, never the device."""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ingest.mp4check import complete_by_index

TIMEOUT_S = 60


@dataclass
class Check:
    ok: bool
    reason: str | None = None


def _tail(text: str, n: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return "; ".join(lines[-3:])[-n:] if lines else "no output"


def check_av(path: Path, kind: str) -> Check:
    """An MP4 whose index shows it complete is playable without decoding anything (issue 14:
    two processes and a decode per file were most of the dock's CPU after the copy);
    otherwise ffprobe, then decode the last seconds.  The tools' messages name the station's
    spool file; that path means nothing to a reviewer, so it is replaced by "<recording>"."""
    if complete_by_index(path, kind):
        return Check(True)
    try:
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name:format=duration",
                            "-of", "json", str(path)], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Check(False, "ffprobe timed out")
    if r.returncode != 0:
        return Check(False, f"ffprobe: {_tail(_unspool(r.stderr, path))}")
    info = json.loads(r.stdout or "{}")
    types = {s.get("codec_type") for s in info.get("streams", [])}
    want = "video" if kind == "video" else "audio"
    try:
        duration = float((info.get("format") or {}).get("duration") or 0)
    except (TypeError, ValueError):
        duration = 0.0
    if duration <= 0:  # a still image or an empty stream under a video name
        return Check(False, "no duration: not a playable recording (a still image or an empty stream)")
    if want not in types:
        return Check(False, f"no {want} stream (found: {', '.join(sorted(t for t in types if t)) or 'none'})")
    # Decoding the last seconds catches files cut off mid-write (header fine, data missing).
    try:
        d = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-sseof", "-2", "-i", str(path), "-map", "0:" + want[0],
                            "-f", "null", "-"], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Check(False, "decode check timed out")
    if d.returncode != 0:
        return Check(False, f"ffmpeg decode: {_tail(_unspool(d.stderr, path))}")
    bad = [ln for ln in d.stderr.splitlines() if any(w in ln.lower() for w in ("invalid", "corrupt", "error", "truncat"))]
    if bad:
        return Check(False, f"ffmpeg decode: {_tail(_unspool(chr(10).join(bad), path))}")
    return Check(True)


def _unspool(text: str, path: Path) -> str:
    return text.replace(str(path), "<recording>")


def check_photo(path: Path) -> Check:
    try:
        with Image.open(path) as im:
            im.load()  # full decode: a truncated JPEG raises here
        return Check(True)
    except Image.DecompressionBombError as e:  # a header claiming gigapixels: damaged, not decoded
        return Check(False, f"image decode refused: {_unspool(str(e), path)}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return Check(False, f"image decode: {_unspool(str(e), path)}")
    except Exception as e:  # noqa: BLE001 - a decoder fault on hostile bytes is a flag, never a crash
        return Check(False, f"image decode failed: {type(e).__name__}: {_unspool(str(e), path)}")


def check(path: Path, kind: str, size: int) -> Check:
    if size == 0:
        return Check(False, "zero-byte file")
    if kind in ("video", "audio"):
        return check_av(path, kind)
    if kind == "photo":
        return check_photo(path)
    return Check(True)
