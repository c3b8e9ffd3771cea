"""A sweep SIGKILLed right after its first deletion, then re-run: nothing lost, nothing doubled."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from custody.cli import cli
from catalog.custody_log import verify_chain
from catalog.models import CustodyEvent, Derivative, Media, RetentionPlanItem
from retention.plan import approve_plan, create_plan
from retention.sweep import PAUSE_ENV
from retention_support import accounts, actor, store_recording

ROOT = Path(__file__).resolve().parents[2]


def sweep_cmd(app) -> list[str]:  # noqa: ANN001
    return [sys.executable, "-m", "custody.cli", "--config", str(app.settings.config_path), "--user", "admin1",
            "retention", "sweep"]


def test_sweep_killed_after_first_deletion_then_rerun(make_app, catalog_url, tmp_path) -> None:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    accounts(app)
    old = datetime.now(timezone.utc) - timedelta(days=900)
    with app.catalog.session() as s:
        media = [store_recording(app, s, old + timedelta(hours=i), derivatives=2) for i in range(3)]
        ids = [m.id for m in media]
        keys = {m.id: m.storage_key for m in media}
    a1, a2 = actor(app, "admin1"), actor(app, "admin2")
    with app.catalog.session() as s:
        pid = create_plan(app, s, a1).id
        approve_plan(app, s, a2, pid)

    marker = tmp_path / "paused"
    env = {**os.environ, PAUSE_ENV: str(marker), "CUSTODY_HOME": str(tmp_path)}
    proc = subprocess.Popen(sweep_cmd(app), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "sweep never reached its first deletion"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    # Killed between the object deletion and the catalog update.
    first = ids[0]
    assert app.store.head(keys[first]) is None
    assert all(app.store.head(keys[i]) is not None for i in ids[1:])
    with app.catalog.session() as s:
        assert s.get(Media, first).status == "stored"
        states = dict(s.execute(select(RetentionPlanItem.media_id, RetentionPlanItem.state)
                                .where(RetentionPlanItem.plan_id == pid)).all())
        assert states == {ids[0]: "deleting", ids[1]: "pending", ids[2]: "pending"}
    # No new plan may paper over the interrupted one.
    r = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "admin2", "retention", "plan"])
    assert r.exit_code == 1 and "interrupted mid-sweep" in r.output

    done = subprocess.run(sweep_cmd(app), cwd=ROOT, env={**os.environ, "CUSTODY_HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deleted / 已删除 3" in done.stdout
    assert all(app.store.head(keys[i]) is None for i in ids)
    with app.catalog.session() as s:
        assert {s.get(Media, i).status for i in ids} == {"purged"}
        assert all(d.purged_at for d in s.execute(select(Derivative)).scalars())
        assert all(app.store.head(d.storage_key) is None for d in s.execute(select(Derivative)).scalars())
        purged = s.execute(select(CustodyEvent).where(CustodyEvent.action == "purged")).scalars().all()
        assert sorted(e.media_id for e in purged) == ids  # exactly one tombstone event each
        notes = {e.media_id: e.detail.get("note") for e in purged}
        assert notes[first] == "completed after an interrupted sweep" and notes[ids[1]] is None
        starts = s.execute(select(CustodyEvent.media_id).where(CustodyEvent.action == "purge_started")).scalars().all()
        assert sorted(starts) == ids
        assert verify_chain(s).ok
    # A third run finds nothing left to do.
    again = subprocess.run(sweep_cmd(app), cwd=ROOT, env={**os.environ, "CUSTODY_HOME": str(tmp_path)},
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 3 and "no approved retention plan" in again.stderr
