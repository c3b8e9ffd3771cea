"""`custody backup` / `custody restore`: a consistent catalog copy, kept in the evidence store.

SQLite: the online backup API (pages copied under the database's own locking, so the copy
is one consistent state while the station keeps writing).  PostgreSQL: `pg_dump` custom
format (one snapshot).  The copy goes to `catalog-backups/<UTC time>-<station>.<ext>` with a
signed manifest beside it (`.manifest.json`: sha256, size, dialect, the chain it holds and
its head), both under Object Lock for `[custody_log].backup_lock_days`.

A restore goes into an EMPTY catalog only (never over a live one).  The restored log ends
where the backup was taken; what happened after is lost, and the restore says so in the log
itself (a `catalog_restored` event naming the chain it continues and the last event kept),
so `custody verify` accepts the later checkpoints of the old chain as superseded rather than
reporting a cut.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, make_url, select, text

from catalog import custody_log
from catalog.anchor import Checkpointer, lock_object, safe_name, store_keyring
from catalog.db import Catalog, make_engine
from catalog.models import ChainHead, LogAnchor, utcnow
from core.errors import ConfigError, CustodyError, NotFound
from storage.fixity import sha256_file

PREFIX = "catalog-backups/"
MANIFEST = ".manifest.json"
FORMAT = "custody-backup/1"


class BackupError(CustodyError):
    exit_code = 1


@dataclass
class BackupResult:
    key: str
    manifest_key: str
    sha256: str
    size: int
    dialect: str
    head_seq: int
    chain_id: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    u = make_url(url)
    args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
    env = {**os.environ}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return args + ["-d", u.database or ""], env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ConfigError(f"{name} not found: install the Debian package postgresql-client")
    return path


def _head(engine: Engine) -> tuple[int, str, str]:
    with engine.connect() as c:
        seq, h = c.execute(select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == 1)).one()
        chain = c.execute(select(LogAnchor.chain_id).where(LogAnchor.id == 1)).scalar() or "unanchored"
    return seq, h, chain


def backup(app: Any, actor: str) -> BackupResult:
    url = app.catalog.url
    dialect = app.catalog.dialect
    at = utcnow()
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="custody-backup-") as tmp:
        if dialect == "sqlite":
            dst = Path(tmp) / "catalog.sqlite3"
            src = sqlite3.connect(str(_sqlite_path(url)), timeout=60)
            out = sqlite3.connect(str(dst))
            try:
                src.backup(out)  # online backup API: one consistent state
            finally:
                out.close()
                src.close()
            eng = make_engine(f"sqlite:///{dst}")
            try:
                seq, h, chain = _head(eng)
            finally:
                eng.dispose()
            ext = "sqlite3"
        elif dialect == "postgresql":
            seq, h, chain = _head(app.catalog.engine)  # the dump, taken after, holds at least this
            dst = Path(tmp) / "catalog.pgdump"
            args, env = _pg_args(url)
            r = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                                "-f", str(dst), *args], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise BackupError(f"pg_dump failed: {r.stderr.strip()[:500]}")
            ext = "pgdump"
        else:
            raise ConfigError(f"backup: catalog dialect {dialect} is not supported")
        sha, size = sha256_file(dst), dst.stat().st_size
        key = f"{PREFIX}{stamp}-{safe_name(app.station)}-{uuid.uuid4().hex[:6]}.{ext}"
        app.store.put_file(key, dst, sha, size, content_type="application/octet-stream")
    k = app.station_key
    manifest: dict[str, Any] = {"format": FORMAT, "object": key, "sha256": sha, "size": size, "dialect": dialect,
                                "chain_id": chain, "head_seq": seq, "head_hash": h, "at": at.isoformat(),
                                "station": app.station, "key_id": k.key_id}
    manifest["sig"] = k.sign(custody_log.canonical(manifest))
    mkey = key + MANIFEST
    app.store.put_bytes(mkey, json.dumps(manifest, indent=1, sort_keys=True).encode(), content_type="application/json")
    days = app.settings.custody_log.backup_lock_days
    errors = [e for e in (lock_object(app, key, days), lock_object(app, mkey, days)) if e]
    with app.catalog.session() as s:
        custody_log.record(s, "catalog_backup", actor=actor, outcome="failed" if errors else "ok",
                           subject="catalog", detail={"key": key, "sha256": sha, "size": size, "head_seq": seq,
                                                      "lock_errors": errors})
    Checkpointer(app).checkpoint("backup")
    return BackupResult(key, mkey, sha, size, dialect, seq, chain)


def list_backups(app: Any) -> list[dict[str, Any]]:
    out = []
    for key in app.store.list_keys(PREFIX):
        if key.endswith(MANIFEST):
            try:
                out.append(json.loads(b"".join(app.store.iter_bytes(key))))
            except Exception:  # noqa: BLE001 - an unreadable manifest is skipped, its backup unusable
                continue
    return sorted(out, key=lambda m: str(m.get("at")))


def is_empty(url: str) -> bool:
    """No tables at all (a new SQLite file or an empty PostgreSQL database)."""
    if url.startswith("sqlite"):
        p = _sqlite_path(url)
        if not p.exists() or p.stat().st_size == 0:
            return True
    eng = make_engine(url)
    try:
        return not inspect(eng).get_table_names()
    finally:
        eng.dispose()


def restore(app: Any, key: str | None, actor: str) -> dict[str, Any]:
    """Restore backup `key` (default: the latest) into the configured catalog, which must be empty."""
    url = app.settings.catalog_url
    if "catalog" in app.__dict__:
        raise BackupError("restore: the catalog was already opened by this process")
    if not is_empty(url):
        raise BackupError("restore: the catalog is not empty; restore only into an empty catalog "
                          "(a new SQLite file or an empty PostgreSQL database)")
    backups = list_backups(app)
    if key is None:
        if not backups:
            raise NotFound("restore: no backups under catalog-backups/ in the store")
        manifest = backups[-1]
    else:
        manifest = next((m for m in backups if m.get("object") == key), None)
        if manifest is None:
            raise NotFound(f"restore: no backup manifest for {key}")
    ring = store_keyring(app)
    body = {k: v for k, v in manifest.items() if k != "sig"}
    why = ring.verify(str(manifest.get("key_id")), custody_log.canonical(body), str(manifest.get("sig", "")))
    if why:
        raise BackupError(f"restore: the manifest of {manifest.get('object')} is not trustworthy: {why}")
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    if manifest["dialect"] != dialect:
        raise BackupError(f"restore: backup is {manifest['dialect']}, the catalog is {dialect}")
    with tempfile.TemporaryDirectory(prefix="custody-restore-") as tmp:
        local = Path(tmp) / "backup"
        with open(local, "wb") as f:
            for chunk in app.store.iter_bytes(manifest["object"]):
                f.write(chunk)
        if sha256_file(local) != manifest["sha256"]:
            raise BackupError(f"restore: {manifest['object']} does not hash to its manifest's sha256")
        if dialect == "sqlite":
            target = _sqlite_path(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            for side in ("-wal", "-shm"):
                Path(str(target) + side).unlink(missing_ok=True)
            staged = target.with_name(target.name + ".restoring")
            shutil.copyfile(local, staged)
            os.replace(staged, target)
        else:
            args, env = _pg_args(url)
            r = subprocess.run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                                *args, str(local)], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise BackupError(f"pg_restore failed: {r.stderr.strip()[:500]}")
    cat: Catalog = app.catalog  # opens (and migrates, for an older backup) the restored catalog
    new_chain = uuid.uuid4().hex
    with cat.session() as s:
        anchor = s.get(LogAnchor, 1)
        old_chain = anchor.chain_id if anchor else "unanchored"
        kept = s.execute(select(ChainHead.seq).where(ChainHead.id == 1)).scalar_one()
        if anchor is None:
            s.add(LogAnchor(id=1, chain_id=new_chain, signed_from=kept + 1))
        else:
            s.execute(text("UPDATE custody_log_anchor SET chain_id = :c WHERE id = 1"), {"c": new_chain})
        custody_log.record(s, "catalog_restored", actor=actor, subject="catalog",
                           detail={"backup": manifest["object"], "backup_at": manifest.get("at"),
                                   "replaces_chain": old_chain, "kept_through": kept, "new_chain": new_chain,
                                   "reason": "catalog restored from a backup; events after it are lost"})
    Checkpointer(app).checkpoint("restore")
    return {"backup": manifest["object"], "backup_at": manifest.get("at"), "kept_through": kept,
            "replaces_chain": old_chain, "chain_id": new_chain}
