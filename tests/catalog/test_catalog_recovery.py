"""Issue 17: a catalog that can be lost and rebuilt: backup + restore, rebuild from the store,
export for offline verification.  Real SQLite and PostgreSQL, real stores, real CLI."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from anchor_support import add_recording, populate, problems
from catalog.accounts import add_account
from catalog import anchor, objrecord
from catalog.app import App
from catalog.audit import verify_all
from catalog.backup import BackupError, backup, list_backups, restore
from catalog.models import CustodyEvent, Derivative, Media
from conftest import write_config
from custody.cli import cli
from disclose_support import make_clip, store_original
from helpers_ingest import run_cli
from ingest.pipeline import ingest_volume
from ingest.simulate import SimDevice, build_volume


@pytest.fixture
def second_catalog(request: pytest.FixtureRequest, catalog_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty catalog of the same kind as `catalog_url` (the one a restore or rebuild goes into)."""
    if catalog_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"custody_r_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                               "AND pid <> pg_backend_pid()", (name,))
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def _twin(app: App, catalog_url: str) -> App:
    """The same station (settings, key, store) pointed at another catalog."""
    settings = app.settings.model_copy(deep=True)
    settings.catalog.url = catalog_url
    return App(settings)


def test_backup_restore_verifies(make_app, catalog_url: str, second_catalog: str) -> None:
    app = make_app(catalog_url=catalog_url)
    populate(app, events=30)
    res = backup(app, "admin")
    assert res.head_seq >= 30 and res.key.startswith("catalog-backups/")
    info = app.store.head(res.key)
    assert info is not None and info.retain_until is not None  # locked in the store
    # life goes on after the backup: these events and this recording are lost by the restore
    add_recording(app, b"after the backup" * 50, "DCIM/LATE.MP4")
    assert anchor.write_checkpoint(app, "test").seq > res.head_seq
    with pytest.raises(BackupError, match="not empty"):
        restore(_twin(app, catalog_url), res.key, "os:test")
    twin = _twin(app, second_catalog)
    try:
        out = restore(twin, None, "os:test")
        assert out["backup"] == res.key and out["kept_through"] == res.head_seq
        rep = verify_all(twin, actor="auditor")
        assert rep.ok, problems(rep)
        assert rep.objects_checked == 3 and rep.checkpoints_checked >= 2
        with twin.catalog.session() as s:
            ev = s.execute(select(CustodyEvent).where(CustodyEvent.action == "catalog_restored")).scalar_one()
            assert ev.detail["kept_through"] == res.head_seq and ev.seq == res.head_seq + 1
    finally:
        twin.close()


