"""Keyframes a reviewer can skim, chosen without decoding the whole recording.

Decoding every frame of 10 minutes of 1080p takes about a minute of CPU here, and even
every keyframe (`-skip_frame nokey`) takes 11-18 s.  Instead:

1. Read the packet index of the video stream (time, key flag, size per packet): from
   an MP4's sample tables when it is one (no need to read the media data at all), else
   by demuxing (every packet read, none decoded).
2. Plan: one keyframe per `interval` seconds (the nearest key packet, which decodes
   alone), plus likely scene changes found in the packet sizes -
   * key packets off the encoder's regular cadence (scene-cut IDR frames),
   * a step or spike in the size of the predicted frames (a new scene costs a
     different number of bits than the old one),
   * a jump in keyframe size from one GOP to the next.
3. Decode only the planned frames, with accurate seeks (seek to the key packet at or
   before the target, decode forward to it: a keyframe costs one decode).  A scene
   change inside a GOP is decoded at the next keyframe when the scene lasts that long,
   and exactly otherwise.  (OpenCV's own seek backs up 16 frames first and so decodes
   a whole GOP per keyframe; that alone made the stage slower than decoding every key.)
4. Score with OpenCV: drop near-black frames (lens covered) and near-duplicates,
   prefer sharp frames, keep them spread over time, at most `cap` per clip.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from core.lazy import lazy
from indexer import mp4index

if TYPE_CHECKING:
    import av
    import cv2
    import numpy as np
else:  # imported on first use: the CLI loads this module for light commands too (issue 14)
    av, cv2, np = lazy("av"), lazy("cv2"), lazy("numpy")

# Detection constants: ratios of bits per frame; generous so that camera motion is not a "scene".
STEP_WINDOW = 5  # predicted frames on each side of a candidate change
SIZE_FLOOR = 400  # bytes; keeps near-empty frames (static scenes) from making noise ratios
STEP_LOG = math.log(2.0)  # median P-frame size doubles or halves: likely a new scene
SPIKE_LOG = math.log(3.0)  # one P-frame three times its neighbours: likely a cut
KEY_JUMP_LOG = math.log(1.35)  # keyframe 35 % larger or smaller than the previous one (cheap to check)
OFF_CADENCE = 0.9  # a key packet earlier than 90 % of the nominal GOP was inserted by a scene cut
MIN_GAP_SECONDS = 1.0
DARK_MEAN, DARK_STD = 24.0, 12.0  # mean/std of grey levels of a covered lens or a black frame
DUP_HIST_CORR, DUP_PIXEL_DIFF = 0.95, 12.0
BLURRY_FRACTION = 0.35  # sharpness below this share of the clip's median: try a neighbour
STATIC_FRACTION = 0.01  # predicted frames under 1 % of a keyframe's size: nothing in view moved
STATIC_FLOOR = 64  # bytes: an all-skip predicted frame costs a few dozen bytes whatever its size
NETWORK_TIMEOUT_SECONDS = 30.0  # presigned-URL reads: a stalled store must not hang a worker


class KeyframeError(Exception):
    """The packet index or the decoder failed; the reason is the tool's."""


@dataclass
class Packet:
    t: float  # seconds from the first video packet
    key: bool
    size: int


@dataclass
class Pick:
    t: float
    reason: str  # first|interval|scene_change
    strength: float = 0.0
    on_key: bool = True


@dataclass
class Frame:
    t: float
    reason: str
    image: np.ndarray  # BGR
    mean: float = 0.0
    std: float = 0.0
    sharpness: float = 0.0
    hist: np.ndarray | None = None
    tiny: np.ndarray | None = None


@dataclass
class Selection:
    frames: list[Frame]
    stats: dict[str, float | int] = field(default_factory=dict)


# --------------------------------------------------------------------------- 1. packet index
def _open(source: str) -> av.container.InputContainer:
    try:
        if source.startswith(("http://", "https://")):
            return av.open(source, timeout=NETWORK_TIMEOUT_SECONDS)
        return av.open(source)
    except (av.FFmpegError, OSError) as e:
        raise KeyframeError(f"cannot open the recording: {e}") from e


