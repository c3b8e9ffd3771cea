"""tus 1.0 server for field upload from enrolled terminals (issue 15; docs/field-upload.md).

Core protocol + creation + checksum (sha256, sha1, md5) + termination + expiration, at
`/api/v1/uploads/`.  Only `Authorization: Bearer <device token>` authenticates; a browser's
login session cannot upload.  Bytes, the spool and the catalog are ingest/field.py's business:
this module only speaks HTTP.
"""
from __future__ import annotations

import asyncio
import base64
from email.utils import format_datetime

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from catalog.app import App
from catalog.tokens import DeviceIdentity, bearer, check_device_token
from core.errors import CustodyError
from ingest import field
from web.auth import SESSION_COOKIE, remote_addr

router = APIRouter()

TUS_VERSION = "1.0.0"
BASE = "/api/v1/uploads/"
EXTENSIONS = "creation,checksum,termination,expiration"
# tus core: "X-HTTP-Method-Override ... MUST be interpreted as the request's method by the
# Server, if the header is presented".  Clients whose HTTP stack cannot send PATCH or DELETE
# send POST with it: tus-java-client (what Android apps use) on runtimes that refuse PATCH, and
# tus-js-client with `overridePatchMethod`.  Only here: the rest of the app ignores the header.
OVERRIDABLE = ("PATCH", "DELETE", "HEAD")
BUFFER = 1 << 20  # body pieces are gathered to 1 MiB before each write+hash (memory stays flat)


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _text(status: int, message: str, **headers: str) -> Response:
    return Response(f"{status}: {message}\n", status_code=status, media_type="text/plain; charset=utf-8",
                    headers=_headers(**headers))


def _http_date(dt) -> str:  # noqa: ANN001 - aware datetime
    return format_datetime(dt, usegmt=True)


async def _device(request: Request) -> DeviceIdentity | Response:
    """The device whose token this is, or the refusal (logged) to send back."""
    app: App = request.app.state.custody
    addr = remote_addr(request)
    token = bearer(request.headers.get("authorization"))

    def check() -> tuple[DeviceIdentity | None, str]:
        with app.catalog.session() as s:
            return check_device_token(s, token)

    ident, why = await run_in_threadpool(check)
    if ident is not None:
        return ident
    if token is None and request.cookies.get(SESSION_COOKIE):
        why = "a web login session cannot upload; only an enrolled device's token can"
    await run_in_threadpool(field.log_refused, app, "anonymous", why, addr, f"{_verb(request)} {request.url.path}")
    return _text(401, f"{why} / 仅已登记终端的令牌可以上传", **{"WWW-Authenticate": 'Bearer realm="custody"'})


def _verb(request: Request) -> str:
    """The method as the log should name it: a POST carrying X-HTTP-Method-Override is that method."""
    override = request.headers.get("x-http-method-override", "").strip().upper()
    if request.method == "POST" and override in OVERRIDABLE:
        return f"{override} (POST with X-HTTP-Method-Override)"
    return request.method


def _tus_version_ok(request: Request) -> bool:
    return request.headers.get("tus-resumable") == TUS_VERSION


def _error(e: CustodyError) -> Response:
    status = getattr(e, "status", 400)
    return _text(status, str(e))


async def _refused(request: Request, ident: DeviceIdentity, e: CustodyError) -> Response:
    """Another device's upload (403) or no such upload (404): refused and logged."""
    if isinstance(e, (field.Forbidden, field.UploadNotFound)):
        await run_in_threadpool(field.log_refused, request.app.state.custody, ident.actor, str(e),
                                remote_addr(request), f"{_verb(request)} {request.url.path}",
                                device=ident.serial, token_id=ident.token_id)
    return _error(e)


@router.options(BASE)
@router.options(BASE + "{upload_id}")
def options(request: Request) -> Response:
    app: App = request.app.state.custody
    return Response(status_code=204, headers=_headers(**{
        "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
        "Tus-Checksum-Algorithm": ",".join(field.CHECKSUM_ALGORITHMS),
        "Tus-Max-Size": str(app.settings.field_upload.max_upload_bytes)}))


@router.post(BASE)
async def create(request: Request) -> Response:
    """tus creation: `Upload-Length`, `Upload-Metadata` (filename, recorded_at, sha256)."""
    app: App = request.app.state.custody
    ident = await _device(request)
    if isinstance(ident, Response):
        return ident
    if not _tus_version_ok(request):
        return _text(412, f"Tus-Resumable {TUS_VERSION} required", **{"Tus-Version": TUS_VERSION})
    try:
        info = await run_in_threadpool(field.create_upload, app, ident, request.headers.get("upload-length"),
                                       request.headers.get("upload-metadata"), remote_addr(request))
    except CustodyError as e:
        return _error(e)
    return Response(status_code=201, headers=_headers(**{
        "Location": BASE + info.upload_id, "Upload-Expires": _http_date(info.expires_at),
        "Upload-Offset": str(info.offset)}))


