"""Automatic linking on a realistic day, on SQLite and PostgreSQL: each expected link,
non-link and review-queue entry is asserted."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cases_support import (
    CASE_HEADER,
    Recorder,
    active_cases,
    at,
    import_file,
    import_reference,
    make_clips,
    open_review,
    write_csv,
    write_json,
)
from cases import linking
from catalog.custody_log import verify_chain
from catalog.models import CustodyEvent, Media, MediaLink, Officer, ReviewItem


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_ok: None) -> list[Path]:
    return make_clips(tmp_path_factory.mktemp("clips"), 24)


@pytest.fixture
def day(make_app, catalog_url: str, tmp_path: Path, clips: list[Path]):  # noqa: ANN201
    app = make_app(catalog_url=catalog_url)
    import_reference(app, tmp_path)
    return app, Recorder(app, clips)


def test_one_inspection_two_cameras_and_a_terminal(day) -> None:
    app, rec = day
    cam1 = rec.record("A100001", "310001", at("09:05"), 10)
    cam2 = rec.record("A100002", "310002", at("09:06"), 12)
    # The terminal has no assignment: its identity file names the officer carrying it.
    term = rec.record("T200001", "310001", at("09:40"), 3, name="VID_20261120_094000.mp4")
    for mid in (cam1, cam2, term):
        links = active_cases(app, mid)
        assert list(links) == ["JC-2026-0101"], mid
        ln = links["JC-2026-0101"]
        assert ln.method == "auto" and ln.score == pytest.approx(0.9)
        assert open_review(app, mid) is None
    assert "310001 (device assignment)" in active_cases(app, cam1)["JC-2026-0101"].reason
    assert "310001 (identity file)" in active_cases(app, term)["JC-2026-0101"].reason
    reason = active_cases(app, cam2)["JC-2026-0101"].reason
    assert "2026-11-20 09:06–09:18" in reason and "2026-11-20 09:00–10:00" in reason  # local times
    assert reason.startswith("自动: 310002") and " / auto: 310002" in reason


def test_back_to_back_inspections_by_the_same_team(day) -> None:
    app, rec = day
    inside_first = rec.record("A100001", "310001", at("10:40"), 5)
    # Overlaps the end of 0102; 0103 starts 4 minutes after it ends (margin only): 0102 wins.
    end_of_first = rec.record("A100001", "310001", at("11:13"), 3)
    # 90 s after 0102 ends and 90 s before 0103 starts: within clock tolerance of both -> review.
    between = rec.record("A100002", "310002", at("11:16:30"), 2)
    assert list(active_cases(app, inside_first)) == ["JC-2026-0102"]
    assert list(active_cases(app, end_of_first)) == ["JC-2026-0102"]
    assert open_review(app, end_of_first) is None
    assert active_cases(app, between) == {}
    item = open_review(app, between)
    assert item is not None and "overlapping cases" in item.reason
    assert sorted(c["case_no"] for c in item.candidates) == ["JC-2026-0102", "JC-2026-0103"]


def test_overlapping_inspections_go_to_review(day) -> None:
    app, rec = day
    both = rec.record("A100001", "310001", at("13:40"), 5)  # 310001 is on 0104 and 0105 at once
    only_0104 = rec.record("A100002", "310002", at("13:40"), 5)  # 310002 is on 0104 only
    assert active_cases(app, both) == {}
    item = open_review(app, both)
    assert item is not None and "JC-2026-0104" in item.reason and "JC-2026-0105" in item.reason
    assert list(active_cases(app, only_0104)) == ["JC-2026-0104"]


def test_camera_seven_minutes_fast_links_by_corrected_time(day) -> None:
    app, rec = day
    # A100003's clock reads 09:05 when the true time is 08:58 (the dock measured +420 s).
    fast = rec.record("A100003", "310003", at("08:58"), 2, offset=420.0)
    with app.catalog.session() as s:
        m = s.get(Media, fast)
        assert m.device_start_text == "2026-11-20 09:05:00"  # the device's reading is kept
        assert m.original_name == "A100003_310003_20261120090500_0001.MP4"
    links = active_cases(app, fast)
    assert list(links) == ["JC-2026-0201"]  # by the device clock it would sit between 0201 and 0202
    assert "08:58–09:00" in links["JC-2026-0201"].reason and open_review(app, fast) is None


def test_clock_error_unknown_goes_to_review(day) -> None:
    app, rec = day
    unknown = rec.record("A100005", "310004", at("09:30"), 3, offset=None)
    assert active_cases(app, unknown) == {}
    item = open_review(app, unknown)
    assert item is not None and "clock error unknown" in item.reason
    assert [c["case_no"] for c in item.candidates] == ["JC-2026-0202"]


def test_device_with_a_measured_offset_is_not_unknown(day) -> None:
    app, rec = day
    # The recording itself has no offset, but the device's offset was measured at a docking.
    m = rec.record("A100005", "310004", at("09:30"), 3, offset=None)
    with app.catalog.session() as s:
        s.get(Media, m).device.last_clock_offset_seconds = 1.5
        linking.link_recording(s, app.settings, s.get(Media, m))
    assert list(active_cases(app, m)) == ["JC-2026-0202"]
    assert open_review(app, m) is None  # the earlier review item was resolved by the relink
    with app.catalog.session() as s:
        item = s.execute(select(ReviewItem).where(ReviewItem.media_id == m)).scalar_one()
        assert item.state == "resolved" and "JC-2026-0202" in item.resolution


def test_officer_swapped_devices_mid_day(day) -> None:
    app, rec = day
    # Morning: A100004 unassigned, its identity file names 310004 (its last user) -> 310004's case.
    morning = rec.record("A100004", "310004", at("08:40"), 3)
    # Afternoon: 310003 carries A100004 (assignment from 12:00) though the identity still says 310004.
    afternoon = rec.record("A100004", "310004", at("14:10"), 5)
    # A100003's assignment ended at 12:00; its identity file names 310003.
    old_cam = rec.record("A100003", "310003", at("14:20"), 2)
    assert list(active_cases(app, morning)) == ["JC-2026-0201"]
    links = active_cases(app, afternoon)
    assert list(links) == ["JC-2026-0203"]  # not 0204, where 310004 was
    assert "310003 (device assignment)" in links["JC-2026-0203"].reason
    assert list(active_cases(app, old_cam)) == ["JC-2026-0203"]
    with app.catalog.session() as s:
        m = s.get(Media, afternoon)
        assert m.officer_badge == "310004"  # as read from the device
        assert s.get(Officer, m.officer_id).badge == "310003"  # who carried it
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "attributed",
                                                  CustodyEvent.media_id == afternoon)).scalar_one()
        assert ev.detail["source"] == "assignment"


def test_no_officer_match_goes_to_review(day, tmp_path: Path) -> None:
    app, rec = day
    anonymous = rec.record("X900001", None, at("09:30"), 3)  # no assignment, no badge in the identity
    unknown_badge = rec.record("X900002", "319999", at("09:30"), 3)  # badge not in the register
    # 310004 is known but on no case under way at 13:10 (0104 is 310001/310002's).
    stranger = rec.record("A100005", "310004", at("13:10"), 3)
    off_duty = rec.record("A100005", "310004", at("19:00"), 3)  # nothing under way: simply unlinked
    for mid in (anonymous, unknown_badge, stranger):
        assert active_cases(app, mid) == {}
        item = open_review(app, mid)
        assert item is not None and "no officer match" in item.reason, mid
    assert "319999 is not in the officer register" in open_review(app, unknown_badge).reason
    assert [c["case_no"] for c in open_review(app, anonymous).candidates] == ["JC-2026-0101", "JC-2026-0202"]
    assert [c["case_no"] for c in open_review(app, stranger).candidates] == ["JC-2026-0104"]
    assert active_cases(app, off_duty) == {} and open_review(app, off_duty) is None
    # The register catches up: 319999 is imported, and is on no case then -> the reason changes.
    rep = import_file(app, "officers", write_json(tmp_path / "new_officer.json", [
        {"badge": "319999", "name": "周敏", "unit_code": "310115000000"}]))
    assert rep.created == 1 and rep.relinked == 1
    item = open_review(app, unknown_badge)
    assert "319999 is not an officer of JC-2026-0101, JC-2026-0202" in item.reason
    with app.catalog.session() as s:
        assert s.get(Officer, s.get(Media, unknown_badge).officer_id).badge == "319999"


def test_case_imported_after_docking(make_app, catalog_url: str, tmp_path: Path, clips: list[Path]) -> None:
    app = make_app(catalog_url=catalog_url)
    import_reference(app, tmp_path, cases=False)
    rec = Recorder(app, clips)
    early = rec.record("A100001", "310001", at("16:10"), 5)
    late = rec.record("A100002", "310002", at("17:20"), 5)
    named = rec.record("T200001", "310001", at("16:30"), 2, name="CF-2026-0007_现场笔录.mp4")
    side = rec.record("A100002", "310002", at("16:35"), 2, meta={"sidecar": {"案件编号": "QZ-2026-0003"}})
    for mid in (early, late, named, side):
        assert active_cases(app, mid) == {} and open_review(app, mid) is None
    header = CASE_HEADER
    rows = [
        ["JC-2026-0301", "inspection", "外高桥港务公司", "", "", "310001;310002", "2026-11-20 16:00",
         "2026-11-20 17:00", "", "open", "", ""],
        ["CF-2026-0007", "penalty", "外高桥港务公司", "", "", "310001;310002", "2026-11-20 16:00",
         "2026-12-20 17:00", "", "open", "", "JC-2026-0301"],
        ["QZ-2026-0003", "coercive", "外高桥港务公司", "", "", "310001;310002", "2026-11-25 09:00",
         "2026-11-25 10:00", "", "open", "", "JC-2026-0301"],
    ]
    rep = import_file(app, "cases", write_csv(tmp_path / "late.csv", header, rows))
    assert rep.created == 3 and rep.relinked >= 4
    assert list(active_cases(app, early)) == ["JC-2026-0301"]
    assert active_cases(app, late) == {}  # 20 minutes after the end: beyond the 15-minute margin
    # The terminal clip names a penalty case: linked directly (penalty files are not time-linked).
    named_links = active_cases(app, named)
    assert list(named_links) == ["CF-2026-0007"] and named_links["CF-2026-0007"].method == "name"
    side_links = active_cases(app, side)
    assert list(side_links) == ["QZ-2026-0003"] and side_links["QZ-2026-0003"].method == "sidecar"

    # The inspection is re-entered days later with its real end (17:30) and closed.
    rows[0][7], rows[0][9], rows[0][10] = "2026-11-20 17:30", "closed", "2026-11-21 10:00"
    rep = import_file(app, "cases", write_csv(tmp_path / "late2.csv", header, rows))
    assert (rep.created, rep.updated, rep.unchanged) == (0, 1, 2)
    assert list(active_cases(app, late)) == ["JC-2026-0301"]
    # Cut short again: the link that no longer holds is removed, with a custody event.
    rows[0][7] = "2026-11-20 16:50"
    import_file(app, "cases", write_csv(tmp_path / "late3.csv", header, rows))
    assert active_cases(app, late) == {}
    with app.catalog.session() as s:
        ln = s.execute(select(MediaLink).where(MediaLink.media_id == late)).scalar_one()
        assert not ln.active and ln.removed_by == "system"
        assert s.execute(select(func.count()).select_from(CustodyEvent).where(
            CustodyEvent.action == "unlinked", CustodyEvent.media_id == late)).scalar_one() == 1
        assert verify_chain(s).ok


def test_coercive_measure_during_its_inspection_links_both(day, tmp_path: Path) -> None:
    app, rec = day
    # Sealing (coercive) during inspection 0101, referencing it: not a competing case.
    import_file(app, "cases", write_json(tmp_path / "qz.json", [
        {"case_no": "QZ-2026-0001", "kind": "强制措施", "enterprise": "上海华东化工有限公司",
         "officers": ["310001", "310002"], "start": "2026-11-20 09:30", "end": "2026-11-20 09:50",
         "parent_case_no": "JC-2026-0101"}]))
    m = rec.record("A100001", "310001", at("09:35"), 5)
    assert sorted(active_cases(app, m)) == ["JC-2026-0101", "QZ-2026-0001"]
    assert open_review(app, m) is None


def test_time_correction_and_new_assignment_relink(day, tmp_path: Path) -> None:
    app, rec = day
    m = rec.record("A100001", "310001", at("10:40"), 5)
    assert list(active_cases(app, m)) == ["JC-2026-0102"]
    # An administrator corrects the clock: the recording really started an hour earlier.
    with app.catalog.session() as s:
        media = s.get(Media, m)
        media.recorded_start -= timedelta(hours=1)
        media.recorded_end -= timedelta(hours=1)
        assert linking.relink_media_ids(s, app.settings, [m]) == 1
    assert list(active_cases(app, m)) == ["JC-2026-0101"]
    # A late register entry: 310003 borrowed A100001 from 09:30 to 10:00 -> 310003's inspection.
    import_file(app, "assignments", write_csv(tmp_path / "late_assign.csv",
                                              ["device_serial", "officer_badge", "valid_from", "valid_to"],
                                              [["A100001", "310001", "2026-11-01 08:00", "2026-11-20 09:30"],
                                               ["A100001", "310003", "2026-11-20 09:30", "2026-11-20 10:00"],
                                               ["A100001", "310001", "2026-11-20 10:00", ""]]))
    links = active_cases(app, m)
    assert list(links) == ["JC-2026-0202"] and "310003 (device assignment)" in links["JC-2026-0202"].reason
    with app.catalog.session() as s:
        old = s.execute(select(MediaLink).join(Media).where(MediaLink.media_id == m, MediaLink.active.is_(False))
                        .order_by(MediaLink.id)).scalars().all()
        assert [ln.reason.split(":")[1].split(" ")[1] for ln in old] == ["310001", "310001"]


def test_reviewer_decisions_survive_relinking(day) -> None:
    app, rec = day
    m = rec.record("A100001", "310001", at("13:40"), 5)  # 0104 vs 0105: in review
    with app.catalog.session() as s:
        media = s.get(Media, m)
        linking.manual_link(s, media, linking.find_case(s, "JC-2026-0105"), "reviewer1", "加油站检查画面")
    assert open_review(app, m) is None
    links = active_cases(app, m)
    assert list(links) == ["JC-2026-0105"] and links["JC-2026-0105"].created_by == "reviewer1"
    with app.catalog.session() as s:
        linking.link_recording(s, app.settings, s.get(Media, m))
        linking.link_recording(s, app.settings, s.get(Media, m))
    # Placed by hand: automatic matching neither adds 0104 nor queues the recording again.
    assert list(active_cases(app, m)) == ["JC-2026-0105"] and open_review(app, m) is None
    with app.catalog.session() as s:
        _, removed = linking.manual_unlink(s, s.get(Media, m), linking.find_case(s, "JC-2026-0105"), "reviewer1",
                                           "看错了, 不是加油站")
        assert removed == 1
        linking.link_recording(s, app.settings, s.get(Media, m))
    # 0105 is ruled out; 0104 is the one strong candidate left, so automatic linking takes it.
    links = active_cases(app, m)
    assert list(links) == ["JC-2026-0104"] and links["JC-2026-0104"].method == "auto"
    with app.catalog.session() as s:
        rulings = s.execute(select(MediaLink).where(MediaLink.media_id == m, MediaLink.method == "manual")
                            .order_by(MediaLink.id)).scalars().all()
        assert [(r.active, r.created_by) for r in rulings] == [(False, "reviewer1"), (False, "reviewer1")]
        events = s.execute(select(CustodyEvent.action, CustodyEvent.actor).where(
            CustodyEvent.media_id == m, CustodyEvent.actor == "reviewer1").order_by(CustodyEvent.seq)).all()
        assert [tuple(e) for e in events] == [("linked", "reviewer1"), ("review_resolved", "reviewer1"),
                                              ("unlinked", "reviewer1")]


def test_linking_twice_changes_nothing(day) -> None:
    app, rec = day
    ids = [rec.record("A100001", "310001", at("09:05"), 3), rec.record("A100001", "310001", at("13:40"), 3)]
    with app.catalog.session() as s:
        before = s.execute(select(func.count()).select_from(CustodyEvent)).scalar_one()
        links = s.execute(select(func.count()).select_from(MediaLink)).scalar_one()
        linking.relink_media_ids(s, app.settings, ids)
        assert s.execute(select(func.count()).select_from(CustodyEvent)).scalar_one() == before
        assert s.execute(select(func.count()).select_from(MediaLink)).scalar_one() == links
        assert s.execute(select(func.count()).select_from(ReviewItem)).scalar_one() == 1
