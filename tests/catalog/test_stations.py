"""Several stations on one catalog (issue 16): serialised migrations, the schema-too-new refusal,
device leases, job claims and custody appends from several processes, heartbeats, and the
scheduled fixity check.  Real SQLite and PostgreSQL catalogs, real processes, a real store."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text, update

from catalog import custody_log, fixity, jobs, leases, stations
from catalog.accounts import add_account
from catalog.app import App
from catalog.db import Catalog, SchemaNewer
from catalog.models import CustodyEvent, DeviceLease, DockSession, Job, Media, OffloadItem, Station, utcnow
from custody.cli import cli
from storage.base import media_key
from tests.conftest import ROOT
from web.app import create_app
from web_support import login

PY = sys.executable


def _procs(script: str, args: list[list[str]], timeout: float = 90) -> list[subprocess.CompletedProcess[str]]:
    """Start one Python process per argument list at the same moment; wait for all."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ps = [subprocess.Popen([PY, "-c", textwrap.dedent(script), *a], cwd=ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in args]
    out = []
    for p in ps:
        so, se = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, so, se))
    return out


# --------------------------------------------------------------------------- start together
MIGRATE = """
import sys, time
from catalog.db import Catalog
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
c = Catalog(sys.argv[1], station=sys.argv[3])
with c.engine.connect() as conn:
    print(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar())
"""


def test_migrations_started_together_on_a_fresh_postgresql(pg_url: str) -> None:
    start = str(time.time() + 1.5)
    res = _procs(MIGRATE, [[pg_url, start, f"st{i}"] for i in range(5)])
    for r in res:
        assert r.returncode == 0, r.stderr[-3000:]
    heads = {r.stdout.strip() for r in res}
    assert len(heads) == 1 and heads != {""}
    cat = Catalog(pg_url)
    try:
        with cat.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
            # the append-only trigger and the chain head exist once
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_trigger WHERE tgname = 'custody_events_append_only'"
                                        ).scalar() == 1
            assert conn.exec_driver_sql("SELECT count(*) FROM custody_chain_head").scalar() == 1
    finally:
        cat.dispose()


def test_migrations_started_together_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    start = str(time.time() + 1.5)
    res = _procs(MIGRATE, [[url, start, f"st{i}"] for i in range(4)])
    for r in res:
        assert r.returncode == 0, r.stderr[-3000:]
    assert len({r.stdout.strip() for r in res}) == 1


def test_a_catalog_newer_than_the_code_is_refused(catalog_url: str, make_app) -> None:  # noqa: ANN001
    cat = Catalog(catalog_url)
    with cat.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    cat.dispose()
    with pytest.raises(SchemaNewer, match="newer than this program"):
        Catalog(catalog_url)
    with pytest.raises(SchemaNewer):
        Catalog(catalog_url, auto_migrate=False)
    app = make_app(catalog_url=catalog_url)
    res = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "stations"])
    assert res.exit_code == 2, res.output
    assert "9999_from_the_future" in res.output and "Upgrade Custody" in res.output
    eng = create_engine(catalog_url)  # nothing was written: the unknown revision is still the only one
    with eng.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))] == ["9999_from_the_future"]
    eng.dispose()


