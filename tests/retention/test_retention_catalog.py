"""Holds, plans, approval and sweeps on real SQLite and PostgreSQL catalogs (local store)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from custody.cli import cli
from core.errors import CustodyError, ObjectLocked, PermissionDenied
from catalog.custody_log import verify_chain
from catalog.models import Case, CustodyEvent, Derivative, Media, RetentionPlanItem
from retention.lock import apply_retention
from retention.plan import approve_plan, create_plan
from retention.sweep import sweep
from retention_support import accounts, actor, link, make_case, store_recording, write_rules

UTC = timezone.utc


def now() -> datetime:
    return datetime.now(UTC)


def run(app, user: str, *args: str, ok: bool = True):  # noqa: ANN001, ANN201
    r = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", user, *args])
    if ok:
        assert r.exit_code == 0, r.output
    return r


def events(app, action: str) -> list[CustodyEvent]:  # noqa: ANN001
    with app.catalog.session() as s:
        return list(s.execute(select(CustodyEvent).where(CustodyEvent.action == action)
                              .order_by(CustodyEvent.seq)).scalars())


@pytest.fixture
def app(make_app, catalog_url):  # noqa: ANN001, ANN201
    a = make_app(catalog_url=catalog_url)
    accounts(a)
    return a


def test_holds_by_named_accounts_mirror_the_store_legal_hold(app) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        m = store_recording(app, s, now() - timedelta(days=400), device="DEV0001", badge="000123")
        pen = make_case(s, "CF-2026-001", "penalty")
        link(s, m, pen)
        mid, key = m.id, m.storage_key
        # Linked by mistake and unlinked before any hold: not this case's footage.
        gone = link(s, store_recording(app, s, now() - timedelta(days=400)), pen, at=now() - timedelta(days=3))
        gone.active, gone.removed_at, gone.removed_by = False, now() - timedelta(days=2), "rev"
    r = run(app, "rev", "hold", "add", "case", "CF-2026-001", "--reason", "appeal", ok=False)
    assert r.exit_code == PermissionDenied.exit_code and "may not hold" in r.output
    assert events(app, "refused")[-1].actor == "rev"
    assert run(app, "admin1", "hold", "add", "case", "NOPE", "--reason", "x", ok=False).exit_code == 3
    out = run(app, "admin1", "hold", "add", "case", "CF-2026-001", "--reason", "administrative appeal").output
    assert "hold #1" in out and "covers 1 stored recording" in out
    assert app.store.head(key).legal_hold is True
    with pytest.raises(ObjectLocked):
        app.store.delete(key)

    explained = json.loads(run(app, "aud", "retention", "explain", str(mid), "--json").output)
    assert explained["held"] is True and explained["permanent"] is True
    assert explained["rule"] == "enforcement_case" and explained["legal_hold_applied"] is True
    assert explained["holds"][0]["created_by"] == "admin1"
    assert "has no close date" in explained["reason"] and "administrative appeal" in explained["reason"]
    text = run(app, "aud", "retention", "explain", str(mid)).output
    assert "保留至" in text and "permanent" in text

    listed = json.loads(run(app, "aud", "hold", "list", "--json").output)
    assert [(h["target_kind"], h["target_ref"], h["active"]) for h in listed] == [("case", "CF-2026-001", True)]
    run(app, "admin2", "hold", "release", "1", "--reason", "appeal withdrawn")
    assert app.store.head(key).legal_hold is False
    assert json.loads(run(app, "aud", "hold", "list", "--json").output) == []
    released = json.loads(run(app, "aud", "hold", "list", "--all", "--json").output)[0]
    assert released["released_by"] == "admin2" and released["release_reason"] == "appeal withdrawn"
    assert [e.action for e in events(app, "hold_added") + events(app, "hold_released")] == ["hold_added", "hold_released"]
    with app.catalog.session() as s:
        assert verify_chain(s).ok


def test_plan_approve_sweep_deletes_only_what_is_due(app) -> None:  # noqa: ANN001
    old = now() - timedelta(days=800)
    with app.catalog.session() as s:
        due = store_recording(app, s, old, derivatives=2)
        recent = store_recording(app, s, now() - timedelta(days=10))
        tagged = store_recording(app, s, old)
        held = store_recording(app, s, old, device="DEV0002")
        ids = {"due": due.id, "recent": recent.id, "tagged": tagged.id, "held": held.id}
        keys = {k: m.storage_key for k, m in (("due", due), ("recent", recent), ("tagged", tagged), ("held", held))}
        dkeys = [d.storage_key for d in s.execute(select(Derivative).where(Derivative.media_id == due.id)).scalars()]
    run(app, "rev", "tag", "add", str(ids["tagged"]), "complaint", "--reason", "citizen complaint 12345")
    assert run(app, "rev", "tag", "add", str(ids["tagged"]), "complian", "--reason", "x", ok=False).exit_code == 1
    run(app, "admin2", "hold", "add", "device", "DEV0002", "--reason", "device under investigation")

    plan = json.loads(run(app, "admin1", "retention", "plan", "--json").output)
    assert [i["media_id"] for i in plan["items"]] == [ids["due"]]
    assert plan["items"][0]["change"] == "new" and "recorded" in plan["items"][0]["reason"]
    counts = plan["summary"]["counts"]
    assert (counts["deletable"], counts["held"], counts["permanent"], counts["not_yet_due"]) == (1, 1, 1, 1)

    r = run(app, "admin1", "retention", "approve", str(plan["id"]), ok=False)
    assert r.exit_code == PermissionDenied.exit_code and "different administrator" in r.output
    assert run(app, "rev", "retention", "approve", str(plan["id"]), ok=False).exit_code == PermissionDenied.exit_code
    assert run(app, "admin1", "retention", "sweep", ok=False).exit_code == 3  # nothing approved yet
    run(app, "admin2", "retention", "approve", str(plan["id"]))

    swept = json.loads(run(app, "admin1", "retention", "sweep", "--json").output)
    assert swept["deleted"] == [ids["due"]] and swept["kept"] == [] and swept["failed"] == []
    assert app.store.head(keys["due"]) is None and all(app.store.head(k) is None for k in dkeys)
    for k in ("recent", "tagged", "held"):
        assert app.store.head(keys[k]) is not None
    with app.catalog.session() as s:
        tomb = s.get(Media, ids["due"])
        assert tomb.status == "purged" and tomb.purged_at is not None and len(tomb.sha256) == 64
        assert all(d.purged_at for d in s.execute(select(Derivative).where(Derivative.media_id == tomb.id)).scalars())
        assert {m.status for m in s.execute(select(Media).where(Media.id != tomb.id)).scalars()} == {"stored"}
        assert verify_chain(s).ok
    purged = events(app, "purged")
    assert len(purged) == 1 and purged[0].media_id == ids["due"] and purged[0].detail["derivatives"] == dkeys
    assert [e.media_id for e in events(app, "purge_started")] == [ids["due"]]
    assert run(app, "admin1", "retention", "sweep", "--plan", str(plan["id"]), ok=False).exit_code == 1

    # Tombstone and custody history still explain what happened.
    explained = json.loads(run(app, "aud", "retention", "explain", str(ids["due"]), "--json").output)
    assert explained["status"] == "purged" and explained["purged_at"]


def test_rule_shortened_after_approval_never_deletes_silently(app, tmp_path) -> None:  # noqa: ANN001
    app.settings.retention.rules_file = write_rules(tmp_path / "rules.toml", routine="6 months")
    with app.catalog.session() as s:
        eight = store_recording(app, s, now() - timedelta(days=240)).id
        four = store_recording(app, s, now() - timedelta(days=120)).id
    a1, a2 = actor(app, "admin1"), actor(app, "admin2")
    with app.catalog.session() as s:
        p1 = create_plan(app, s, a1).id  # also locks `four` in the store until its 6 months are up
    with app.catalog.session() as s:
        approve_plan(app, s, a2, p1)
        # catalogued without a lock (e.g. before locks were applied)
        unlocked = store_recording(app, s, now() - timedelta(days=120)).id
    write_rules(tmp_path / "rules.toml", routine="3 months")  # shortened after approval

    rep = sweep(app, a1)
    assert rep.deleted == [eight] and rep.rules_changed  # the 4-month-old clips were not in the approved plan
    with app.catalog.session() as s:
        assert s.get(Media, four).status == "stored" and s.get(Media, unlocked).status == "stored"
        p2 = create_plan(app, s, a1)
        items = s.execute(select(RetentionPlanItem).where(RetentionPlanItem.plan_id == p2.id)).scalars().all()
        assert [(i.media_id, i.change) for i in items] == [(unlocked, "rule_shortened")]
        # The locked one is due by the new rule but the store keeps it: shown, not listed.
        assert [(li["media_id"], li["change"]) for li in p2.summary["store_locked_items"]] == [(four, "rule_shortened")]
        assert p2.summary["baseline_plan"] == p1
        assert p2.summary["rules_changes"][0] == {"class": "routine", "change": "shortened", "keep_before": "6 months",
                                                  "keep_after": "3 months", "fields": ["keep"]}
        p2_id = p2.id
    out = run(app, "admin2", "retention", "show", str(p2_id)).output
    assert "RULE SHORTENED: routine 6 months -> 3 months" in out and "!! media" in out
    write_rules(tmp_path / "rules.toml", routine="2 months")  # changed again before approval
    with app.catalog.session() as s, pytest.raises(CustodyError, match="rules changed"):
        approve_plan(app, s, a2, p2_id)


def test_rule_lengthened_or_hold_placed_after_approval_keeps_the_item(app, tmp_path) -> None:  # noqa: ANN001
    app.settings.retention.rules_file = write_rules(tmp_path / "rules.toml", routine="6 months")
    with app.catalog.session() as s:
        a = store_recording(app, s, now() - timedelta(days=240))
        b = store_recording(app, s, now() - timedelta(days=240), badge="000777")
        ida, idb, keya, keyb = a.id, b.id, a.storage_key, b.storage_key
    a1, a2 = actor(app, "admin1"), actor(app, "admin2")
    with app.catalog.session() as s:
        pid = create_plan(app, s, a1).id
        approve_plan(app, s, a2, pid)
    run(app, "admin2", "hold", "add", "officer", "000777", "--reason", "complaint against officer")
    write_rules(tmp_path / "rules.toml", routine="12 months")
    # The hold flag is now on b's object; the rule change alone protects a.
    rep = sweep(app, a1)
    assert rep.deleted == [] and {m for m, _ in rep.kept} == {ida, idb}
    why = dict(rep.kept)
    assert "no longer due" in why[ida] and why[idb].startswith("held")
    assert app.store.head(keya) is not None and app.store.head(keyb) is not None
    assert {e.media_id for e in events(app, "purge_kept")} == {ida, idb}


def test_case_closed_after_hold_placed_is_not_planned_until_release(app) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        m = store_recording(app, s, now() - timedelta(days=30))
        pen = make_case(s, "CF-2026-009", "penalty")
        link(s, m, pen)
        mid = m.id
    run(app, "admin1", "hold", "add", "case", "CF-2026-009", "--reason", "litigation")
    with app.catalog.session() as s:  # the case closes after the hold was placed
        s.execute(select(Case)).scalar_one().closed_at = now() + timedelta(days=1)
    later = now() + timedelta(days=365 * 11)  # closed + 10 years has passed
    a1 = actor(app, "admin1")
    with app.catalog.session() as s:
        p = create_plan(app, s, a1, now=later)
        assert p.summary["counts"]["held"] == 1 and p.summary["counts"]["deletable"] == 0
    run(app, "admin2", "hold", "release", "1", "--reason", "judgment final")
    with app.catalog.session() as s:
        p = create_plan(app, s, a1, now=later)
        items = s.execute(select(RetentionPlanItem).where(RetentionPlanItem.plan_id == p.id)).scalars().all()
        assert [i.media_id for i in items] == [mid] and "case CF-2026-009 case closed" in items[0].reason


def test_recording_linked_to_two_cases_explained(app) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        m = store_recording(app, s, now() - timedelta(days=400))
        insp = make_case(s, "JC-2026-100", hazards=True, closed_at=now() - timedelta(days=390),
                         follow_up_closed_at=now() - timedelta(days=300))
        coer = make_case(s, "QZ-2026-007", "coercive", closed_at=now() - timedelta(days=200))
        link(s, m, insp)
        link(s, m, coer)
        mid = m.id
    e = json.loads(run(app, "aud", "retention", "explain", str(mid), "--json").output)
    assert e["rule"] == "enforcement_case" and "QZ-2026-007" in e["reason"] and not e["expired"]
    assert sorted(r["rule"] for r in e["rules"]) == ["enforcement_case", "hazard_inspection", "routine"]
    past = json.loads(run(app, "aud", "retention", "explain", str(mid), "--json",
                          "--at", (now() - timedelta(days=250)).isoformat()).output)
    # Before the coercive case closed it was open: kept without a date.
    assert past["permanent"] and past["rule"] == "enforcement_case"


def test_apply_retention_locks_and_never_shortens(app) -> None:  # noqa: ANN001
    with app.catalog.session() as s:
        m = store_recording(app, s, now() - timedelta(days=1))
        d = apply_retention(app, s, m)
        key, first_lock = m.storage_key, m.lock_until
    assert first_lock == d.keep_until and app.store.head(key).retain_until == first_lock
    with pytest.raises(ObjectLocked):
        app.store.delete(key)
    run(app, "rev", "tag", "add", str(m.id), "obstruction", "--reason", "driver blocked the inspection")
    with app.catalog.session() as s:
        m2 = s.get(Media, m.id)
        assert m2.keep_until is None and m2.keep_rule == "reviewer_flag"
        extended = m2.lock_until
        assert extended > first_lock + timedelta(days=150)  # the open-ended horizon
    run(app, "rev", "tag", "remove", str(m.id), "obstruction", "--reason", "wrong clip")
    with app.catalog.session() as s:
        m3 = s.get(Media, m.id)
        # Neither the lock nor the cached decision is shortened by a tag removal.
        assert m3.keep_rule == "reviewer_flag" and m3.lock_until == extended
    assert app.store.head(key).retain_until == extended
    locked = events(app, "retention_locked")
    assert len(locked) == 2 and all(e.outcome == "ok" for e in locked)


def test_removed_tag_shows_as_shortened_until_a_plan_is_approved(make_app, catalog_url) -> None:  # noqa: ANN001
    # No store locks (apply_locks = false): only the plan stands between a shortening and a purge.
    app = make_app(catalog_url=catalog_url, extra="apply_locks = false\n")
    accounts(app)
    with app.catalog.session() as s:
        mid = store_recording(app, s, now() - timedelta(days=400)).id
    run(app, "rev", "tag", "add", str(mid), "obstruction", "--reason", "blocked the inspection")
    run(app, "rev", "tag", "remove", str(mid), "obstruction", "--reason", "wrong clip")
    e = json.loads(run(app, "aud", "retention", "explain", str(mid), "--json").output)
    assert e["rule"] == "routine" and e["expired"]  # explain always decides live
    with app.catalog.session() as s:
        assert s.get(Media, mid).keep_until is None  # cached permanent until a plan confirms the shortening

    def plan_changes() -> tuple[int, list]:
        p = json.loads(run(app, "admin1", "retention", "plan", "--json").output)
        return p["id"], [(i["media_id"], i["change"]) for i in p["items"]]

    p1, ch1 = plan_changes()
    assert ch1 == [(mid, "keep_until_shortened")]
    p2, ch2 = plan_changes()  # p1 superseded unapproved: the flag stays visible
    assert ch2 == [(mid, "keep_until_shortened")]
    run(app, "admin2", "retention", "approve", str(p2))
    _, ch3 = plan_changes()
    assert ch3 == [(mid, "unchanged")]
    # That newer plan superseded the approved one: nothing approved is left to sweep.
    assert run(app, "admin1", "retention", "sweep", "--plan", str(p2), ok=False).exit_code == 1
    assert run(app, "admin1", "retention", "sweep", ok=False).exit_code == 3
    with app.catalog.session() as s:
        assert s.get(Media, mid).status == "stored"
