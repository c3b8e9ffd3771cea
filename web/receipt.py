"""The printable share receipt (zh-CN / English): items, SHA-256, sizes, who shared, to whom, downloads."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog.app import App
from catalog.models import utcnow
from web.pages import fmt_bytes, templates
from web.share_text import translator


def station_time(app: App, dt: datetime | None) -> str:
    if dt is None:
        return "—"
    return dt.astimezone(app.settings.tz).strftime("%Y-%m-%d %H:%M:%S") + " " + app.settings.station.timezone


def render_receipt(app: App, summary: dict[str, Any], lang: str) -> str:
    return templates.env.get_template("share_receipt.html").render(
        r=summary, lang="en" if lang == "en" else "zh-CN", st=translator(lang),
        when=lambda dt: station_time(app, dt), fmt_bytes=fmt_bytes, org=app.settings.station.name,
        now=utcnow())
