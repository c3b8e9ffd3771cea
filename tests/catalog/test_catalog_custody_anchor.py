"""Issue 17: a custody log no database administrator can rewrite unseen.

Each probe scenario is played against a real catalog (SQLite and PostgreSQL) with a real
store: `custody verify` (catalog.audit.verify_all) must name it, and must never crash.
"""
from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text, update

from anchor_support import cut_tail, drop_guards, populate, problems, rehash_from, renumber
from catalog import anchor, custody_log
from catalog.audit import verify_all
from catalog.models import ChainHead, CustodyEvent, DockSession, utcnow
from catalog.stationkey import key_id_of, raw_public
from catalog.backup import backup
from helpers_ingest import run_cli


@pytest.fixture
def app(make_app, catalog_url):  # noqa: ANN001, ANN201
    a = make_app(catalog_url=catalog_url)
    populate(a, events=60)
    assert anchor.write_checkpoint(a, "test") is not None
    return a


def test_clean_log_verifies_and_key_is_private(app) -> None:  # noqa: ANN001
    rep = verify_all(app, actor="auditor")
    assert rep.ok, problems(rep)
    assert rep.events_checked >= 60 and rep.signatures_checked == rep.events_checked
    assert rep.checkpoints_checked == 1
    key_file = app.settings.path(app.settings.custody_log.key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    keys = list(app.store.list_keys(anchor.KEYS))
    assert len(keys) == 1 and app.station_key.key_id in keys[0]
    # verify itself anchored the (clean) log again
    assert len(list(app.store.list_keys(anchor.CHECKPOINTS))) == 2


def test_forged_event_and_head_moved(app) -> None:  # noqa: ANN001
    """An INSERT and an UPDATE, no trigger bypass: hashes are right, the signature is missing."""
    with app.catalog.sessionmaker() as s:
        head = s.get(ChainHead, 1)
        ev = CustodyEvent(seq=head.seq + 1, at=utcnow(), actor="alice", action="unlinked", outcome="ok",
                          media_id=1, session_id=None, subject="media:1", remote_addr=None, detail={"forged": 1},
                          prev_hash=head.hash)
        ev.hash = custody_log.compute_hash(head.hash, custody_log.event_fields(ev))
        s.add(ev)
        head.seq, head.hash = ev.seq, ev.hash
        s.commit()
        forged = ev.seq
    rep = verify_all(app, actor="auditor")
    assert not rep.ok
    assert f"event {forged}: no station signature" in problems(rep)


def test_last_25_deleted_and_head_moved_back(app) -> None:  # noqa: ANN001
    drop_guards(app)
    cut_tail(app, 25)
    with app.catalog.sessionmaker() as s:
        last = s.execute(select(CustodyEvent.seq, CustodyEvent.hash).order_by(CustodyEvent.seq.desc()).limit(1)).one()
        s.execute(update(ChainHead).values(seq=last.seq, hash=last.hash))
        s.commit()
    rep = verify_all(app, actor="auditor")
    assert not rep.ok
    msg = problems(rep)
    assert "the log ends at event 35 but checkpoint custody-log/checkpoints/" in msg and "events cut or deleted" in msg


def test_event_edited_and_later_hashes_recomputed(app) -> None:  # noqa: ANN001
    drop_guards(app)
    with app.catalog.sessionmaker() as s:
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.seq == 10)).scalar_one()
        ev.detail = {"i": "edited"}
        s.commit()
    rehash_from(app, 10)
    rep = verify_all(app, actor="auditor")
    msg = problems(rep)
    assert "event 60 hashes to" in msg and "rewritten or re-hashed" in msg
    assert "events 10..60: station signature invalid" in msg


def test_account_events_erased_and_renumbered(app) -> None:  # noqa: ANN001
    drop_guards(app)
    with app.catalog.engine.begin() as c:
        c.execute(text("DELETE FROM custody_events WHERE actor = 'alice'"))
    renumber(app)
    rep = verify_all(app, actor="auditor")
    msg = problems(rep)
    assert not rep.ok
    assert "checkpoint custody-log/checkpoints/" in msg
    assert "station signature invalid" in msg


