"""Realistic device volumes made with ffmpeg test sources, for `custody simulate-dock` and tests.

Layouts follow the three shipped profiles (GA/T 947 recorder, generic DCIM camera,
Android terminal).  Times in names are the device's local clock (UTC+08:00).
"""
from __future__ import annotations

import json
import shutil
import zlib
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image

CST = timezone(timedelta(hours=8))


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _run(args: list[str]) -> None:
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(args)}\n{r.stderr[-2000:]}")


def make_video(path: Path, seconds: float = 2.0, *, size: str = "320x240", rate: int = 25, gop: int | None = None,
               creation_time: datetime | None = None, location: str | None = None, audio: bool = True,
               source: str = "testsrc2", extra: list[str] | None = None) -> Path:
    """H.264/AAC MP4 from ffmpeg test sources; `creation_time` is written as UTC, as cameras do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if gop:
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "32k"]
    if creation_time:
        args += ["-metadata", f"creation_time={creation_time.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.000000Z')}"]
    if location:
        args += ["-metadata", f"location={location}"]
    args += (extra or []) + ["-f", "mp4", str(path)]
    _run(args)
    return path


def make_audio(path: Path, seconds: float = 2.0, fmt: str = "wav", freq: int = 660) -> Path:
    """WAV (PCM), raw ADTS AAC, or M4A."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=16000:duration={seconds}"]
    if fmt == "wav":
        args += ["-c:a", "pcm_s16le", "-f", "wav"]
    elif fmt == "adts":
        args += ["-c:a", "aac", "-b:a", "32k", "-f", "adts"]
    else:
        args += ["-c:a", "aac", "-b:a", "32k", "-f", "ipod"]
    _run(args + [str(path)])
    return path


def make_photo(path: Path, taken: datetime | None = None, *, make: str = "CUSTODY", model: str = "SIM",
               serial: str | None = None, gps_utc: datetime | None = None, size: tuple[int, int] = (320, 240),
               color: tuple[int, int, int] = (40, 120, 200)) -> Path:
    """A JPEG with EXIF DateTimeOriginal (device local time) and optional GPS time (true UTC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    ifd = exif.get_ifd(0x8769)
    if taken:
        ifd[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
        if taken.tzinfo:
            off = taken.utcoffset() or timedelta(0)
            mins = int(off.total_seconds() // 60)
            ifd[0x9011] = f"{'+' if mins >= 0 else '-'}{abs(mins) // 60:02d}:{abs(mins) % 60:02d}"  # OffsetTimeOriginal
    if serial:
        ifd[0xA431] = serial  # BodySerialNumber
    if gps_utc:
        g = gps_utc.astimezone(timezone.utc)
        gps = exif.get_ifd(0x8825)
        gps[1] = "N"
        gps[2] = (30.0, 15.0, 0.0)
        gps[3] = "E"
        gps[4] = (120.0, 10.0, 0.0)
        gps[7] = (float(g.hour), float(g.minute), float(g.second))
        gps[29] = g.strftime("%Y:%m:%d")
    img.save(path, "JPEG", exif=exif, quality=85)
    return path


@dataclass
class SimDevice:
    kind: str = "gat947"  # gat947|dcim|android
    serial: str = "A100001"
    officer: str = "310001"
    unit: str = "310115000000"
    start: datetime = field(default_factory=lambda: datetime.now(CST).replace(microsecond=0) - timedelta(hours=2))
    clips: int = 2
    seconds: float = 2.0
    photos: int = 1
    audio: int = 1
    clock_offset_s: float = 0.0  # device clock minus true time
    write_clock: bool = True


def _tone(serial: str, i: int) -> int:
    """A tone per device and clip, so two simulated devices never record identical bytes."""
    return 300 + (zlib.crc32(f"{serial}/{i}".encode()) % 900)


def build_volume(root: Path, dev: SimDevice) -> Path:
    """Write a device volume at `root` (created) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    skew = timedelta(seconds=dev.clock_offset_s)
    device_now = (datetime.now(CST) + skew).replace(microsecond=0)
    t = dev.start + skew  # what the device's clock read when it started recording
    if dev.kind == "gat947":
        _gat947(root, dev, t, device_now)
    elif dev.kind == "dcim":
        _dcim(root, dev, t, device_now)
    elif dev.kind == "android":
        _android(root, dev, t, device_now)
    else:
        raise ValueError(f"unknown simulated device kind {dev.kind!r}")
    return root


