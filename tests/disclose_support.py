"""Real test media for the disclosure tests, made with ffmpeg from frames drawn here.

The face is Grace Hopper's portrait shipped with matplotlib (mpl-data/sample_data), a public
domain photograph the CenterFace detector finds; the "plate" is a block of black-on-white
characters drawn with OpenCV on a textured background that pans."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from catalog.models import Media
from storage.base import media_key
from storage.fixity import sha256_file

FACE_JPEG = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@dataclass
class Clip:
    path: Path
    width: int
    height: int
    fps: int
    seconds: float
    face_box: tuple[int, int, int, int] | None  # x, y, w, h of the pasted portrait (static)
    plate_at: list[tuple[int, int]]  # top-left of the plate in every frame
    plate_size: tuple[int, int]


def _background(w: int, h: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    bg = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(bg, (0, 0), 3)


def make_clip(path: Path, *, width: int = 640, height: int = 360, fps: int = 25, seconds: float = 3.0,
              face: bool = True, face_width: int = 200, pan_px_per_frame: int = 4, plate: bool = True,
              audio: bool = True, tone_hz: int = 440) -> Clip:
    frames = int(round(seconds * fps))
    wide = _background(width + pan_px_per_frame * frames + 16, height)
    pw, ph = 120, 40
    plate_img = np.full((ph, pw, 3), 255, np.uint8)
    cv2.putText(plate_img, "A7X29", (6, 31), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 3)
    px0, py = width // 2 + 60, height - ph - 20
    if plate:
        wide[py:py + ph, px0:px0 + pw] = plate_img
    portrait = None
    fb = None
    if face:
        src = cv2.imread(str(FACE_JPEG))
        fh = int(face_width * src.shape[0] / src.shape[1])
        portrait = cv2.resize(src, (face_width, fh), interpolation=cv2.INTER_AREA)
        fb = (20, max(0, (height - fh) // 2), face_width, fh)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
           f"{width}x{height}", "-r", str(fps), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps)]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    cmd += ["-metadata", "location=+39.1200+117.2000/", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    plate_at = []
    for i in range(frames):
        off = i * pan_px_per_frame
        frame = np.ascontiguousarray(wide[:, off:off + width])
        plate_at.append((px0 - off, py))
        if portrait is not None and fb is not None:
            x, y, w, h = fb
            frame[y:y + h, x:x + w] = portrait
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return Clip(path, width, height, fps, seconds, fb, plate_at, (pw, ph))


def decode_frames(path: Path, width: int, height: int) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "bgr24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def decode_audio(path: Path) -> np.ndarray:
    """Mono float samples at 48 kHz."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", "48000", "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64))))) if len(samples) else 0.0


# --------------------------------------------------------------------------- catalog seed
def store_original(app, path: Path, *, kind: str = "video", unit: str | None = None,  # noqa: ANN001
                   badge: str | None = None):
    """Store `path` as an original recording (object + Media row), as ingest would; returns its id."""
    sha, size = sha256_file(path), path.stat().st_size
    obj = app.store.put_file(media_key(sha), path, sha, size)
    with app.catalog.session() as s:
        m = Media(sha256=sha, size=size, kind=kind, storage_key=media_key(sha), storage_checksum=obj.checksum,
                  original_path=f"DCIM/{path.name}", original_name=path.name, unit_code=unit, officer_badge=badge,
                  recorded_start=datetime(2026, 3, 12, 1, 30, tzinfo=timezone.utc), duration_seconds=3.0)
        s.add(m)
        s.flush()
        return m.id
