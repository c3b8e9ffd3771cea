"""Several stations on one PostgreSQL catalog (issue 16).

    .venv/bin/python bench/stations.py                          # 4 stations, 10 s per phase, search at 10,000,000
    .venv/bin/python bench/stations.py --recordings 1000000     # the search phase at 1M (shared machines)
    .venv/bin/python bench/stations.py --recordings 0           # writes and claims only

Phase 1, writes: `--stations` processes (each its own `[station].name` and connection pool)
catalogue files as the upload step does — one transaction per file: the media row, its sighting,
its index job and two custody events (`stored`, `verified`) appended to the one hash chain — for
`--seconds`.  Phase 2: the same processes append bare custody events (one per transaction).
Phase 3: they claim and finish the jobs phase 1 queued (`FOR UPDATE SKIP LOCKED`).  Each figure is
the sum over the processes; afterwards the chain is verified and every job checked done once.

Phase 4, search: `--recordings` recordings (~10 per case, 80 % linked) are generated in SQL with
`generate_series` into a fresh database built by the real migrations, then `cases.search.search`
by case number is timed (target p95 <= 20 ms).

Custody events here are unsigned (no station key): the Ed25519 signature a station adds costs
~50 µs of CPU per event, outside the catalog's lock.  Every database is created fresh and dropped
afterwards (`--keep` keeps them).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from cases.search import Criteria, search  # noqa: E402
from catalog import custody_log, jobs  # noqa: E402
from catalog.db import Catalog  # noqa: E402
from catalog.models import DockSession, Job, Media, Sighting, utcnow  # noqa: E402

TARGET_CASE_MS = 20.0


# --------------------------------------------------------------------------- databases
def make_db(admin_url: str) -> str:
    name = f"custody_bench_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_db(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    eng.dispose()


# --------------------------------------------------------------------------- station processes
def _station(url: str, station: str, mode: str, start: float, seconds: float, out: Any) -> None:
    cat = Catalog(url, station=station)
    rng = random.Random(station)
    with cat.session() as s:
        ds = DockSession(station=station, volume_path=f"/docks/{station}", state="offloading")
        s.add(ds)
        s.flush()
        sid = ds.id
    while time.time() < start:
        time.sleep(0.001)
    end = time.time() + seconds
    n = events = 0
    while time.time() < end:
        if mode == "catalog":
            sha = f"{rng.getrandbits(256):064x}"
            with cat.session() as s:
                m = Media(sha256=sha, size=1_000_000, kind="video", storage_key=f"media/sha256/{sha[:2]}/{sha[2:4]}/{sha}",
                          original_path=f"DCIM/{n}.MP4", original_name=f"{n}.MP4", first_session_id=sid,
                          stored_at=utcnow(), verified_at=utcnow())
                s.add(m)
                s.flush()
                s.add(Sighting(media_id=m.id, session_id=sid, device_path=m.original_path))
                s.add(Job(kind="index", media_id=m.id))
                custody_log.record(s, "stored", actor=f"station:{station}", media_id=m.id, session_id=sid,
                                   subject=f"sha256:{sha}", detail={"key": m.storage_key, "size": m.size})
                custody_log.record(s, "verified", actor=f"station:{station}", media_id=m.id, session_id=sid,
                                   subject=f"sha256:{sha}", detail={"store_checksum": "x"})
            n += 1
            events += 2
        elif mode == "events":
            with cat.session() as s:
                custody_log.record(s, "viewed", actor=f"station:{station}", subject=f"bench:{n}")
            n += 1
            events += 1
        else:  # claims
            lease = jobs.claim(cat, f"{station}/indexer-0", 600, 3, kinds=jobs.INDEX_KINDS)
            if lease is None:
                break
            with cat.session() as s:
                jobs.finish(s, lease)
            n += 1
    out.put((station, n, events, time.time() - (end - seconds)))
    cat.dispose()


def run_phase(url: str, mode: str, stations: int, seconds: float) -> tuple[int, int, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start = time.time() + 3.0  # every process connected and waiting
    ps = [ctx.Process(target=_station, args=(url, f"bench-station-{i}", mode, start, seconds, q))
          for i in range(stations)]
    for p in ps:
        p.start()
    res = [q.get(timeout=seconds + 120) for _ in ps]
    for p in ps:
        p.join()
    n = sum(r[1] for r in res)
    ev = sum(r[2] for r in res)
    took = max(r[3] for r in res)
    return n, ev, took


def writes_and_claims(admin: str, stations: int, seconds: float, keep: bool) -> bool:
    url = make_db(admin)
    try:
        Catalog(url).dispose()  # migrate once
        n, ev, took = run_phase(url, "catalog", stations, seconds)
        print(f"catalog writes, {stations} stations: {n / took:8.1f} files catalogued/s "
              f"({ev / took:8.1f} custody events/s; {n} files in {took:.1f} s)")
        n2, ev2, took2 = run_phase(url, "events", stations, seconds)
        print(f"custody log appends, {stations} writers: {ev2 / took2:8.1f} events/s ({ev2} in {took2:.1f} s)")
        n3, _, took3 = run_phase(url, "claims", stations, seconds)
        print(f"job claims, {stations} stations: {n3 / took3:8.1f} claims+finishes/s ({n3} in {took3:.1f} s)")
        cat = Catalog(url)
        with cat.session() as s:
            rep = custody_log.verify_chain(s)
            dup = s.scalar(select(func.count(Job.id)).where(Job.attempts != 1, Job.state == "done")) or 0
            done = s.scalar(select(func.count(Job.id)).where(Job.state == "done")) or 0
        cat.dispose()
        ok = rep.ok and dup == 0 and done == n3
        print(f"custody chain: {rep.events} events, {'valid' if rep.ok else rep.problems[:3]}; "
              f"jobs done once: {done} done, {dup} claimed twice  {'PASS' if ok else 'FAIL'}")
        return ok
    finally:
        if not keep:
            drop_db(admin, url)


# --------------------------------------------------------------------------- search at scale
GENERATE = [
    ("officers", "INSERT INTO officers (id, badge, name, status, source) "
                 "SELECT i, (310000 + i)::text, '执法人员' || i, 'active', 'import' FROM generate_series(1, :officers) i"),
    ("devices", "INSERT INTO devices (id, serial, kind, source) "
                "SELECT i, 'A' || (100000 + i), 'camera', 'import' FROM generate_series(1, :devices) i"),
    ("cases", "INSERT INTO cases (id, case_no, kind, enterprise, start, \"end\", hazards_found, status, updated_at, "
              "fewer_than_two_officers) "
              "SELECT i, 'JC-' || (2025 + i % 2) || '-' || lpad(i::text, 7, '0'), 'inspection', "
              "'企业' || (i % 20000) || '号有限公司', "
              "timestamp '2025-01-01 01:00' + (i % 730) * interval '1 day' + (i % 7) * interval '1 hour', "
              "timestamp '2025-01-01 02:00' + (i % 730) * interval '1 day' + (i % 7) * interval '1 hour', "
              "false, 'closed', now(), false FROM generate_series(1, :cases) i"),
    ("case_officers", "INSERT INTO case_officers (case_id, officer_id) "
                      "SELECT i, 1 + i % :officers FROM generate_series(1, :cases) i UNION ALL "
                      "SELECT i, 1 + (i + 1) % :officers FROM generate_series(1, :cases) i"),
]
# media i: linked (80 %) to case 1 + (i * 7919) % cases, recorded inside its window by one of its officers.
MEDIA = ("INSERT INTO media (id, sha256, size, kind, storage_key, status, device_id, officer_id, officer_badge, "
         "original_path, original_name, important, flags, flag_reasons, recorded_start, recorded_end, "
         "duration_seconds, stored_at, index_state, meta, legal_hold_applied) "
         "SELECT i, md5(i::text) || md5((-i)::text), 180000000, 'video', 'media/sha256/' || md5(i::text), 'stored', "
         "1 + (1 + c % :officers) % :devices, 1 + c % :officers, (310001 + c % :officers)::text, "
         "'DCIM/' || i || '.MP4', i || '.MP4', false, '[]'::json, '{}'::json, "
         "timestamp '2025-01-01 01:00' + (c % 730) * interval '1 day' + (c % 7) * interval '1 hour' "
         "  + (i % 3300) * interval '1 second', "
         "timestamp '2025-01-01 01:05' + (c % 730) * interval '1 day' + (c % 7) * interval '1 hour' "
         "  + (i % 3300) * interval '1 second', 300.0, now(), 'done', '{}'::json, false "
         "FROM (SELECT i, 1 + (i * 7919) % :cases AS c FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) i) g")
LINKS = ("INSERT INTO media_links (id, media_id, case_id, method, score, reason, active, created_by, created_at) "
         "SELECT i, i, 1 + (i * 7919) % :cases, 'auto', 0.9, 'auto: bench', true, 'system', now() "
         "FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) i WHERE i % 5 <> 0")


def search_at_scale(admin: str, recordings: int, queries: int, keep: bool) -> bool:
    url = make_db(admin)
    try:
        cat = Catalog(url)
        p = {"officers": 500, "devices": 250, "cases": max(100, recordings // 10)}
        t0 = time.perf_counter()
        with cat.engine.begin() as c:
            for _name, sql in GENERATE:
                c.execute(text(sql), p)
        step = 1_000_000
        for lo in range(1, recordings + 1, step):
            hi = min(recordings, lo + step - 1)
            with cat.engine.begin() as c:
                c.execute(text(MEDIA), {**p, "lo": lo, "hi": hi})
                c.execute(text(LINKS), {**p, "lo": lo, "hi": hi})
            print(f"  {hi:,} / {recordings:,} recordings generated ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
        with cat.engine.begin() as c:
            for t in ("media", "media_links", "cases"):
                c.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"))
        with cat.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
        print(f"postgresql: {recordings:,} recordings, {p['cases']:,} cases generated in "
              f"{time.perf_counter() - t0:.0f} s")
        rng = random.Random(16)
        samples: list[float] = []
        rows = 0
        with cat.sessionmaker() as s:
            for i in range(queries + 20):
                cid = rng.randrange(1, p["cases"] + 1)
                crit = Criteria(case_no=f"JC-{2025 + cid % 2}-{cid:07d}", limit=1000)
                t = time.perf_counter()
                found = search(s, crit)
                ms = (time.perf_counter() - t) * 1000
                if i >= 20:
                    samples.append(ms)
                    rows += len(found)
                s.rollback()
        cat.dispose()
        q95 = statistics.quantiles(samples, n=100, method="inclusive")[94]
        ok = q95 <= TARGET_CASE_MS
        print(f"postgresql search --case NO at {recordings:,}: n={len(samples)} rows/query={rows / len(samples):.1f} "
              f"p50={statistics.median(samples):.2f} ms p95={q95:.2f} ms max={max(samples):.2f} ms "
              f"target p95<={TARGET_CASE_MS:.0f} ms  {'PASS' if ok else 'FAIL'}")
        return ok
    finally:
        if not keep:
            drop_db(admin, url)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each write/claim phase")
    ap.add_argument("--recordings", type=int, default=10_000_000, help="rows for the search phase (0: skip it)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--skip-writes", action="store_true")
    ap.add_argument("--pg-admin", default=os.environ.get("CUSTODY_TEST_PG",
                                                         "postgresql+psycopg2://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--keep", action="store_true", help="keep the generated databases")
    args = ap.parse_args()
    ok = True
    if not args.skip_writes:
        ok &= writes_and_claims(args.pg_admin, args.stations, args.seconds, args.keep)
    if args.recordings:
        ok &= search_at_scale(args.pg_admin, args.recordings, args.queries, args.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
