"""Issue 13 on real catalogs (SQLite and PostgreSQL): enforcement records as the bureau's system
exports them — record ids, follow-ups (复查) and one-officer inspections — imported, searched by
record id, and shown as two-officer-rule violations in the coverage report (JSON, CSV, HTML)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cases.refdata import ImportRejected
from cases.search import Criteria, search
from cases_support import Recorder, at, import_file, import_reference, make_clips, write_csv
from web_support import sample_video  # noqa: F401 - fixture
from catalog.accounts import add_account
from catalog.models import Case, CustodyEvent
from custody.cli import cli
from reports.coverage import CoverageOptions, coverage_report
from reports.render import render_csv, to_json

INSPECTION_NO, INSPECTION_ID = "(津东)应急检〔2026〕0355号", "120102202600355"
FOLLOW_NO, FOLLOW_ID = "(津东)应急复查〔2026〕0012号", "120102202600412"
HEADER = ["case_no", "record_id", "kind", "enterprise", "unit_code", "officers", "start", "end", "follows_up"]
ROWS = [
    [INSPECTION_NO, INSPECTION_ID, "inspection", "津东化工有限公司", "310115000000", "310001;310002",
     "2026-11-21 09:00", "2026-11-21 10:00", ""],
    # The follow-up, by one officer only: imported with a warning, marked.
    [FOLLOW_NO, FOLLOW_ID, "inspection", "津东化工有限公司", "310115000000", "310001",
     "2026-11-22 10:00", "2026-11-22 10:30", INSPECTION_ID],
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_ok: None) -> list[Path]:
    return make_clips(tmp_path_factory.mktemp("clips"), 2)


@pytest.fixture
def bureau(make_app, catalog_url: str, tmp_path: Path, clips: list[Path]):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url)
    import_reference(app, tmp_path)
    with app.catalog.session() as s:
        add_account(s, "admin", "administrator")
    return app


def cli_run(app, *args: str, ok: bool = True):  # noqa: ANN001, ANN201
    res = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "admin", *args])
    if ok:
        assert res.exit_code == 0, (res.output, res.exception)
    return res


def test_one_officer_case_imports_with_a_warning_and_is_marked(bureau, tmp_path: Path) -> None:  # noqa: ANN001
    path = write_csv(tmp_path / "cases.csv", HEADER, ROWS)
    out = cli_run(bureau, "import", "cases", str(path)).stdout
    assert "2 row(s), 2 created" in out
    assert "warning / 警告: line 3: case " + FOLLOW_NO + " has 1 officer(s)" in out
    with bureau.catalog.session() as s:
        follow = s.execute(select(Case).where(Case.case_no == FOLLOW_NO)).scalar_one()
        first = s.execute(select(Case).where(Case.case_no == INSPECTION_NO)).scalar_one()
        assert (follow.record_id, follow.follows_up, follow.fewer_than_two_officers) == (
            FOLLOW_ID, INSPECTION_ID, True)
        assert (first.record_id, first.follows_up, first.fewer_than_two_officers) == (INSPECTION_ID, None, False)
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.subject == "refdata:cases")
                       .order_by(CustodyEvent.seq.desc()).limit(1)).scalar_one()
        assert ev.outcome == "ok" and len(ev.detail["warnings"]) == 1 and "line 3" in ev.detail["warnings"][0]
    # A second officer added later clears the mark.
    fixed = write_csv(tmp_path / "fixed.csv", ["case_no", "officers"], [[FOLLOW_NO, "310001;310002"]])
    rep = import_file(bureau, "cases", fixed)
    assert rep.warnings == [] and rep.updated == 1
    with bureau.catalog.session() as s:
        assert s.execute(select(Case.fewer_than_two_officers).where(Case.case_no == FOLLOW_NO)).scalar_one() is False


def test_record_id_is_the_upsert_key_and_stays_unique(bureau, tmp_path: Path) -> None:  # noqa: ANN001
    import_file(bureau, "cases", write_csv(tmp_path / "cases.csv", HEADER, ROWS))
    # A re-export from the enforcement system with a corrected document number: same record id.
    corrected = "(津东)应急检〔2026〕0356号"
    rep = import_file(bureau, "cases", write_csv(tmp_path / "again.csv", ["case_no", "record_id", "end"], [
        [corrected, INSPECTION_ID, "2026-11-21 10:15"]]))
    assert (rep.created, rep.updated) == (0, 1)
    assert any("renamed" in n for n in rep.notes)
    with bureau.catalog.session() as s:
        case = s.execute(select(Case).where(Case.record_id == INSPECTION_ID)).scalar_one()
        assert case.case_no == corrected and case.end == datetime(2026, 11, 21, 2, 15, tzinfo=timezone.utc)
        assert s.execute(select(Case).where(Case.case_no == INSPECTION_NO)).scalar_one_or_none() is None
    # One record id cannot name two cases; a case keeps its record id.
    with pytest.raises(ImportRejected) as ei:
        import_file(bureau, "cases", write_csv(tmp_path / "bad.csv", ["case_no", "record_id"], [
            [FOLLOW_NO, INSPECTION_ID],
            ["JC-2026-0101", "X-1"], ["JC-2026-0102", "X-1"]]))
    text = str(ei.value)
    assert f"record_id '{INSPECTION_ID}' belongs to case {corrected}" in text
    # One stored case updated by two rows (renamed by its record id and named by its old number).
    with pytest.raises(ImportRejected) as ei:
        import_file(bureau, "cases", write_csv(tmp_path / "twice.csv", ["case_no", "record_id"], [
            ["(津东)应急检〔2026〕0357号", INSPECTION_ID], [corrected, ""]]))
    assert f"line 3: updates case {corrected}" in str(ei.value)
    assert "record_id 'X-1' appears twice in this file (also line 3)" in text


def test_search_by_case_number_or_record_id(bureau, tmp_path: Path, clips: list[Path]) -> None:  # noqa: ANN001
    import_file(bureau, "cases", write_csv(tmp_path / "cases.csv", HEADER, ROWS))
    rec = Recorder(bureau, clips)
    mid = rec.record("A100001", "310001", at("10:05", date(2026, 11, 22)), 5)
    with bureau.catalog.session() as s:
        by_no = search(s, Criteria(case_no=FOLLOW_NO))
        by_id = search(s, Criteria(case_no=FOLLOW_ID))
    assert [r.id for r in by_no] == [r.id for r in by_id] == [mid]
    assert by_id[0].case == FOLLOW_NO
    rows = json.loads(cli_run(bureau, "search", "--case", FOLLOW_ID, "--json").stdout)
    assert [r["id"] for r in rows] == [mid]
    missing = cli_run(bureau, "search", "--case", "999999", ok=False)
    assert missing.exit_code == 3


def test_coverage_lists_one_officer_inspections(bureau, tmp_path: Path) -> None:  # noqa: ANN001
    import_file(bureau, "cases", write_csv(tmp_path / "cases.csv", HEADER, ROWS))
    opts = CoverageOptions(first=date(2026, 11, 1), last=date(2026, 11, 30),
                           now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    with bureau.catalog.session() as s:
        report = coverage_report(s, bureau.settings, opts)
    doc = to_json(report)
    fig = doc["figures"]["inspections_one_officer"]
    assert fig["value"] == 1 and fig["listed_in"] == "one_officer_inspections"
    assert fig["of"] == doc["figures"]["inspections"]["value"]
    listed = doc["details"]["one_officer_inspections"]
    assert [(r["case_no"], r["record_id"], r["officers"]) for r in listed] == [(FOLLOW_NO, FOLLOW_ID, "310001")]
    csv_en = render_csv(report, "en", detail=True)
    assert "Inspections with fewer than two officers (two-officer rule violated),1," in csv_en
    assert FOLLOW_ID in csv_en
    # The CLI's JSON and HTML carry the same.
    res = cli_run(bureau, "report", "coverage", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert json.loads(res.stdout)["figures"]["inspections_one_officer"]["value"] == 1
    html_path = tmp_path / "coverage.html"
    cli_run(bureau, "report", "coverage", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "html",
            "--out", str(html_path))
    html = html_path.read_text(encoding="utf-8")
    assert "执法人员不足两名的检查" in html and FOLLOW_NO in html


def test_web_search_case_page_and_reports_page(make_app, catalog_url: str, sample_video) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from web.app import create_app
    from web_support import CASE_U1, login, seed

    app = make_app(catalog_url=catalog_url)
    seed(app, sample_video)
    with app.catalog.session() as s:
        first = s.execute(select(Case).where(Case.case_no == CASE_U1)).scalar_one()
        first.record_id = INSPECTION_ID
        s.add(Case(case_no=FOLLOW_NO, record_id=FOLLOW_ID, follows_up=INSPECTION_ID, unit_id=first.unit_id,
                   start=first.start, end=first.end, fewer_than_two_officers=True))
    with TestClient(create_app(app)) as client:
        login(client, "admin")
        found = client.get("/search", params={"case_no": INSPECTION_ID}).text
        assert CASE_U1 in found and INSPECTION_ID in found
        page = client.get(f"/cases/{CASE_U1}").text
        assert f'id="case-record-id">{INSPECTION_ID}<' in page
        assert 'id="case-followed-by"' in page and FOLLOW_NO in page
        follow = client.get(f"/cases/{FOLLOW_ID}").text  # the record id opens the case too
        assert FOLLOW_NO in follow and 'id="case-follows-up"' in follow and CASE_U1 in follow
        assert 'id="case-one-officer"' in follow
        rep = client.get("/admin/reports", params={"kind": "coverage", "first": "2026-03-01", "last": "2026-03-31"})
        assert rep.status_code == 200
        assert "执法人员不足两名的检查" in rep.text and FOLLOW_ID in rep.text
