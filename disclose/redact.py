"""The redaction pipeline: a segment of a recording, faces and manual boxes blurred, audio ranges
muted, written as a new H.264/AAC MP4 (or a JPEG still).  Reads the original, never writes it.

How a video is processed (two ffmpeg processes around a Python loop):

    ffmpeg -ss FROM -i ORIGINAL -t LEN  ->  raw yuv420p frames (constant frame rate)
        -> Python: faces detected on every Nth frame (CenterFace, frame scaled to 640 px wide),
           boxes between two detections interpolated (faces matched by overlap; a face seen at
           only one end is held over the whole gap, so nothing flickers unblurred), manual boxes
           followed frame by frame by template matching, every box blurred (mosaic + smoothing)
        -> ffmpeg (libx264 CRF 20 superfast, yuv420p) + the original's audio of the same segment
           (AAC 128 kb/s, `volume=0` over each muted range) -> MP4, container metadata dropped
           (no GPS, no device tags), faststart.

N (`detect_every`) defaults to the frame rate divided by 6: faces are found six times a
second; a face moving across the frame between two detections is covered by the box
interpolation and the margin (25 % of the face box on every side).

Times given by a person (`--from`, `--to`, `--mute`, `--still`, box times) are on the
original recording's own timeline (seconds from its start; `90`, `1:30`, `0:01:30.5`).
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CustodyError
from disclose.faces import Box, FaceDetector

FACE_GROW = 0.25  # face boxes grown by a quarter of their size on every side
BOX_GROW = 0.05
BLUR_CELLS = 4  # manual boxes: drawn by a person, a small margin only
DETECTIONS_PER_SECOND = 6
TRACK_WIDTH = 640  # manual boxes are followed on the luma plane scaled to this width
TRACK_MIN_SCORE = 0.5  # below this the box stays where it was last found (logged as lost)
VIDEO_CODEC = ["-c:v", "libx264", "-preset", "superfast", "-crf", "20", "-pix_fmt", "yuv420p"]
AUDIO_CODEC = ["-c:a", "aac", "-b:a", "128k"]
ENCODER = "libx264 crf 20 superfast yuv420p; aac 128k; mp4 faststart; metadata dropped"


# --------------------------------------------------------------------------- what to do
def parse_time(text: str | float) -> float:
    """Seconds from `90`, `90.5`, `1:30`, `0:01:30.5`."""
    if isinstance(text, int | float):
        t = float(text)
    else:
        s = text.strip()
        if not re.fullmatch(r"\d+(\.\d+)?(:\d+(\.\d+)?){0,2}", s):
            raise CustodyError(f"not a time: {text!r} (seconds, or m:ss, or h:mm:ss) / 时间格式错误")
        t = 0.0
        for part in s.split(":"):
            t = t * 60 + float(part)
    if t < 0 or not math.isfinite(t):
        raise CustodyError(f"not a time: {text!r}")
    return t


def parse_range(text: str) -> tuple[float, float]:
    """`T1-T2` (each a time as parse_time reads it)."""
    parts = text.split("-")
    if len(parts) != 2:
        raise CustodyError(f"not a range: {text!r} (give T1-T2, e.g. 12-15.5 or 1:02-1:10) / 区间格式错误")
    a, b = parse_time(parts[0]), parse_time(parts[1])
    if b <= a:
        raise CustodyError(f"empty range: {text!r} / 区间为空")
    return a, b


@dataclass
class ManualBox:
    """A box a reviewer drew: where it is at time `t`; followed until `until` (or the segment's end)."""

    t: float
    x: float
    y: float
    w: float
    h: float
    until: float | None = None
    label: str = ""
    track: bool = True

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ManualBox:
        try:
            box = cls(t=parse_time(d.get("t", 0)), x=float(d["x"]), y=float(d["y"]), w=float(d["w"]),
                      h=float(d["h"]), until=parse_time(d["until"]) if d.get("until") is not None else None,
                      label=str(d.get("label", ""))[:64], track=bool(d.get("track", True)))
        except (KeyError, TypeError, ValueError) as e:
            raise CustodyError(f"bad box {d!r}: needs t, x, y, w, h (pixels) / 遮挡框格式错误") from e
        if box.w <= 0 or box.h <= 0 or box.x < 0 or box.y < 0:
            raise CustodyError(f"bad box {d!r}: width and height must be positive / 遮挡框尺寸错误")
        return box


def load_boxes(path: Path) -> list[ManualBox]:
    """A JSON file: a list of {"t", "x", "y", "w", "h", ["until"], ["label"], ["track"]}
    (or {"boxes": [...]}); pixels of the original frame, times on the original's timeline."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CustodyError(f"cannot read the boxes file {path}: {e} / 无法读取遮挡框文件") from e
    if isinstance(data, dict):
        data = data.get("boxes", [])
    if not isinstance(data, list):
        raise CustodyError("the boxes file must hold a JSON list of boxes / 遮挡框文件须为列表")
    return [ManualBox.from_json(d) for d in data]


@dataclass
class Plan:
    start: float = 0.0
    end: float | None = None
    faces: bool = False
    boxes: list[ManualBox] = field(default_factory=list)
    mute: list[tuple[float, float]] = field(default_factory=list)
    still: float | None = None
    detect_every: int | None = None  # None: frame rate / DETECTIONS_PER_SECOND

    def describe(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "faces": self.faces, "still": self.still,
                "mute": [list(r) for r in self.mute], "boxes_given": [asdict(b) for b in self.boxes]}


# --------------------------------------------------------------------------- probing
@dataclass
class Source:
    width: int
    height: int
    fps: float
    duration: float | None
    has_video: bool
    has_audio: bool


def probe(path: Path) -> Source:
    proc = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                           str(path)], capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise CustodyError("the recording cannot be read by ffprobe / 无法读取录像: "
                           + proc.stderr.decode(errors="replace").strip()[-200:])
    raw = json.loads(proc.stdout or b"{}")
    streams = raw.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fps = 0.0
    if video:
        for key in ("avg_frame_rate", "r_frame_rate"):
            num, _, den = str(video.get(key) or "0/0").partition("/")
            if den and float(den or 0) > 0 and float(num) > 0:
                fps = float(num) / float(den)
                break
    dur = raw.get("format", {}).get("duration")
    width, height = (int(video.get("width", 0)), int(video.get("height", 0))) if video else (0, 0)
    if video and _rotation(video) in (90, 270):
        width, height = height, width  # ffmpeg turns the picture upright when decoding
    return Source(width=width, height=height,
                  fps=fps or 25.0, duration=float(dur) if dur not in (None, "N/A") else None,
                  has_video=video is not None, has_audio=audio is not None)


def _rotation(stream: dict[str, Any]) -> int:
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            return int(float(sd["rotation"])) % 360
    rot = (stream.get("tags") or {}).get("rotate")
    return int(float(rot)) % 360 if rot else 0


# --------------------------------------------------------------------------- blurring
def blur_region(plane: Any, x0: int, y0: int, x1: int, y1: int) -> None:
    """Mosaic then smooth: the region is scaled down to BLUR_CELLS cells across and back up
    (bilinear), leaving a smooth gradient with no features: eight cells across still left a
    face-like blob the detector found at 0.45 on 1080p (bench/redact.py); four leave none."""
    import cv2  # deferred: OpenCV is heavy; only redaction needs it

    w, h = x1 - x0, y1 - y0
    if w < 2 or h < 2:
        return
    roi = plane[y0:y1, x0:x1]
    cells_w = max(2, min(BLUR_CELLS, w // 4))
    cells_h = max(2, min(BLUR_CELLS, round(cells_w * h / w)))
    small = cv2.resize(roi, (cells_w, cells_h), interpolation=cv2.INTER_AREA)
    roi[...] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blur_yuv(y: Any, u: Any, v: Any, rect: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = rect
    blur_region(y, x0, y0, x1, y1)
    blur_region(u, x0 // 2, y0 // 2, (x1 + 1) // 2, (y1 + 1) // 2)
    blur_region(v, x0 // 2, y0 // 2, (x1 + 1) // 2, (y1 + 1) // 2)


# --------------------------------------------------------------------------- faces between detections
def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = w * h
    return inter / (a.w * a.h + b.w * b.h - inter + 1e-9)


def _near(a: Box, b: Box) -> float:
    """How well two detections are the same face: overlap, or centres within a face's size."""
    iou = _iou(a, b)
    if iou > 0:
        return iou
    dx = (a.x + a.w / 2) - (b.x + b.w / 2)
    dy = (a.y + a.h / 2) - (b.y + b.h / 2)
    size = max(a.w, a.h, b.w, b.h)
    return 0.01 if math.hypot(dx, dy) < size else 0.0


def between(prev: list[Box], nxt: list[Box], alpha: float) -> list[Box]:
    """Face boxes at fraction `alpha` of the way between two detections: matched faces move
    linearly; a face found at only one end is held over the whole gap."""
    out: list[Box] = []
    used: set[int] = set()
    for a in prev:
        best, best_j = 0.0, -1
        for j, b in enumerate(nxt):
            if j not in used and (score := _near(a, b)) > best:
                best, best_j = score, j
        if best_j >= 0:
            used.add(best_j)
            b = nxt[best_j]
            lerp = lambda p, q: p + (q - p) * alpha  # noqa: E731
            out.append(Box(lerp(a.x, b.x), lerp(a.y, b.y), lerp(a.w, b.w), lerp(a.h, b.h), min(a.score, b.score)))
        else:
            out.append(a)
    out.extend(b for j, b in enumerate(nxt) if j not in used)
    return out


# --------------------------------------------------------------------------- manual boxes, followed
class Follower:
    """Follows one manual box by template matching on the scaled-down luma plane."""

    def __init__(self, box: ManualBox, scale: float) -> None:
        self.box = box
        self.scale = scale
        self.template: Any = None
        self.pos: tuple[float, float] = (box.x, box.y)
        self.track: list[list[float]] = []
        self.lost = 0

    def active(self, t: float) -> bool:
        return t >= self.box.t - 1e-6 and (self.box.until is None or t <= self.box.until + 1e-6)

    def step(self, small_y: Any, t: float, log_it: bool) -> Box:
        import cv2  # deferred: see blur_region

        s = self.scale
        bw, bh = max(4, round(self.box.w * s)), max(4, round(self.box.h * s))
        H, W = small_y.shape[:2]
        if self.template is None or not self.box.track:
            if self.template is None:
                x, y = round(self.box.x * s), round(self.box.y * s)
                x, y = min(max(0, x), max(0, W - bw)), min(max(0, y), max(0, H - bh))
                self.template = small_y[y:y + bh, x:x + bw].copy()
            score = 1.0
        else:
            px, py = round(self.pos[0] * s), round(self.pos[1] * s)
            mx, my = max(bw, W // 10), max(bh, H // 10)  # how far the box may move in one frame
            x0, y0 = max(0, px - mx), max(0, py - my)
            x1, y1 = min(W, px + bw + mx), min(H, py + bh + my)
            window = small_y[y0:y1, x0:x1]
            score = 0.0
            if window.shape[0] >= self.template.shape[0] and window.shape[1] >= self.template.shape[1]:
                res = cv2.matchTemplate(window, self.template, cv2.TM_CCOEFF_NORMED)
                _, score, _, loc = cv2.minMaxLoc(res)
                if score >= TRACK_MIN_SCORE:
                    self.pos = ((x0 + loc[0]) / s, (y0 + loc[1]) / s)
            if score < TRACK_MIN_SCORE:
                self.lost += 1
        box = Box(self.pos[0], self.pos[1], self.box.w, self.box.h, float(score))
        if log_it:
            self.track.append([round(t, 3), *box.as_list()])
        return box

    def report(self) -> dict[str, Any]:
        return {"given": asdict(self.box), "track": self.track, "lost_frames": self.lost}


# --------------------------------------------------------------------------- video
def _frames(proc: subprocess.Popen, size: int) -> Iterator[bytes]:
    assert proc.stdout is not None
    while True:
        buf = proc.stdout.read(size)
        if not buf or len(buf) < size:
            return
        yield buf


def _mute_filter(mute: list[tuple[float, float]], start: float) -> list[str]:
    parts = [f"volume=enable='between(t,{max(0.0, a - start):.3f},{max(0.0, b - start):.3f})':volume=0"
             for a, b in mute if b > start]
    return ["-af", ",".join(parts)] if parts else []


def redact_video(src: Path, out: Path, plan: Plan, detector: FaceDetector | None,
                 progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Write the redacted segment of `src` to `out` (MP4).  Returns the redaction log's facts."""
    import numpy as np  # deferred: see blur_region

    info = probe(src)
    if info.duration is not None and plan.start >= info.duration:
        raise CustodyError(f"--from {plan.start}s is past the recording's end ({info.duration:.3f}s) / 起点超出录像")
    end = plan.end if plan.end is not None else info.duration
    if end is not None and end <= plan.start:
        raise CustodyError("--to must come after --from / 终点须晚于起点")
    if not info.has_video:
        return _redact_audio(src, out, plan, info, end)
    if info.width % 2 or info.height % 2:
        raise CustodyError(f"odd frame size {info.width}x{info.height} is not supported / 不支持奇数尺寸")
    W, H, fps = info.width, info.height, info.fps
    every = plan.detect_every or max(1, round(fps / DETECTIONS_PER_SECOND))
    # Frame-aligned instants, so that a frame's time in the log is the time it was shown.
    on_frame = lambda t: round(t * fps) / fps  # noqa: E731
    # Boxes drawn before the segment starts are followed from where they were drawn.
    track_from = on_frame(min([plan.start] + [b.t for b in plan.boxes if b.track and b.t < plan.start]))
    seg_start = on_frame(plan.start)
    pre = seg_start - track_from
    length = (end - track_from) if end is not None else None
    dec_cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{track_from:.3f}", "-i", str(src)]
    dec_cmd += (["-t", f"{length:.3f}"] if length is not None else [])
    dec_cmd += ["-map", "0:v:0", "-fps_mode", "cfr", "-r", f"{fps:.6f}", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]
    enc_cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
               "-s", f"{W}x{H}", "-r", f"{fps:.6f}", "-i", "-"]
    if info.has_audio:
        enc_cmd += ["-ss", f"{seg_start:.3f}"] + (["-t", f"{end - seg_start:.3f}"] if end is not None else [])
        enc_cmd += ["-i", str(src), "-map", "0:v:0", "-map", "1:a:0"] + AUDIO_CODEC + _mute_filter(plan.mute, seg_start)
    else:
        enc_cmd += ["-map", "0:v:0"]
    enc_cmd += VIDEO_CODEC + ["-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart",
                              "-f", "mp4", str(out)]
    frame_bytes = W * H * 3 // 2
    scale = min(1.0, TRACK_WIDTH / W)
    followers = [Follower(b, scale) for b in plan.boxes]
    detections: list[list[Any]] = []
    blurred_frames = 0
    written = 0
    started = time.monotonic()

    def planes(buf: bytearray) -> tuple[Any, Any, Any]:
        a = np.frombuffer(buf, dtype=np.uint8)
        y = a[:W * H].reshape(H, W)
        u = a[W * H:W * H * 5 // 4].reshape(H // 2, W // 2)
        v = a[W * H * 5 // 4:].reshape(H // 2, W // 2)
        return y, u, v

    def detect(buf: bytearray, t: float) -> list[Box]:
        import cv2  # deferred: see blur_region

        bgr = cv2.cvtColor(np.frombuffer(buf, dtype=np.uint8).reshape(H * 3 // 2, W), cv2.COLOR_YUV2BGR_I420)
        found = detector.detect(bgr) if detector else []
        if found:
            detections.append([round(t, 3), [b.as_list() for b in found]])
        return found

    dec = subprocess.Popen(dec_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes * 2)
    enc = subprocess.Popen(enc_cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert enc.stdin is not None

    def emit(buf: bytearray, idx: int, faces: list[Box]) -> None:
        nonlocal blurred_frames, written
        t = track_from + idx / fps
        y, u, v = planes(buf)
        rects = [b.grown(FACE_GROW, W, H) for b in faces]
        live = [f for f in followers if f.active(t)]
        if live:
            import cv2  # deferred: see blur_region

            small = cv2.resize(y, (round(W * scale), round(H * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else y
            for f in live:
                rects.append(f.step(small, t, log_it=(idx % every == 0)).grown(BOX_GROW, W, H))
        if idx < round(pre * fps):
            return  # before the segment: followed, not written
        for r in rects:
            blur_yuv(y, u, v, r)
        blurred_frames += bool(rects)
        enc.stdin.write(buf)
        written += 1
        if progress and written % 50 == 0:
            progress(written / fps)

    # Detection runs in a worker thread (OpenCV releases the GIL) one interval ahead: while the
    # network looks at detection frame k, the frames up to the previous detection are blurred
    # and handed to the encoder.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces") if plan.faces else None
    buffered: deque[tuple[int, bytearray]] = deque()  # read, not yet written
    dets: deque[tuple[int, Future[list[Box]]]] = deque()  # detection frames not yet released
    prev: list[Any] = []  # [index, boxes] of the last released detection

    def release(q_idx: int, q_found: list[Box]) -> None:
        while buffered and buffered[0][0] <= q_idx:
            j, b = buffered.popleft()
            if j == q_idx or not prev:
                emit(b, j, q_found if j == q_idx else between([], q_found, 1.0))
            else:
                emit(b, j, between(prev[1], q_found, (j - prev[0]) / (q_idx - prev[0])))
        prev[:] = [q_idx, q_found]

    try:
        idx = -1
        first_out = round(pre * fps)
        for raw in _frames(dec, frame_bytes):
            idx += 1
            buf = bytearray(raw)
            if pool is None or idx < first_out:
                emit(buf, idx, [])
                continue
            buffered.append((idx, buf))
            if (idx - first_out) % every == 0:
                dets.append((idx, pool.submit(detect, buf, track_from + idx / fps)))
                while len(dets) > 1:
                    q_idx, fut = dets.popleft()
                    release(q_idx, fut.result())
        if pool is not None:
            if buffered and (not dets or dets[-1][0] != buffered[-1][0]):
                j, b = buffered[-1]  # the frames after the last detection: detect on the last one too
                dets.append((j, pool.submit(detect, b, track_from + j / fps)))
            while dets:
                q_idx, fut = dets.popleft()
                release(q_idx, fut.result())
        enc.stdin.close()
        enc_rc = enc.wait(timeout=600)
        dec_rc = dec.wait(timeout=60)
    except BaseException as e:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for p in (dec, enc):
            if p.poll() is None:
                p.kill()
                p.wait()
        if isinstance(e, BrokenPipeError):  # the encoder stopped: say why
            raise CustodyError("encoding the derived copy failed / 编码失败: "
                               + (enc.stderr.read() if enc.stderr else b"").decode(errors="replace")[-300:]) from e
        raise
    if pool is not None:
        pool.shutdown(wait=True)
    detections.sort(key=lambda d: d[0])
    if dec_rc != 0:
        raise CustodyError("decoding the original failed / 解码失败: "
                           + (dec.stderr.read() if dec.stderr else b"").decode(errors="replace")[-300:])
    if enc_rc != 0:
        raise CustodyError("encoding the derived copy failed / 编码失败: "
                           + (enc.stderr.read() if enc.stderr else b"").decode(errors="replace")[-300:])
    if written == 0:
        raise CustodyError("the segment holds no frame / 片段中没有画面")
    seconds = time.monotonic() - started
    return {
        "kind": "video",
        "segment": {"from": round(seg_start, 6), "to": round(seg_start + written / fps, 6)},
        "output": {"container": "mp4", "encoder": ENCODER, "width": W, "height": H, "fps": round(fps, 3),
                   "frames": written, "audio": info.has_audio},
        "faces": ({"detector": detector.describe() if detector else None, "detect_every_frames": every,
                   "grow": FACE_GROW, "between_detections": "linear between matched faces; unmatched held",
                   "detections": detections, "frames_blurred": blurred_frames} if plan.faces else None),
        "boxes": [f.report() for f in followers],
        "mute": [list(r) for r in plan.mute],
        "timing": {"seconds": round(seconds, 3), "x_realtime": round((written / fps) / seconds, 3) if seconds else None},
    }


def _redact_audio(src: Path, out: Path, plan: Plan, info: Source, end: float | None) -> dict[str, Any]:
    """An audio-only recording: the segment with muted ranges, AAC in MP4."""
    started = time.monotonic()
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{plan.start:.3f}"]
    cmd += (["-t", f"{end - plan.start:.3f}"] if end is not None else []) + ["-i", str(src), "-map", "0:a:0"]
    cmd += AUDIO_CODEC + _mute_filter(plan.mute, plan.start)
    cmd += ["-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(out)]
    proc = subprocess.run(cmd, capture_output=True, timeout=3600)
    if proc.returncode != 0:
        raise CustodyError("encoding the derived copy failed / 编码失败: " + proc.stderr.decode(errors="replace")[-300:])
    return {"kind": "audio", "segment": {"from": plan.start, "to": end},
            "output": {"container": "mp4", "encoder": ENCODER, "audio": True},
            "faces": None, "boxes": [], "mute": [list(r) for r in plan.mute],
            "timing": {"seconds": round(time.monotonic() - started, 3)}}


# --------------------------------------------------------------------------- stills
def _frame_at(src: Path, t: float) -> tuple[Any, float]:
    """The video frame shown at `t` as a BGR array."""
    import numpy as np  # deferred: see blur_region

    info = probe(src)
    if not info.has_video:
        raise CustodyError("a still needs a recording with pictures / 静帧需要视频或照片")
    if info.duration is not None and t > info.duration:
        raise CustodyError(f"--still {t}s is past the recording's end ({info.duration:.3f}s) / 时间超出录像")
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{t:.3f}", "-i", str(src), "-map", "0:v:0",
           "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    W, H = info.width, info.height
    if proc.returncode != 0 or len(proc.stdout) < W * H * 3:
        raise CustodyError("no frame at that time / 该时间点无画面: " + proc.stderr.decode(errors="replace")[-200:])
    return np.frombuffer(proc.stdout[:W * H * 3], dtype=np.uint8).reshape(H, W, 3).copy(), t


def _photo_pixels(src: Path) -> Any:
    """A photo's pixels as a BGR array, turned as its EXIF orientation says (as viewers show it)."""
    import numpy as np  # deferred: see blur_region
    from PIL import Image, ImageOps, UnidentifiedImageError  # deferred with numpy

    try:
        with Image.open(src) as im:
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise CustodyError(f"the photo cannot be read: {e} / 无法读取照片") from e
    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def redact_still(src: Path, out: Path, plan: Plan, detector: FaceDetector | None, *,
                 photo: bool = False) -> dict[str, Any]:
    """One frame at `plan.still` (0 for a photo) as a JPEG with the same redactions.

    The JPEG is encoded from pixels by OpenCV: it carries no EXIF at all (no GPS, no device).
    Manual boxes apply where given when the still's time lies in [t, until]; they are not
    followed (draw them on the frame of the still)."""
    import cv2  # deferred: see blur_region

    if photo:
        img, t = _photo_pixels(src), 0.0
    else:
        img, t = _frame_at(src, plan.still or 0.0)
    H, W = img.shape[:2]
    faces = detector.detect(img) if (plan.faces and detector) else []
    boxes = [b for b in plan.boxes if b.t - 1e-6 <= t and (b.until is None or t <= b.until + 1e-6)]
    rects = [f.grown(FACE_GROW, W, H) for f in faces]
    rects += [Box(b.x, b.y, b.w, b.h).grown(BOX_GROW, W, H) for b in boxes]
    for x0, y0, x1, y1 in rects:
        for c in range(3):
            blur_region(img[:, :, c], x0, y0, x1, y1)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise CustodyError("JPEG encoding failed / JPEG 编码失败")
    Path(out).write_bytes(jpeg.tobytes())
    return {"kind": "photo", "still": t, "output": {"container": "jpeg", "width": W, "height": H, "exif": "none"},
            "faces": ({"detector": detector.describe() if detector else None, "grow": FACE_GROW,
                       "detections": [[t, [f.as_list() for f in faces]]] if faces else []} if plan.faces else None),
            "boxes": [{"given": asdict(b), "track": [], "lost_frames": 0} for b in boxes],
            "mute": []}


def run(src: Path, out: Path, plan: Plan, *, kind: str, detector: FaceDetector | None) -> dict[str, Any]:
    """Redact `src` into `out`: a still when asked for (or the original is a photo), else video/audio."""
    if plan.still is not None or kind == "photo":
        return redact_still(src, out, plan, detector, photo=kind == "photo")
    return redact_video(src, out, plan, detector)
