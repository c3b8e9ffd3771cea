"""The enforcement system's API (issue 15; docs/api.md): case push, a case's recordings, OpenAPI.

`POST /api/v1/{units|officers|devices|assignments|cases}` takes a JSON list of objects with the
columns of `custody import` and goes through the very same checks (cases/refdata.py): any bad
row and nothing changes (422 with every problem); otherwise rows are upserted and linking re-runs.
`GET /api/v1/cases/{record_id or case_no}/recordings` returns `custody search --case … --json`.
Authentication: `Authorization: Bearer <API token>` (`custody api-token issue ACCOUNT`); the
token acts as its account, whose role must hold `import` (push) or `view` (read).
Every request, refused ones included, is a custody event with the remote address.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from catalog import custody_log
from catalog.access import media_visible_clause
from catalog.accounts import Actor
from catalog.app import App
from catalog.tokens import bearer, check_api_token
from cases import refdata
from cases.search import Criteria, search
from core.errors import CustodyError, NotFound
from web.auth import remote_addr
from web.routes import uploads

router = APIRouter()
API = "/api/v1"
MAX_BODY = 32 * 1024 * 1024


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _account(app: App, request: Request, capabilities: tuple[str, ...]) -> tuple[Actor, int]:
    """The API token's account, holding one of `capabilities`; a refusal is logged and raised."""
    token = bearer(request.headers.get("authorization"))
    with app.catalog.session() as s:
        actor, token_id, why = check_api_token(s, token)
        status = 401
        if actor is not None and not any(actor.can(c) for c in capabilities):
            why, status = f"{actor.username} ({actor.role}) may not {'/'.join(capabilities)}", 403
        if actor is None or status == 403:
            s.rollback()
            custody_log.record(s, "refused", actor=actor.username if actor else "anonymous", outcome="refused",
                               remote_addr=remote_addr(request), subject=f"{request.method} {request.url.path}",
                               detail={"reason": why, "via": "api", "token_id": token_id, "station": app.station,
                                       "capability": "|".join(capabilities)})
            s.commit()  # the refusal stays on the record although the request fails
            raise _Refusal(status, why)
        return actor, token_id or 0


def _json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="custody"'} if status == 401 else None
    return JSONResponse({"ok": False, "error": message, **extra}, status_code=status, headers=headers)


def _push(request: Request, kind: str, raw: bytes) -> Response:
    app: App = request.app.state.custody
    try:
        actor, token_id = _account(app, request, ("import",))
    except _Refusal as e:
        return _json_error(e.status, str(e))
    source = f"api:{request.method} {request.url.path} from {remote_addr(request)}"
    with app.catalog.session() as s:
        try:
            rep = refdata.import_bytes(s, app.settings, kind, raw, source, actor.username, suffix=".json")
        except refdata.ImportRejected as err:
            s.rollback()
            custody_log.record(s, "imported", actor=actor.username, outcome="refused", subject=f"refdata:{kind}",
                               remote_addr=remote_addr(request),
                               detail={"via": "api", "token_id": token_id, "station": app.station,
                                       "errors": [str(e) for e in err.errors[:50]], "error_count": len(err.errors)})
            s.commit()
            return _json_error(422, f"{len(err.errors)} problem(s), nothing imported / 有错误，未导入任何数据",
                               errors=[{"line": e.line, "message": e.message} for e in err.errors])
        except CustodyError as err:
            s.rollback()
            return _json_error(400, str(err))
    return JSONResponse({"ok": True, "report": rep.as_dict()})


def _push_route(kind: str):  # noqa: ANN202 - a route function per import kind
    cols = refdata.COLUMNS[kind]

    async def push(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _json_error(413, f"body larger than {MAX_BODY} bytes; split the rows over several requests")
        return await run_in_threadpool(_push, request, kind, raw)

    push.__name__ = f"push_{kind}"
    push.__doc__ = (f"Upsert {kind} (the columns of `custody import {kind}`); all or nothing.\n\n"
                    f"推送{kind}（与 `custody import {kind}` 相同的列与校验，全部成功或全部不变）。")
    schema = {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                         "properties": {c: {} for c in cols},
                                         "required": list(refdata.REQUIRED[kind])}}
    router.add_api_route(f"{API}/{kind}", push, methods=["POST"], summary=f"Push {kind}",
                         openapi_extra={"requestBody": {"required": True,
                                                        "content": {"application/json": {"schema": schema}}},
                                        "security": [{"bearer": []}]})


for _kind in refdata.KINDS:
    _push_route(_kind)


@router.get(API + "/cases/{ref:path}/recordings", summary="Recordings of a case",
            openapi_extra={"security": [{"bearer": []}]})
def recordings(request: Request, ref: str) -> Response:
    """What `custody search --case REF --json` prints; REF is a case number or a record id.

    案件的录像（与 `custody search --case … --json` 相同），REF 为文书编号或执法系统记录号。"""
    app: App = request.app.state.custody
    try:
        actor, token_id = _account(app, request, ("view", "view_own"))
    except _Refusal as e:
        return _json_error(e.status, str(e))
    with app.catalog.session() as s:
        try:
            rows = search(s, Criteria(case_no=ref, limit=None), scope=media_visible_clause(actor))
        except NotFound as e:
            s.rollback()
            return _json_error(404, str(e))
        custody_log.record(s, "searched", actor=actor.username, subject=f"case:{ref}", remote_addr=remote_addr(request),
                           detail={"via": "api", "token_id": token_id, "station": app.station,
                                   "recordings": len(rows)})
    return JSONResponse([r.as_json(app.settings.tz) for r in rows])


@router.get(API + "/openapi.json", include_in_schema=False)
def openapi(request: Request) -> Response:
    doc = get_openapi(title="Custody API", version="1",
                      description="Case push and field upload (tus 1.0 at /api/v1/uploads/). "
                                  "See docs/api.md and docs/field-upload.md. / 案件推送与终端上传接口。",
                      routes=[*router.routes, *uploads.router.routes])
    doc.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "API token (`custody api-token issue`) or, for uploads, a device token "
                                  "(`custody devices enrol`)"}}
    return JSONResponse(doc)