def _meta_header(meta: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in meta.items())


@router.head(BASE + "{upload_id}")
async def head(request: Request, upload_id: str) -> Response:
    app: App = request.app.state.custody
    ident = await _device(request)
    if isinstance(ident, Response):
        return ident
    try:
        info = await run_in_threadpool(field.status, app, ident, upload_id, remote_addr(request))
    except CustodyError as e:
        await _refused(request, ident, e)
        return Response(status_code=getattr(e, "status", 400), headers=_headers())
    extra = {"Upload-Offset": str(info.offset), "Upload-Length": str(info.length), "Custody-State": info.state}
    if info.metadata:
        extra["Upload-Metadata"] = _meta_header(info.metadata)
    if info.sha256:
        extra["Custody-SHA256"] = info.sha256
    if info.media_id is not None:
        extra["Custody-Media-Id"] = str(info.media_id)
    if info.state == "receiving":
        extra["Upload-Expires"] = _http_date(info.expires_at)
    elif info.state in ("rejected", "expired", "terminated"):
        return Response(status_code=410, headers=_headers(**extra))
    return Response(status_code=200, headers=_headers(**extra))


@router.patch(BASE + "{upload_id}")
async def patch(request: Request, upload_id: str) -> Response:
    app: App = request.app.state.custody
    ident = await _device(request)
    if isinstance(ident, Response):
        return ident
    if not _tus_version_ok(request):
        return _text(412, f"Tus-Resumable {TUS_VERSION} required", **{"Tus-Version": TUS_VERSION})
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/offset+octet-stream":
        return _text(415, "Content-Type must be application/offset+octet-stream")
    try:
        offset = int(request.headers["upload-offset"])
    except (KeyError, ValueError):
        return _text(400, "Upload-Offset is required (a non-negative integer)")
    addr = remote_addr(request)
    try:
        checksum = field.parse_checksum(request.headers.get("upload-checksum"))
        writer = await run_in_threadpool(field.ChunkWriter, app, ident, upload_id, offset, checksum, addr)
    except CustodyError as e:
        return await _refused(request, ident, e)
    buf = bytearray()
    # One gathered piece is written and hashed (in a worker thread) while the next is received.
    pending: asyncio.Future | None = None
    try:
        async for piece in request.stream():
            buf += piece
            if len(buf) >= BUFFER:
                chunk, buf = buf, bytearray()
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(run_in_threadpool(writer.write, chunk))
        if pending is not None:
            await pending
            pending = None
        if buf:
            await run_in_threadpool(writer.write, buf)
    except ClientDisconnect:
        try:  # what did arrive is kept (without a chunk checksum): write the last gathered piece too
            if pending is not None:
                await pending
            await run_in_threadpool(writer.write, buf)
        except CustodyError:
            pass
        await run_in_threadpool(writer.abort, "connection dropped", True)
        return _text(400, "connection dropped before the body was complete")
    except CustodyError as e:
        await run_in_threadpool(writer.abort, str(e), False)
        return _error(e)
    except BaseException:
        if pending is not None and not pending.done():
            pending.cancel()
        writer.abort("request cancelled", False)  # the server is stopping: the chunk is cut, the offset stays
        raise
    try:
        new_offset = await run_in_threadpool(writer.commit)
    except CustodyError as e:
        return _error(e)
    extra = {"Upload-Offset": str(new_offset), "Custody-State": writer.state}
    if writer.state == "receiving":
        extra["Upload-Expires"] = _http_date(writer.expires_at)
    if writer.sha256:
        extra["Custody-SHA256"] = writer.sha256
    return Response(status_code=204, headers=_headers(**extra))


@router.post(BASE + "{upload_id}")
async def method_override(request: Request, upload_id: str) -> Response:
    """tus: POST with `X-HTTP-Method-Override: PATCH|DELETE|HEAD` is that method (clients that cannot send PATCH)."""
    method = request.headers.get("x-http-method-override", "").strip().upper()
    if method == "PATCH":
        return await patch(request, upload_id)
    if method == "DELETE":
        return await delete(request, upload_id)
    if method == "HEAD":
        return await head(request, upload_id)
    why = (f"X-HTTP-Method-Override {method!r} is not allowed here" if method else
           "POST to an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD")
    return _text(405, f"{why} / 不支持的请求方法", Allow="HEAD, PATCH, DELETE, OPTIONS, POST")


@router.delete(BASE + "{upload_id}")
async def delete(request: Request, upload_id: str) -> Response:
    app: App = request.app.state.custody
    ident = await _device(request)
    if isinstance(ident, Response):
        return ident
    try:
        await run_in_threadpool(field.terminate, app, ident, upload_id, remote_addr(request))
    except CustodyError as e:
        return await _refused(request, ident, e)
    return Response(status_code=204, headers=_headers())