def test_whole_log_deleted_and_head_reset(app) -> None:  # noqa: ANN001
    drop_guards(app)
    with app.catalog.engine.begin() as c:
        c.execute(text("DELETE FROM custody_events"))
        c.execute(text(f"UPDATE custody_chain_head SET seq = 0, hash = '{custody_log.GENESIS}'"))
    rep = verify_all(app, actor="auditor")
    msg = problems(rep)
    assert "the log ends at event 0 but checkpoint" in msg
    assert "media 1: no `stored` event" in msg and "media 3: no `stored` event" in msg


def test_dba_cuts_10_and_rehashes_everything(app) -> None:  # noqa: ANN001
    """The issue's test: drop triggers, cut the last 10 events, recompute every hash and the head."""
    drop_guards(app)
    cut_tail(app, 10)
    rehash_from(app, 1)
    rep = verify_all(app, actor="auditor")
    msg = problems(rep)
    assert "the log ends at event 50 but checkpoint" in msg


def test_forged_row_with_next_seq_does_not_stop_the_writer(app) -> None:  # noqa: ANN001
    """One INSERT with the next seq and a wrong hash: every later write used to fail on UNIQUE(seq)."""
    with app.catalog.engine.begin() as c:
        head = c.execute(text("SELECT seq, hash FROM custody_chain_head")).one()
        c.execute(text("INSERT INTO custody_events (seq, at, actor, action, outcome, detail, prev_hash, hash) "
                       "VALUES (:s, :at, 'mallory', 'stored', 'ok', '{}', :p, :h)"),
                  {"s": head.seq + 1, "at": utcnow().replace(tzinfo=None), "p": head.hash, "h": "f" * 64})
    with app.catalog.session() as s:
        ev = custody_log.record(s, "viewed", actor="bob", subject="media:1")
    assert ev.seq == head.seq + 3  # the break is recorded first, at head.seq + 2
    with app.catalog.session() as s:
        brk = s.execute(select(CustodyEvent).where(CustodyEvent.seq == head.seq + 2)).scalar_one()
        assert brk.action == "chain_break" and brk.detail["foreign_seqs"] == [head.seq + 1]
        assert brk.prev_hash == head.hash
    rep = verify_all(app, actor="auditor")  # must report, not crash, and log its own run
    msg = problems(rep)
    assert f"event {head.seq + 1} (stored) was altered" in msg
    assert f"event {head.seq + 1}: no station signature" in msg
    assert "the custody writer recorded a break: rows beyond the chain head" in msg
    with app.catalog.session() as s:
        assert s.execute(select(CustodyEvent.action).order_by(CustodyEvent.seq.desc()).limit(1)).scalar() == "verified"


def test_reordered_and_conflicting_rows_are_reported(app) -> None:  # noqa: ANN001
    drop_guards(app)
    with app.catalog.engine.begin() as c:  # swap two events' numbers
        c.execute(text("UPDATE custody_events SET seq = -1 WHERE seq = 20"))
        c.execute(text("UPDATE custody_events SET seq = 20 WHERE seq = 21"))
        c.execute(text("UPDATE custody_events SET seq = 21 WHERE seq = -1"))
        # a row that claims the same predecessor as event 31 (a fork), with a bogus time value
        h = c.execute(text("SELECT prev_hash FROM custody_events WHERE seq = 31")).scalar_one()
        c.execute(text("UPDATE custody_events SET prev_hash = :h WHERE seq = 32"), {"h": h})
    rep = verify_all(app, actor="auditor")
    msg = problems(rep)
    assert "event 21 (row id" in msg and "rows reordered or renumbered" in msg
    assert "event 32 conflicts with event 31" in msg