# --------------------------------------------------------------------------- device leases
def test_device_lease_one_station_at_a_time(catalog_url: str) -> None:
    cat = Catalog(catalog_url, station="office")
    try:
        a = leases.acquire(cat, "A123456", "office", 30)
        with pytest.raises(leases.LeaseHeld) as e:
            leases.acquire(cat, "A123456", "brigade", 30)
        assert e.value.station == "office"
        # the same station without its device lock free does not take it either
        with pytest.raises(leases.LeaseHeld):
            leases.acquire(cat, "A123456", "office", 30)
        assert leases.renew(cat, a, 30)
        assert leases.release(cat, a)
        b = leases.acquire(cat, "A123456", "brigade", 30)
        assert b.taken_from is None  # released, not taken over
        # brigade dies: its lease runs out and office takes the device, on the record
        with cat.session() as s:
            s.execute(update(DeviceLease).values(expires_at=utcnow() - timedelta(seconds=1)))
        c = leases.acquire(cat, "A123456", "office", 30)
        assert c.taken_from == "brigade"
        assert not leases.renew(cat, b, 30), "the dead holder's renewal must fail once its lease was taken"
        assert not leases.release(cat, b)
        with cat.session() as s:
            ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "lease_taken")).scalar_one()
            assert ev.detail["from_station"] == "brigade" and ev.detail["to_station"] == "office"
            assert ev.station == "office"
            assert custody_log.verify_chain(s).ok
        # the station's own lease left by its killed process, with the device lock free: taken back at once
        d = leases.acquire(cat, "A123456", "office", 30, own_stale_ok=True)
        assert d.holder != c.holder
        assert [x.serial for x in leases.current(cat)] == ["A123456"]
    finally:
        cat.dispose()


def test_held_lease_renews_and_releases(sqlite_url: str) -> None:
    cat = Catalog(sqlite_url, station="office")
    try:
        with leases.HeldLease(cat, "DC00001", "office", 0.6) as held:
            time.sleep(1.5)  # longer than the lease: the renewal thread keeps it
            with pytest.raises(leases.LeaseHeld):
                leases.acquire(cat, "DC00001", "brigade", 0.6)
            assert not held.lost.is_set()
        leases.acquire(cat, "DC00001", "brigade", 0.6)
    finally:
        cat.dispose()


LEASE_RACE = """
import sys, time
from catalog.db import Catalog
from catalog import leases
c = Catalog(sys.argv[1], station=sys.argv[2])
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.002)
try:
    leases.acquire(c, "RACE001", sys.argv[2], 60)
    print("won")
except leases.LeaseHeld as e:
    print("held by", e.station)
"""


def test_device_lease_race_between_processes(pg_url: str) -> None:
    Catalog(pg_url).dispose()
    start = str(time.time() + 1.5)
    res = _procs(LEASE_RACE, [[pg_url, f"station-{i}", start] for i in range(4)])
    outs = [r.stdout.strip() for r in res]
    assert all(r.returncode == 0 for r in res), [r.stderr[-2000:] for r in res]
    assert outs.count("won") == 1, outs


# --------------------------------------------------------------------------- jobs across stations
CLAIMER = """
import sys, json
from catalog.db import Catalog
from catalog import jobs
c = Catalog(sys.argv[1], station=sys.argv[2])
done = []
while True:
    lease = jobs.claim(c, sys.argv[2] + "/w", 60, 3, kinds=["index"])
    if lease is None:
        break
    with c.session() as s:
        jobs.finish(s, lease)
    done.append(lease.job_id)
print(json.dumps(done))
"""


def _media(s, n: int) -> list[int]:  # noqa: ANN001
    ids = []
    for i in range(n):
        m = Media(sha256=f"{i:064x}", size=1, kind="video", storage_key=media_key(f"{i:064x}"), original_path="x",
                  original_name="x")
        s.add(m)
        s.flush()
        ids.append(m.id)
    return ids


def test_jobs_claimed_by_four_stations_each_done_once(pg_url: str) -> None:
    cat = Catalog(pg_url, station="seed")
    with cat.session() as s:
        for mid in _media(s, 200):
            s.add(Job(kind="index", media_id=mid))
    res = _procs(CLAIMER, [[pg_url, f"station-{i}"] for i in range(4)])
    assert all(r.returncode == 0 for r in res), [r.stderr[-2000:] for r in res]
    done = [j for r in res for j in json.loads(r.stdout)]
    assert len(done) == 200 and len(set(done)) == 200
    with cat.session() as s:
        rows = s.execute(select(Job.state, Job.attempts, Job.station)).all()
        assert {(st, a) for st, a, _ in rows} == {("done", 1)}
        assert {st for _, _, st in rows} <= {f"station-{i}" for i in range(4)}
        assert len({st for _, _, st in rows}) >= 2, "the work was not shared"
    cat.dispose()


