"""Usage report: hours recorded, docks and last dock per device and per officer."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from click.testing import CliRunner

from catalog.accounts import add_account
from custody.cli import cli
from catalog.models import Media
from reports_bureau import coverage_year, local


@pytest.fixture
def year(make_app: Any, catalog_url: str) -> Any:
    app = make_app(catalog_url=catalog_url)
    with app.catalog.session() as s:
        coverage_year(s)
        # A badge no officer record matches: its hours must still show.
        sha = hashlib.sha256(b"unregistered").hexdigest()
        start = local(2021, 9, 9, 9)
        s.add(Media(sha256=sha, size=10, kind="video", storage_key=f"media/{sha}", officer_badge="X0001",
                    original_path="X.MP4", original_name="X.MP4", recorded_start=start, duration_seconds=1800))
        add_account(s, "admin", "administrator")
    return app


def usage(app: Any, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "admin", "report",
                                      "usage", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_hours_docks_and_last_dock_per_device_and_officer(year: Any) -> None:
    doc = usage(year, "--from", "2021-01-01", "--to", "2021-12-31")
    dev = {r["device"]: r for r in doc["devices"]}
    # CAM0001: 9 covered inspections x 63 min + 30 + 60 + five 5-minute routine clips = 682 min.
    assert (dev["CAM0001"]["recordings"], dev["CAM0001"]["hours"]) == (25, round(682 / 60, 2))
    assert dev["CAM0001"]["docks"] == 52 and dev["CAM0001"]["last_dock"] == "2021-12-27T18:00:00+08:00"
    assert (dev["CAM0002"]["recordings"], dev["CAM0002"]["hours"], dev["CAM0002"]["docks"]) == (17, 9.82, 11)
    assert dev["CAM0002"]["last_dock"] == "2021-11-01T18:00:00+08:00"
    # Idle devices are listed with zeros; the 2020 dock of CAM0004 is outside the period.
    assert (dev["CAM0003"]["recordings"], dev["CAM0003"]["docks"], dev["CAM0003"]["last_dock"]) == (0, 0, None)
    assert dev["CAM0004"]["docks"] == 1 and dev["TRM0001"]["hours"] == 0
    off = {r["badge"]: r for r in doc["officers"]}
    assert (off["B0101"]["recordings"], off["B0101"]["hours"], off["B0101"]["docks"]) == (25, 11.37, 52)
    assert (off["B0102"]["recordings"], off["B0102"]["docks"]) == (17, 11)
    assert off["X0001"]["registered"] is False and off["X0001"]["hours"] == 0.5
    st = doc["statement"]
    assert st["period"]["from"] == "2021-01-01" and st["standard"] is None
    assert st["counted"]["recordings_without_duration"] == 0


def test_period_and_kinds_narrow_the_rows(year: Any) -> None:
    doc = usage(year, "--from", "2021-03-01", "--to", "2021-03-31", "--kinds", "terminal")
    assert [r["device"] for r in doc["devices"]] == ["TRM0001"]
    march = {r["device"]: r for r in usage(year, "--from", "2021-03-01", "--to", "2021-03-31")["devices"]}
    assert (march["CAM0001"]["recordings"], march["CAM0001"]["hours"]) == (2, 1.05)
    assert march["CAM0001"]["docks"] == 5  # Mondays 1, 8, 15, 22, 29 March


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_table_in_both_languages(year: Any) -> None:
    base = ["--config", str(year.settings.config_path), "--user", "admin", "report", "usage", "--to", "2021-12-31"]
    zh = CliRunner().invoke(cli, base)
    assert zh.exit_code == 0, zh.output
    assert "执法记录设备使用情况报告" in zh.stdout and "CAM0001" in zh.stdout and "11.4" in zh.stdout
    assert "2021-12-27 18:00:00" in zh.stdout  # local time in cells; the statement names the zone
    en = CliRunner().invoke(cli, base + ["--lang", "en"])
    assert "Hours recorded" in en.stdout and "Standard applied" in en.stdout
