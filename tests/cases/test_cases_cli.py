"""The case commands end to end through the CLI (SQLite and PostgreSQL): imports with roles,
search output (JSON fields, time order, local times), manual link/unlink and the review queue."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cases_support import CASE_HEADER, Recorder, at, import_reference, make_clips, write_csv
from catalog.accounts import add_account
from custody.cli import cli
from catalog.models import Case, CustodyEvent, Media, ReviewItem


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_ok: None) -> list[Path]:
    return make_clips(tmp_path_factory.mktemp("clips"), 12)


class Cli:
    def __init__(self, app) -> None:  # noqa: ANN001
        self.config = str(app.settings.config_path)

    def __call__(self, user: str, *args: str, ok: bool = True):  # noqa: ANN204
        res = CliRunner().invoke(cli, ["--config", self.config, "--user", user, *args])
        if ok:
            assert res.exit_code == 0, (res.output, res.exception)
        return res

    def json(self, user: str, *args: str) -> list[dict]:
        return json.loads(self(user, *args, "--json").stdout)


@pytest.fixture
def world(make_app, catalog_url: str, tmp_path: Path, clips: list[Path]):  # noqa: ANN201
    app = make_app(catalog_url=catalog_url)
    with app.catalog.session() as s:
        for name, role in (("admin", "administrator"), ("rev", "reviewer"), ("aud", "auditor"),
                           ("310002", "inspector")):
            add_account(s, name, role)
        add_account(s, "rev_here", "reviewer", units=["310115000000"])
        add_account(s, "rev_far", "reviewer", units=["310104000000"])
    import_reference(app, tmp_path)
    rec = Recorder(app, clips)
    ids = {
        "cam2": rec.record("A100002", "310002", at("09:06"), 12),
        "cam1": rec.record("A100001", "310001", at("09:05"), 10),
        "term": rec.record("T200001", "310001", at("09:40"), 3, name="VID_20261120_094000.mp4"),
        "overlap": rec.record("A100001", "310001", at("13:40"), 5),
        "evening": rec.record("A100001", "310001", at("19:00"), 5),
        "other_day": rec.record("A100001", "310001", at("09:10").replace(day=21), 5),
    }
    with app.catalog.session() as s:
        s.get(Media, ids["cam1"]).flags = ["important"]
    return app, Cli(app), ids


def test_search_by_case_lists_every_device_in_time_order(world) -> None:  # noqa: ANN001
    app, run, ids = world
    rows = run.json("rev", "search", "--case", "JC-2026-0101")
    assert [r["id"] for r in rows] == [ids["cam1"], ids["cam2"], ids["term"]]  # time order, not id order
    assert set(rows[0]) == {"id", "sha256", "case", "officer", "device", "recorded_start", "recorded_end",
                            "link_method", "link_reason", "flags"}
    first = rows[0]
    assert (first["case"], first["officer"], first["device"], first["link_method"], first["flags"]) == (
        "JC-2026-0101", "310001", "A100001", "auto", ["important"])
    assert first["recorded_start"] == "2026-11-20T09:05:00+08:00"
    assert first["recorded_end"] == "2026-11-20T09:15:00+08:00"
    assert "310001 (device assignment)" in first["link_reason"]
    assert [r["device"] for r in rows] == ["A100001", "A100002", "T200001"]
    with app.catalog.session() as s:
        assert first["sha256"] == s.get(Media, ids["cam1"]).sha256
    table = run("rev", "search", "--case", "JC-2026-0101").stdout
    assert "2026-11-20 09:05:00" in table and "0:10:00" in table and "important" in table
    assert "[auto] 自动: 310001" in table and table.index("A100001") < table.index("T200001")


def test_search_filters(world) -> None:  # noqa: ANN001
    app, run, ids = world
    day = run.json("rev", "search", "--officer", "310001", "--from", "2026-11-20", "--to", "2026-11-20")
    assert [r["id"] for r in day] == [ids["cam1"], ids["term"], ids["overlap"], ids["evening"]]
    both = run.json("rev", "search", "--officer", "310001")
    assert both[-1]["id"] == ids["other_day"]
    morning = run.json("rev", "search", "--device", "A100001", "--from", "2026-11-20T09:00", "--to",
                       "2026-11-20T12:00")
    assert [r["id"] for r in morning] == [ids["cam1"]]
    assert [r["id"] for r in run.json("rev", "search", "--enterprise", "华东化工")] == [
        ids["cam1"], ids["cam2"], ids["term"]]
    unlinked = run.json("rev", "search", "--unlinked")
    assert [r["id"] for r in unlinked] == [ids["overlap"], ids["evening"], ids["other_day"]]
    assert all(r["case"] is None and r["link_method"] is None for r in unlinked)
    assert run.json("rev", "search", "--officer", "310004") == []
    res = run("rev", "search", "--case", "JC-2099-0001", ok=False)
    assert res.exit_code == 3 and "no case 'JC-2099-0001'" in res.output
    res = run("rev", "search", "--from", "昨天", ok=False)
    assert res.exit_code == 1 and "is not a date" in res.output
    # An inspector (account named by badge) sees only their own recordings.
    assert [r["id"] for r in run.json("310002", "search", "--case", "JC-2026-0101")] == [ids["cam2"]]
    # Reviewers limited to units see only those units' recordings.
    assert len(run.json("rev_here", "search", "--officer", "310001")) == 5
    assert run.json("rev_far", "search", "--officer", "310001") == []


def test_review_queue_and_manual_decisions(world) -> None:  # noqa: ANN001
    app, run, ids = world
    queue = run.json("rev", "review-queue")
    assert [q["media_id"] for q in queue] == [ids["overlap"]]
    item = queue[0]
    assert item["recorded_start"] == "2026-11-20T13:40:00+08:00" and item["device"] == "A100001"
    # Both inspections under way, plus 0203 starting 15 minutes later (margin only, lower score).
    assert [(c["case_no"], c["score"]) for c in item["candidates"]] == [
        ("JC-2026-0104", 0.9), ("JC-2026-0105", 0.9), ("JC-2026-0203", 0.4)]
    assert "overlapping cases" in run("rev", "review-queue").stdout

    res = run("aud", "link", str(ids["overlap"]), "JC-2026-0104", "--reason", "x", ok=False)
    assert res.exit_code == 4 and "may not link" in res.output
    assert run.json("rev_far", "review-queue") == []
    res = run("rev_far", "link", str(ids["overlap"]), "JC-2026-0104", "--reason", "x", ok=False)
    assert res.exit_code == 4 and "does not cover the unit" in res.output
    res = run("rev", "link", str(ids["overlap"]), "JC-2026-0104", ok=False)
    assert res.exit_code == 2 and "--reason" in res.output
    with app.catalog.session() as s:
        sha = s.get(Media, ids["overlap"]).sha256
    out = run("rev", "link", sha[:12], "JC-2026-0104", "--reason", "[现场] 画面为五金厂车间").stdout
    assert f"linked recording {ids['overlap']}" in out
    assert run.json("rev", "review-queue") == []
    rows = run.json("rev", "search", "--case", "JC-2026-0104")
    assert [(r["id"], r["link_method"], r["link_reason"]) for r in rows] == [
        (ids["overlap"], "manual", "[现场] 画面为五金厂车间")]
    assert "[manual] [现场] 画面为五金厂车间" in run("rev", "search", "--case", "JC-2026-0104").stdout  # not markup
    res = run("rev", "link", str(ids["overlap"]), "JC-2026-0104", "--reason", "again", ok=False)
    assert res.exit_code == 1 and "already linked" in res.output

    out = run("rev", "unlink", str(ids["cam2"]), "JC-2026-0101", "--reason", "误录, 与检查无关").stdout
    assert "unlinked" in out
    assert [r["id"] for r in run.json("rev", "search", "--case", "JC-2026-0101")] == [ids["cam1"], ids["term"]]
    res = run("rev", "unlink", "999999", "JC-2026-0101", "--reason", "x", ok=False)
    assert res.exit_code == 3 and "no recording" in res.output

    with app.catalog.session() as s:
        evs = s.execute(select(CustodyEvent).where(CustodyEvent.actor.in_(["rev", "aud", "rev_far"]))
                        .order_by(CustodyEvent.seq)).scalars().all()
        assert [(e.action, e.outcome, e.media_id) for e in evs] == [
            ("refused", "refused", None), ("refused", "refused", ids["overlap"]),
            ("linked", "ok", ids["overlap"]), ("review_resolved", "ok", ids["overlap"]),
            ("unlinked", "ok", ids["cam2"]),
        ]
        assert evs[2].detail["reason"] == "[现场] 画面为五金厂车间" and evs[2].subject == "case:JC-2026-0104"
        item = s.execute(select(ReviewItem).where(ReviewItem.media_id == ids["overlap"])).scalar_one()
        assert item.state == "resolved" and item.resolved_by == "rev"


def test_import_command_roles_errors_and_relink(world, tmp_path: Path) -> None:  # noqa: ANN001
    app, run, ids = world
    good = write_csv(tmp_path / "evening.csv", CASE_HEADER, [
        ["JC-2026-0401", "inspection", "夜间检查: 滨江娱乐场所", "", "", "310001;310002", "2026-11-20 18:50",
         "2026-11-20 19:30", "", "open", "", ""]])
    res = run("rev", "import", "cases", str(good), ok=False)
    assert res.exit_code == 4 and "may not import" in res.output
    out = run("admin", "import", "cases", str(good)).stdout
    assert "1 row(s), 1 created, 0 updated, 0 unchanged" in out and "relinked" in out
    assert [r["id"] for r in run.json("rev", "search", "--case", "JC-2026-0401")] == [ids["evening"]]

    bad = write_csv(tmp_path / "bad.csv", CASE_HEADER, [
        ["JC-2026-0402", "inspection", "x", "", "", "310001;399999", "2026-11-20 20:00", "", "", "open", "", ""]])
    res = run("admin", "import", "cases", str(bad), ok=False)
    assert res.exit_code == 1
    assert "line 2: officer(s) 399999 not known" in res.output and "nothing imported" in res.output
    with app.catalog.session() as s:
        assert s.execute(select(Case).where(Case.case_no == "JC-2026-0402")).scalar_one_or_none() is None
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "imported")
                       .order_by(CustodyEvent.seq.desc()).limit(1)).scalar_one()
        assert (ev.actor, ev.outcome, ev.detail["error_count"]) == ("admin", "refused", 1)