def read_packets(source: str) -> list[Packet]:
    """The video stream's packets in presentation order, without decoding anything.

    An MP4/MOV is read from its sample tables (a few hundred kilobytes, also over a
    presigned URL with range requests); anything else is demuxed (every packet read,
    none decoded)."""
    idx = mp4index.read_index(source)
    if idx is not None:
        return _from_index(idx)
    return demux_packets(source)


def _from_index(idx: mp4index.TrackIndex) -> list[Packet]:
    order = np.argsort(idx.pts_seconds, kind="stable")
    t0 = float(idx.pts_seconds[order[0]])
    return [Packet(round(float(idx.pts_seconds[i]) - t0, 6), bool(idx.keys[i]), int(idx.sizes[i])) for i in order]


def demux_packets(source: str) -> list[Packet]:
    """The packet index by demuxing: works for every container ffmpeg reads."""
    with _open(source) as c:
        if not c.streams.video:
            raise KeyframeError("the file has no video stream")
        stream = c.streams.video[0]
        tb = float(stream.time_base)
        raw: list[tuple[int, bool, int]] = []
        try:
            for pkt in c.demux(stream):
                ts = pkt.pts if pkt.pts is not None else pkt.dts
                if ts is None or pkt.size == 0:
                    continue  # the demuxer's flush packet
                raw.append((ts, bool(pkt.is_keyframe), pkt.size))
        except av.FFmpegError as e:
            if not raw:
                raise KeyframeError(f"reading packets failed: {e}") from e
            # A truncated tail still leaves an index of what can be played.
    if not raw:
        raise KeyframeError("the video stream has no packets")
    raw.sort()
    t0 = raw[0][0]
    return [Packet(round((ts - t0) * tb, 6), k, size) for ts, k, size in raw]


# --------------------------------------------------------------------------- 2. plan
def _log(size: int) -> float:
    return math.log(size + SIZE_FLOOR)


def predicted_changes(packets: list[Packet]) -> list[tuple[float, float]]:
    """(time, strength) where the bits per predicted frame step or spike.

    A run of frames around a change all score high (medians on both sides); the change
    itself is the frame with the largest jump from its predecessor in that run.
    """
    pf = [p for p in packets if not p.key]
    w = STEP_WINDOW
    n = len(pf)
    if n < 2 * w + 1:
        return []
    logs = np.log(np.array([p.size for p in pf], dtype=np.float64) + SIZE_FLOOR)
    med = np.median(np.lib.stride_tricks.sliding_window_view(logs, w), axis=1)  # med[j] = median(logs[j:j+w])
    idx = np.arange(w, n - w)  # candidates with a full window on both sides
    before, after, after_next = med[idx - w], med[idx], med[idx + 1]
    step = np.abs(after - before) / STEP_LOG
    spike = (logs[idx] - np.maximum(before, after_next)) / SPIKE_LOG
    scores = np.zeros(n)
    scores[idx] = np.maximum(step, spike)
    jumps = np.abs(np.diff(logs, prepend=logs[0]))
    out = []
    hot = scores >= 1.0
    i = 0
    while i < n:
        if not hot[i]:
            i += 1
            continue
        j = i
        while j < n and hot[j]:
            j += 1
        best = i + int(np.argmax(jumps[i:j]))
        out.append((pf[best].t, float(scores[i:j].max())))
        i = j
    return out


def keyframe_changes(keys: list[Packet], explained: list[float] | None = None) -> list[tuple[float, float]]:
    """Scene-cut key packets (off the regular cadence) and jumps in keyframe size.

    A size jump whose GOP already holds a predicted-frame change is that same change
    seen again, so it is left out (`explained`: times of the changes already found).
    """
    out = []
    if len(keys) >= 3:
        gaps = [b.t - a.t for a, b in zip(keys, keys[1:])]
        nominal = max(gaps)
        for k, g in zip(keys[1:], gaps):
            if g < OFF_CADENCE * nominal:
                out.append((k.t, 3.0))
    seen = sorted(explained or [])
    for a, b in zip(keys, keys[1:]):
        jump = abs(_log(b.size) - _log(a.size)) / KEY_JUMP_LOG
        i = bisect.bisect_right(seen, a.t)
        if jump >= 1.0 and not (i < len(seen) and seen[i] <= b.t):
            out.append((b.t, jump))
    return out


