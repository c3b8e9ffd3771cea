"""The catalog URL as administrators write it: `postgresql://` and `postgres://` mean the driver
Custody ships (psycopg2; SQLAlchemy 2.1 alone would load psycopg 3, which is not installed), and a
URL naming a driver or dialect this station does not have is a clear configuration error."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog.db import Catalog, make_engine
from conftest import ROOT
from core.errors import ConfigError
from core.settings import load_settings


def test_libpq_spellings_mean_the_shipped_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUSTODY_HOME", str(tmp_path))
    for url in ("postgresql://custody@db.example/custody", "postgres://custody@db.example/custody"):
        monkeypatch.setenv("CUSTODY_CATALOG_URL", url)
        assert load_settings().catalog_url == "postgresql+psycopg2://custody@db.example/custody"
    monkeypatch.setenv("CUSTODY_CATALOG_URL", "postgresql+psycopg2://custody@db.example/custody")
    assert load_settings().catalog_url == "postgresql+psycopg2://custody@db.example/custody"


@pytest.mark.parametrize("url", ["postgresql+psycopg://custody:s3cret@db.example/custody",
                                 "mysql://custody:s3cret@db.example/custody", "not a url"])
def test_a_driver_this_station_lacks_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_engine(url)
    assert "s3cret" not in str(e.value) and "postgresql+psycopg2://" in str(e.value)


def test_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CUSTODY_HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "CUSTODY_CATALOG_URL": "postgresql+psycopg://custody:s3cret@127.0.0.1:1/custody"}
    env.pop("CUSTODY_CONFIG", None)
    r = subprocess.run([sys.executable, "-m", "custody.cli", "media", "list"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == ConfigError.exit_code, r
    assert r.stderr.startswith("error: catalog URL") and "Traceback" not in r.stderr and "s3cret" not in r.stderr


@pytest.mark.postgres
def test_a_plain_postgresql_url_opens_the_catalog(pg_url: str) -> None:
    plain = pg_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    cat = Catalog(plain)
    try:
        assert cat.engine.url.drivername == "postgresql+psycopg2"
        with cat.engine.connect() as c:
            assert c.execute(text("select count(*) from alembic_version")).scalar() == 1
    finally:
        cat.engine.dispose()
