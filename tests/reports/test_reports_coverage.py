"""Coverage report on a small generated year whose every figure is known (reports_bureau.EXPECTED)."""
from __future__ import annotations

import base64
import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from click.testing import CliRunner

from catalog.accounts import add_account
from custody.cli import cli
from reports.coverage import CoverageOptions, coverage_report
from reports.model import Report
from reports.render import to_json
from reports.windows import window_coverage
from reports_bureau import BRIGADE, EXPECTED, NOW, OFFICE, coverage_year


@pytest.fixture
def year(make_app: Any, catalog_url: str) -> Any:
    app = make_app(catalog_url=catalog_url)
    with app.catalog.session() as s:
        coverage_year(s)
        add_account(s, "admin", "administrator")
    return app


def report(app: Any, **kw: Any) -> Report:
    opts = CoverageOptions(first=date(2021, 1, 1), last=date(2021, 12, 31), now=NOW, **kw)
    with app.catalog.session() as s:
        return coverage_report(s, app.settings, opts)


def value(rep: Report, key: str) -> Any:
    return rep.figure(key).value


def test_figures_of_a_generated_year(year: Any) -> None:
    rep = report(year)
    n = EXPECTED["inspections"]
    assert value(rep, "inspections") == n
    assert {r["case_no"] for r in rep.table("inspections").rows} == {f"INS-2021-{m:02d}" for m in range(1, 13)}
    for status in ("covered", "partial", "outside_window", "no_footage"):
        fig = rep.figure(f"inspections_{status}")
        assert (fig.value, fig.of) == (EXPECTED[status], n), status
    by_case = {r["case_no"]: r for r in rep.table("inspections").rows}
    assert by_case["INS-2021-08"]["status"] == "partial" and by_case["INS-2021-08"]["covered_share"] == 0.5
    assert by_case["INS-2021-09"]["status"] == "outside_window"
    assert by_case["INS-2021-10"]["status"] == "no_footage"
    # December 31st 22:00 local is still 2021 in UTC+08:00; the removed link does not count.
    assert by_case["INS-2021-12"]["start"] == "2021-12-31T22:00:00+08:00"
    assert by_case["INS-2021-12"]["linked_recordings"] == 2 and by_case["INS-2021-12"]["recording_officers"] == 1
    # November: B's footage is unplayable, so only A recorded it.
    assert by_case["INS-2021-11"]["status"] == "covered" and by_case["INS-2021-11"]["badges"] == "B0101"

    fewer = {r["case_no"] for r in rep.table("fewer_than_two_officers").rows}
    assert fewer == EXPECTED["fewer_than_two"] and value(rep, "inspections_fewer_than_two_officers") == 4


def test_uploads_devices_and_recordings(year: Any) -> None:
    rep = report(year)
    assert value(rep, "recordings") == EXPECTED["recordings"]
    late = rep.table("late_uploads").rows
    assert len(late) == EXPECTED["late"] and {r["badge"] for r in late} == {"B0102"}
    assert all(r["delay_hours"] == 30.0 for r in late)
    first = min(late, key=lambda r: r["media_id"])  # instants as local text, made by the database
    assert (first["recorded_start"], first["recorded_end"], first["docked_at"]) == (
        "2021-03-15T09:58:00+08:00", "2021-03-15T10:30:00+08:00", "2021-03-16T16:30:00+08:00")
    assert first["device_start_text"] == "2021-03-15 09:58:00"
    within = rep.figure("uploads_within_deadline")
    assert (within.value, within.of) == (EXPECTED["recordings"] - EXPECTED["untimed"] - EXPECTED["late"],
                                         EXPECTED["recordings"] - EXPECTED["untimed"])
    assert value(rep, "uploads_untimed") == EXPECTED["untimed"]

    undocked = {r["device"]: r for r in rep.table("undocked_devices").rows}
    assert set(undocked) == EXPECTED["undocked"]
    assert undocked["CAM0003"]["never_docked"] is True and undocked["CAM0003"]["last_docked_at"] is None
    assert undocked["CAM0002"]["last_docked_at"] == "2021-11-01T18:00:00+08:00"
    assert rep.figure("devices_undocked").of == EXPECTED["devices_checked"]

    clock = {r["device"]: r for r in rep.table("clock_errors").rows}
    assert set(clock) == EXPECTED["clock"]
    assert clock["CAM0001"]["worst_offset_seconds"] == 45.0 and clock["CAM0001"]["docks_over"] == 1
    assert clock["CAM0001"]["device_clock_text"] == "2021-06-07 18:00:45"  # the device's own reading, kept
    assert clock["TRM0001"]["source"] == "devices.last_clock_offset_seconds"

    assert len(rep.table("unlinked").rows) == EXPECTED["unlinked"]
    assert all(r["days_unlinked"] > 3 for r in rep.table("unlinked").rows)
    never_docked = next(r for r in rep.table("unlinked").rows if r["docked_at"] is None)
    assert never_docked["recorded_start"] == "2021-06-01T09:00:00+08:00"
    unplayable = rep.table("unplayable").rows
    assert len(unplayable) == EXPECTED["unplayable"] and unplayable[0]["reason"] == "moov atom not found"


def test_thresholds_from_flags_change_the_lists(year: Any) -> None:
    rep = report(year, unlinked_days=0, deadline_hours=36, clock_threshold_seconds=500, undocked_days=90)
    assert len(rep.table("unlinked").rows) == EXPECTED["unlinked_any_age"]
    assert rep.table("late_uploads").rows == []
    assert rep.table("clock_errors").rows == []
    assert {r["device"] for r in rep.table("undocked_devices").rows} == {"CAM0003"}
    assert rep.statement["standard"]["upload_deadline_hours"] == 36
    # Terminals checked for docking too when asked: TRM0001 never docked.
    rep = report(year, kinds=("camera", "terminal"))
    assert {r["device"] for r in rep.table("undocked_devices").rows} == EXPECTED["undocked"] | {"TRM0001"}


