"""Web redactions are catalog jobs (disclose/queue.py): one at a time, finished after the web
server is killed mid-redaction, never made twice."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from catalog import jobs
from catalog.accounts import add_account
from catalog.models import Job, Media, Redaction
from disclose import queue, redact
from disclose_support import make_clip, store_original
from field_support import Server
from web.app import create_app
from web.routes import disclose as disclose_routes
from web_support import PASSWORD, login


def _redactions_of(app, mid: int) -> list[Redaction]:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.execute(select(Redaction).where(Redaction.original_media_id == mid)).scalars().all()


def _job(app, job_id: int) -> Job:  # noqa: ANN001
    with app.catalog.session() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def test_redactions_asked_together_run_one_at_a_time(make_app, tmp_path: Path, ffmpeg_ok: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disclose_routes, "WAIT_SECONDS", 0)
    app = make_app()
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer", password=PASSWORD)
    mid = store_original(app, make_clip(tmp_path / "REC_0101.mp4", seconds=4.0).path)
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev1", PASSWORD)
        runs = [client.post(f"/media/{mid}/redact", data={"faces": "1", "mute": mute, "reason": "public", "csrf": csrf},
                            follow_redirects=False).headers["location"] for mute in ("0-1", "1-2", "2-3")]
        ids = [int(r.rsplit("/", 1)[1]) for r in runs]
        most_at_once, deadline = 0, time.time() + 240
        while True:
            states = [_job(app, i).state for i in ids]
            most_at_once = max(most_at_once, states.count("running"))
            if all(st == "done" for st in states):
                break
            assert "failed" not in states, [(_job(app, i).last_error) for i in ids]
            assert time.time() < deadline, states
            time.sleep(0.05)
        made = [client.get(r, follow_redirects=False).headers["location"] for r in runs]
    assert most_at_once == 1
    assert len(set(made)) == 3 and len(_redactions_of(app, mid)) == 3
    assert sorted(r.log["job"] for r in _redactions_of(app, mid)) == sorted(ids)


def test_a_job_whose_copy_was_made_is_finished_with_it_not_made_again(make_app, tmp_path: Path,
                                                                       ffmpeg_ok: None) -> None:
    """The server died after storing the copy and before marking the job done."""
    app = make_app()
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer", password=PASSWORD)
    mid = store_original(app, make_clip(tmp_path / "REC_0102.mp4", seconds=2.0).path)
    job_id = queue.request(app, mid, redact.Plan(mute=[(0.0, 1.0)]), "public release", "rev1", "10.0.0.9")
    cfg = app.settings.indexer
    lease = jobs.claim(app.catalog, "w1", cfg.job_lease_seconds, cfg.max_attempts, kinds=("redact",))
    assert queue.run(app, lease) == "done"
    first = _job(app, job_id).params["derived_id"]
    with app.catalog.session() as s:  # as if the finish never happened
        job = s.get(Job, job_id)
        job.state, job.params = "pending", {k: v for k, v in job.params.items() if k != "derived_id"}
    lease = jobs.claim(app.catalog, "w2", cfg.job_lease_seconds, cfg.max_attempts, kinds=("redact",))
    assert lease.job_id == job_id and queue.run(app, lease) == "done"
    assert _job(app, job_id).params["derived_id"] == first
    assert len(_redactions_of(app, mid)) == 1
    red = _redactions_of(app, mid)[0]
    assert red.created_by == "rev1" and red.log["job"] == job_id


def test_a_request_that_cannot_succeed_fails_at_once_with_its_reason(make_app, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app()
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer", password=PASSWORD)
    mid = store_original(app, make_clip(tmp_path / "REC_0103.mp4", seconds=1.0).path)
    job_id = queue.request(app, mid, redact.Plan(mute=[(0.0, 0.5)]), "public release", "nobody", None)
    cfg = app.settings.indexer
    lease = jobs.claim(app.catalog, "w1", cfg.job_lease_seconds, cfg.max_attempts, kinds=("redact",))
    assert queue.run(app, lease) == "failed"
    st = queue.status(app, job_id)
    assert st.state == "failed" and "no account named 'nobody'" in st.error
    assert _redactions_of(app, mid) == []


def test_a_redaction_survives_a_killed_web_server(make_app, tmp_path: Path, ffmpeg_ok: None) -> None:
    app = make_app()
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer", password=PASSWORD)
    mid = store_original(app, make_clip(tmp_path / "REC_0104.mp4", seconds=24.0).path)
    server = Server(app.settings.config_path, tmp_path).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # what the form queues (its own test is above), without the form's wait for a short one
            job_id = queue.request(app, mid, redact.Plan(faces=True), "public release", "rev1", "10.0.0.9")
            progress = f"/redact-runs/{job_id}"
            deadline = time.time() + 60
            while _job(app, job_id).state != "running":
                assert time.time() < deadline
                time.sleep(0.05)
            time.sleep(1.0)
            server.kill()  # mid-redaction (asserted below)
            killed = _job(app, job_id)
            assert killed.state == "running" and _redactions_of(app, mid) == []
            server.start()  # the same station: its new worker takes the dead server's job back
            deadline = time.time() + 300
            while (job := _job(app, job_id)).state != "done":
                assert job.state != "failed" and time.time() < deadline, (job.state, job.last_error)
                time.sleep(0.2)
            csrf = login(client, "rev1", PASSWORD)
            r = client.get(progress, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == f"/redactions/{job.params['derived_id']}"
    finally:
        server.stop()
    reds = _redactions_of(app, mid)
    assert len(reds) == 1 and reds[0].derived_media_id == job.params["derived_id"]
    assert job.attempts == 2 and "stopped" in (job.last_error or "")
    with app.catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Media).where(Media.derived_from == mid)).scalar() == 1
