"""Benchmark of the coverage report (issue 5) on one year of a bureau this size.

Builds a SQLite catalog with the bureau's shape (29 officers, 16 cameras, 30 terminals),
800 two-officer inspections with linked footage split at 15 minutes, routine recordings
up to about 50,000 in all, weekly docks with clock readings, and the usual faults (late
uploads, unplayable files, undocked devices, unlinked clips).  Then times the coverage
report for the year: catalog queries + assembly + JSON rendering, several runs.
Target: under 2 s on SQLite.

    .venv/bin/python bench/reports.py [--inspections 800] [--recordings 50000] [--runs 3] [--db FILE]

The catalog is cached at --db (default: a temp file, removed afterwards).
"""
from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from core.settings import Settings  # noqa: E402
from catalog.db import Catalog  # noqa: E402
from catalog.models import (  # noqa: E402
    Case, CaseOfficer, Device, DockSession, Media, MediaLink, Officer, Unit,
)
from reports.coverage import CoverageOptions, coverage_report  # noqa: E402
from reports.render import render_json, render_table  # noqa: E402

CST = timezone(timedelta(hours=8))
YEAR_START = datetime(2021, 1, 1, tzinfo=CST)
BUDGET_SECONDS = 2.0
SPLIT = timedelta(minutes=15)  # recorders split files at about 15 minutes


def build(catalog: Catalog, inspections: int, recordings: int, seed: int = 2021) -> None:
    rnd = random.Random(seed)
    with catalog.session() as s:
        bureau = Unit(code="440300000000", name="应急管理局")
        office = Unit(code="440300000001", name="局机关", parent_code=bureau.code)
        brigade = Unit(code="440300000002", name="执法大队", parent_code=bureau.code)
        s.add_all([bureau, office, brigade])
        s.flush()
        officers = [Officer(badge=f"B{i:04d}", cert_no=f"C{i:04d}", unit_id=(office if i < 4 else brigade).id,
                            certified_from=date(2019, 1, 1)) for i in range(29)]
        cams = [Device(serial=f"CAM{i:04d}", kind="camera", unit_id=brigade.id, in_service_from=date(2020, 1, 1))
                for i in range(16)]
        terms = [Device(serial=f"TRM{i:04d}", kind="terminal", unit_id=brigade.id, in_service_from=date(2020, 1, 1))
                 for i in range(30)]
        s.add_all(officers + cams + terms)
        s.flush()
        devices = cams + terms
        media_rows: list[dict] = []
        links: list[tuple[int, int]] = []  # (media row index, case id)
        case_officers: list[dict] = []
        for n in range(inspections):
            day = YEAR_START + timedelta(days=rnd.randrange(365), hours=9 + rnd.randrange(8))
            length = timedelta(minutes=rnd.choice((30, 45, 60, 90)))
            case = Case(case_no=f"INS-2021-{n:04d}", kind="inspection", unit_id=brigade.id, start=day,
                        end=day + length, enterprise=f"企业{n}")
            s.add(case)
            s.flush()
            pair = rnd.sample(officers[4:], 2)
            case_officers += [{"case_id": case.id, "officer_id": o.id} for o in pair]
            recorders = pair if rnd.random() > 0.05 else pair[:1]  # some recorded by one officer only
            for o in recorders:
                if rnd.random() < 0.03:
                    continue  # no footage at all
                dev = rnd.choice(devices)
                for start in _splits(day - timedelta(minutes=1), length + timedelta(minutes=2)):
                    links.append((len(media_rows), case.id))
                    media_rows.append(_media(rnd, len(media_rows), dev, o, start))
        while len(media_rows) < recordings:  # routine footage
            o, dev = rnd.choice(officers), rnd.choice(devices)
            start = YEAR_START + timedelta(minutes=rnd.randrange(365 * 24 * 60))
            for part in _splits(start, timedelta(minutes=rnd.choice((5, 15, 30, 45)))):
                media_rows.append(_media(rnd, len(media_rows), dev, o, part))
        s.execute(insert(Media), media_rows)
        s.execute(insert(CaseOfficer), case_officers)
        ids = dict(s.execute(select(Media.sha256, Media.id)).all())
        s.execute(insert(MediaLink), [
            {"media_id": ids[media_rows[i]["sha256"]], "case_id": c, "method": "auto", "reason": "officer and time",
             "active": True, "created_by": "system", "created_at": datetime.now(timezone.utc), "score": 1.0}
            for i, c in links])
        s.execute(insert(DockSession), list(_docks(rnd, devices)))


def _splits(start: datetime, length: timedelta) -> list[datetime]:
    out, t = [], start
    while t < start + length:
        out.append(t)
        t += SPLIT + timedelta(seconds=1)
    return out


