"""Benchmark of redaction (issue 18): faces found and blurred on 1080p, against a bare re-encode.

Makes a 1080p30 H.264/AAC clip (cached in the work directory) in which portraits of known
size move across a textured, panning background: the portrait is Grace Hopper's photograph
shipped with matplotlib, pasted at four sizes (face about 40, 60, 90 and 140 px wide), so
every frame's true face boxes are known.  Then times:

* `disclose.redact.redact_video` with faces on (the derived copy as `custody redact --faces`
  makes it: detection every Nth frame, boxes interpolated, blur, libx264 + AAC);
* a bare `ffmpeg` re-encode of the same segment with the same encoder settings;

and reports wall seconds, × real time of each, and the detector's recall at the chosen
threshold on sampled original frames (a true face counts as found when a detection overlaps
it with IoU >= 0.3), per face size, plus how many faces the detector still finds in the
redacted output (should be none).  Target: redaction >= 1x real time on this machine.

    .venv/bin/python bench/redact.py [--seconds 20] [--workdir DIR] [--threshold 0.4] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from disclose import redact  # noqa: E402
from disclose.faces import DEFAULT_INPUT_WIDTH, DEFAULT_THRESHOLD, Box, FaceDetector  # noqa: E402

W, H, FPS = 1920, 1080, 30
PORTRAIT = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
PORTRAIT_WIDTHS = [110, 160, 240, 380]  # face inside is about 37 % of the portrait's width


def _face_in_portrait(portrait: np.ndarray) -> tuple[float, float, float, float]:
    """The face box inside the full-size portrait, as fractions (found once, at full resolution)."""
    det = FaceDetector(0.5, input_width=portrait.shape[1]).detect(portrait)
    if len(det) != 1:
        raise SystemExit("the sample portrait should hold exactly one face")
    b = det[0]
    ph, pw = portrait.shape[:2]
    return b.x / pw, b.y / ph, b.w / pw, b.h / ph


def make_clip(path: Path, seconds: float) -> list[list[Box]]:
    """Write the clip and return the true face boxes of every frame."""
    src = cv2.imread(str(PORTRAIT))
    fx, fy, fw, fh = _face_in_portrait(src)
    rng = np.random.default_rng(18)
    frames = int(seconds * FPS)
    noise = rng.integers(40, 220, (H // 12 + 1, (W + 2 * frames) // 12 + 2, 3), dtype=np.uint8)
    bg = cv2.GaussianBlur(cv2.resize(noise, (W + 2 * frames + 12, H)), (0, 0), 4)
    portraits = []
    for i, pw in enumerate(PORTRAIT_WIDTHS):
        ph = int(pw * src.shape[0] / src.shape[1])
        img = cv2.resize(src, (pw, ph), interpolation=cv2.INTER_AREA)
        x0, y0 = 80 + i * 440, 120 + (i % 2) * 380
        portraits.append((img, x0, y0, 3 - i, 1 if i % 2 else -1))  # velocity px/frame
    truth: list[list[Box]] = []
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}",
           "-r", str(FPS), "-i", "-", "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=48000:duration={seconds}",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-g", str(FPS),
           "-c:a", "aac", "-shortest", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for f in range(frames):
        frame = np.ascontiguousarray(bg[:, 2 * f:2 * f + W])
        boxes = []
        for img, x0, y0, vx, vy in portraits:
            ph, pw = img.shape[:2]
            x = int(np.clip(x0 + vx * f, 0, W - pw))
            y = int(np.clip(y0 + vy * f // 2, 0, H - ph))
            frame[y:y + ph, x:x + pw] = img
            boxes.append(Box(x + fx * pw, y + fy * ph, fw * pw, fh * ph))
        truth.append(boxes)
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("ffmpeg failed to write the clip")
    return truth


def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return w * h / (a.w * a.h + b.w * b.h - w * h + 1e-9)


def _frames(path: Path, every: int) -> list[np.ndarray]:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"select=not(mod(n\\,{every}))",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                         capture_output=True, check=True).stdout
    return list(np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3))


def _cpu() -> float:
    """CPU seconds used so far by this process and its waited-for children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--detect-width", type=int, default=DEFAULT_INPUT_WIDTH)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="custody-bench-redact-"))
    work.mkdir(parents=True, exist_ok=True)
    clip = work / f"faces_1080p_{int(args.seconds)}s.mp4"
    truth_file = clip.with_suffix(".json")
    if clip.exists() and truth_file.exists():
        truth = [[Box(*b) for b in fr] for fr in json.loads(truth_file.read_text())]
    else:
        print(f"making {clip} ...", flush=True)
        truth = make_clip(clip, args.seconds)
        truth_file.write_text(json.dumps([[[b.x, b.y, b.w, b.h, 1.0] for b in fr] for fr in truth]))
    load0 = f"{os.getloadavg()[0]:.2f}"
    seg = (1.0, args.seconds - 1.0)
    seg_len = seg[1] - seg[0]
    print(f"machine: {os.cpu_count()} cores; clip {W}x{H} {FPS} fps, segment {seg[0]}-{seg[1]} s ({seg_len} s)")

    # 1. bare re-encode of the same segment, same encoder settings
    bare = work / "bare.mp4"
    c0 = _cpu()
    t0 = time.monotonic()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(seg[0]), "-i", str(clip), "-t", str(seg_len),
                    *redact.VIDEO_CODEC, *redact.AUDIO_CODEC, "-movflags", "+faststart", str(bare)], check=True)
    bare_s = time.monotonic() - t0
    bare_cpu = _cpu() - c0

    # 2. redaction with faces
    det = FaceDetector(args.threshold, args.detect_width)
    out = work / "redacted.mp4"
    det.net  # load the model before timing
    c0 = _cpu()
    t0 = time.monotonic()
    log = redact.redact_video(clip, out, redact.Plan(start=seg[0], end=seg[1], faces=True), det)
    red_s = time.monotonic() - t0
    red_cpu = _cpu() - c0

    # 3. recall at the threshold on sampled original frames (every 15th), per face size
    every = 15
    found = {w: [0, 0] for w in PORTRAIT_WIDTHS}
    for i, frame in enumerate(_frames(clip, every)):
        dets = det.detect(frame)
        for w, gt in zip(PORTRAIT_WIDTHS, truth[i * every]):
            found[w][1] += 1
            found[w][0] += any(_iou(gt, d) >= 0.3 for d in dets)
    residual = sum(len(det.detect(f)) for f in _frames(out, 10))
    total_hit = sum(v[0] for v in found.values())
    total = sum(v[1] for v in found.values())

    cores = os.cpu_count() or 1
    print(f"load average before/after: {load0} / {os.getloadavg()[0]:.2f} (other work on the machine slows both)")
    print(f"bare ffmpeg re-encode : {bare_s:7.2f} s wall = {seg_len / bare_s:5.2f}x real time; "
          f"{bare_cpu:6.2f} CPU s (idle-machine bound {seg_len * cores / bare_cpu:5.2f}x)")
    print(f"redact --faces        : {red_s:7.2f} s wall = {seg_len / red_s:5.2f}x real time; "
          f"{red_cpu:6.2f} CPU s (idle-machine bound {seg_len * cores / red_cpu:5.2f}x); "
          f"{red_s / bare_s:.2f}x the bare re-encode's wall time; detection every "
          f"{log['faces']['detect_every_frames']} frames at {args.detect_width} px wide")
    print(f"recall at threshold {args.threshold}: {total_hit}/{total} = {total_hit / total:.3f}")
    for w, (hit, n) in found.items():
        print(f"  face ~{int(w * 0.37):4d} px wide (portrait {w}px): {hit}/{n} = {hit / n:.3f}")
    print(f"faces still detected in the redacted output (every 10th frame): {residual}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
