"""Benchmark of the keyframe stage (issue 3).

On the same 10-minute 1080p30 H.264 clips (GOP 30 and GOP 60, fixed GOP as body cameras
write them, scenes changing at known times that do not fall on keyframes), time:

* the whole keyframe stage: packet index + plan + decode + score + thumbnails + contact
  sheet + store (into a local object store);
* bare `ffmpeg -skip_frame nokey` extracting every keyframe (as 320-wide JPEGs);
* a full decode (`ffmpeg -i clip -f null -`).

Prints wall and CPU seconds, the ratio against the every-keyframe pass, the real-time
factor, and whether the chosen strip shows each scene.  Target: the stage at least 3x
faster than the every-keyframe pass (>= 100x real time).

    .venv/bin/python bench/keyframes.py [--workdir DIR] [--minutes 10] [--keep]

Clips are cached in the work directory (generating them takes a few minutes).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import keyframes  # noqa: E402
from indexer.derivatives import store_keyframes  # noqa: E402
from storage.local import LocalStore  # noqa: E402

# (source, native size) — heavy generators are rendered small and scaled up.
SOURCES = [
    ("testsrc2", "1920x1080"), ("smptehdbars", "1920x1080"), ("mandelbrot", "480x270"), ("rgbtestsrc", "1920x1080"),
    ("cellauto=rule=110", "480x270"), ("yuvtestsrc", "1920x1080"), ("life=mold=10:ratio=0.2", "480x270"),
    ("pal75bars", "1920x1080"), ("gradients=speed=0.02", "1920x1080"),
]
SCENE_SECONDS = [41.37, 58.61, 29.83, 66.19, 47.53, 35.71, 71.27, 52.09, 44.41, 38.93, 61.3, 52.76]


def scenes_for(total: float) -> list[tuple[float, float, int]]:
    """(start, end, source index) covering `total` seconds."""
    out, t, i = [], 0.0, 0
    while t < total - 1e-6:
        d = min(SCENE_SECONDS[i % len(SCENE_SECONDS)] * total / 600.0, total - t)
        out.append((t, t + d, i % len(SOURCES)))
        t, i = t + d, i + 1
    return out


def make_clip(path: Path, total: float, gop: int) -> list[tuple[float, float, int]]:
    scenes = scenes_for(total)
    if path.exists():
        return scenes
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    chains = []
    for n, (a, b, src) in enumerate(scenes):
        name, size = SOURCES[src]
        sep = ":" if "=" in name else "="
        args += ["-f", "lavfi", "-i", f"{name}{sep}size={size}:rate=30"]
        recolour = f",hue=h={120 * (n // len(SOURCES))}" if n >= len(SOURCES) else ""  # a repeat looks new
        chains.append(f"[{n}:v]trim=duration={b - a:.3f},setpts=PTS-STARTPTS,scale=1920:1080:flags=fast_bilinear,"
                      f"format=yuv420p,setsar=1{recolour}[s{n}]")
    graph = ";".join(chains) + ";" + "".join(f"[s{n}]" for n in range(len(scenes))) + \
        f"concat=n={len(scenes)}:v=1:a=0[v]"
    tmp = path.with_suffix(".part.mp4")
    args += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "26",
             "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-r", "30",
             "-f", "mp4", str(tmp)]
    subprocess.run(args, check=True)
    tmp.rename(path)
    return scenes


def cpu_now() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float, object]:  # noqa: ANN001
    c0, t0 = cpu_now(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, cpu_now() - c0, out


def stage(clip: Path, store_dir: Path, duration: float) -> tuple[keyframes.Selection, int]:
    store = LocalStore(store_dir)
    sel = keyframes.select(str(clip), duration, 30.0, 40)
    stored = store_keyframes(store, "0" * 64, sel.frames, 1280, 320)
    return sel, len(stored)


def every_keyframe(clip: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-skip_frame", "nokey", "-i", str(clip),
                    "-vsync", "passthrough", "-vf", "scale=320:-2", "-q:v", "4", str(out / "%05d.jpg")], check=True)
    return len(list(out.iterdir()))


def full_decode(clip: Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-f", "null", "-"], check=True)


def coverage(sel: keyframes.Selection, scenes: list[tuple[float, float, int]], fps: float = 30.0) -> list[bool]:
    """Each scene has a kept frame inside it.  Boundaries fall between frames, so the first
    frame of a scene may sit up to one frame period before the nominal start."""
    return [any(a - 1 / fps <= f.t < b for f in sel.frames) for a, b, _ in scenes]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "custody-bench")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true", help="keep the generated clips for the next run")
    ap.add_argument("--skip-full-decode", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    total = args.minutes * 60
    print(f"clips: {args.minutes:g} min 1080p30 H.264, fixed GOP, work dir {args.workdir}")
    ok = True
    for gop in (30, 60):
        clip = args.workdir / f"bench_{int(total)}s_gop{gop}.mp4"
        t0 = time.perf_counter()
        scenes = make_clip(clip, total, gop)
        print(f"\n== GOP {gop}: {clip.name} ({clip.stat().st_size / 1e6:.0f} MB, {len(scenes)} scenes; "
              f"ready in {time.perf_counter() - t0:.1f} s)")
        os.system(f"cat {clip} > /dev/null")  # same page-cache state for every contender
        store_dir = args.workdir / f"store_gop{gop}"
        shutil.rmtree(store_dir, ignore_errors=True)
        w_stage, c_stage, (sel, n_obj) = timed(lambda: stage(clip, store_dir, total))
        kf_dir = args.workdir / f"every_key_gop{gop}"
        shutil.rmtree(kf_dir, ignore_errors=True)
        w_key, c_key, n_key = timed(lambda: every_keyframe(clip, kf_dir))
        shutil.rmtree(kf_dir, ignore_errors=True)
        cov = coverage(sel, scenes)
        print(f"  keyframe stage     : {w_stage:6.2f} s wall {c_stage:6.2f} s CPU  "
              f"({total / w_stage:5.0f}x real time; {len(sel.frames)} kept of {sel.stats['decoded']} decoded, "
              f"{n_obj} objects stored)")
        print(f"  every keyframe pass: {w_key:6.2f} s wall {c_key:6.2f} s CPU  ({n_key} keyframes)")
        if not args.skip_full_decode:
            w_full, c_full, _ = timed(lambda: full_decode(clip))
            print(f"  full decode        : {w_full:6.2f} s wall {c_full:6.2f} s CPU")
            print(f"  stage vs full decode: {w_full / w_stage:5.1f}x faster (wall), {c_full / c_stage:5.1f}x (CPU)")
        ratio = w_key / w_stage
        print(f"  stage vs every-keyframe: {ratio:5.1f}x faster (wall), {c_key / c_stage:5.1f}x (CPU)  "
              f"[target >= 3x: {'met' if ratio >= 3 else 'NOT met'}]")
        print(f"  scenes shown in the strip: {sum(cov)}/{len(cov)}"
              + ("" if all(cov) else f"  missing scene starts: {[round(scenes[i][0], 1) for i, c in enumerate(cov) if not c]}"))
        print(f"  stats: {sel.stats}")
        ok = ok and ratio >= 3 and all(cov)
        if not args.keep:
            clip.unlink()
        shutil.rmtree(store_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