def _media(rnd: random.Random, n: int, dev: Device, o: Officer, start: datetime) -> dict:
    sha = hashlib.sha256(f"bench-{n}".encode()).hexdigest()
    end = start + SPLIT
    late = rnd.random() < 0.02
    dock = end + timedelta(hours=rnd.uniform(25, 72) if late else rnd.uniform(0.5, 12))
    flags = ["unplayable"] if rnd.random() < 0.002 else []
    return {"sha256": sha, "size": 180_000_000, "kind": "video", "storage_key": f"media/{sha[:2]}/{sha}",
            "status": "stored", "device_id": dev.id, "officer_id": o.id, "officer_badge": o.badge,
            "unit_code": "440300000002", "original_path": f"DCIM/{n}.MP4", "original_name": f"{o.badge}_{n}.MP4",
            "device_start_text": f"{start:%Y-%m-%d %H:%M:%S}", "recorded_start": start, "recorded_end": end,
            "duration_seconds": SPLIT.total_seconds(), "docked_at": dock, "flags": flags,
            "flag_reasons": {"unplayable": "moov atom not found"} if flags else {}, "important": False,
            "legal_hold_applied": False, "index_state": "done", "meta": {},
            "stored_at": dock, "time_source": "filename"}


def _docks(rnd: random.Random, devices: list[Device]):
    for dev in devices:
        if dev.serial == "CAM0015":
            continue  # one camera in a drawer all year
        t = YEAR_START + timedelta(hours=18)
        while t.year == 2021:
            offset = rnd.gauss(0, 3) if rnd.random() > 0.01 else rnd.choice((-3600.0, 95.0))
            yield {"station": "station-01", "volume_path": f"/docks/{dev.serial}", "device_id": dev.id,
                   "state": "complete", "started_at": t, "clock_offset_seconds": offset,
                   "device_clock_text": f"{t + timedelta(seconds=offset):%Y-%m-%d %H:%M:%S}",
                   "station_clock_at_read": t, "identity": {}, "counts": {}, "files_total": 0, "files_done": 0,
                   "bytes_total": 0, "bytes_done": 0}
            t += timedelta(days=rnd.choice((1, 2, 3)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inspections", type=int, default=800)
    ap.add_argument("--recordings", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--db", type=Path, default=None, help="SQLite file to build or reuse")
    args = ap.parse_args()
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="custody-bench-reports-")
        args.db = Path(tmp.name) / "catalog.db"
    fresh = not args.db.exists()
    catalog = Catalog(f"sqlite:///{args.db}")
    if fresh:
        t0 = time.perf_counter()
        build(catalog, args.inspections, args.recordings)
        print(f"built the catalog in {time.perf_counter() - t0:.1f} s: {args.db}")
    with catalog.session() as s:
        n_media = s.execute(select(func.count()).select_from(Media)).scalar_one()
        n_cases = s.execute(select(func.count()).select_from(Case)).scalar_one()
    print(f"catalog: {n_cases} inspections, {n_media} recordings")
    settings = Settings()
    opts = CoverageOptions(first=date(2021, 1, 1), last=date(2021, 12, 31), now=datetime(2022, 1, 15, tzinfo=CST))
    # What `custody report coverage` prints by default (figures, statement), and the full
    # JSON with every list behind the figures (what --format json and html fetch).
    default = _time(catalog, settings, opts, args.runs, details=False)
    full = _time(catalog, settings, opts, args.runs, details=True)
    verdict = "OK" if min(default) < BUDGET_SECONDS else "OVER BUDGET"
    print(f"coverage report (default output): best {min(default):.2f} s, first {default[0]:.2f} s "
          f"(budget {BUDGET_SECONDS:.0f} s on SQLite): {verdict}")
    print(f"coverage report with every list as JSON: best {min(full):.2f} s, first {full[0]:.2f} s")
    catalog.dispose()
    if tmp:
        tmp.cleanup()
    return 0 if min(default) < BUDGET_SECONDS else 1


def _time(catalog: Catalog, settings: Settings, opts: CoverageOptions, runs: int, details: bool) -> list[float]:
    times = []
    for run in range(runs):
        t0 = time.perf_counter()
        with catalog.session() as s:
            report = coverage_report(s, settings, opts, details=details, charts=False)
        text = render_json(report) if details else render_table(report, "zh", detail=False)
        times.append(time.perf_counter() - t0)
        what = "with every list, JSON" if details else "default table"
        print(f"run {run + 1} ({what}): {times[-1]:.2f} s, {len(text) / 1e6:.1f} MB of output")
    if not details:
        print("figures: " + ", ".join(f"{f.key}={f.value}" for f in report.figures))
    return times


if __name__ == "__main__":
    sys.exit(main())
