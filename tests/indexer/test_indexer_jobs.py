"""The job queue: leases, retries, dead workers, concurrent workers on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from indexer_support import add_media

from catalog import jobs
from catalog.models import CustodyEvent, Derivative, Job, Media
from indexer.worker import run_job, run_pending, run_worker
from ingest.simulate import make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")


def bare_jobs(app, n: int, tmp_path: Path) -> list[int]:  # noqa: ANN001
    """n recordings whose index jobs we claim without running (tiny distinct files)."""
    ids = []
    for i in range(n):
        f = tmp_path / f"blob{i}.bin"
        f.write_bytes(f"not media {i}".encode())
        ids.append(add_media(app, f, "other"))
    with app.catalog.session() as s:
        return [j.id for j in s.query(Job).filter(Job.media_id.in_(ids)).order_by(Job.id)]


def job(app, job_id: int) -> Job:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.get(Job, job_id)


def test_concurrent_claims_take_each_job_once(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    ids = bare_jobs(app, 24, tmp_path)
    taken: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        start.wait()
        while True:
            lease = jobs.claim(app.catalog, f"w{n}", 600, 3)
            if lease is None:
                return
            with lock:
                taken.append(lease.job_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(taken) == ids  # every job once: none twice, none lost
    with app.catalog.session() as s:
        assert {j.state for j in s.query(Job)} == {"running"}
        assert {j.attempts for j in s.query(Job)} == {1}


def test_expired_lease_is_retaken_and_the_old_worker_cannot_finish(make_app, catalog_url: str,
                                                                    tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url)
    [jid] = bare_jobs(app, 1, tmp_path)
    old = jobs.claim(app.catalog, "dying", 0.2, 3)
    assert old and old.job_id == jid
    assert jobs.claim(app.catalog, "other", 600, 3) is None  # the lease still stands
    time.sleep(0.4)
    new = jobs.claim(app.catalog, "other", 600, 3)
    assert new and new.job_id == jid and new.attempts == 2
    assert "retaken after the lease of dying expired" in job(app, jid).last_error
    with pytest.raises(jobs.LeaseLost):
        with app.catalog.session() as s:
            jobs.finish(s, old)
    assert jobs.fail(app.catalog, old, "late failure", 3, 0) == "lost"
    assert not jobs.renew(app.catalog, old, 600)
    with app.catalog.session() as s:
        jobs.finish(s, new)
    assert job(app, jid).state == "done"


def test_failures_are_retried_then_recorded(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url, extra="[indexer]\nmax_attempts = 2\nretry_seconds = 0\n")
    clip = make_video(tmp_path / "gone.mp4", 1.0, audio=False)
    mid = add_media(app, clip, "video")
    # The object vanishes from the store (a fault the worker must survive, not hide).
    with app.catalog.session() as s:
        s.get(Media, mid).storage_key = "media/sha256/00/00/" + "0" * 64
    assert run_pending(app, "w1") == {"pending": 1, "failed": 1}
    j = job(app, 1)
    assert j.state == "failed" and j.attempts == 2 and j.last_error
    with app.catalog.session() as s:
        assert s.get(Media, mid).index_state == "failed"
        ev = s.query(CustodyEvent).filter(CustodyEvent.action == "indexed").one()
        assert ev.outcome == "failed" and ev.media_id == mid and ev.detail["reason"] == j.last_error[:1000]


def test_backoff_delays_the_retry(make_app, tmp_path: Path) -> None:
    app = make_app(extra="[indexer]\nretry_seconds = 60\n")
    [jid] = bare_jobs(app, 1, tmp_path)
    lease = jobs.claim(app.catalog, "w", 600, 3)
    assert jobs.fail(app.catalog, lease, "boom", 3, 60) == "pending"
    assert jobs.claim(app.catalog, "w", 600, 3) is None  # not before the back-off ends
    assert job(app, jid).last_error == "boom"


def test_a_dead_workers_job_is_finished_by_another_exactly_once(make_app, catalog_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=catalog_url, extra="[indexer]\nidle_poll_seconds = 0.1\njob_lease_seconds = 1\n")
    ids = [add_media(app, make_video(tmp_path / f"c{i}.mp4", 1.0 + i / 10, audio=False), "video") for i in range(4)]
    dead = jobs.claim(app.catalog, "crashed-station", 0.5, 3)  # claimed, then the worker died
    assert dead is not None
    stop = threading.Event()
    workers = [threading.Thread(target=run_worker, args=(app, stop, f"w{n}")) for n in range(2)]
    for w in workers:
        w.start()
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            with app.catalog.session() as s:
                if s.query(Job).filter(Job.kind.in_(jobs.INDEX_KINDS), Job.state != "done").count() == 0:
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert not any(w.is_alive() for w in workers)
    with app.catalog.session() as s:
        assert [j.state for j in s.query(Job).filter(Job.kind.in_(jobs.INDEX_KINDS))] == ["done"] * 4
        assert s.get(Job, dead.job_id).attempts == 2
        indexed = Counter(e.media_id for e in s.query(CustodyEvent).filter(CustodyEvent.action == "indexed"))
        assert indexed == Counter(ids)  # each recording indexed once
        per_media = Counter(d.media_id for d in s.query(Derivative).filter(Derivative.kind == "contact_sheet"))
        assert per_media == Counter(ids)
        assert {m.index_state for m in s.query(Media)} == {"done"}


def test_run_job_survives_a_missing_recording(make_app, tmp_path: Path) -> None:
    app = make_app(extra="[indexer]\nmax_attempts = 1\n")
    [jid] = bare_jobs(app, 1, tmp_path)
    with app.catalog.session() as s:
        s.add(Job(kind="index", media_id=None))
    lease = jobs.claim(app.catalog, "w", 600, 1)
    assert run_job(app, lease) == "done"  # an 'other' file: indexed, nothing to decode
    lease = jobs.claim(app.catalog, "w", 600, 1)
    assert run_job(app, lease) == "failed"
    assert "names no recording" in job(app, lease.job_id).last_error
    assert job(app, jid).state == "done"


def test_enqueue_does_not_duplicate_open_work(make_app, tmp_path: Path) -> None:
    app = make_app()
    [jid] = bare_jobs(app, 1, tmp_path)
    with app.catalog.session() as s:
        mid = s.get(Job, jid).media_id
        assert jobs.enqueue(s, mid, "index").id == jid
        assert jobs.enqueue(s, mid, "reindex").id != jid
        assert jobs.counts(s) == {"pending": 2}
