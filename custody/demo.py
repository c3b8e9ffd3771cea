"""The demo bureau `./dev run` shows (custody daemon --simulate-dock).

A small district bureau ships in config/demo/: units with a parent (the bureau's own office
and brigade under one parent unit, a street office beside it), officers, the three simulated
devices and one camera never docked, device assignments, and inspections placed around the
simulated recordings — one the recorder links, one recorded by a single officer (a
two-officer-rule violation in the coverage report), two overlapping ones that send the
camera's clips to the review queue, and a follow-up (复查) later today.

Only a demo catalog receives it: one holding no units at all, or only the demo's.  A
catalog with reference data of its own is left alone.  The demo's start time is kept in
`var/demo-bureau.json`, so a second `./dev run` docks the same volumes (nothing new to
store: duplicates) and re-imports the same, unchanged data.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from catalog.accounts import add_account, os_user
from catalog.app import App
from catalog.models import Account, Unit
from cases import refdata
from core.settings import SHIPPED_CONFIG_DIR
from ingest.simulate import SimDevice

log = logging.getLogger("custody.demo")

DEMO_DIR = SHIPPED_CONFIG_DIR / "demo"
DEMO_ADMIN = "demo-admin"
STATE_FILE = "var/demo-bureau.json"
# (profile kind, serial, officer, unit, minutes after the demo's start when it records)
DEVICES = (
    ("gat947", "SIMGAT00", "310001", "120102000101", 0, 0.0),
    ("android", "SIMAND02", "310005", "120102100000", 30, -5.0),
    ("dcim", "SIMDCI01", "310003", "120102000102", 60, 420.0),
)
_IMPORTS = (("units", "units.json"), ("officers", "officers.csv"), ("devices", "devices.csv"),
            ("assignments", "assignments.csv"))
_SLOT = re.compile(r"\{t0([+-]\d+)\}")
# Volumes earlier versions of the simulation left behind (a random suffix per run).
_LEGACY_VOLUME = re.compile(r"^(gat947|dcim|android)-SIM[A-Z]{3}\d\d-[0-9a-f]{4}$")


@dataclass
class DemoState:
    t0: datetime  # the demo's start, station local time
    admin_created: bool = False


def demo_codes() -> set[str]:
    return {u["code"] for u in json.loads((DEMO_DIR / "units.json").read_text(encoding="utf-8"))}


def is_demo_catalog(app: App) -> bool:
    """No units, or only the demo bureau's: the demo may write its reference data here."""
    with app.catalog.session() as s:
        codes = set(s.execute(select(Unit.code)).scalars())
    return not codes or codes <= demo_codes()


def load_state(app: App) -> DemoState:
    path = app.settings.path(Path(STATE_FILE))
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return DemoState(datetime.fromisoformat(data["t0"]), bool(data.get("admin_created")))
    now = datetime.now(app.settings.tz).replace(second=0, microsecond=0)
    state = DemoState(now - timedelta(hours=2))
    save_state(app, state)
    return state


def save_state(app: App, state: DemoState) -> None:
    path = app.settings.path(Path(STATE_FILE))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"t0": state.t0.isoformat(), "admin_created": state.admin_created}) + "\n",
                    encoding="utf-8")


def sim_devices(state: DemoState) -> list[tuple[str, SimDevice]]:
    """(volume name, device) for the three simulated devices; the same names on every run."""
    return [(f"{kind}-{serial}", SimDevice(kind=kind, serial=serial, officer=officer, unit=unit,
                                           start=state.t0 + timedelta(minutes=minutes), clock_offset_s=offset))
            for kind, serial, officer, unit, minutes, offset in DEVICES]


