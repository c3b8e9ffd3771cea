"""Small helpers shared by the spine tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from catalog.app import App
from catalog.models import Media

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], cfg: Path, home: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUSTODY_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "custody.cli", "--config", str(cfg), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT), **kw)


def summary(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def media_count(app: App) -> int:
    with app.catalog.session() as s:
        return s.execute(select(func.count(Media.id))).scalar_one()


def by_name(result_json: dict) -> dict[str, dict]:
    return {f["path"].rsplit("/", 1)[-1]: f for f in result_json["files"]}
