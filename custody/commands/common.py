"""What every subcommand module shares: the acting account, JSON output, instants, safe text."""
from __future__ import annotations

import json
from datetime import datetime, timezone, tzinfo
from typing import Any

import click
from sqlalchemy.orm import Session

from catalog.accounts import Actor, require, resolve_actor
from catalog.app import App


def acting(app: App, s: Session, capability: str, subject: str = "") -> Actor:
    """The account acting (`--user`, else the OS user's), refused and logged unless it may `capability`."""
    actor = resolve_actor(s, app.user)
    require(s, actor, capability, subject)
    return actor


def echo_json(data: Any) -> None:
    """Machine-readable output: UTF-8 (Chinese unescaped), indented, instants as ISO text.

    Characters a terminal could obey (C1 controls such as CSI U+009B, DEL, bidi overrides) are
    written as JSON \\u escapes; json.dumps escapes only the C0 ones itself."""
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    click.echo("".join(c if c.isprintable() or c in "\n" else json.dumps(c)[1:-1] for c in text))


def iso(dt: datetime | None, tz: tzinfo = timezone.utc) -> str | None:
    """An instant as ISO 8601 with its offset (UTC unless a zone is given), or None."""
    return dt.astimezone(tz).isoformat() if dt else None


def safe(text: str | None) -> str:
    """File names and other data for a terminal: control characters shown as \\xNN, never obeyed."""
    if text is None:
        return ""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