def test_a_dead_workers_job_is_taken_again_and_done_once(catalog_url: str) -> None:
    a = Catalog(catalog_url, station="office")
    b = Catalog(catalog_url, station="brigade")
    try:
        with a.session() as s:
            s.add(Job(kind="index", media_id=_media(s, 1)[0]))
        first = jobs.claim(a, "office/indexer-0", 0.2, 3)
        assert first is not None and first.attempts == 1
        assert jobs.claim(b, "brigade/indexer-0", 60, 3) is None  # held
        time.sleep(0.4)  # office dies; its lease runs out
        second = jobs.claim(b, "brigade/indexer-0", 60, 3)
        assert second is not None and second.job_id == first.job_id and second.attempts == 2
        with b.session() as s:
            job = s.get(Job, second.job_id)
            assert job.station == "brigade" and "retaken" in (job.last_error or "")
        with pytest.raises(jobs.LeaseLost):  # office comes back late: it cannot commit a second result
            with a.session() as s:
                jobs.finish(s, first)
        with b.session() as s:
            jobs.finish(s, second)
        with a.session() as s:
            assert s.get(Job, first.job_id).state == "done"
    finally:
        a.dispose()
        b.dispose()


# --------------------------------------------------------------------------- one chain, many writers
APPENDER = """
import sys
from catalog.db import Catalog
from catalog import custody_log
c = Catalog(sys.argv[1], station=sys.argv[2])
for i in range(int(sys.argv[3])):
    with c.session() as s:
        custody_log.record(s, "viewed", actor="test", subject=f"{sys.argv[2]}:{i}")
"""


def test_four_processes_append_one_chain_without_gaps_or_forks(pg_url: str) -> None:
    Catalog(pg_url).dispose()
    res = _procs(APPENDER, [[pg_url, f"station-{i}", "60"] for i in range(4)])
    assert all(r.returncode == 0 for r in res), [r.stderr[-2000:] for r in res]
    cat = Catalog(pg_url)
    with cat.session() as s:
        rep = custody_log.verify_chain(s)
        assert rep.ok, rep.problems
        seqs = list(s.execute(select(CustodyEvent.seq).order_by(CustodyEvent.seq)).scalars())
        assert seqs == list(range(1, 241))
        per = dict(s.execute(select(CustodyEvent.station, func.count()).group_by(CustodyEvent.station)).all())
        assert per == {f"station-{i}": 60 for i in range(4)}
        # the station is covered by the hash: changing it breaks the chain
        s.execute(text("ALTER TABLE custody_events DISABLE TRIGGER custody_events_append_only"))
        s.execute(text("UPDATE custody_events SET station = 'forged' WHERE seq = 7"))
        assert any("7" in p for p in custody_log.verify_chain(s).problems)
        s.rollback()
    cat.dispose()


