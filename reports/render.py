"""Lay a Report out as a terminal table, CSV or JSON (HTML lives in reports.html).

JSON keeps the stable English keys and raw values (numbers, ISO instants with the
station's offset); the table and CSV show labels and values in the chosen language.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from reports.i18n import LABELS, Lang, t, title
from reports.model import Column, Figure, Report, Table
from reports.numbers import fixed, percent, round_half_up
from reports.ratio import TOTAL

FORMATS = ("table", "csv", "json", "html")


# ----------------------------------------------------------------------------- values
_LOCAL_INSTANT = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)[+-]\d\d:\d\d$")


def cell(value: Any, col: Column, lang: Lang) -> str:
    """One value as text for people.  Instants in cells are all in the station's zone, which
    the statement names, so the offset is dropped to keep tables readable."""
    if isinstance(value, str) and (m := _LOCAL_INSTANT.match(value)):
        return f"{m[1]} {m[2]}"
    if col.key == "unit" and value == TOTAL:
        return t("total", lang)
    if col.key == "unit" and value is None:
        return t("unassigned", lang)
    return fmt(value, col.kind, lang, col.translate)


def fmt(value: Any, kind: str, lang: Lang, translate: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or kind == "bool":
        return t("yes" if value else "no", lang)
    # Figures for people are rounded half up (四舍五入): 34 / 16 = 2.125 reads 2.13.
    if kind == "ratio":
        return fixed(value, 2)
    if kind == "share":
        return percent(value, 1)
    if kind in ("hours", "seconds"):
        return fixed(value, 1)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(t(str(v), lang) if translate else str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{t(k, lang)}: {fmt(v, 'text', lang)}" for k, v in value.items())
    return t(str(value), lang) if translate else str(value)


def figure_text(f: Figure, lang: Lang) -> str:
    """'42 / 800 (5.3%)' for shares, the number otherwise."""
    if f.kind == "share":
        if not f.of:
            return f"{f.value} / {f.of or 0}"
        return f"{f.value} / {f.of} ({percent(f.value / f.of, 1)})"
    return fmt(f.value, f.kind, lang)


def statement_lines(statement: dict[str, Any], lang: Lang, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Flatten the statement into (label, value) lines, nested keys joined with ' / '."""
    for key, value in statement.items():
        if key == "report":
            continue
        label = f"{prefix}{t(f'statement_{key}' if f'statement_{key}' in LABELS else key, lang)}"
        if key == "definitions":
            for definition in value:
                yield label, t(definition, lang)
        elif isinstance(value, dict):
            yield from statement_lines(value, lang, prefix=f"{label} / ")
        elif value is None:
            yield label, t("none" if key == "standard" else "all" if key == "unit_requested" else "-", lang)
        else:
            yield label, fmt(value, "text", lang, translate=key == "device_kinds")


def visible_tables(report: Report, detail: bool) -> list[Table]:
    return [tb for tb in report.tables if detail or not tb.detail]


# ----------------------------------------------------------------------------- JSON
def to_json(report: Report) -> dict[str, Any]:
    statement = dict(report.statement)
    if "definitions" in statement:  # i18n keys -> the English sentences
        statement["definitions"] = [t(d, "en") for d in statement["definitions"]]
    out: dict[str, Any] = {"report": report.kind, "statement": statement}
    if report.figures:
        out["figures"] = {f.key: _figure_json(f) for f in report.figures}
    for tb in report.tables:
        if not tb.detail:
            out[tb.key] = tb.loaded_rows()
    details = {tb.key: tb.loaded_rows() for tb in report.tables if tb.detail}
    if details:
        out["details"] = details
    return out


def _figure_json(f: Figure) -> dict[str, Any]:
    raw = f.value / f.of if f.kind == "share" and f.of else None
    # `share` rounded half up to 4 places (a percentage with 2 decimals); `share_raw` unrounded.
    return {"value": f.value, "of": f.of, "share": round_half_up(raw, 4), "share_raw": raw, "listed_in": f.table}


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), ensure_ascii=False, indent=2, default=str) + "\n"


# ----------------------------------------------------------------------------- CSV
def render_csv(report: Report, lang: Lang, detail: bool) -> str:
    """Statement lines start with '#'; then figures; then each table under a '#' title row."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([f"# {title(report.kind, lang)}"])
    for label, value in statement_lines(report.statement, lang):
        w.writerow([f"# {label}", value])
    if report.figures:
        w.writerow([])
        w.writerow([f"# {t('figures', lang)}"])
        w.writerow([t(k, lang) for k in ("figure", "value", "of", "share", "listed_in")])
        for f in report.figures:
            share = fmt(f.value / f.of, "share", lang) if f.kind == "share" and f.of else ""
            w.writerow([t(f.key, lang), f.value, "" if f.of is None else f.of, share,
                        t(f.table, lang) if f.table else ""])
    for tb in visible_tables(report, detail):
        w.writerow([])
        w.writerow([f"# {t(tb.key, lang)}"])
        w.writerow([t(c.label_key, lang) for c in tb.columns])
        for row in tb.loaded_rows():
            w.writerow([cell(row.get(c.key), c, lang) for c in tb.columns])
    return buf.getvalue()


# ----------------------------------------------------------------------------- terminal
def render_table(report: Report, lang: Lang, detail: bool, width: int = 160) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False, emoji=False)
    console.print(title(report.kind, lang), style="bold")
    stmt = RichTable(title=t("statement", lang), show_header=False, box=None, title_justify="left")
    for label, value in statement_lines(report.statement, lang):
        stmt.add_row(label, value)
    console.print(stmt)
    if report.figures:
        figs = RichTable(title=t("figures", lang), title_justify="left")
        figs.add_column(t("figure", lang))
        figs.add_column(t("value", lang), justify="right")
        figs.add_column(t("listed_in", lang))
        for f in report.figures:
            figs.add_row(t(f.key, lang), figure_text(f, lang), t(f.table, lang) if f.table else "")
        console.print(figs)
    for tb in visible_tables(report, detail):
        console.print(_rich_table(tb, lang))
    if not detail and any(tb.detail for tb in report.tables):
        console.print(t("detail_hint", lang))
    return console.file.getvalue()  # type: ignore[attr-defined]


def _rich_table(tb: Table, lang: Lang) -> RichTable:
    rows = tb.loaded_rows()
    rt = RichTable(title=f"{t(tb.key, lang)} ({len(rows)})", title_justify="left")
    for c in tb.columns:
        numeric = c.kind in ("int", "ratio", "share", "hours", "seconds")
        rt.add_column(t(c.label_key, lang), justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        rt.add_row(*[cell(row.get(c.key), c, lang) for c in tb.columns])
    return rt


def render(report: Report, fmt_name: str, lang: Lang, detail: bool, width: int = 160) -> str:
    if fmt_name == "json":
        return render_json(report)
    if fmt_name == "csv":
        return render_csv(report, lang, detail)
    if fmt_name == "html":
        from reports.html import render_html  # matplotlib only when asked for

        return render_html(report, lang)
    return render_table(report, lang, detail, width)