def test_unit_scope_and_a_short_period(year: Any) -> None:
    assert value(report(year, unit=OFFICE), "inspections") == 0
    assert value(report(year, unit=OFFICE), "recordings") == 0
    assert value(report(year, unit=BRIGADE), "inspections") == EXPECTED["inspections"]
    with year.catalog.session() as s:
        march = coverage_report(s, year.settings, CoverageOptions(date(2021, 3, 1), date(2021, 3, 31), now=NOW))
    assert value(march, "inspections") == 1 and value(march, "uploads_late") == 2


def run(app: Any, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "admin", "report", *args])


def test_cli_json_states_period_standard_and_counted_data(year: Any) -> None:
    result = run(year, "coverage", "--from", "2021-01-01", "--to", "2021-12-31", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    st = doc["statement"]
    assert st["period"]["from"] == "2021-01-01" and st["period"]["start_utc"] == "2020-12-31T16:00:00+00:00"
    assert st["standard"]["upload_deadline_hours"] == 24 and st["standard"]["min_recording_officers"] == 2
    assert st["counted"]["inspection_count"] == 12 and len(st["definitions"]) == 8
    assert doc["figures"]["inspections_covered"] == {"value": 9, "of": 12, "share": 0.75, "share_raw": 0.75,
                                                       "listed_in": "inspections"}
    assert set(doc["details"]) == {"inspections", "one_officer_inspections", "fewer_than_two_officers",
                                   "late_uploads", "undocked_devices",
                                   "clock_errors", "unlinked", "unplayable"}


def test_cli_refuses_a_backwards_period(year: Any) -> None:
    result = run(year, "coverage", "--from", "2021-12-31", "--to", "2021-01-01")
    assert result.exit_code == 1 and "starts (2021-12-31) after it ends (2021-01-01)" in result.output
    assert run(year, "coverage", "--to", "2021-01-01").exit_code == 2  # --from is required


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_html_is_one_self_contained_file_with_charts(year: Any, tmp_path: Any) -> None:
    out = tmp_path / "coverage.html"
    result = run(year, "coverage", "--from", "2021-01-01", "--to", "2021-12-31", "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "执法全过程记录合规报告" in html and "Full-process recording compliance" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched when opened or mailed
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) == 3 and all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert 'id="late_uploads"' in html and "B0102_20210315" in html  # the list behind the figure
    assert "2021-01-01" in html and "UTC+08:00" in html  # the period and zone are stated
    en = tmp_path / "coverage-en.html"
    assert run(year, "coverage", "--from", "2021-01-01", "--to", "2021-12-31", "--format", "html", "--lang", "en",
               "--out", str(en)).exit_code == 0
    assert "Inspections recorded by fewer than two officers" in en.read_text(encoding="utf-8")


def test_csv_detail_lists_the_cases_behind_figures(year: Any, tmp_path: Any) -> None:
    out = tmp_path / "c.csv"
    result = run(year, "coverage", "--from", "2021-01-01", "--to", "2021-12-31", "--format", "csv", "--detail",
                 "--lang", "en", "--out", str(out))
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheet programs read UTF-8
    text = raw.decode("utf-8-sig")
    assert "# Inspections recorded by fewer than two officers" in text
    assert "Inspections with footage covering the window,9,12,75.0%,Inspections" in text
    assert "INS-2021-10" in text and "no footage" in text
    plain = run(year, "coverage", "--from", "2021-01-01", "--to", "2021-12-31", "--format", "csv", "--lang", "en")
    assert "INS-2021-10" not in plain.stdout  # lists only with --detail


# ----------------------------------------------------------------------------- window arithmetic
T0 = datetime(2021, 5, 1, 2, 0, tzinfo=timezone.utc)
TOL = timedelta(seconds=120)


def span(a: float, b: float) -> tuple[datetime, datetime]:
    return T0 + timedelta(minutes=a), T0 + timedelta(minutes=b)


@pytest.mark.parametrize(("pieces", "status"), [
    ([span(-1, 61)], "covered"),
    ([span(0, 30), span(32, 60)], "covered"),  # a 2-minute gap is within the tolerance
    ([span(0, 30), span(32.1, 60)], "partial"),  # a little more is not
    ([span(2, 58)], "covered"),  # starts and ends within 2 minutes of the written times
    ([span(3, 60)], "partial"),
    ([span(0, 30)], "partial"),
    ([span(24 * 60, 25 * 60)], "outside_window"),
    ([], "no_footage"),
])
def test_window_coverage(pieces: list, status: str) -> None:
    start, end = span(0, 60)
    assert window_coverage(start, end, pieces, TOL).status == status


def test_window_without_an_end_is_checked_at_its_start() -> None:
    at = T0
    assert window_coverage(at, at, [span(-10, 10)], TOL).status == "covered"
    assert window_coverage(at, at, [span(10, 20)], TOL).status == "outside_window"


def test_json_figures_match_tables(year: Any) -> None:
    doc = to_json(report(year))
    for key, fig in doc["figures"].items():
        if fig["listed_in"] and key not in {"inspections_covered", "inspections_partial",
                                            "inspections_outside_window", "inspections_no_footage", "inspections"}:
            assert fig["value"] == len(doc["details"][fig["listed_in"]]), key