# --------------------------------------------------------------------------- station identity & status
def test_rows_record_their_station_and_the_page_status(catalog_url: str, make_app) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url, extra="")
    app.settings.station.name = "office"
    app.settings.station.heartbeat_seconds = 0.2
    (app.settings.path(app.settings.station.dock_root) / "usb-A123456-1").mkdir(parents=True)
    with app.catalog.session() as s:
        ds = DockSession(station="office", volume_path="/v", state="offloading")
        s.add(ds)
        s.flush()
        it = OffloadItem(session_id=ds.id, device_path="DCIM/1.MP4", phase="copied")
        s.add(it)
        s.add(DockSession(station="brigade", volume_path="/w", state="incomplete", message="device removed"))
        ev = custody_log.record(s, "copied", actor="t", session_id=ds.id)
    with app.catalog.session() as s:
        assert s.get(OffloadItem, it.id).station == "office"
        assert s.get(CustodyEvent, ev.id).station == "office"
    stations.beat(app, starting=True)
    with app.catalog.session() as s:
        rows, queue = stations.status(s, app.settings)
    by = {r.name: r for r in rows}
    assert by["office"].state == "up"
    assert by["office"].docked == [{"volume": "usb-A123456-1", "serial": None}]
    assert by["office"].running_offloads == 1 and by["office"].spool_waiting == 1
    assert by["office"].spool_free_bytes and by["office"].spool_free_bytes > 0
    assert by["brigade"].state == "unknown" and by["brigade"].failed_docks == 1
    time.sleep(0.7)  # three beats missed
    with app.catalog.session() as s:
        assert {r.name: r.state for r in stations.status(s, app.settings)[0]}["office"] == "down"
    res = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "stations", "--json"],
                             env={"CUSTODY_HOME": str(app.settings.home)})
    # (the CLI reads its own config: station name from the file, heartbeat 10 s; office's beat is 0.7 s old)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {s["name"] for s in data["stations"]} == {"office", "brigade"}
    stations.beat(app, stopping=True)
    with app.catalog.session() as s:
        assert {r.name: r.state for r in stations.status(s, app.settings)[0]}["office"] == "stopped"
        assert s.execute(select(Station.docked).where(Station.name == "office")).scalar() == []


def test_heartbeat_thread_beats_until_stopped(sqlite_url: str, make_app) -> None:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url)
    app.settings.station.heartbeat_seconds = 0.1
    stop = threading.Event()
    t = threading.Thread(target=stations.run_heartbeat, args=(app, stop, "hb"))
    t.start()

    def row() -> Station | None:
        with app.catalog.session() as s:
            return s.execute(select(Station)).scalar_one_or_none()

    end = time.time() + 20  # shared, loaded machines: poll, never a fixed sleep
    while (first := row()) is None and time.time() < end:
        time.sleep(0.05)
    assert first is not None and first.stopped_at is None and first.pid == os.getpid()
    while row().heartbeat_at <= first.heartbeat_at and time.time() < end:
        time.sleep(0.05)
    assert row().heartbeat_at > first.heartbeat_at, "the heartbeat did not beat again"
    stop.set()
    t.join(5)
    with app.catalog.session() as s:
        assert s.execute(select(Station.stopped_at)).scalar() is not None


# --------------------------------------------------------------------------- scheduled fixity
def _store_objects(app, n: int) -> list[int]:  # noqa: ANN001
    src = app.settings.home / "src"
    src.mkdir(exist_ok=True)
    ids = []
    for i in range(n):
        data = os.urandom(200_000 + i)
        sha = hashlib.sha256(data).hexdigest()
        p = src / sha
        p.write_bytes(data)
        app.store.put_file(media_key(sha), p, sha, len(data))
        with app.catalog.session() as s:
            m = Media(sha256=sha, size=len(data), kind="video", storage_key=media_key(sha), original_path=f"{i}.mp4",
                      original_name=f"{i}.mp4", verified_at=utcnow() - timedelta(days=200))
            s.add(m)
            s.flush()
            custody_log.record(s, "stored", actor="t", media_id=m.id)
            ids.append(m.id)
    return ids


