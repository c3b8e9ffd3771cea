"""Device recognition from config: the three shipped reference layouts, a user-added
profile, and volumes that match nothing."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.settings import SHIPPED_CONFIG_DIR
from ingest import volume as vol
from ingest.profiles import Identity, IdentityError, load_profiles, parse_properties, read_identity, recognise
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


# --------------------------------------------------------------------------- hostile / sloppy identity files
IDENTITY_PATHS = {"gat947": "SYSTEM/DEVICE.INI", "dcim_camera": "MISC/device.json",
                  "android_terminal": "Android/data/cn.gov.mps.mdt/files/terminal.properties"}


def _read(tmp_path: Path, profile: str, data: bytes) -> Identity:
    """Write `data` as the profile's identity file on a fresh volume and read it back."""
    v = tmp_path / "v"
    f = v / IDENTITY_PATHS[profile]
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)
    p = next(p for p in PROFILES if p.name == profile)
    return read_identity(p, v, vol.scan(v))


@pytest.mark.parametrize("data,serial,officer", [
    (b"[DEVICE]\r\nDeviceSN=A5 ; serial number\r\nPoliceNo=310001 # badge\r\nModel=M#5\r\n", "A5", "310001"),
    (b'[DEVICE]\r\nDeviceSN="A6"\r\nPoliceNo="310001" ; quoted\r\n', "A6", "310001"),
    (b"[DEVICE]\r\nDeviceSN=A12\r\nPoliceNo=310001\r\n\0\0\0\0", "A12", "310001"),
    (b"[DEVICE]\r\nDeviceSN=A8\r\n// DeviceSN=WRONG\r\n// build 2024 note\r\nPoliceNo=310001\r\n", "A8", "310001"),
    (b"[device]\r\ndevicesn=A7\r\npoliceno=310001\r\n", "A7", "310001"),
    (b"DeviceSN=A9\r\nPoliceNo=310001\r\n", "A9", "310001"),
    (b"[DEVICE]\rDeviceSN=A11\rPoliceNo=310001\r", "A11", "310001"),
    (b"[DEVICE]\r\nVendor=X\r\n   DeviceSN=A4b\r\n   PoliceNo=310001\r\n", "A4b", "310001"),
    (b"[DEVICE]\nDeviceSN=OLD\nPoliceNo=1\n[device]\nDeviceSN=A14\nPoliceNo=310001\n", "A14", "310001"),
    (b"\xff\xfe" + "[DEVICE]\r\nDeviceSN=A13\r\nPoliceNo=310001\r\n".encode("utf-16-le"), "A13", "310001"),
    (b"\xfe\xff" + "[DEVICE]\r\nDeviceSN=A15\r\nPoliceNo=310001\r\n".encode("utf-16-be"), "A15", "310001"),
], ids=["inline-comment", "quoted", "nul-padding", "junk-and-slash-comment", "lowercase", "no-section", "cr-only",
        "indented-after-key", "duplicate-last-wins", "utf16-le-bom", "utf16-be-bom"])
def test_sloppy_firmware_ini_is_read(tmp_path: Path, data: bytes, serial: str, officer: str) -> None:
    ident = _read(tmp_path, "gat947", data)
    assert (ident.serial, ident.officer) == (serial, officer)
    if b"M#5" in data:
        assert ident.model == "M#5"  # '#' glued to a value is data, not a comment


def test_ini_without_the_wanted_section_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="section"):
        _read(tmp_path, "gat947", b"[OTHER]\r\nDeviceSN=A1\r\n")
    # ...but stray text before the section no longer makes the whole file unreadable
    assert _read(tmp_path, "gat947", b"garbage line\r\n[DEVICE]\r\nDeviceSN=A16\r\n").serial == "A16"


def test_deeply_nested_json_is_an_identity_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="nested too deeply"):
        _read(tmp_path, "dcim_camera", b'{"serial": "DC1", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}")
    with pytest.raises(IdentityError, match="nested too deeply"):
        _read(tmp_path, "dcim_camera", b'{"a":' * 30000 + b"1" + b"}" * 30000)


def test_lone_surrogates_become_their_escape_text(tmp_path: Path) -> None:
    """Two different broken serials must stay two devices: no common replacement character."""
    ident = _read(tmp_path, "dcim_camera", b'{"serial": "DC\\ud800", "officer_id": "31\\udfff1", "\\udc00k": "v",'
                                          b' "model": "\\ud83d\\ude00"}')
    assert (ident.serial, ident.officer, ident.model) == ("DC\\ud800", "31\\udfff1", "\U0001F600")
    assert _read(tmp_path, "dcim_camera", b'{"serial": "DC\\udbff"}').serial != ident.serial
    json.dumps(ident.raw, ensure_ascii=False).encode("utf-8")  # stored as JSON text later: must not raise
    ident = _read(tmp_path, "android_terminal", b"terminal.serial=MDT\\uD800X\nuser.badge=\\uDC00\n")
    assert (ident.serial, ident.officer) == ("MDT\\ud800X", "\\udc00")
    for text in [ident.serial, ident.officer, *ident.raw, *ident.raw.values()]:
        text.encode("utf-8")


def test_a_serial_of_nothing_but_broken_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="serial"):
        _read(tmp_path, "dcim_camera", b'{"serial": "\\udc00\\ud800"}')


def test_identity_values_are_capped(tmp_path: Path) -> None:
    ident = _read(tmp_path, "gat947", b"[DEVICE]\nDeviceSN=" + b"S" * 5000 + b"\nPoliceNo=" + b"7" * 300 + b"\n")
    assert ident.serial == "S" * 200 and ident.officer == "7" * 200
    assert all(len(v) <= 200 for v in ident.raw.values())


@pytest.mark.parametrize("devtime,expected", [
    ("9999-12-31 23:59:59", None),
    ("0001-01-01 00:00:00", None),
    ("2101-01-01 00:00:00", None),
])
def test_implausible_device_clock_is_unknown(tmp_path: Path, devtime: str, expected: datetime | None) -> None:
    ident = _read(tmp_path, "gat947", f"[DEVICE]\nDeviceSN=A1\nDevTime={devtime}\n".encode())
    assert ident.clock_text == devtime and ident.clock == expected
    # a flat battery restarts the clock near 1970/2000: a wrong but real reading, kept
    flat = _read(tmp_path, "gat947", b"[DEVICE]\nDeviceSN=A1\nDevTime=1970-01-01 00:00:05\n")
    assert flat.clock is not None and flat.clock.year == 1970


def test_ten_digit_clock_is_epoch_seconds_not_a_compact_date(tmp_path: Path) -> None:
    ident = _read(tmp_path, "gat947", b"[DEVICE]\nDeviceSN=A1\nDevTime=1798560000\n")
    assert ident.clock == datetime.fromtimestamp(1798560000, timezone.utc)  # 2026-12-29, not 1798
    assert _read(tmp_path, "gat947", b"[DEVICE]\nDeviceSN=A1\nDevTime=9999999999\n").clock is None  # 2286


@pytest.mark.parametrize("stamp", ["99991231235959", "00010101000000", "21010101000000"])
def test_implausible_file_name_time_carries_no_start(stamp: str) -> None:
    p = next(p for p in PROFILES if p.name == "gat947")
    info = p.parse_name(f"DCIM/20260501/A100001_310001_{stamp}_0007.MP4")
    assert info.matched and info.start_text == stamp and info.start is None
    ok = p.parse_name("DCIM/20260501/A100001_310001_19990101000000_0007.MP4")
    assert ok.start is not None and ok.start.year == 1999