def _gat947(root: Path, d: SimDevice, t: datetime, now: datetime) -> None:
    (root / "SYSTEM").mkdir(exist_ok=True)
    ini = ["[DEVICE]", f"DeviceSN={d.serial}", f"PoliceNo={d.officer}", f"UnitCode={d.unit}", "Vendor=SimVendor",
           "Model=DSJ-SIM1", "FWVersion=1.0.3"]
    if d.write_clock:
        ini.append(f"DevTime={now.strftime('%Y-%m-%d %H:%M:%S')}")
    (root / "SYSTEM" / "DEVICE.INI").write_bytes(("\r\n".join(ini) + "\r\n").encode())
    (root / "LOG").mkdir(exist_ok=True)
    (root / "LOG" / "device.log").write_text(f"{now:%Y-%m-%d %H:%M:%S} docked\n")
    seq = 1
    for i in range(d.clips):
        ct = t + timedelta(seconds=i * (d.seconds + 60))
        day = root / "DCIM" / ct.strftime("%Y%m%d")
        make_video(day / f"{d.serial}_{d.officer}_{ct:%Y%m%d%H%M%S}_{seq:04d}.MP4", d.seconds, creation_time=ct,
                   extra=["-metadata", f"comment={d.serial}"])
        seq += 1
    for i in range(d.photos):
        ct = t + timedelta(seconds=30 + i * 10)
        make_photo(root / "DCIM" / ct.strftime("%Y%m%d") / f"{d.serial}_{d.officer}_{ct:%Y%m%d%H%M%S}_{seq:04d}.JPG",
                   ct.replace(tzinfo=None), serial=d.serial)
        seq += 1
    for i in range(d.audio):
        ct = t + timedelta(seconds=45 + i * 10)
        make_audio(root / "DCIM" / ct.strftime("%Y%m%d") / f"{d.serial}_{d.officer}_{ct:%Y%m%d%H%M%S}_{seq:04d}.WAV", 1.0, freq=_tone(d.serial, i))
        seq += 1


def _dcim(root: Path, d: SimDevice, t: datetime, now: datetime) -> None:
    ident = {"serial": d.serial, "officer_id": d.officer, "agency": d.unit, "manufacturer": "SimCam",
             "model": "BC-2", "firmware": "2.1"}
    if d.write_clock:
        ident["device_time"] = now.isoformat()
    (root / "MISC").mkdir(exist_ok=True)
    (root / "MISC" / "device.json").write_text(json.dumps(ident, ensure_ascii=False))
    media = root / "DCIM" / "100MEDIA"
    seq = 1
    for i in range(d.clips):
        ct = t + timedelta(seconds=i * (d.seconds + 60))
        make_video(media / f"{ct:%Y%m%d_%H%M%S}_{seq:04d}.MP4", d.seconds, creation_time=ct,
                   extra=["-metadata", f"comment={d.serial}"])
        seq += 1
    for i in range(d.photos):
        ct = t + timedelta(seconds=30 + i * 10)
        make_photo(media / f"{ct:%Y%m%d_%H%M%S}_{seq:04d}.JPG", ct.replace(tzinfo=None), serial=d.serial)
        seq += 1
    for i in range(d.audio):
        ct = t + timedelta(seconds=45 + i * 10)
        make_audio(media / f"{ct:%Y%m%d_%H%M%S}_{seq:04d}.AAC", 1.0, fmt="adts", freq=_tone(d.serial, i))
        seq += 1


def _android(root: Path, d: SimDevice, t: datetime, now: datetime) -> None:
    props = root / "Android" / "data" / "cn.gov.mps.mdt" / "files"
    props.mkdir(parents=True, exist_ok=True)
    lines = ["# terminal identity", f"terminal.serial={d.serial}", f"user.badge={d.officer}", f"org.code={d.unit}",
             "ro.product.manufacturer=SimPhone", "ro.product.model=MDT-8", "ro.build.display.id=MDT8.2026.1"]
    if d.write_clock:
        lines.append(f"device.time={now.strftime('%Y-%m-%d %H:%M:%S')}")
    (props / "terminal.properties").write_text("\n".join(lines) + "\n")
    (props / "cache.db").write_bytes(b"SQLite format 3\x00" + bytes(100))  # app file, not media
    cam = root / "DCIM" / "Camera"
    for i in range(d.clips):
        ct = t + timedelta(seconds=i * (d.seconds + 60))
        make_video(cam / f"VID_{ct:%Y%m%d_%H%M%S}.mp4", d.seconds, creation_time=ct,
                   location="+30.2500+120.1667+010.000/", extra=["-metadata", f"comment={d.serial}"])
    for i in range(d.photos):
        ct = t + timedelta(seconds=30 + i * 10)
        make_photo(cam / f"IMG_{ct:%Y%m%d_%H%M%S}.jpg", ct.replace(tzinfo=None), make="SimPhone", model="MDT-8",
                   gps_utc=ct - timedelta(seconds=d.clock_offset_s))
    for i in range(d.audio):
        ct = t + timedelta(seconds=45 + i * 10)
        make_audio(root / "Recordings" / f"REC_{ct:%Y%m%d_%H%M%S}.m4a", 1.0, fmt="m4a", freq=_tone(d.serial, i))
