"""Administrator pages: reports, registers, retention and holds, station status, accounts."""
from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response

from catalog.app import App
from catalog.fixity import recent as fixity_recent
from catalog.stations import FAILURE_WINDOW as STATION_FAILURE_WINDOW
from catalog.stations import status as station_status
from core.errors import CustodyError, NotFound
from catalog.models import (
    Account,
    DeviceAssignment,
    Device,
    DockSession,
    Hold,
    Job,
    Media,
    OffloadItem,
    Officer,
    RetentionPlan,
    Unit,
    utcnow,
)
from retention import holds as retention_holds
from retention import plan as retention_plan
from web import reports_view, trail
from web.accounts_admin import CHANGES, apply_change
from web.auth import Viewer, allow
from web.guard import valid_id
from web.i18n import lang_of, tagged
from web.pages import render

router = APIRouter(prefix="/admin")
STALE_AFTER = timedelta(minutes=2)


@router.get("")
def dashboard(request: Request, viewer: Viewer = Depends(allow("admin"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        counts = {
            "media": s.scalar(select(func.count(Media.id))) or 0,
            "officers": s.scalar(select(func.count(Officer.id))) or 0,
            "devices": s.scalar(select(func.count(Device.id))) or 0,
            "open_docks": s.scalar(select(func.count(DockSession.id)).where(DockSession.state == "offloading")) or 0,
            "pending_jobs": s.scalar(select(func.count(Job.id)).where(Job.state.in_(("pending", "running")))) or 0,
        }
        trail.record(s, viewer, "viewed", subject="page:/admin")
        return render(request, "admin.html", viewer, counts=counts)


# --------------------------------------------------------------------------- reports
@router.get("/reports")
def reports(request: Request, kind: str = "ratio", first: str = "", last: str = "", unit: str = "",
            viewer: Viewer = Depends(allow("reports"))) -> Response:
    app: App = request.app.state.custody
    today = utcnow().astimezone(app.settings.tz).date()
    try:
        last_day = date.fromisoformat(last) if last else today
        first_day = date.fromisoformat(first) if first else None
    except ValueError as e:
        raise tagged(CustodyError("dates must be YYYY-MM-DD"), "error.dates") from e
    lang = lang_of(request)
    with app.catalog.session() as s:
        report = reports_view.build(s, app.settings, kind, first_day, last_day, unit.strip())
        trail.record(s, viewer, "viewed", subject=f"report:{kind}",
                     detail={"first": first or None, "last": last_day.isoformat(), "unit": unit or None})
    return render(request, "reports.html", viewer, kind=kind, kinds=reports_view.KINDS, report=report,
                  charts=reports_view.charts(report, lang), rt=reports_view.translator(lang),
                  cell=reports_view.formatter(lang), figure=reports_view.figure_formatter(lang), first=first,
                  last=last_day.isoformat(), unit=unit)


# --------------------------------------------------------------------------- registers
@router.get("/officers")
def officers(request: Request, viewer: Viewer = Depends(allow("admin"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        rows = s.execute(select(Officer, Unit.code).outerjoin(Unit, Unit.id == Officer.unit_id)
                         .order_by(Officer.badge)).all()
        trail.record(s, viewer, "viewed", subject="page:/admin/officers")
        return render(request, "officers.html", viewer, rows=rows)


@router.get("/devices")
def devices(request: Request, viewer: Viewer = Depends(allow("admin"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        rows = s.execute(select(Device, Unit.code).outerjoin(Unit, Unit.id == Device.unit_id)
                         .order_by(Device.serial)).all()
        trail.record(s, viewer, "viewed", subject="page:/admin/devices")
        return render(request, "devices.html", viewer, rows=rows)


@router.get("/assignments")
def assignments(request: Request, viewer: Viewer = Depends(allow("admin"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        rows = s.execute(select(DeviceAssignment, Device.serial, Officer.badge, Officer.name)
                         .join(Device, Device.id == DeviceAssignment.device_id)
                         .join(Officer, Officer.id == DeviceAssignment.officer_id)
                         .order_by(Device.serial, DeviceAssignment.valid_from)).all()
        trail.record(s, viewer, "viewed", subject="page:/admin/assignments")
        return render(request, "assignments.html", viewer, rows=rows)


# --------------------------------------------------------------------------- retention & holds
@router.get("/retention")
def retention(request: Request, viewer: Viewer = Depends(allow("retention", "hold"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        plans = list(s.execute(select(RetentionPlan).order_by(RetentionPlan.id.desc()).limit(20)).scalars())
        holds = list(s.execute(select(Hold).order_by(Hold.released_at.is_not(None), Hold.id.desc())
                               .limit(200)).scalars())
        trail.record(s, viewer, "viewed", subject="page:/admin/retention")
        return render(request, "retention.html", viewer, plans=plans, holds=holds)


@router.post("/holds")
def add_hold(request: Request, target_kind: str = Form(""), target_ref: str = Form(""), reason: str = Form(""),
             viewer: Viewer = Depends(allow("hold"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        hold = retention_holds.add_hold(s, viewer.actor, target_kind, target_ref, reason)
        retention_holds.mirror_hold(app, s, hold, viewer.actor)  # the store's legal-hold flag follows at once
        trail.record(s, viewer, "admin_change", subject=f"hold:{hold.id}",
                     detail={"change": "hold_added", "target": f"{hold.target_kind}:{hold.target_ref}"})
    return RedirectResponse("/admin/retention", status_code=303)


@router.post("/holds/{hold_id}/release")
def release_hold(request: Request, hold_id: int, reason: str = Form(""),
                 viewer: Viewer = Depends(allow("hold"))) -> Response:
    app: App = request.app.state.custody
    if not valid_id(hold_id):
        raise NotFound(f"no hold {hold_id}")
    with app.catalog.session() as s:
        hold = retention_holds.release_hold(s, viewer.actor, hold_id, reason)
        retention_holds.mirror_hold(app, s, hold, viewer.actor)  # the store's legal-hold flag follows at once
        trail.record(s, viewer, "admin_change", subject=f"hold:{hold.id}",
                     detail={"change": "hold_released", "target": f"{hold.target_kind}:{hold.target_ref}"})
    return RedirectResponse("/admin/retention", status_code=303)


@router.post("/plans/{plan_id}/approve")
def approve_plan(request: Request, plan_id: int, viewer: Viewer = Depends(allow("retention"))) -> Response:
    app: App = request.app.state.custody
    if not valid_id(plan_id):
        raise NotFound(f"no plan {plan_id}")
    with app.catalog.session() as s:
        plan = retention_plan.approve_plan(app, s, viewer.actor, plan_id)
        trail.record(s, viewer, "admin_change", subject=f"plan:{plan.id}", detail={"change": "plan_approved"})
    return RedirectResponse("/admin/retention", status_code=303)


# --------------------------------------------------------------------------- station
@router.get("/station")
def station(request: Request, viewer: Viewer = Depends(allow("admin"))) -> Response:
    app: App = request.app.state.custody
    now = utcnow()
    with app.catalog.session() as s:
        running = list(s.execute(select(DockSession).where(DockSession.state == "offloading")
                                 .order_by(DockSession.started_at)).scalars())
        recent = list(s.execute(select(DockSession).order_by(DockSession.started_at.desc()).limit(50)).scalars())
        queue = dict(s.execute(select(Job.state, func.count(Job.id)).group_by(Job.state)).all())
        failed_jobs = list(s.execute(select(Job).where(Job.state == "failed").order_by(Job.updated_at.desc())
                                     .limit(50)).scalars())
        failed_sessions = [d for d in recent if d.state in ("failed", "incomplete", "unrecognised")]
        failed_items = list(s.execute(select(OffloadItem).where(OffloadItem.status.in_(("refused", "flagged")))
                                      .order_by(OffloadItem.updated_at.desc()).limit(50)).scalars())
        stations, _ = station_status(s, app.settings, now)  # every station on the catalog (issue 16)
        fixity_failed = fixity_recent(s, now - STATION_FAILURE_WINDOW, failures_only=True, limit=50)
        trail.record(s, viewer, "viewed", subject="page:/admin/station")
        # An offload whose heartbeat stopped is shown as stale (its worker may have died).
        stale = {d.id for d in running if d.heartbeat_at is None or now - d.heartbeat_at > STALE_AFTER}
        return render(request, "station.html", viewer, running=running, recent=recent, queue=queue, stale=stale,
                      failed_jobs=failed_jobs, failed_sessions=failed_sessions, failed_items=failed_items,
                      stations=stations, fixity_failed=fixity_failed)


# --------------------------------------------------------------------------- accounts
@router.get("/accounts")
def accounts(request: Request, viewer: Viewer = Depends(allow("users"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        rows = list(s.execute(select(Account).order_by(Account.username)).scalars())
        trail.record(s, viewer, "viewed", subject="page:/admin/accounts")
        return render(request, "accounts.html", viewer, rows=rows, now=utcnow())


@router.post("/accounts/{username}/{change}")
def change_account(request: Request, username: str, change: str,
                   viewer: Viewer = Depends(allow("users"))) -> Response:
    app: App = request.app.state.custody
    if change not in CHANGES:
        raise tagged(NotFound(f"no account action {change!r}"), "error.no_account_action", change=change)
    with app.catalog.session() as s:
        acc = s.execute(select(Account).where(Account.username == username)).scalar_one_or_none()
        if acc is None:
            raise tagged(NotFound(f"no account named {username!r}"), "error.no_account", name=username)
        apply_change(s, acc, change, viewer.username, remote_addr=viewer.remote_addr)
    return RedirectResponse("/admin/accounts", status_code=303)
