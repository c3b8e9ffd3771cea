"""Offload and upload benchmark: one run, same files, figures and ratios.

  ./dev bench offload [--size-mb 5120] [--files 4] [--file-mb 128]

Prints:
  * device -> spool offload (durable: fsync + rename, SHA-256 in the same read) vs `cp` + `sync`
    (equally durable) vs Python's hashlib alone; peak RSS of the offload process;
  * time until a docked device is safe to remove;
  * upload to SeaweedFS (S3Store.put_file, SHA-256 checksums) vs raw boto3 multipart with SHA-256;
  * the whole dock-to-S3 path (offload + store + verify + catalog, no indexing) vs
    `rclone copy --checksum` of the same volume to the same store.
Targets: offload >= 0.9x cp+sync; upload >= 0.9x boto3; dock-to-S3 >= 1.5x rclone; RSS < 200 MB.
The "device" is a directory on this machine's disk (no real camera here): both sides of each
comparison read the same files from the same place in the same run.
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(8 * MB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            block = block[1:] + block[:1]  # not a repeating pattern a store could dedupe
        f.flush()
        os.fsync(f.fileno())


def timed(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def offload_child(src: str, spool: str) -> None:
    """Runs in a child process so its peak RSS is its own."""
    from ingest import volume as vol
    from ingest.offload import copy_and_hash
    from ingest.spool import Spool

    p = Path(src)
    st = os.lstat(p)
    e = vol.Entry(p.name, os.fsencode(p), "file", st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    t = time.perf_counter()
    r = copy_and_hash(e, p.parent, Spool(Path(spool)))
    dt = time.perf_counter() - t
    print(json.dumps({"seconds": dt, "sha256": r.sha256, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def bench_offload(work: Path, size: int) -> dict:
    src = work / "device" / "DCIM" / "big.MP4"
    write_random(src, size)
    spool = work / "spool"
    # warm-up: first touch of fresh memory and the page cache is slow here
    subprocess.run(["cp", str(src), str(work / "warm.bin")], check=True)
    (work / "warm.bin").unlink()
    from storage.fixity import sha256_file

    t_hash = min(timed(lambda: sha256_file(src)) for _ in range(2))
    dst = work / "cp.bin"
    # Alternate the two, best of three each: deleting a gigabyte on this disk (online discard)
    # and write-back of the previous run otherwise penalise whichever runs second.
    cp_times, ours, rss = [], [], 0.0
    for _ in range(3):
        out = subprocess.run([sys.executable, __file__, "--child", str(src), str(spool)], check=True,
                             capture_output=True, text=True, cwd=str(ROOT)).stdout
        child = json.loads(out.strip().splitlines()[-1])
        ours.append(child["seconds"])
        rss = max(rss, child["maxrss_kb"] / 1024)
        shutil.rmtree(spool)
        subprocess.run(["sync"], check=True)
        cp_times.append(timed(lambda: subprocess.run(["sh", "-c", f'cp "{src}" "{dst}" && sync "{dst}"'], check=True)))
        dst.unlink()
        subprocess.run(["sync"], check=True)
    return {"size_mb": size / MB, "hashlib_s": t_hash, "cp_sync_s": min(cp_times), "offload_s": min(ours),
            "offload_peak_rss_mb": rss}


def bench_upload(work: Path, endpoint: str, size: int) -> dict:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    from core.settings import StorageSettings
    from storage.fixity import sha256_file
    from storage.s3 import S3Store

    src = work / "device" / "DCIM" / "big.MP4"
    sha = sha256_file(src)
    cfg = StorageSettings(url="s3://bench", endpoint_url=endpoint)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    store = S3Store(f"s3://{bucket}", cfg)
    store.ensure_bucket()
    raw = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                       config=Config(request_checksum_calculation="when_required", max_pool_connections=20))
    tc = TransferConfig(multipart_threshold=cfg.multipart_threshold_bytes, multipart_chunksize=cfg.multipart_chunk_bytes,
                        max_concurrency=cfg.upload_concurrency)
    raw.upload_file(str(src), bucket, "warmup", Config=tc, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    t_raw = timed(lambda: raw.upload_file(str(src), bucket, "raw", Config=tc, ExtraArgs={"ChecksumAlgorithm": "SHA256"}))
    t_ours = timed(lambda: store.put_file(f"media/{sha}", src, sha, src.stat().st_size))
    return {"boto3_multipart_s": t_raw, "custody_put_s": t_ours, "bucket": bucket}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (SeaweedFS runs as one `weed mini` process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def bench_dock_to_s3(work: Path, endpoint: str, files: int, file_size: int, server_pid: int,
                     clips: list[Path] | None = None) -> dict:
    from catalog.app import App
    from ingest.profiles import station_profiles
    from core.settings import load_settings
    from ingest.pipeline import ingest_volume

    vol = work / "dock" / "cam"
    (vol / "SYSTEM").mkdir(parents=True, exist_ok=True)
    (vol / "SYSTEM" / "DEVICE.INI").write_bytes(b"[DEVICE]\r\nDeviceSN=B000001\r\nPoliceNo=310001\r\nUnitCode=310115000000\r\n")
    for i in range(files):
        dest = vol / "DCIM" / "20260101" / f"B000001_310001_202601010800{i:02d}_{i:04d}.MP4"
        if clips:  # real camera-like MP4s (what a dock holds); random bytes are flagged as fake media
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clips[i % len(clips)], dest)
        else:
            write_random(dest, file_size)
    total = sum(p.stat().st_size for p in vol.rglob("*.MP4"))
    bucket_r = f"rclone-{uuid.uuid4().hex[:8]}"
    bucket_c = f"custody-{uuid.uuid4().hex[:8]}"
    # rclone's AWS SDK refuses a custom CA bundle on a plain-HTTP endpoint
    base = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE",)}
    env = {**base, "RCLONE_CONFIG_SW_TYPE": "s3", "RCLONE_CONFIG_SW_PROVIDER": "Other",
           "RCLONE_CONFIG_SW_ENDPOINT": endpoint, "RCLONE_CONFIG_SW_ACCESS_KEY_ID": "custody",
           "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": "custody-secret", "RCLONE_CONFIG_SW_REGION": "us-east-1"}
    t_rclone = None
    cpu: dict[str, float] = {}
    if shutil.which("rclone"):
        subprocess.run(["rclone", "mkdir", f"sw:{bucket_r}"], env=env, check=True, capture_output=True)
        s0, c0 = cpu_seconds(server_pid), children_cpu()
        t_rclone = timed(lambda: subprocess.run(["rclone", "copy", "--checksum", str(vol), f"sw:{bucket_r}"], env=env,
                                                check=True, capture_output=True))
        cpu.update(rclone_server=cpu_seconds(server_pid) - s0, rclone_client=children_cpu() - c0)
    cfg = work / "bench.toml"
    cfg.write_text(f'[station]\nspool_dir = "{work / "spool2"}"\nmin_free_spool_bytes = 0\nfile_stable_seconds = 0\n'
                   f'[catalog]\nurl = "sqlite:///{work / "bench.db"}"\n[storage]\nurl = "s3://{bucket_c}"\n'
                   f'endpoint_url = "{endpoint}"\n[indexer]\nworkers = 0\n')
    app = App(load_settings(cfg))
    _ = app.catalog, app.store, station_profiles(app.settings)
    s0, c0, k0 = cpu_seconds(server_pid), own_cpu(), children_cpu()
    t0 = time.perf_counter()
    res = ingest_volume(app, vol)
    t_ours = time.perf_counter() - t0
    cpu.update(custody_server=cpu_seconds(server_pid) - s0,
               custody_client=own_cpu() - c0 + children_cpu() - k0)  # children: the ffprobe checks
    assert res.state == "complete", res.to_json()
    return {"bytes": total, "rclone_s": t_rclone, "custody_s": t_ours, "safe_to_remove_s": res.safe_to_remove_after_s,
            "cpu": cpu}


def dock_s3_only(work: Path, sw: object, files: int, file_mb: int, repeat: int,
                 clips: list[Path] | None = None) -> None:
    """Issue 14: client CPU seconds of `custody ingest` to S3 against `rclone copy --checksum`
    of the same files to the same store (median of `repeat` runs; the cores are shared)."""
    import statistics

    runs = [bench_dock_to_s3(work / f"run{i}", sw.endpoint, files, file_mb * MB, sw.proc.pid,  # type: ignore[attr-defined]
                             clips) for i in range(repeat)]
    tot = runs[0]["bytes"] / MB
    for i, d in enumerate(runs):
        c = d["cpu"]
        print(f"run {i + 1}: rclone {d['rclone_s']:.2f} s, client {c.get('rclone_client', float('nan')):.2f} CPU-s; "
              f"custody {d['custody_s']:.2f} s, client {c['custody_client']:.2f} CPU-s "
              f"(SeaweedFS {c.get('rclone_server', float('nan')):.2f} / {c['custody_server']:.2f})")
    med = lambda k: statistics.median(d["cpu"][k] for d in runs)  # noqa: E731
    wall = lambda k: statistics.median(d[k] for d in runs)  # noqa: E731
    ratio = med("custody_client") / med("rclone_client")
    what = f"{files} real MP4s" if clips else f"{files} x {file_mb} MB random bytes"
    print(f"dock -> S3, {what} ({tot:.0f} MB), median of {repeat}: client CPU custody {med('custody_client'):.2f} s "
          f"vs rclone {med('rclone_client'):.2f} s = {ratio:.2f}x (target <= 0.8x); wall custody "
          f"{wall('custody_s'):.2f} s vs rclone {wall('rclone_s'):.2f} s ({tot / wall('custody_s'):.0f} vs "
          f"{tot / wall('rclone_s'):.0f} MB/s)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        offload_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=5120, help="size of the single big file (default: the 5 GB case)")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--file-mb", type=int, default=128)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only-dock-s3", action="store_true",
                    help="only the dock -> S3 comparison with rclone (client CPU seconds), --repeat times")
    ap.add_argument("--repeat", type=int, default=1, help="with --only-dock-s3: runs (medians are printed)")
    ap.add_argument("--mp4-from", type=Path, default=None,
                    help="dock -> S3 with copies of the distinct MP4s in this folder (e.g. bench/dock.py's clip "
                         "cache) instead of random bytes; --files copies")
    a = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "custody")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "custody-secret")
    work = Path(a.workdir or tempfile.mkdtemp(prefix="custody-bench-", dir=str(ROOT / "var") if (ROOT / "var").exists() else None))
    work.mkdir(parents=True, exist_ok=True)
    from tests.conftest import start_seaweed, stop_seaweed

    sw = start_seaweed(work / "seaweed")
    if a.only_dock_s3:
        try:
            clips = sorted(a.mp4_from.glob("*.mp4")) if a.mp4_from else None
            dock_s3_only(work, sw, a.files, a.file_mb, a.repeat, clips)
        finally:
            stop_seaweed(sw)
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        off = bench_offload(work, a.size_mb * MB)
        mbps = lambda s: off["size_mb"] / s  # noqa: E731
        print(f"offload of one {off['size_mb']:.0f} MB file (device -> spool, durable, SHA-256 in the same read)")
        print(f"  hashlib alone       {off['hashlib_s']:7.2f} s  {mbps(off['hashlib_s']):7.1f} MB/s")
        print(f"  cp + sync           {off['cp_sync_s']:7.2f} s  {mbps(off['cp_sync_s']):7.1f} MB/s")
        print(f"  custody offload     {off['offload_s']:7.2f} s  {mbps(off['offload_s']):7.1f} MB/s"
              f"  = {off['cp_sync_s'] / off['offload_s']:.2f}x cp+sync (target >= 0.9x)")
        print(f"  peak RSS of the offload process: {off['offload_peak_rss_mb']:.0f} MB (target < 200 MB, flat in file size)")
        up = bench_upload(work, sw.endpoint, a.size_mb * MB)
        print(f"upload of the same file to SeaweedFS with SHA-256 checksums")
        print(f"  raw boto3 multipart {up['boto3_multipart_s']:7.2f} s  {mbps(up['boto3_multipart_s']):7.1f} MB/s")
        print(f"  custody put_file    {up['custody_put_s']:7.2f} s  {mbps(up['custody_put_s']):7.1f} MB/s"
              f"  = {up['boto3_multipart_s'] / up['custody_put_s']:.2f}x boto3 (target >= 0.9x)")
        d = bench_dock_to_s3(work, sw.endpoint, a.files, a.file_mb * MB, sw.proc.pid)
        tot = d["bytes"] / MB
        print(f"dock to S3: {a.files} x {a.file_mb} MB volume (offload + store + verify + catalog, no indexing)")
        if d["rclone_s"]:
            print(f"  rclone copy --checksum {d['rclone_s']:7.2f} s  {tot / d['rclone_s']:7.1f} MB/s")
        print(f"  custody ingest         {d['custody_s']:7.2f} s  {tot / d['custody_s']:7.1f} MB/s"
              + (f"  = {d['rclone_s'] / d['custody_s']:.2f}x rclone (target >= 1.5x)" if d["rclone_s"] else ""))
        print(f"  device safe to remove after {d['safe_to_remove_s']:.2f} s (all files durable in the spool)")
        c = d["cpu"]
        cores = os.cpu_count() or 1
        if "rclone_server" in c:
            print(f"  CPU seconds (this machine has {cores} cores, shared by client and SeaweedFS):")
            print(f"    rclone   client {c['rclone_client']:5.2f}  SeaweedFS {c['rclone_server']:5.2f}")
        print(f"    custody  client {c['custody_client']:5.2f}  SeaweedFS {c['custody_server']:5.2f}"
              "  (client: copy + SHA-256 + ffprobe checks + upload + catalog)")
        ceiling = tot / (c["custody_server"] / cores)
        print(f"  ceiling with a client that used no CPU at all: {ceiling:.0f} MB/s"
              + (f" = {ceiling / (tot / d['rclone_s']):.2f}x rclone" if d["rclone_s"] else ""))
    finally:
        stop_seaweed(sw)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
