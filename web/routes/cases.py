"""Reviewer pages: search, the case page with its timeline, and the case export."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from catalog.app import App
from core.errors import CustodyError, NotFound, PermissionDenied
from catalog.models import Case
from web import trail
from catalog.access import can_see_case
from web.auth import Refused, Viewer, allow
from web.export import export_case, zip_bag
from web.i18n import tagged
from web.pages import render
from web.queries import SearchForm, case_view, lane_of, parse_day, search_cases, search_media

router = APIRouter()
MAX_FIELD = 200  # longer search text is refused (400), never handed to LIKE (issue 17)


@router.get("/search")
def search(request: Request, case_no: str = "", officer: str = "", device: str = "", enterprise: str = "",
           date: str = "", unlinked: str = "", viewer: Viewer = Depends(allow("view"))) -> Response:
    app: App = request.app.state.custody
    if max(len(case_no), len(officer), len(device), len(enterprise), len(date)) > MAX_FIELD:
        raise tagged(CustodyError(f"a search field is longer than {MAX_FIELD} characters"), "error.field_too_long",
                     n=MAX_FIELD)
    form = SearchForm(case_no=case_no.strip(), officer=officer.strip(), device=device.strip(),
                      enterprise=enterprise.strip(), day=parse_day(date.strip()), unlinked=bool(unlinked))
    if form.empty:
        return render(request, "search.html", viewer, form=form, day_text=date, cases=[], media=[])
    query = {k: v for k, v in {"case_no": form.case_no, "officer": form.officer, "device": form.device,
                               "enterprise": form.enterprise, "date": date, "unlinked": form.unlinked}.items() if v}
    with app.catalog.session() as s:
        cases = search_cases(s, viewer.actor, form, app.settings.tz)
        media = search_media(s, viewer.actor, form, app.settings.tz)
        trail.record(s, viewer, "searched", subject="search",
                     detail={"query": query, "cases": len(cases), "recordings": len(media)})
        # Rendered inside the session: the rows' officer/device load lazily.
        return render(request, "search.html", viewer, form=form, day_text=date, cases=cases, media=media)


def load_case(request: Request, s: Session, viewer: Viewer, case_no: str) -> Case:
    case = s.execute(select(Case).where(Case.case_no == case_no)).scalar_one_or_none()
    if case is None:  # the enforcement system's record id names a case as well
        case = s.execute(select(Case).where(Case.record_id == case_no)).scalar_one_or_none()
    if case is None:
        raise tagged(NotFound(f"no case numbered {case_no}"), "error.no_case", case_no=case_no)
    if not can_see_case(s, viewer.actor, case):  # answered as a missing case; logged as refused
        raise Refused(viewer, f"case {case_no} belongs to a unit this account does not cover",
                      "case outside the account's units", case_no=case_no,
                      as_missing=tagged(NotFound(f"no case numbered {case_no}"), "error.no_case", case_no=case_no))
    return case


@router.get("/cases/{case_no:path}/export")
def export_form(request: Request, case_no: str, viewer: Viewer = Depends(allow("export"))) -> Response:
    """The export is a POST (it writes the custody log); this page only offers the button."""
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        case = load_case(request, s, viewer, case_no)
        trail.record(s, viewer, "viewed", subject=f"case:{case.case_no}", detail={"page": "export"})
        return render(request, "export.html", viewer, case=case)


@router.post("/cases/{case_no:path}/export")
def export(request: Request, case_no: str, viewer: Viewer = Depends(allow("export"))) -> Response:
    """Build the bag, zip it (stored) and send it; the temporary copy is removed after sending."""
    app: App = request.app.state.custody
    work = Path(tempfile.mkdtemp(prefix="custody-export-"))
    try:
        result = export_case(app, viewer.actor, case_no, work / "bag", remote_addr=viewer.remote_addr, via="web")
        bag = result.bag_dir.rename(work / result.name)
        archive = zip_bag(bag, work / f"{bag.name}.zip")
    except PermissionDenied as e:  # a case outside the account's units: logged (exported, refused); as missing
        shutil.rmtree(work, ignore_errors=True)
        raise tagged(NotFound(f"no case numbered {case_no}"), "error.no_case", case_no=case_no) from e
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(archive, media_type="application/zip", filename=archive.name,
                        background=BackgroundTask(shutil.rmtree, work, True))


@router.get("/cases/{case_no:path}")
def case_page(request: Request, case_no: str, viewer: Viewer = Depends(allow("view"))) -> Response:
    app: App = request.app.state.custody
    with app.catalog.session() as s:
        case = load_case(request, s, viewer, case_no)
        view = case_view(s, viewer.actor, case)
        trail.record(s, viewer, "viewed", subject=f"case:{case.case_no}",
                     detail={"page": "case", "recordings": [e.media.id for e in view.entries]})
        return render(request, "case.html", viewer, view=view, lane_of=lane_of)
