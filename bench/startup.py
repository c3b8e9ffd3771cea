"""Start-up of the `custody` program (issue 14): light commands against baselines, in one run.

  ./dev bench startup [--repeat 9]

On a fresh, migrated embedded catalog (SQLite + local store in a temporary CUSTODY_HOME), times
wall clock, medians of --repeat runs, interleaved:
  * `custody --help`, `custody media --help` (commands that do not open the catalog),
    `custody media list`, `custody media list --json`, `custody search --unlinked`;
  * baselines: `python -c pass` (the interpreter); the two libraries the client chose for the
    catalog and the settings, imported alone (`import sqlalchemy`, `import sqlalchemy, pydantic`);
    `python -c "import sqlalchemy.orm"`; and the floor of any command that opens the catalog: SQLAlchemy ORM + pydantic + the catalog models +
    the settings, imported and left by `os._exit` as the program leaves.
Prints seconds, the ratio to the target (0.3 s) and how much of each command the floor is.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET = 0.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=9, help="runs of each, interleaved (medians printed)")
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="custody-bench-startup-"))
    env = {**os.environ, "CUSTODY_HOME": str(home), "CUSTODY_CATALOG_URL": f"sqlite:///{home / 'catalog.db'}",
           "CUSTODY_STORAGE_URL": f"file://{home / 'objects'}", "PYTHONPATH": str(ROOT)}
    env.pop("CUSTODY_CONFIG", None)
    custody = [PY, "-m", "custody.cli"]
    subprocess.run([*custody, "media", "list"], env=env, cwd=home, capture_output=True, check=True)  # migrate once
    runs = {
        "python -c pass": [PY, "-c", "pass"],
        "import sqlalchemy": [PY, "-c", "import os, sqlalchemy; os._exit(0)"],
        "import sqlalchemy, pydantic": [PY, "-c", "import os, sqlalchemy, pydantic; os._exit(0)"],
        "import sqlalchemy.orm": [PY, "-c", "import sqlalchemy.orm"],
        "floor: ORM+pydantic+models+settings": [PY, "-c", "import os, sqlalchemy.orm, pydantic, catalog.models, "
                                                "core.settings; os._exit(0)"],
        "custody --help": [*custody, "--help"],
        "custody media --help": [*custody, "media", "--help"],
        "custody media list": [*custody, "media", "list"],
        "custody media list --json": [*custody, "media", "list", "--json"],
        "custody search --unlinked": [*custody, "search", "--unlinked"],
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.repeat):
        for name, cmd in runs.items():
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, cwd=home, capture_output=True)
            times[name].append(time.perf_counter() - t)
            if r.returncode not in (0, 3):  # 3: "nothing found" for some commands
                raise SystemExit(f"{name} failed ({r.returncode}): {r.stderr.decode(errors='replace')[-1500:]}")
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["floor: ORM+pydantic+models+settings"]
    print(f"start-up, medians of {a.repeat} (load average {os.getloadavg()[0]:.2f}); target {TARGET} s")
    print(f"{'':38}{'seconds':>9}{'/ target':>10}{'floor share':>13}")
    for name, sec in med.items():
        share = f"{floor / sec:>12.0%}" if name.startswith("custody") and "--help" not in name else ""
        print(f"{name:38}{sec:>9.3f}{sec / TARGET:>9.2f}x{share:>13}")
    import shutil

    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
