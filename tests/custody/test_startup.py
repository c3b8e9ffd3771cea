"""Issue 14: light commands start without the heavy packages (checked by what is imported,
not by a timing: the cores are shared).  `custody media list` and `custody search` on a
current catalog load neither OpenCV, NumPy, PyAV, boto3, matplotlib, FastAPI nor Alembic."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("alembic", "cv2", "numpy", "av", "boto3", "botocore", "matplotlib", "fastapi", "starlette")

RUN = """
import sys
from custody.cli import main
sys.argv = ["custody"] + sys.argv[1:]
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("EXIT", code)
print("HEAVY", sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _run(tmp_path: Path, *args: str) -> list[str]:
    env = dict(os.environ, CUSTODY_HOME=str(tmp_path), CUSTODY_CATALOG_URL=f"sqlite:///{tmp_path / 'c.db'}",
               CUSTODY_STORAGE_URL=f"file://{tmp_path / 'store'}")
    env.pop("CUSTODY_CONFIG", None)
    out = subprocess.run([sys.executable, "-c", RUN.format(heavy=HEAVY), *args], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    return out.stdout.strip().splitlines()


@pytest.mark.parametrize("args", [("media", "list"), ("media", "list", "--json"), ("search", "--unlinked"),
                                  ("search", "--enterprise", "化工", "--json")])
def test_light_commands_do_not_import_heavy_packages(tmp_path: Path, args: tuple[str, ...]) -> None:
    first = _run(tmp_path, "media", "list")  # a fresh catalog is migrated here (Alembic is fine then)
    assert first[-2] == "EXIT 0", first
    lines = _run(tmp_path, *args)
    assert lines[-2] in ("EXIT 0", "EXIT 3"), lines  # 3: nothing found is "not found" for some commands
    assert lines[-1] == "HEAVY []", lines


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    """The probe itself works: a command that migrates a fresh catalog does load Alembic."""
    lines = _run(tmp_path, "media", "list")
    assert "alembic" in lines[-1], lines
