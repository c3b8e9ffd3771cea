"""Write-once storage on a real SeaweedFS with Object Lock, and the store self-test."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from sqlalchemy import select

from custody.cli import cli
from core.errors import ObjectLocked
from catalog.models import CustodyEvent, Media
from retention.lock import apply_retention
from retention.plan import approve_plan, create_plan
from retention.selftest import run_selftest
from retention.sweep import sweep
from retention_support import accounts, actor, store_recording

pytestmark = pytest.mark.s3
UTC = timezone.utc


def now() -> datetime:
    return datetime.now(UTC)


def run(app, user: str, *args: str):  # noqa: ANN001, ANN201
    return CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", user, *args])


def versions(seaweed, bucket: str, key: str) -> list[dict]:  # noqa: ANN001
    return seaweed.client().list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])


@pytest.fixture
def s3app(make_app, sqlite_url, s3_url, seaweed):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=sqlite_url, storage_url=s3_url, endpoint=seaweed.endpoint)
    accounts(app)
    return app


def test_locked_recording_survives_delete_attempts(s3app, seaweed) -> None:  # noqa: ANN001
    app = s3app
    with app.catalog.session() as s:
        m = store_recording(app, s, now() - timedelta(days=2), data=b"evidence bytes " * 100)
        d = apply_retention(app, s, m)
        key, mid = m.storage_key, m.id
    info = app.store.head(key)
    assert info.lock_mode == "COMPLIANCE" and abs((info.retain_until - d.keep_until).total_seconds()) < 1
    with pytest.raises(ObjectLocked):
        app.store.delete(key)  # what the sweeper would call: every version, by id
    vid = versions(seaweed, app.store.bucket, key)[0]["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        seaweed.client().delete_object(Bucket=app.store.bucket, Key=key, VersionId=vid)
    with pytest.raises(ObjectLocked):  # retain-until cannot be shortened behind our back
        app.store.set_retention(key, now() + timedelta(days=1), "COMPLIANCE")
    assert b"".join(app.store.iter_bytes(key)) == b"evidence bytes " * 100

    # A hold mirrors into the object's legal-hold flag, and its release clears it.
    assert run(app, "admin1", "hold", "add", "media", str(mid), "--reason", "court order 2026-17").exit_code == 0
    assert app.store.head(key).legal_hold is True
    assert run(app, "admin2", "hold", "release", "1", "--reason", "order lifted").exit_code == 0
    assert app.store.head(key).legal_hold is False
    # Lengthening extends the lock; it is never shortened afterwards.
    assert run(app, "rev", "tag", "add", str(mid), "accident", "--reason", "vehicle collision").exit_code == 0
    extended = app.store.head(key).retain_until
    assert extended > info.retain_until + timedelta(days=100)
    assert run(app, "rev", "tag", "remove", str(mid), "accident", "--reason", "mis-tagged").exit_code == 0
    assert app.store.head(key).retain_until == extended


def test_sweep_on_s3_deletes_every_version_and_respects_locks(s3app, seaweed) -> None:  # noqa: ANN001
    app = s3app
    with app.catalog.session() as s:
        due = store_recording(app, s, now() - timedelta(days=800), derivatives=1)
        was_tagged = store_recording(app, s, now() - timedelta(days=800))
        due_key, tagged_key, tagged_id = due.storage_key, was_tagged.storage_key, was_tagged.id
    # Tagged, locked for the open-ended horizon, then un-tagged: due by the rules, locked by the store.
    assert run(app, "rev", "tag", "add", str(tagged_id), "complaint", "--reason", "complaint 88").exit_code == 0
    assert run(app, "rev", "tag", "remove", str(tagged_id), "complaint", "--reason", "withdrawn").exit_code == 0
    a1, a2 = actor(app, "admin1"), actor(app, "admin2")
    with app.catalog.session() as s:
        plan = create_plan(app, s, a1)
        assert plan.summary["counts"]["deletable"] == 1 and plan.summary["counts"]["store_locked"] == 1
        approve_plan(app, s, a2, plan.id)
    rep = sweep(app, a1)
    assert rep.deleted == [due.id] and rep.failed == []
    assert versions(seaweed, app.store.bucket, due_key) == []
    assert app.store.head(tagged_key) is not None
    with app.catalog.session() as s:
        assert s.execute(select(Media.status).where(Media.id == due.id)).scalar_one() == "purged"


def test_selftest_passes_on_seaweedfs_with_object_lock(s3app) -> None:  # noqa: ANN001
    rep = run_selftest(s3app.store, "COMPLIANCE", lock_seconds=2)
    assert rep.ok, rep.as_json()
    names = {c.name: c.status for c in rep.checks}
    assert names == {"object_lock_enabled": "pass", "retention_accepted": "pass", "legal_hold_accepted": "pass",
                     "lock_visible": "pass", "delete_refused": "pass", "overwrite_refused": "pass",
                     "shorten_refused": "pass", "legal_hold_blocks_delete": "pass", "delete_after_release": "pass"}
    r = run(s3app, "admin1", "storage", "selftest", "--seconds", "2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True


def test_selftest_reports_a_bucket_without_object_lock(make_app, sqlite_url, seaweed) -> None:  # noqa: ANN001
    bucket = f"nolock-{uuid.uuid4().hex[:10]}"
    seaweed.client().create_bucket(Bucket=bucket)  # made by someone else, without Object Lock
    app = make_app(catalog_url=sqlite_url, storage_url=f"s3://{bucket}", endpoint=seaweed.endpoint)
    accounts(app)
    rep = run_selftest(app.store, "COMPLIANCE", lock_seconds=1)
    assert not rep.ok
    failed = {c.name for c in rep.checks if c.status == "fail"}
    assert {"object_lock_enabled", "retention_accepted", "delete_refused"} <= failed
    assert "delete_after_release" not in failed  # the probe was cleaned up
    r = run(app, "admin1", "storage", "selftest", "--seconds", "1")
    assert r.exit_code == 1 and "FAILED" in r.output
    # Ingest must not stop on such a store, but the failure to lock is on record.
    with app.catalog.session() as s:
        m = store_recording(app, s, now())
        d = apply_retention(app, s, m)
        assert d.rule == "routine" and m.lock_until is None
    with app.catalog.session() as s:
        ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "retention_locked")).scalar_one()
        assert ev.outcome == "failed" and "InvalidRequest" in ev.detail["error"]


def test_selftest_on_the_local_store_is_honest(make_app, sqlite_url) -> None:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url)
    rep = run_selftest(app.store, "COMPLIANCE", lock_seconds=1)
    status = {c.name: c.status for c in rep.checks}
    assert rep.ok and status["delete_refused"] == "pass" and status["shorten_refused"] == "pass"
    assert status["legal_hold_blocks_delete"] == "pass" and status["delete_after_release"] == "pass"
    import os

    # Read-only files do not bind root: the report must say so rather than claim protection.
    assert status["file_write_protected"] == ("warn" if os.getuid() == 0 else "pass")