def test_restore_refuses_a_forged_manifest(make_app, sqlite_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=sqlite_url)
    populate(app, events=5)
    res = backup(app, "admin")
    manifest = list_backups(app)[-1]
    assert manifest["object"] == res.key
    manifest["head_seq"], manifest["at"] = 1, "2999-01-01T00:00:00+00:00"  # the newest, and altered
    app.store.put_bytes("catalog-backups/zz-forged.sqlite3.manifest.json", json.dumps(manifest).encode())
    twin = _twin(app, f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(BackupError, match="not trustworthy"):
        restore(twin, None, "os:t")


def _media_list(cfg: Path, home: Path) -> dict[str, dict]:
    r = run_cli(["media", "list", "--json", "--limit", "0"], cfg, home)
    assert r.returncode == 0, r.stderr
    return {m["sha256"]: m for m in json.loads(r.stdout)}


RECORD_FIELDS = ("sha256", "size", "kind", "device", "officer", "recorded_at", "flags", "storage_key")


def test_rebuild_from_store_lists_and_verifies(make_app, catalog_url: str, second_catalog: str, tmp_path: Path,
                                               ffmpeg_ok: None) -> None:
    """Ingest, lose the catalog, rebuild from the store alone: verify clean, same recordings."""
    app = make_app(catalog_url=catalog_url)
    v = build_volume(tmp_path / "docks" / "cam", SimDevice(kind="gat947", serial="A100001", officer="310001",
                                                           clips=2, photos=1, audio=0, seconds=1, clock_offset_s=420))
    assert ingest_volume(app, v).state == "complete"
    assert anchor.write_checkpoint(app, "dock") is not None  # as the daemon / `custody ingest` do after a dock
    cfg = app.settings.config_path
    r = run_cli(["index", "--pending"], cfg, tmp_path)  # probe, true time, keyframes; then the retain jobs
    assert r.returncode == 0, r.stderr
    before = _media_list(cfg, tmp_path)
    assert len(before) == 3
    with app.catalog.session() as s:
        derivatives = s.execute(select(func.count(Derivative.id))).scalar_one()
    assert derivatives > 0
    for sha in before:
        rec = app.store.head(objrecord.record_key(before[sha]["storage_key"]))
        obj = app.store.head(before[sha]["storage_key"])
        assert rec is not None and obj.retain_until is not None
        assert rec.retain_until == obj.retain_until  # each recording's record is locked the same way
    # the catalog is lost: point the station at an empty one and rebuild from the store
    (tmp_path / "rebuilt").mkdir()
    cfg2 = write_config(tmp_path / "rebuilt", second_catalog, app.settings.storage_url)
    r = run_cli(["catalog", "rebuild", "--from-store", "--json"], cfg2, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["recordings"] == 3 and out["without_record"] == 0 and "case links" in out["lost"]
    assert len(out["replaced_chains"]) == 1 and out["derivatives"] == derivatives
    r = run_cli(["index", "--pending"], cfg2, tmp_path)  # the rebuilt catalog is indexed again
    assert r.returncode == 0, r.stderr
    after = _media_list(cfg2, tmp_path)
    assert set(after) == set(before)
    for sha, m in before.items():
        assert {k: after[sha][k] for k in RECORD_FIELDS} == {k: m[k] for k in RECORD_FIELDS}
    r = run_cli(["verify", "--json"], cfg2, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["objects_checked"] == 3
    for c in (cfg, cfg2):  # searched alike by officer and device, before and after
        r = run_cli(["search", "--json", "--officer", "310001", "--device", "A100001"], c, tmp_path)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)) == 3


def test_export_verifies_offline_with_the_documented_script(make_app, sqlite_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=sqlite_url)
    populate(app, events=20)
    anchor.write_checkpoint(app, "test")
    out = tmp_path / "export.json"
    r = run_cli(["log", "export", "--from", "1", "--to", "20", "-o", str(out)], app.settings.config_path, tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert len(data["events"]) == 20 and len(data["checkpoints"]) == 1
    assert offline_verify(data) == []
    data["events"][4]["fields"]["actor"] = "mallory"
    assert any("event 5" in p for p in offline_verify(data))


def offline_verify(export: dict) -> list[str]:
    """The few lines of Python printed in docs/custody-log.md (kept identical)."""
    def canonical(d):  # noqa: ANN001, ANN202
        return json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()

    keys = {k: Ed25519PublicKey.from_public_bytes(base64.b64decode(v["public_key"])) for k, v in export["keys"].items()}
    problems, prev, hashes = [], None, {}
    for e in export["events"]:
        seq = e["fields"]["seq"]
        if prev is not None and e["prev_hash"] != prev:
            problems.append(f"event {seq} does not follow event {seq - 1}")
        if hashlib.sha256(e["prev_hash"].encode() + canonical(e["fields"])).hexdigest() != e["hash"]:
            problems.append(f"event {seq} was altered")
        ok = False
        for s in e["signatures"]:
            try:
                keys[s["key_id"]].verify(base64.b64decode(s["sig"]), f"custody-event/1:{seq}:{e['hash']}".encode())
                ok = True
            except Exception:  # noqa: BLE001
                pass
        if not ok:
            problems.append(f"event {seq} has no valid station signature")
        prev, hashes[seq] = e["hash"], e["hash"]
    for c in export["checkpoints"]:
        body = {k: c.get(k) for k in ("format", "chain_id", "seq", "hash", "at", "station", "key_id",
                                      "signed_from", "reason")}
        try:
            keys[c["key_id"]].verify(base64.b64decode(c["sig"]), canonical(body))
        except Exception:  # noqa: BLE001
            problems.append(f"checkpoint {c['key']} is forged")
            continue
        if c["seq"] in hashes and hashes[c["seq"]] != c["hash"]:
            problems.append(f"event {c['seq']} contradicts checkpoint {c['key']}")
    return problems


def test_cli_backup_and_checkpoint(make_app, sqlite_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=sqlite_url)
    populate(app, events=5)
    cfg = app.settings.config_path
    r = run_cli(["log", "checkpoint", "--json"], cfg, tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["seq"] == 5
    r = run_cli(["backup", "--json"], cfg, tmp_path)
    assert r.returncode == 0, r.stderr
    key = json.loads(r.stdout)["key"]
    r = run_cli(["backup", "--list", "--json"], cfg, tmp_path)
    assert [m["object"] for m in json.loads(r.stdout)] == [key]
    r = run_cli(["log", "key"], cfg, tmp_path)
    assert r.returncode == 0 and app.station_key.public_b64 in r.stdout
    r = run_cli(["catalog", "records"], cfg, tmp_path)  # recordings stored before records existed
    assert r.returncode == 0 and "3 object records written" in r.stdout, r.stderr
    with app.catalog.session() as s:
        for m in s.execute(select(Media)).scalars():
            rec = objrecord.parse(b"".join(app.store.iter_bytes(objrecord.record_key(m.storage_key))))
            assert rec["sha256"] == m.sha256 and rec["original_path"] == m.original_path
    os.environ["CUSTODY_HOME"] = str(tmp_path)
    cfg2 = write_config(tmp_path, f"sqlite:///{tmp_path / 'new.db'}", app.settings.storage_url)
    r = run_cli(["restore", "--json"], cfg2, tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli(["verify", "--json"], cfg2, tmp_path)
    assert r.returncode == 0, r.stdout
    r = run_cli(["restore"], cfg2, tmp_path)
    assert r.returncode == 1 and "not empty" in r.stderr


def test_a_redacted_copy_record_names_its_original(make_app, sqlite_url: str, tmp_path: Path,
                                                   ffmpeg_ok: None) -> None:
    app = make_app(catalog_url=sqlite_url)
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer")
    clip = make_clip(tmp_path / "REC_0001.mp4", seconds=2.0, face=False)
    mid = store_original(app, clip.path)
    res = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "rev1", "redact", str(mid),
                                   "--from", "0.2", "--to", "1.2", "--reason", "publication", "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)["derived"]
    rec = objrecord.parse(b"".join(app.store.iter_bytes(objrecord.record_key(d["storage_key"]))))
    with app.catalog.session() as s:
        orig = s.get(Media, mid)
        assert rec["role"] == "redacted" and rec["derived_from"] == orig.sha256 and rec["sha256"] == d["sha256"]