def plan(packets: list[Packet], duration: float | None, interval: float, cap: int) -> list[Pick]:
    """Which frames to decode: spread keyframes plus likely scene changes, at most `cap`."""
    keys = [p for p in packets if p.key] or packets[:1]
    key_times = [k.t for k in keys]
    end = duration or (packets[-1].t if packets else 0.0)
    needed = max(1, math.ceil(end / interval)) if end > 0 else 1
    n_interval = min(needed, max(1, cap // 2))  # leave at least half the cap for scene changes
    step = interval if n_interval == needed else end / n_interval
    picks: dict[float, Pick] = {}
    for i in range(n_interval):
        t = _key_at_or_after(key_times, i * step)
        if t is not None and t not in picks:
            picks[t] = Pick(t, "first" if i == 0 else "interval")
    predicted = predicted_changes(packets)
    changes = sorted(predicted + keyframe_changes(keys, [t for t, _ in predicted]))
    _add_scenes(picks, _scene_picks(changes, key_times, step), cap, [t for t, _ in changes])
    _drop_redundant_intervals(picks, step)
    _drop_static_intervals(picks, packets, keys)
    return sorted(picks.values(), key=lambda p: p.t)


def _drop_static_intervals(picks: dict[float, Pick], packets: list[Packet], keys: list[Packet]) -> None:
    """Nothing moved since the previous pick (predicted frames carry almost no bits, as with a
    camera lying on a desk): the picture is the same, so it is not decoded at all."""
    if len(keys) < 2:
        return
    t = np.array([p.t for p in packets])
    p_bytes = np.array([0 if p.key else p.size for p in packets], dtype=np.float64)
    p_count = np.array([0 if p.key else 1 for p in packets], dtype=np.float64)
    cum_b, cum_n = np.concatenate([[0], np.cumsum(p_bytes)]), np.concatenate([[0], np.cumsum(p_count)])
    key_size = float(np.median([k.size for k in keys]))
    ordered = sorted(picks)
    for prev, cur in zip(ordered, ordered[1:]):
        if picks[cur].reason != "interval":
            continue
        a, b = int(np.searchsorted(t, prev, "right")), int(np.searchsorted(t, cur, "left"))
        n = cum_n[b] - cum_n[a]
        if n > 0 and (cum_b[b] - cum_b[a]) / n < max(STATIC_FRACTION * key_size, STATIC_FLOOR):
            del picks[cur]


def _scene_picks(changes: list[tuple[float, float]], key_times: list[float], step: float) -> list[Pick]:
    """Where to look at each change: the next keyframe if the scene still shows there, else exactly."""
    keys = set(key_times)
    out = []
    for idx, (t, strength) in enumerate(changes):
        nxt_key = _key_at_or_after(key_times, t)
        nxt_change = changes[idx + 1][0] if idx + 1 < len(changes) else math.inf
        if nxt_key is not None and t <= nxt_key < nxt_change and nxt_key - t <= max(step / 2, MIN_GAP_SECONDS):
            out.append(Pick(nxt_key, "scene_change", strength, True))  # one decode instead of a GOP's
        else:
            out.append(Pick(t, "scene_change", strength, t in keys))
    return out


def _add_scenes(picks: dict[float, Pick], scenes: list[Pick], cap: int, change_times: list[float]) -> None:
    """Strongest first, within the cap; a pick closer than MIN_GAP_SECONDS to one already chosen
    is skipped only when no detected change lies between them (the same scene shown twice).
    A frame just before a cut shows the old scene, so the cut still gets its own picture."""
    room = max(0, cap - len(picks))
    for sc in sorted(scenes, key=lambda p: -p.strength):
        if room == 0:
            return
        seg = _segment(change_times, sc.t)
        same = [p for p in picks.values()
                if abs(p.t - sc.t) < MIN_GAP_SECONDS and _segment(change_times, p.t) == seg]
        if same:
            near = min(same, key=lambda p: abs(p.t - sc.t))
            if near.t == sc.t and near.reason != "scene_change":
                near.reason, near.strength = "scene_change", sc.strength  # same frame: say why it matters
            continue
        picks[sc.t] = sc
        room -= 1


def _segment(change_times: list[float], t: float) -> int:
    """Which stretch between detected changes `t` falls in (a change's own frame starts its stretch)."""
    return bisect.bisect_right(change_times, t + 1e-6)


def _drop_redundant_intervals(picks: dict[float, Pick], step: float) -> None:
    """An interval pick with a scene change close by adds nothing to the spread: save its decode."""
    scene_times = sorted(p.t for p in picks.values() if p.reason == "scene_change")
    for t, p in list(picks.items()):
        if p.reason != "interval":
            continue
        i = bisect.bisect_left(scene_times, t)
        if any(abs(scene_times[j] - t) <= step / 4 for j in (i - 1, i) if 0 <= j < len(scene_times)):
            del picks[t]


def _key_at_or_after(key_times: list[float], t: float) -> float | None:
    i = bisect.bisect_left(key_times, t - 1e-6)
    if i < len(key_times):
        return key_times[i]
    return key_times[-1] if key_times else None


# --------------------------------------------------------------------------- 3. decode
# Display-matrix degrees -> the name of OpenCV's rotate code (looked up when decoding: cv2 loads lazily).
_ROTATE = {90: "ROTATE_90_COUNTERCLOCKWISE", -270: "ROTATE_90_COUNTERCLOCKWISE", -90: "ROTATE_90_CLOCKWISE",
           270: "ROTATE_90_CLOCKWISE", 180: "ROTATE_180", -180: "ROTATE_180"}


class Decoder:
    """Accurate seeks into one recording: key packet at or before the target, then forward."""

    def __init__(self, source: str, rotation: int | None = None, max_width: int = 1280) -> None:
        self.container = _open(source)
        if not self.container.streams.video:
            self.container.close()
            raise KeyframeError("the file has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.tb = Fraction(self.stream.time_base)
        self.start = self.stream.start_time or 0
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.half_frame = int(Fraction(1, 2) / Fraction(rate) / self.tb) if rate else 0
        code = _ROTATE.get(int(rotation or 0))  # the display matrix, as a player would apply it
        self.rotate = getattr(cv2, code) if code else None
        self.max_width = max_width

    def frame_at(self, t: float) -> np.ndarray | None:
        target = self.start + round(Fraction(t) / self.tb)
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
            for frame in self.container.decode(self.stream):
                if frame.pts is not None and frame.pts >= target - self.half_frame:
                    img = self._picture(frame)
                    return cv2.rotate(img, self.rotate) if self.rotate is not None else img
        except av.FFmpegError:
            return None  # a damaged stretch: this frame is skipped, the others still count
        return None

    def _picture(self, frame: av.VideoFrame) -> np.ndarray:
        """Scale and convert in one swscale pass: nothing downstream needs more than max_width."""
        w, h = frame.width, frame.height
        if w > self.max_width:
            w, h = self.max_width, max(2, round(h * self.max_width / w / 2) * 2)
        return frame.reformat(width=w, height=h, format="bgr24").to_ndarray()

    def close(self) -> None:
        self.container.close()


# --------------------------------------------------------------------------- 4. score
def measure(f: Frame) -> Frame:
    h, w = f.image.shape[:2]
    small = cv2.resize(f.image, (320, max(1, round(h * 320 / w))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(grey)
    f.mean, f.std = float(mean[0][0]), float(std[0][0])
    f.sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
    f.hist = cv2.normalize(hist, hist).flatten()
    f.tiny = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return f


def is_dark(f: Frame) -> bool:
    return f.mean < DARK_MEAN and f.std < DARK_STD


def is_duplicate(a: Frame, b: Frame) -> bool:
    corr = cv2.compareHist(a.hist, b.hist, cv2.HISTCMP_CORREL)
    diff = float(np.mean(np.abs(a.tiny - b.tiny)))
    return corr >= DUP_HIST_CORR and diff <= DUP_PIXEL_DIFF


def select(source: str, duration: float | None, interval: float, cap: int,
           rotation: int | None = None, max_width: int = 1280) -> Selection:
    """Plan, decode and score; return the frames worth keeping, in time order."""
    packets = read_packets(source)
    picks = plan(packets, duration, interval, cap)
    key_times = [p.t for p in packets if p.key]
    dec = Decoder(source, rotation, max_width)
    stats: dict[str, float | int] = {"packets": len(packets), "keyframes_in_clip": len(key_times),
                                     "planned": len(picks), "decoded": 0, "dropped_dark": 0,
                                     "dropped_duplicate": 0, "replaced_blurry": 0}
    try:
        frames = []
        for p in picks:
            img = dec.frame_at(p.t)
            stats["decoded"] += 1
            if img is not None:
                frames.append(measure(Frame(p.t, p.reason, img)))
        frames = _prefer_sharp(dec, frames, key_times, stats)
    finally:
        dec.close()
    kept: list[Frame] = []
    for f in frames:
        if is_dark(f):
            stats["dropped_dark"] += 1
            continue
        # Only the previous kept frame counts: a view that returns later is news to a reviewer.
        if not kept or not is_duplicate(kept[-1], f):
            kept.append(f)
            continue
        stats["dropped_duplicate"] += 1
        prev = kept[-1]
        if f.sharpness > prev.sharpness and prev.reason != "scene_change":
            kept[-1] = f  # same view, sharper picture
    return Selection(kept[:cap], stats)


def _prefer_sharp(dec: Decoder, frames: list[Frame], key_times: list[float],
                  stats: dict[str, float | int]) -> list[Frame]:
    """A blurred interval frame (camera swinging) is swapped for the next keyframe if sharper."""
    if len(frames) < 3:
        return frames
    median = float(np.median([f.sharpness for f in frames]))
    out = []
    for f in frames:
        # A featureless view (a wall, bars) is not blurred: only a textured frame gone soft is.
        if f.reason == "interval" and f.std >= 2 * DARK_STD and f.sharpness < BLURRY_FRACTION * median:
            i = bisect.bisect_right(key_times, f.t + 1e-6)
            if i < len(key_times):
                img = dec.frame_at(key_times[i])
                stats["decoded"] += 1
                if img is not None:
                    alt = measure(Frame(key_times[i], f.reason, img))
                    if alt.sharpness > f.sharpness:
                        stats["replaced_blurry"] += 1
                        f = alt
        out.append(f)
    return out


# --------------------------------------------------------------------------- images
def resize_to_width(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    if w <= width:
        return img
    return cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def jpeg(img: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise KeyframeError("JPEG encoding failed")
    return buf.tobytes()


def offset_label(t: float) -> str:
    m, s = divmod(t, 60)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}" if h else f"{m:02d}:{s:04.1f}"


def contact_sheet(thumbs: list[tuple[float, str, np.ndarray]], columns: int = 5) -> np.ndarray:
    """A grid of thumbnails, each labelled with its offset in the clip (S = scene change)."""
    cell_w = max(t[2].shape[1] for t in thumbs)
    cell_h = max(t[2].shape[0] for t in thumbs)
    band = 22
    cols = min(columns, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    sheet = np.full((rows * (cell_h + band), cols * cell_w, 3), 24, np.uint8)
    for i, (t, reason, img) in enumerate(thumbs):
        r, c = divmod(i, cols)
        y, x = r * (cell_h + band), c * cell_w
        sheet[y:y + img.shape[0], x:x + img.shape[1]] = img
        label = offset_label(t) + (" S" if reason == "scene_change" else "")
        cv2.putText(sheet, label, (x + 4, y + cell_h + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return sheet