def test_scheduled_fixity_checks_each_object_once_and_reports_failures(catalog_url: str, make_app) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url, extra="[fixity]\nfixity_days = 90\nbytes_per_second = 0\n")
    app.settings.station.name = "office"
    ids = _store_objects(app, 4)
    with app.catalog.session() as s:  # one object recently proved good: not due (but its rolling share may be)
        s.get(Media, ids[3]).verified_at = utcnow()
    # damage one object in the store (a bad disk): the local store keeps it read-only
    with app.catalog.session() as s:
        key = media_key(s.get(Media, ids[1]).sha256)
    path = Path(app.store.local_path(key))
    path.chmod(0o600)
    path.write_bytes(b"rotten" + path.read_bytes()[6:])
    queued = fixity.schedule(app)
    assert queued >= 3
    assert fixity.schedule(app) == 0, "an object with an open fixity job is not queued twice"
    other = Catalog(app.settings.catalog_url, station="brigade")
    try:
        lease = jobs.claim(other, "brigade/fixity-0", 60, 3, kinds=jobs.FIXITY_KINDS)
        assert lease is not None
        assert fixity.run_job(_with_catalog(app, other), lease) == "done"
    finally:
        other.dispose()
    done = fixity.run_pending(app, "office/fixity-0")
    assert done == {"done": queued - 1}
    with app.catalog.session() as s:
        evs = s.execute(select(CustodyEvent).where(CustodyEvent.action == "fixity")).scalars().all()
        assert len(evs) == queued and len({e.media_id for e in evs}) == queued  # each object once
        assert {e.station for e in evs} == {"office", "brigade"}
        bad = [e for e in evs if e.outcome == "failed"]
        assert [e.media_id for e in bad] == [ids[1]] and "hashes to" in bad[0].detail["problem"]
        good = s.get(Media, ids[0])
        assert good.verified_at > utcnow() - timedelta(minutes=1)
        assert s.get(Media, ids[1]).verified_at < utcnow() - timedelta(days=100)  # not proved good
        assert s.execute(select(func.count(Job.id)).where(Job.kind == "fixity", Job.state != "done")).scalar() == 0
        rows, _ = stations.status(s, app.settings)
        assert {r.name: r.fixity_failures for r in rows}.get(bad[0].station) == 1
    res = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "verify", "--recent", "--json"],
                             env={"CUSTODY_HOME": str(app.settings.home)})
    assert res.exit_code == 1, res.output
    data = json.loads(res.output)
    assert data["checked"] == queued and data["failed"] == 1
    assert data["failures"][0]["media_id"] == ids[1]


def _with_catalog(app, catalog):  # noqa: ANN001, ANN202
    """The same settings and store, another station's catalog handle (a second station in-process)."""
    other = App(app.settings)
    other.__dict__["catalog"] = catalog
    other.__dict__["store"] = app.store
    return other


def test_fixity_rate_limit_holds_the_read_rate() -> None:
    lim = fixity.RateLimit(4_000_000)
    t0 = time.monotonic()
    for _ in range(12):
        lim.take(1_000_000)  # 12 MB at 4 MB/s with a 4 MB burst: at least 2 s
    assert time.monotonic() - t0 >= 1.9


def test_station_page_shows_every_station_and_a_down_one(sqlite_url: str, make_app) -> None:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url)
    now = utcnow()
    with app.catalog.session() as s:
        add_account(s, "admin", "administrator", password="admin-pass-1", created_by="test")
        s.add(Station(name="office", host="dock-office", heartbeat_at=now, started_at=now, spool_free_bytes=5 * 2**30,
                      docked=[{"volume": "usb-A123456-1", "serial": "A123456"}], running_offloads=1))
        s.add(Station(name="brigade", host="dock-brigade", heartbeat_at=now - timedelta(minutes=5),
                      started_at=now - timedelta(hours=1), docked=[]))
    with app.catalog.session() as s:
        s.info["station"] = "brigade"
        custody_log.record(s, "fixity", actor="station:brigade", outcome="failed", media_id=42,
                           detail={"problem": "media 42: object hashes to 00ff, catalog says abcd"})
    with TestClient(create_app(app)) as client:
        login(client, "admin", "admin-pass-1")
        page = client.get("/admin/station").text
    assert 'data-station="office" data-state="up"' in page
    assert 'data-station="brigade" data-state="down"' in page
    assert "A123456" in page and "5.0 GiB" in page
    assert "media 42: object hashes to 00ff" in page
