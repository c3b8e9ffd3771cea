"""The demo bureau of `./dev run` (issue 13): imported into a demo catalog only, once, with an
administrator whose generated password is shown once; a second run changes nothing."""
from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

from sqlalchemy import func, select

from catalog.accounts import check_password
from catalog.models import Account, Case, Device, DeviceAssignment, Officer, Unit
from custody import demo


def test_demo_bureau_goes_into_an_empty_catalog_once(make_app, caplog) -> None:  # noqa: ANN001
    app = make_app()
    with caplog.at_level(logging.INFO, logger="custody.demo"):
        state = demo.prepare(app)
    assert state is not None
    text = caplog.text
    password = next(line.split("password ", 1)[1].split()[0] for line in text.splitlines() if "password " in line
                    and "shown once" in line)
    with app.catalog.session() as s:
        units = {u.code: u.parent_code for u in s.execute(select(Unit)).scalars()}
        assert units["120102000101"] == "120102000100" and units["120102000100"] == "120102000000"
        assert s.execute(select(func.count()).select_from(Officer)).scalar_one() == 6
        serials = set(s.execute(select(Device.serial)).scalars())
        assert {"SIMGAT00", "SIMDCI01", "SIMAND02"} <= serials
        assert s.execute(select(func.count()).select_from(DeviceAssignment)).scalar_one() == 3
        cases = {c.case_no: c for c in s.execute(select(Case)).scalars()}
        assert len(cases) == 5
        solo = next(c for c in cases.values() if c.fewer_than_two_officers)
        assert solo.case_no.endswith("0102号")
        follow = next(c for c in cases.values() if c.follows_up)
        assert follow.follows_up == next(c.record_id for c in cases.values() if c.case_no.endswith("0101号"))
        first = next(c for c in cases.values() if c.case_no.endswith("0101号"))
        assert first.start == state.t0 - timedelta(minutes=5)
        admin = s.execute(select(Account).where(Account.username == demo.DEMO_ADMIN)).scalar_one()
        assert admin.role == "administrator" and check_password(admin.password_hash, password)
    # The simulated devices match the imported ones and record inside their inspections.
    names = [name for name, _ in demo.sim_devices(state)]
    assert names == ["gat947-SIMGAT00", "android-SIMAND02", "dcim-SIMDCI01"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="custody.demo"):
        again = demo.prepare(app)
    assert again is not None and again.t0 == state.t0  # the same demo day: the same volumes and cases
    assert "shown once" not in caplog.text and "0 created" in caplog.text
    with app.catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == 5
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 1
    saved = json.loads(app.settings.path(demo.Path(demo.STATE_FILE)).read_text())
    assert saved["admin_created"] is True


def test_a_catalog_with_its_own_units_gets_no_demo(make_app, tmp_path) -> None:  # noqa: ANN001
    app = make_app()
    with app.catalog.session() as s:
        s.add(Unit(code="440300000000", name="真实单位"))
    assert demo.prepare(app) is None
    with app.catalog.session() as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Account)).scalar_one() == 0


def test_leftover_simulated_volumes_are_removed(make_app) -> None:  # noqa: ANN001
    app = make_app()
    root = app.settings.path(app.settings.station.dock_root)
    for name in ("gat947-SIMGAT00-1a2b", "dcim-SIMDCI01-ffff", "android-SIMAND02-0000", "A_REAL_DEVICE"):
        (root / name / "DCIM").mkdir(parents=True)
    demo.prepare(app)
    assert sorted(p.name for p in root.iterdir()) == ["A_REAL_DEVICE"]


def _daemon(home, timeout: float = 240):  # noqa: ANN001, ANN202
    """`./dev run` without the install step: the shipped config, a fresh home."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env["CUSTODY_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "custody.cli", "daemon", "--simulate-dock", "--exit-when-idle"],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(home))


def _cli_json(home, *args: str):  # noqa: ANN001, ANN202
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env["CUSTODY_HOME"] = str(home)
    r = subprocess.run([sys.executable, "-m", "custody.cli", "--user", demo.DEMO_ADMIN, *args], capture_output=True,
                       text=True, timeout=120, env=env, cwd=str(home))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_first_run_shows_links_a_review_item_and_a_parent_subtotal(tmp_path, ffmpeg_ok) -> None:  # noqa: ANN001
    first = _daemon(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    log = first.stderr
    assert "shown once" in log and "http://127.0.0.1:8080/" in log
    # Not a terminal: one record per line, never wrapped - every line starts with its time.
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} (INFO|WARNING|ERROR|DEBUG)", line)
               for line in log.splitlines()), log[:2000]
    # The story of each device: profile, each file's outcome, verified, indexed, linked.
    assert "gat947-SIMGAT00 [SIMGAT00]: recognised by profile gat947 (camera); officer 310001" in log
    assert re.search(r"\[SIMGAT00\] DCIM/\S+\.MP4: stored, verified \(sha256 [0-9a-f]{12}", log)
    assert re.search(r"media \d+ \[SIMGAT00\] \S+\.MP4: indexed — video .*; linked to \S+0101号", log)
    assert re.search(r"media \d+ \[SIMDCI01\] \S+: indexed — .*; queued for review: overlapping cases", log)
    searched = _cli_json(tmp_path, "search", "--json")
    linked = {r["case"] for r in searched if r["case"]}
    assert any(c.endswith("0101号") for c in linked) and any(c.endswith("0102号") for c in linked)
    queue = _cli_json(tmp_path, "review-queue", "--json")
    assert queue and {c["case_no"][-5:] for c in queue[0]["candidates"]} == {"0103号", "0104号"}
    ratio = _cli_json(tmp_path, "report", "ratio", "--format", "json")
    parent = next(r for r in ratio["rows"] if r["unit"] == "120102000100")
    assert parent["subtotal"] is True and parent["officers"] == 5 and parent["level"] == 1
    docks = sorted(p.name for p in (tmp_path / "var" / "docks").iterdir())
    assert docks == ["android-SIMAND02", "dcim-SIMDCI01", "gat947-SIMGAT00"]

    again = _daemon(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"\[SIMGAT00\] DCIM/\S+\.MP4: duplicate: already stored", again.stderr)
    assert "another process" not in again.stderr and "failed" not in again.stderr.lower()
    assert "shown once" not in again.stderr
    assert sorted(p.name for p in (tmp_path / "var" / "docks").iterdir()) == docks  # no pile of volumes
    assert len(_cli_json(tmp_path, "search", "--json")) == len(searched)  # the same recordings: duplicates


def test_log_lines_are_plain_and_verbose_shows_only_custodys_debug(capsys) -> None:  # noqa: ANN001
    from custody.commands.ingest import setup_logging

    setup_logging(verbose=True)
    logging.getLogger("custody.daemon").debug("our own debug line")
    logging.getLogger("botocore.endpoint").debug("third-party debug line")
    logging.getLogger("PIL.Image").debug("another library's debug line")
    logging.getLogger("custody.daemon").info("a long line " + "x" * 300)
    err = capsys.readouterr().err
    assert "our own debug line" in err and "third-party" not in err and "another library" not in err
    long = next(line for line in err.splitlines() if "a long line" in line)
    assert long.endswith("x" * 300)  # not wrapped when stderr is not a terminal
    setup_logging(verbose=False)
    logging.getLogger("custody.daemon").debug("hidden without -v")
    assert "hidden without -v" not in capsys.readouterr().err
