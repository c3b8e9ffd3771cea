"""Engine, sessions and migrations for the catalog (SQLite default, PostgreSQL in production).

Migrations are serialised across processes (issue 16): on PostgreSQL the whole upgrade runs in
one transaction holding a transaction-level advisory lock, so stations, web servers and CLI
commands started at once on a fresh or an old catalog wait for each other and the later ones
find the schema current; on SQLite the transaction is `BEGIN IMMEDIATE`, i.e. it holds the
database's write lock.  A catalog whose schema is newer than this code (another station was
upgraded first) is refused with `SchemaNewer` (exit code 2) before anything is written.
"""
from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from catalog.models import DockSession, OffloadItem
from core.errors import ConfigError
from core.settings import catalog_driver_url

T = TypeVar("T")
# deadlock_detected, serialization_failure: the transaction was rolled back and may simply run again
RETRYABLE_PGCODES = ("40P01", "40001")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key held while migrating: 'custody\0' as a signed 64-bit number.
MIGRATION_LOCK_KEY = int.from_bytes(b"custody\0", "big", signed=True)
# Rows that say which station made them, stamped from the session's station when left empty.
STATION_STAMPED = (DockSession, OffloadItem)


class SchemaNewer(ConfigError):
    """The catalog was migrated by newer code than this (exit code 2): upgrade this station first."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _sqlite_write_serialised(engine)
        return engine
    try:
        return create_engine(catalog_driver_url(url), pool_pre_ping=True, pool_size=10, max_overflow=10)
    except (ImportError, NoSuchModuleError, ArgumentError) as e:  # a driver or dialect this station does not have
        raise ConfigError(f"catalog URL {_url_without_password(url)!r}: {e}; use sqlite:///PATH or "
                          f"postgresql+psycopg2://user@host/db / 目录库地址无效或驱动未安装") from e


def _url_without_password(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def _sqlite_write_serialised(engine: Engine) -> None:
    """WAL + BEGIN IMMEDIATE: several threads/processes write without 'database is locked'
    surprises mid-transaction (a deferred transaction that upgrades to a writer fails
    instantly under WAL; an immediate one waits on the busy timeout instead)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig  # deferred: Alembic costs ~0.25 s, needed only to migrate

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _revisions(cfg: Any) -> tuple[set[str], set[str]]:
    """(every revision this code knows, its heads)."""
    from alembic.script import ScriptDirectory  # deferred: see alembic_config

    script = ScriptDirectory.from_config(cfg)
    return {r.revision for r in script.walk_revisions()}, set(script.get_heads())


_REV = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.M)


def _quick_revisions() -> tuple[set[str], set[str]] | None:
    """(known, heads) read from the version files' `revision = ...` lines without importing
    Alembic (~0.25-1 s): light commands on a current catalog then never load it (issue 14).
    None when a file does not say plainly (Alembic decides then)."""
    known: set[str] = set()
    parents: set[str] = set()
    try:
        for f in (MIGRATIONS_DIR / "versions").glob("*.py"):
            found = dict(m.groups() for m in _REV.finditer(f.read_text(encoding="utf-8")))
            rev, down = ast.literal_eval(found["revision"]), ast.literal_eval(found["down_revision"])
            if not isinstance(rev, str):
                return None
            known.add(rev)
            parents.update([down] if isinstance(down, str) else list(down or ()))
    except (OSError, KeyError, ValueError, SyntaxError, TypeError):
        return None
    return (known, known - parents) if known else None


def catalog_revisions(conn: Connection) -> set[str]:
    """The revisions recorded in the catalog (empty for a fresh one)."""
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}


def _refuse_newer(current: set[str], known: set[str], url: str) -> None:
    unknown = sorted(current - known)
    if unknown:
        raise SchemaNewer(
            f"the catalog {url} has schema revision {', '.join(unknown)}, newer than this program knows: "
            "another station or server was upgraded first. Upgrade Custody on this machine, then start it "
            "again; nothing was changed. / 目录数据库的结构版本比本机程序新（其他采集站已升级），"
            "请先升级本机的 Custody 再启动；未做任何修改。")


def _lock_for_migration(conn: Connection) -> None:
    """Serialise migrations across processes: PostgreSQL's advisory lock (released at commit);
    SQLite's write lock is already held (every transaction here is BEGIN IMMEDIATE)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})


def migrate(engine: Engine) -> None:
    """Bring the schema to every head (package branches may add their own revisions), one
    process at a time; refuse a catalog whose schema is newer than this code."""
    quick = _quick_revisions()
    if quick is not None:  # a current catalog is the common case: answered without Alembic
        with engine.connect() as conn:
            current = catalog_revisions(conn)
        _refuse_newer(current, quick[0], engine.url.render_as_string(hide_password=True))
        if current == quick[1]:
            return
    from alembic import command  # deferred: see alembic_config

    url = engine.url.render_as_string(hide_password=False)
    cfg = alembic_config(url)
    known, heads = _revisions(cfg)
    with engine.begin() as conn:
        _lock_for_migration(conn)
        current = catalog_revisions(conn)
        _refuse_newer(current, known, engine.url.render_as_string(hide_password=True))
        if current == heads:
            return  # already current (another process migrated while we waited for the lock)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def check_schema(engine: Engine) -> None:
    """Without auto_migrate: still refuse a catalog newer than this code."""
    quick = _quick_revisions()
    if quick is not None:
        with engine.connect() as conn:
            _refuse_newer(catalog_revisions(conn), quick[0], engine.url.render_as_string(hide_password=True))
        return
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    known, _heads = _revisions(cfg)
    with engine.connect() as conn:
        _refuse_newer(catalog_revisions(conn), known, engine.url.render_as_string(hide_password=True))


def _stamp_station(session: Session, _ctx: Any, _instances: Any) -> None:
    """New dock sessions and spool copies say which station made them."""
    station = session.info.get("station")
    if not station:
        return
    for obj in session.new:
        if isinstance(obj, STATION_STAMPED) and getattr(obj, "station", None) is None:
            obj.station = station


class Catalog:
    """The catalog handle: an engine and a session factory."""

    def __init__(self, url: str, auto_migrate: bool = True, signer: Any = None, station: str | None = None) -> None:
        self.url = url
        # `station` ([station].name): recorded on job claims, custody events, dock sessions and spool copies.
        self.station = station
        self.engine = make_engine(url)
        if auto_migrate:
            migrate(self.engine)
        else:
            check_schema(self.engine)
        # `signer` (catalog.stationkey.StationKey): the custody writer signs each event with it.
        self.signer = signer
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False,
                                         info={"signer": signer, "station": station})
        event.listen(self.sessionmaker, "before_flush", _stamp_station)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self.sessionmaker() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def run(self, work: Callable[[Session], T], *, attempts: int = 5) -> T:
        """`work(session)` in one transaction, run again from the start when PostgreSQL chose it
        as the victim of a deadlock or a serialisation conflict (several stations and workers
        write the same rows).  `work` must have no effect outside the session."""
        for attempt in range(1, attempts + 1):
            try:
                with self.session() as s:
                    return work(s)
            except DBAPIError as e:
                if attempt == attempts or getattr(e.orig, "pgcode", None) not in RETRYABLE_PGCODES:
                    raise
                time.sleep(0.02 * 2 ** attempt)
        raise AssertionError("unreachable")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()
