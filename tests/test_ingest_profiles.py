"""Device recognition from config: the three shipped reference layouts, a user-added
profile, and volumes that match nothing."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from custody.settings import SHIPPED_CONFIG_DIR
from ingest import volume as vol
from ingest.profiles import load_profiles, parse_properties, read_identity, recognise
from ingest.simulate import CST, SimDevice, build_volume

PROFILES = load_profiles(SHIPPED_CONFIG_DIR / "devices")


@pytest.mark.parametrize("kind,profile,device_kind", [
    ("gat947", "gat947", "camera"), ("dcim", "dcim_camera", "camera"), ("android", "android_terminal", "terminal")])
def test_reference_layouts_are_recognised(tmp_path: Path, ffmpeg_ok: None, kind: str, profile: str,
                                          device_kind: str) -> None:
    v = build_volume(tmp_path / "v", SimDevice(kind=kind, serial="X123456", officer="654321", unit="330100000000",
                                               clips=1, photos=1, audio=1, seconds=1, clock_offset_s=420))
    entries = vol.scan(v)
    p = recognise(PROFILES, entries)
    assert p is not None and p.name == profile and p.kind == device_kind
    ident = read_identity(p, v, entries)
    assert (ident.serial, ident.officer, ident.unit) == ("X123456", "654321", "330100000000")
    assert ident.clock is not None
    media = [e.rel for e in entries if e.kind == "file" and p.is_media(e.rel)]
    assert len(media) == 3, media  # clip + photo + audio; identity, logs and app files are not media
    for rel in media:
        info = p.parse_name(rel)
        assert info.start is not None and info.start.utcoffset() == timedelta(hours=8)


def test_gat947_name_fields_and_crlf_ini(tmp_path: Path) -> None:
    v = tmp_path / "v"
    (v / "SYSTEM").mkdir(parents=True)
    (v / "SYSTEM" / "DEVICE.INI").write_bytes(
        b"[DEVICE]\r\nDeviceSN=A100001\r\nPoliceNo=310001\r\nUnitCode=310115000000\r\nVendor=V\r\n"
        b"Model=M\r\nFWVersion=1\r\nDevTime=2026-05-01 09:00:07\r\n")
    clip = v / "DCIM" / "20260501" / "A100001_310001_20260501083000_0007.MP4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"x")
    entries = vol.scan(v)
    p = recognise(PROFILES, entries)
    ident = read_identity(p, v, entries)
    assert ident.clock is not None and ident.clock.isoformat() == "2026-05-01T09:00:07+08:00"
    info = p.parse_name("DCIM/20260501/A100001_310001_20260501083000_0007.MP4")
    assert (info.serial, info.officer, info.seq) == ("A100001", "310001", "0007")
    assert info.start is not None and info.start.astimezone(CST).hour == 8
    assert p.parse_name("DCIM/20260501/A100001_310001_20260501083000_0008_IMP.MP4").important


def test_unrecognised_volume_matches_nothing(tmp_path: Path) -> None:
    v = tmp_path / "usbstick"
    (v / "photos").mkdir(parents=True)
    (v / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert recognise(PROFILES, vol.scan(v)) is None


def test_user_added_profile_without_code(tmp_path: Path) -> None:
    """A key=value identity and no name pattern at all: times come from elsewhere."""
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "acme.toml").write_text('''
name = "acme"
kind = "other"
[match]
all = ["ACME.TXT"]
[identity]
path = "ACME.TXT"
format = "keyvalue"
serial = "SN"
officer = "BADGE"
[media]
globs = ["REC/*.mp4"]
''')
    profiles = load_profiles(d)
    v = tmp_path / "v"
    (v / "REC").mkdir(parents=True)
    (v / "ACME.TXT").write_text("# acme recorder\nSN = Z9\nBADGE=000777\n")
    (v / "REC" / "clip.mp4").write_bytes(b"x")
    entries = vol.scan(v)
    p = recognise(profiles, entries)
    assert p is not None and p.name == "acme" and p.filename is None
    ident = read_identity(p, v, entries)
    assert (ident.serial, ident.officer, ident.clock) == ("Z9", "000777", None)
    assert p.is_media("REC/clip.mp4") and not p.parse_name("REC/clip.mp4").matched


def test_java_properties_parser() -> None:
    text = "# c\n! c2\nterminal.serial = MDT\\\n  0001\nuser.badge:310001\norg.code 3301\nname=\\u5f20\\u4e09\n"
    props = parse_properties(text)
    assert props == {"terminal.serial": "MDT0001", "user.badge": "310001", "org.code": "3301", "name": "张三"}


def test_identity_symlink_is_refused_unread(tmp_path: Path) -> None:
    v = tmp_path / "v"
    (v / "MISC").mkdir(parents=True)
    (v / "DCIM").mkdir()
    (v / "MISC" / "device.json").symlink_to("/etc/hostname")
    entries = vol.scan(v)
    p = recognise(PROFILES, entries)
    # the marker is a link, not a file: nothing recognises the volume through it
    assert p is None or p.name != "dcim_camera"
