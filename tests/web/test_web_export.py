"""Case export: a BagIt bag that standard tools verify offline; the export is a custody event."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from custody.cli import cli
from catalog.models import Media
from web.app import create_app
from web_support import events, login, sample_video, seed  # noqa: F401


def sha256sum_check(bag: Path, manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "--strict", "-c", manifest], cwd=bag, capture_output=True, text=True)


def run_cli(app, *args: str):  # noqa: ANN001, ANN201
    return CliRunner().invoke(cli, ["--config", str(app.settings.config_path), *args], catch_exceptions=False)


@pytest.fixture
def site(make_app, catalog_url: str, sample_video):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url)
    return app, seed(app, sample_video)


def test_cli_export_is_a_verifiable_bag(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    out = tmp_path / "court" / "bag"
    r = run_cli(app, "--user", "rev", "export", sd.case_u1, "--out", str(out))
    assert r.exit_code == 0, r.output
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    tags = {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt", "data/case.json"}
    assert tags <= set(names)
    payload = [n for n in names if n.startswith("data/recordings/") and n.endswith(".mp4")]
    assert len(payload) == 1 and payload[0].isascii()  # safe name, not the device's
    assert (out / payload[0]).read_bytes() == sd.video_bytes
    for manifest in ("tagmanifest-sha256.txt", "manifest-sha256.txt"):
        res = sha256sum_check(out, manifest)
        assert res.returncode == 0, res.stdout + res.stderr
    info = dict(line.split(": ", 1) for line in (out / "bag-info.txt").read_text("utf-8").splitlines())
    assert info["External-Identifier"] == sd.case_u1 and info["Custody-Exported-By"] == "rev"
    files = [p for p in (out / "data").rglob("*") if p.is_file()]
    assert info["Payload-Oxum"] == f"{sum(p.stat().st_size for p in files)}.{len(files)}"
    meta = json.loads((out / payload[0]).with_suffix(".json").read_text("utf-8"))
    assert meta["sha256"] == hashlib.sha256(sd.video_bytes).hexdigest() and meta["media_id"] == sd.media_u1
    assert meta["time"]["device_start_text"] == "2026-03-12 09:30:05" and meta["time"]["time_source"] == "filename"
    assert meta["link"]["reason"].startswith("officer P00001")
    case = json.loads((out / "data" / "case.json").read_text("utf-8"))
    assert case["case_no"] == sd.case_u1 and [o["badge"] for o in case["officers"]] == ["P00001", "P00002"]
    # The trail in the bag is the chain itself: each event's hash follows from the one before.
    exported = events(app, action="exported")
    assert {e.media_id for e in exported} == {sd.media_u1, None}
    case_event = [e for e in exported if e.media_id is None][0]
    assert info["Custody-Export-Event"] == f"seq {case_event.seq} sha256 {case_event.hash}"
    assert case_event.actor == "rev" and case_event.detail["via"] == "cli"
    assert case_event.detail["manifest_sha256"] == info["Custody-Manifest-SHA256"]


def test_tampering_with_an_exported_original_is_detected(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    out = tmp_path / "bag"
    assert run_cli(app, "--user", "admin", "export", sd.case_u1, "--out", str(out)).exit_code == 0
    original = next((out / "data" / "recordings").glob("*.mp4"))
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    original.write_bytes(bytes(data))
    res = sha256sum_check(out, "manifest-sha256.txt")
    assert res.returncode != 0 and "FAILED" in res.stdout


def test_export_refuses_bytes_that_do_not_match_the_catalog(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    with app.catalog.session() as s:  # the catalog says another hash than the stored bytes have
        m = s.get(Media, sd.media_u1)
        m.sha256 = "0" * 64
    out = tmp_path / "bag"
    r = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "rev", "export", sd.case_u1,
                                 "--out", str(out)])
    assert r.exit_code != 0 and "export stopped" in r.output
    assert not out.exists() and not list(tmp_path.glob(".bag.partial-*"))
    failed = events(app, action="exported")[-1]
    assert failed.outcome == "failed" and failed.actor == "rev"


def test_export_refused_for_auditor_and_outside_units(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    r = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "aud", "export", sd.case_u1,
                                 "--out", str(tmp_path / "a")])
    assert r.exit_code == 4 and "may not export" in r.output
    r = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "rev2", "export", sd.case_u1,
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == 4
    refused = [e for e in events(app) if e.outcome == "refused"]
    assert {e.actor for e in refused} >= {"aud", "rev2"}
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "keep.txt").write_text("x")
    r = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "rev", "export", sd.case_u1,
                                 "--out", str(tmp_path / "c")])
    assert r.exit_code == 1 and "not an empty directory" in r.output


def test_web_export_downloads_a_zipped_bag(site, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd = site
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev")
        r = client.post(f"/cases/{quote(sd.case_u1)}/export", data={"csrf": csrf})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        z.extractall(tmp_path / "unzipped")
    (bag,) = list((tmp_path / "unzipped").iterdir())
    assert bag.name.startswith("custody-case-") and bag.name.isascii()
    for manifest in ("tagmanifest-sha256.txt", "manifest-sha256.txt"):
        assert sha256sum_check(bag, manifest).returncode == 0
    e = [e for e in events(app, action="exported") if e.media_id is None][-1]
    assert (e.actor, e.outcome, e.remote_addr, e.detail["via"]) == ("rev", "ok", "testclient", "web")