def test_unreadable_row_is_reported_not_a_crash(make_app, sqlite_url) -> None:  # noqa: ANN001
    a = make_app(catalog_url=sqlite_url)
    populate(a, events=10)
    with a.catalog.engine.begin() as c:
        c.execute(text("INSERT INTO custody_events (seq, at, actor, action, outcome, detail, prev_hash, hash) "
                       "VALUES (11, 'not a time', 'mallory', 'x', 'ok', '{broken', 'a', 'b')"))
        c.execute(text("UPDATE custody_chain_head SET seq = 11"))
    rep = verify_all(a, actor="auditor")
    assert "event 11 (row id" in problems(rep) and "cannot be read" in problems(rep)


def test_forged_checkpoint_with_the_wrong_key_is_rejected(app) -> None:  # noqa: ANN001
    cp = anchor.write_checkpoint(app, "test")
    body = dict(cp.body)
    body["hash"] = "0" * 64
    rogue = Ed25519PrivateKey.generate()
    body["sig"] = base64.b64encode(rogue.sign(anchor.checkpoint_message(body))).decode()
    key = cp.key.replace(".json", "-forged.json")
    app.store.put_bytes(key, json.dumps(body).encode())
    rep = verify_all(app, actor="auditor")
    msg = problems(rep)
    assert f"checkpoint {key}" in msg and "rejected as forged: signature by key" in msg
    # the forged checkpoint is not used: the log itself is not blamed
    assert "rewritten" not in msg


def test_checkpoint_from_an_untrusted_station_is_rejected(app) -> None:  # noqa: ANN001
    rogue = Ed25519PrivateKey.generate()
    kid = key_id_of(raw_public(rogue.public_key()))
    cp = anchor.write_checkpoint(app, "test")
    body = {**cp.body, "key_id": kid, "seq": 999}
    body["sig"] = base64.b64encode(rogue.sign(anchor.checkpoint_message(body))).decode()
    key = f"{anchor.CHECKPOINTS}{body['chain_id']}/{999:015d}-evil-x.json"
    app.store.put_bytes(key, json.dumps(body).encode())
    msg = problems(verify_all(app, actor="auditor"))
    assert "not a trusted station key" in msg and "999" in msg


def test_daemon_anchor_thread_checkpoints_after_a_dock_and_at_stop(make_app, sqlite_url) -> None:  # noqa: ANN001
    a = make_app(catalog_url=sqlite_url, extra="[custody_log]\ncheckpoint_minutes = 60.0\n")
    populate(a, events=5)
    stop = threading.Event()
    t = threading.Thread(target=anchor.run_worker, args=(a, stop, "t/anchor-0"))
    t.start()
    try:
        deadline = time.time() + 10
        while not list(a.store.list_keys(anchor.CHECKPOINTS)) and time.time() < deadline:
            time.sleep(0.1)
        assert len(list(a.store.list_keys(anchor.CHECKPOINTS))) == 1  # anchored when the station starts
        time.sleep(0.8)
        assert len(list(a.store.list_keys(anchor.CHECKPOINTS))) == 1  # head unchanged, period not over: no more
        with a.catalog.session() as s:
            s.add(DockSession(station=a.station, volume_path="/docks/x", state="complete", ended_at=utcnow()))
            custody_log.record(s, "session_complete", actor="station:test")
        deadline = time.time() + 10
        while len(list(a.store.list_keys(anchor.CHECKPOINTS))) < 2 and time.time() < deadline:
            time.sleep(0.1)
        keys = list(a.store.list_keys(anchor.CHECKPOINTS))
        assert len(keys) == 2 and json.loads(b"".join(a.store.iter_bytes(keys[1])))["reason"] == "dock"
        with a.catalog.session() as s:
            custody_log.record(s, "viewed", actor="bob")
    finally:
        stop.set()
        t.join(10)
    bodies = [json.loads(b"".join(a.store.iter_bytes(k))) for k in a.store.list_keys(anchor.CHECKPOINTS)]
    assert [b["reason"] for b in bodies] == ["periodic", "dock", "shutdown"] and bodies[2]["seq"] == 7
    info = a.store.head(next(iter(a.store.list_keys(anchor.CHECKPOINTS))))
    assert info.retain_until is not None  # under the store's lock


