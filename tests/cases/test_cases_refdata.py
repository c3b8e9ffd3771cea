"""Reference-data imports on SQLite and PostgreSQL: UTF-8 Chinese CSV and JSON, idempotent
upserts, every bad row reported with its line, and a bad file changing nothing."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cases_support import CASE_HEADER, CASES, UNIT, import_file, import_reference, write_csv, write_json
from catalog.custody_log import verify_chain
from catalog.models import (
    Case,
    CaseOfficer,
    CustodyEvent,
    Device,
    DeviceAssignment,
    Officer,
    Unit,
)
from cases.refdata import ImportRejected

TABLES = (Unit, Officer, Device, DeviceAssignment, Case, CaseOfficer, CustodyEvent)


def counts(app) -> dict[str, int]:  # noqa: ANN001
    with app.catalog.session() as s:
        return {t.__tablename__: s.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES}


@pytest.fixture
def app(make_app, catalog_url: str, tmp_path: Path):  # noqa: ANN201
    a = make_app(catalog_url=catalog_url)
    import_reference(a, tmp_path)
    return a


def test_reference_data_is_stored_as_given(app) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        unit = s.execute(select(Unit).where(Unit.code == UNIT)).scalar_one()
        assert unit.name == "浦东新区应急管理局执法大队" and unit.standard_officers_per_device == 4.0
        zhang = s.execute(select(Officer).where(Officer.badge == "310001")).scalar_one()
        assert (zhang.name, zhang.cert_no, zhang.unit_id, zhang.certified_from, zhang.status) == (
            "张伟", "沪应急证0001", unit.id, date(2020, 1, 1), "active")
        assert s.execute(select(Device.kind).where(Device.serial == "A100005")).scalar_one() == "camera"  # 执法记录仪
        assert s.execute(select(Device.kind).where(Device.serial == "T200001")).scalar_one() == "terminal"
        a = s.execute(select(DeviceAssignment).join(Device).where(Device.serial == "A100003")).scalar_one()
        assert a.valid_from == datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)  # 08:00 +08:00
        assert a.valid_to == datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)
        c = s.execute(select(Case).where(Case.case_no == "JC-2026-0101")).scalar_one()
        assert (c.enterprise, c.address, c.kind, c.hazards_found, c.status) == (
            "上海华东化工有限公司", "浦东新区川沙路1号", "inspection", True, "closed")
        assert c.start == datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
        assert c.closed_at == datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
        badges = s.execute(select(Officer.badge).join(CaseOfficer).where(CaseOfficer.case_id == c.id)
                           .order_by(Officer.badge)).scalars().all()
        assert badges == ["310001", "310002"]
        c5 = s.execute(select(Case).where(Case.case_no == "JC-2026-0105")).scalar_one()
        assert c5.end == datetime(2026, 11, 20, 6, 30, tzinfo=timezone.utc)  # given with Z
        assert s.execute(select(Case.kind).where(Case.case_no == "JC-2026-0102")).scalar_one() == "inspection"  # 检查
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.subject == "refdata:cases")).scalar_one()
        assert ev.action == "imported" and ev.actor == "admin" and ev.detail["created"] == len(CASES)
        assert len(ev.detail["sha256"]) == 64


def test_reimport_is_idempotent_and_logged(app, tmp_path: Path) -> None:  # noqa: ANN001
    before = counts(app)
    rep = import_file(app, "cases", tmp_path / "refdata" / "cases.csv")
    assert (rep.rows, rep.created, rep.updated, rep.unchanged) == (len(CASES), 0, 0, len(CASES))
    rep = import_file(app, "assignments", tmp_path / "refdata" / "assignments.csv")
    assert (rep.created, rep.updated, rep.closed) == (0, 0, 0)
    after = counts(app)
    assert after["custody_events"] == before["custody_events"] + 2  # each import is logged...
    assert {k: v for k, v in after.items() if k != "custody_events"} == {
        k: v for k, v in before.items() if k != "custody_events"}  # ...and nothing else changed


def test_updated_case_and_partial_columns(app, tmp_path: Path) -> None:  # noqa: ANN001
    # JSON with only some columns: absent columns keep their stored values.
    rep = import_file(app, "cases", write_json(tmp_path / "upd.json", [
        {"case_no": "JC-2026-0102", "officers": "310001;310003", "start": "2026-11-20 10:30",
         "end": "2026-11-20 11:10", "status": "closed", "closed_at": "2026-11-22T16:00:00+08:00"}]))
    assert (rep.created, rep.updated) == (0, 1)
    with app.catalog.session() as s:
        c = s.execute(select(Case).where(Case.case_no == "JC-2026-0102")).scalar_one()
        assert c.end == datetime(2026, 11, 20, 3, 10, tzinfo=timezone.utc) and c.status == "closed"
        assert c.enterprise == "东方仓储有限公司"  # not in the file: unchanged
        badges = s.execute(select(Officer.badge).join(CaseOfficer).where(CaseOfficer.case_id == c.id)
                           .order_by(Officer.badge)).scalars().all()
        assert badges == ["310001", "310003"]
    # Days later only the closing is entered: the row carries the case number and what changed.
    rep = import_file(app, "cases", write_csv(tmp_path / "close.csv", ["case_no", "follow_up_closed_at", "status"],
                                              [["JC-2026-0102", "2026-11-30 09:00", "closed"]]))
    assert (rep.created, rep.updated) == (0, 1)
    with app.catalog.session() as s:
        c = s.execute(select(Case).where(Case.case_no == "JC-2026-0102")).scalar_one()
        assert c.follow_up_closed_at == datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)
        assert c.end == datetime(2026, 11, 20, 3, 10, tzinfo=timezone.utc)  # kept
        assert len(s.execute(select(CaseOfficer).where(CaseOfficer.case_id == c.id)).all()) == 2  # kept
    # A new case still needs its officers and start.
    with pytest.raises(ImportRejected) as e:
        import_file(app, "cases", write_csv(tmp_path / "new.csv", ["case_no", "status"], [["JC-2026-0999", "open"]]))
    assert "officers is required" in str(e.value)


def test_bad_rows_reported_by_line_and_nothing_changes(app, tmp_path: Path) -> None:  # noqa: ANN001
    before = counts(app)
    path = tmp_path / "bad_cases.csv"
    # Line 3 has a quoted address spanning two lines, so later rows start one line further down.
    path.write_text(
        "\ufeff" + ",".join(CASE_HEADER) + "\n"
        "JC-2026-0901,inspection,良好企业,地址,,310001;310002,2026-11-21 09:00,2026-11-21 10:00,否,open,,\n"
        "JC-2026-0902,inspection,企业,\"两行\n地址\",,310001;310002,2026-11-21 09:00,2026-11-21 08:00,否,open,,\n"
        "JC-2026-0903,inspection,企业,,,310001,2026-11-21 09:00,,否,open,,\n"
        "JC-2026-0904,巡查,企业,,,310001;310002,2026-11-21 09:00,,否,open,,\n"
        "JC-2026-0905,inspection,企业,,,310001;399999,2026-11-21 09:00,,否,open,,\n"
        "JC-2026-0906,inspection,企业,,,310001;310002,下午三点,,否,open,,\n"
        "JC-2026-0901,inspection,企业,,,310001;310002,2026-11-21 09:00,,否,open,,\n"
        ",inspection,企业,,,310001;310002,2026-11-21 09:00,,否,open,,\n"
        "JC-2026-0909,inspection,企业,,NOPE,310001;310002,2026-11-21 09:00,,也许,open,,JC-2026-9999\n"
        "JC-2026-0910,inspection,企业\n",
        encoding="utf-8")
    with pytest.raises(ImportRejected) as ei:
        import_file(app, "cases", path)
    got = [(e.line, e.message) for e in ei.value.errors]
    lines = [ln for ln, _ in got]
    # Line 5 (one officer) is no error since issue 13: it imports with a warning and a mark.
    assert lines == [3, 6, 7, 8, 9, 10, 11, 12], got
    text = dict(got)
    assert "end is before start" in text[3]
    assert "'巡查' is not one of coercive, inspection, penalty" in text[6]
    assert "399999" in text[7] and "not known" in text[7]
    assert "'下午三点' is not a time" in text[8]
    assert "appears twice in this file (also line 2)" in text[9]
    assert text[10] == "case_no is required"
    # Every problem of a row is named, not just the first.
    assert "hazards_found: '也许' is not yes/no" in text[11]
    assert "unit_code 'NOPE' is not a known unit" in text[11]
    assert "parent_case_no 'JC-2026-9999' is not a known case" in text[11]
    assert "3 fields but the header has 12" in text[12]
    assert "line 3: end is before start" in str(ei.value) and "nothing imported" in str(ei.value)
    assert counts(app) == before  # not even the good first row


def test_bad_json_rows_reported_by_line(app, tmp_path: Path) -> None:  # noqa: ANN001
    before = counts(app)
    path = tmp_path / "officers.json"
    path.write_text('[\n  {"badge": "310005", "name": "陈静", "unit_code": "' + UNIT + '"},\n'
                    '  {"badge": "310006", "name": "赵磊",\n   "certified_from": "2026-13-01"},\n'
                    '  {"badge": "310007", "cert_no": "沪应急证0001"},\n'
                    '  {"badge": "310008", "rank": "科员"}\n]\n', encoding="utf-8")
    with pytest.raises(ImportRejected) as ei:
        import_file(app, "officers", path)
    got = [(e.line, e.message) for e in ei.value.errors]
    assert [ln for ln, _ in got] == [3, 5, 6], got
    assert "certified_from: '2026-13-01' is not a date" in got[0][1]
    assert "certificate '沪应急证0001' already belongs to officer 310001" in got[1][1]
    assert "unknown column(s) rank" in got[2][1]
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"badge": "310009"},\n {"badge": "310010",}\n]', encoding="utf-8")
    with pytest.raises(ImportRejected) as ei:
        import_file(app, "officers", broken)
    assert ei.value.errors[0].line == 3 and "invalid JSON" in ei.value.errors[0].message
    assert counts(app) == before


def test_assignment_overlaps_are_refused_and_handover_closes(app, tmp_path: Path) -> None:  # noqa: ANN001
    header = ["device_serial", "officer_badge", "valid_from", "valid_to"]
    before = counts(app)
    with pytest.raises(ImportRejected) as ei:
        import_file(app, "assignments", write_csv(tmp_path / "a1.csv", header, [
            ["A100001", "310003", "2026-11-21 09:00", "2026-11-21 12:00"],  # inside 310001's open assignment
            ["A100003", "310003", "2026-11-25 09:00", "2026-11-25 12:00"],
            ["A100003", "310004", "2026-11-25 11:00", "2026-11-25 13:00"],  # overlaps the row above
            ["A100009", "310004", "2026-11-25 11:00", ""],
            ["A100004", "310004", "2026-11-25 11:00", "2026-11-25 10:00"],
        ]))
    msgs = {e.line: e.message for e in ei.value.errors}
    assert sorted(msgs) == [2, 4, 5, 6], msgs
    assert "already assigned to 310001" in msgs[2]
    assert "overlaps line 3" in msgs[4]
    assert "device_serial 'A100009' is not a known device" in msgs[5]
    assert "valid_to must be after valid_from" in msgs[6]
    assert counts(app) == before
    # A hand-over: A100001 passes to 310003 for good; 310001's open assignment ends there.
    rep = import_file(app, "assignments", write_csv(tmp_path / "a2.csv", header, [
        ["A100001", "310003", "2026-11-25 08:00", ""]]))
    assert (rep.created, rep.closed) == (1, 1)
    with app.catalog.session() as s:
        rows = s.execute(select(Officer.badge, DeviceAssignment.valid_to).join(Officer).join(Device).where(
            Device.serial == "A100001").order_by(DeviceAssignment.valid_from)).all()
        assert [(b, t) for b, t in rows] == [
            ("310001", datetime(2026, 11, 25, 0, 0, tzinfo=timezone.utc)), ("310003", None)]
        assert verify_chain(s).ok


def test_units_devices_officers_update(app, tmp_path: Path) -> None:  # noqa: ANN001
    rep = import_file(app, "officers", write_csv(tmp_path / "o.csv", ["badge", "status", "status_changed_on"], [
        ["310004", "吊销", "2026-11-30"], ["310005", "active", ""]]))
    assert (rep.created, rep.updated, rep.unchanged) == (1, 1, 0)
    rep = import_file(app, "devices", write_csv(tmp_path / "d.csv", ["serial", "kind", "in_service_to"], [
        ["A100005", "camera", "2026-12-31"], ["P300001", "other", ""]]))
    assert (rep.created, rep.updated) == (1, 1)
    with app.catalog.session() as s:
        o = s.execute(select(Officer).where(Officer.badge == "310004")).scalar_one()
        assert (o.status, o.status_changed_on, o.name) == ("revoked", date(2026, 11, 30), "刘洋")
        d = s.execute(select(Device).where(Device.serial == "A100005")).scalar_one()
        assert d.in_service_to == date(2026, 12, 31) and d.unit_id is not None


def test_csv_header_problems_named_once(app, tmp_path: Path) -> None:  # noqa: ANN001
    before = counts(app)
    path = write_csv(tmp_path / "d.csv", ["serial", "kind", "colour"], [["A100101", "camera", "黑"],
                                                                      ["A100102", "camera", "红"]])
    with pytest.raises(ImportRejected) as ei:
        import_file(app, "devices", path)
    assert [(e.line, e.message.split(";")[0]) for e in ei.value.errors] == [(1, "unknown column(s) colour")]
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("serial,kind\nA100103,执法记录仪\n".encode("gbk"))
    with pytest.raises(ImportRejected) as ei:
        import_file(app, "devices", gbk)
    assert [(e.line, e.message) for e in ei.value.errors] == [(2, "file is not UTF-8 text")]
    assert counts(app) == before
