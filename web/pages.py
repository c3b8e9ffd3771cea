"""Template rendering: language, times in the station's zone, CSRF field, navigation."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response

from catalog.app import App
from web.auth import Viewer
from web.i18n import ENUMS, enum_label, lang_of, translate

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
# Custody details and other JSON in pages keep Chinese file names and reasons readable; Jinja's
# htmlsafe dump still escapes <, >, & and ' so the text cannot break out of the page.
templates.env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render(request: Request, name: str, viewer: Viewer | None, status_code: int = 200, **ctx: Any) -> Response:
    app: App = request.app.state.custody
    lang = lang_of(request)
    tz = app.settings.tz

    def t(key: str) -> str:
        return translate(lang, key)

    def val_text(group: str, value: object) -> str:
        """An enumerated value as text in the viewer's language (for attributes and options)."""
        return enum_label(lang, group, value)

    def val(group: str, value: object) -> Markup:
        """An enumerated value in the viewer's language, the stored value kept in its title."""
        if value is None or value == "":
            return Markup("")
        return Markup('<span class="enum" title="{}">{}</span>').format(str(value), enum_label(lang, group, value))

    def when(dt: datetime | None) -> str:
        """An instant as users read it: station time with its offset (UTC kept in the title)."""
        if dt is None:
            return "—"
        return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") + " " + app.settings.station.timezone

    def csrf_field() -> Markup:
        token = viewer.csrf if viewer else ctx.get("login_csrf", "")
        return Markup(f'<input type="hidden" name="csrf" value="{escape(token)}">')

    return templates.TemplateResponse(request, name, {
        "viewer": viewer, "lang": lang, "t": t, "when": when, "csrf_field": csrf_field, "fmt_bytes": fmt_bytes,
        "val_text": val_text, "val": val, "enums": ENUMS,
        "station": app.settings.station.name, **ctx}, status_code=status_code)