def test_cli_verify_names_the_forgery(app) -> None:  # noqa: ANN001
    with app.catalog.engine.begin() as c:
        head = c.execute(text("SELECT seq, hash FROM custody_chain_head")).one()
        c.execute(text("INSERT INTO custody_events (seq, at, actor, action, outcome, detail, prev_hash, hash) "
                       "VALUES (:s, :at, 'mallory', 'unlinked', 'ok', '{}', :p, :h)"),
                  {"s": head.seq + 1, "at": utcnow().replace(tzinfo=None), "p": head.hash, "h": "e" * 64})
    home = app.settings.home
    r = run_cli(["verify"], app.settings.config_path, home)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"event {head.seq + 1}: no station signature" in r.stdout and "PROBLEM custody_log" in r.stdout


@pytest.mark.s3
def test_checkpoints_and_backup_on_s3_object_lock(make_app, sqlite_url, s3_url, seaweed) -> None:  # noqa: ANN001
    """On a real S3 store (SeaweedFS, bucket with Object Lock): checkpoints are listed, locked and checked."""
    a = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    populate(a, events=40)
    cp = anchor.write_checkpoint(a, "test")
    info = a.store.head(cp.key)
    assert info.retain_until is not None and info.lock_mode == a.settings.storage.object_lock_mode
    res = backup(a, "admin")
    assert a.store.head(res.key).retain_until is not None
    rep = verify_all(a, actor="auditor")
    assert rep.ok, problems(rep)
    assert rep.checkpoints_checked == 2  # the test's and the backup's
    drop_guards(a)
    cut_tail(a, 10)
    rehash_from(a, 1)
    msg = problems(verify_all(a, actor="auditor"))
    assert "but checkpoint custody-log/checkpoints/" in msg and "events cut or deleted" in msg


def test_two_stations_trust_each_others_published_keys(make_app, catalog_url, tmp_path) -> None:  # noqa: ANN001
    """Stations sharing a catalog sign with their own keys; each key is published on first use."""
    a = make_app(catalog_url=catalog_url)
    populate(a, events=8)
    b = make_app(catalog_url=catalog_url,
                 extra=f'[custody_log]\nkey_file = "{tmp_path / "b.pem"}"\n')
    with b.catalog.session() as s:
        custody_log.record(s, "viewed", actor="carol")
    assert a.station_key.key_id != b.station_key.key_id
    assert len(list(a.store.list_keys(anchor.KEYS))) == 2
    rep = verify_all(b, actor="auditor")
    assert rep.ok, problems(rep)
    # strict mode: only listed keys count
    pub = tmp_path / "a.pub"
    pub.write_text(f"{a.station_key.public_b64} station-a\n")
    strict = make_app(catalog_url=catalog_url, extra=f'[custody_log]\nkey_file = "{tmp_path / "b.pem"}"\n'
                      "trust_store_keys = false\n")
    msg = problems(verify_all(strict, actor="auditor"))
    assert f"which is not a trusted station key" in msg and a.station_key.key_id in msg
    strict2 = make_app(catalog_url=catalog_url, extra=f'[custody_log]\nkey_file = "{tmp_path / "b.pem"}"\n'
                       f'trust_store_keys = false\ntrusted_keys = ["{pub}"]\n')
    rep = verify_all(strict2, actor="auditor")
    assert rep.ok, problems(rep)


def test_head_row_deleted_is_reported_and_the_writer_goes_on(app) -> None:  # noqa: ANN001
    with app.catalog.engine.begin() as c:
        c.execute(text("DELETE FROM custody_chain_head"))
    rep = verify_all(app, actor="auditor")  # reports, and still writes its own event
    msg = problems(rep)
    assert "chain head row is missing" in msg
    with app.catalog.session() as s:
        last = s.execute(select(CustodyEvent).order_by(CustodyEvent.seq.desc()).limit(2)).scalars().all()
        assert [e.action for e in last] == ["verified", "chain_break"] and last[1].seq == 61
    assert "recorded a break: the chain head row was missing" in problems(verify_all(app, actor="auditor"))