def cases_file(state: DemoState, out: Path) -> Path:
    """config/demo/cases.json with its times placed around the demo's start."""
    def fill(text: str) -> str:
        text = _SLOT.sub(lambda m: (state.t0 + timedelta(minutes=int(m.group(1)))).strftime("%Y-%m-%d %H:%M"), text)
        return text.replace("{year}", f"{state.t0:%Y}").replace("{day}", f"{state.t0:%Y%m%d}")

    rows = json.loads((DEMO_DIR / "cases.json").read_text(encoding="utf-8"))
    filled = [{k: fill(v) if isinstance(v, str) else v for k, v in row.items() if not k.startswith("_")}
              for row in rows]
    out.write_text(json.dumps(filled, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


def remove_legacy_volumes(app: App) -> int:
    """Simulated volumes earlier runs left under random names (each run added three more)."""
    root = app.settings.path(app.settings.station.dock_root)
    gone = 0
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and not p.is_symlink() and _LEGACY_VOLUME.match(p.name):
                shutil.rmtree(p)
                gone += 1
    return gone


def import_bureau(app: App, state: DemoState) -> list[str]:
    """Import the demo bureau (idempotent); returns the import lines for the log."""
    lines: list[str] = []
    work = app.settings.path(Path("var/demo"))
    work.mkdir(parents=True, exist_ok=True)
    files = [(kind, DEMO_DIR / name) for kind, name in _IMPORTS]
    files.append(("cases", cases_file(state, work / "cases.json")))
    for kind, path in files:
        with app.catalog.session() as s:
            rep = refdata.import_file(s, app.settings, kind, path, actor="demo")
        lines.append(f"demo bureau / 演示数据: {kind}: {rep.rows} row(s), {rep.created} created, "
                     f"{rep.updated} updated, {rep.unchanged} unchanged")
        lines += [f"  warning / 警告: {w}" for w in rep.warnings]
    return lines


def ensure_admin(app: App, state: DemoState) -> str | None:
    """Create the demo administrator once; returns its password the one time it is made."""
    with app.catalog.session() as s:
        if s.execute(select(Account.id).where(Account.username == DEMO_ADMIN)).first() is not None:
            return None
        me = os_user()
        mapped = s.execute(select(Account.id).where(Account.os_user == me)).first() is not None
        password = secrets.token_urlsafe(12)
        add_account(s, DEMO_ADMIN, "administrator", password=password, display_name="演示管理员 / demo administrator",
                    os_user_name=None if mapped else me, created_by="demo")
    state.admin_created = True
    save_state(app, state)
    return password


def how_to_look(app: App, state: DemoState, password: str | None) -> list[str]:
    web = app.settings.web
    first, last = state.t0.date().isoformat(), datetime.now(app.settings.tz).date().isoformat()
    login = (f"log in as {DEMO_ADMIN} / password {password}  (shown once / 密码只显示这一次)" if password
             else f"log in as {DEMO_ADMIN} (its password was shown at the first run; set a new one with "
                  f"`.venv/bin/custody users reset {DEMO_ADMIN} --password-stdin`)")
    return [
        "demo bureau ready / 演示单位已就绪:",
        f"  web app / 网页: .venv/bin/custody serve, then open http://{web.host}:{web.port}/  — {login}",
        f"  try / 试试: .venv/bin/custody --user {DEMO_ADMIN} review-queue",
        f"              .venv/bin/custody --user {DEMO_ADMIN} report ratio",
        f"              .venv/bin/custody --user {DEMO_ADMIN} report coverage --from {first} --to {last}",
        f"              .venv/bin/custody --user {DEMO_ADMIN} search --unlinked",
    ]


def prepare(app: App) -> DemoState | None:
    """Import the demo bureau and its administrator into a demo catalog; None when the catalog is not one."""
    gone = remove_legacy_volumes(app)
    if gone:
        log.info("removed %d simulated volume(s) earlier runs left in the dock root", gone)
    if not is_demo_catalog(app):
        log.warning("the catalog holds units of its own: the demo bureau is not imported (demo catalogs only)")
        return None
    state = load_state(app)
    for line in import_bureau(app, state):
        log.info("%s", line)
    password = ensure_admin(app, state)
    for line in how_to_look(app, state, password):
        log.info("%s", line)
    return state
