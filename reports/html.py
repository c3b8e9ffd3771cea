"""One self-contained HTML file: statement, figures, charts (PNG inlined as base64), tables.

Nothing is fetched when it is opened, so it can be printed, mailed or archived
with the report's figures and the lists behind them.
"""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from reports.charts import chart_lang, draw
from reports.i18n import Lang, t, title
from reports.model import Report, Table
from reports.ratio import TOTAL
from reports.render import cell, figure_text, statement_lines

_TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]))
_NUMERIC = ("int", "ratio", "share", "hours", "seconds")


def render_html(report: Report, lang: Lang) -> str:
    other: Lang = "en" if lang == "zh" else "zh"
    charts = [{"png": base64.b64encode(draw(c, lang)).decode("ascii"), "alt": t(c.key, lang)} for c in report.charts]
    note = None
    if charts and chart_lang(lang) != lang:
        note = "图表标签以英文显示:本机未安装中文字体 (fonts-noto-cjk)。" \
               " Chart labels are in English: no Chinese font is installed."
    return _env.get_template("report.html").render(
        html_lang="zh-CN" if lang == "zh" else "en",
        title=title(report.kind, lang),
        other_title=title(report.kind, other),
        labels={k: t(k, lang) for k in ("statement", "figures", "figure", "value", "listed_in", "charts",
                                        "generated_by")},
        statement=list(statement_lines(report.statement, lang)),
        figures=[{"label": t(f.key, lang), "text": figure_text(f, lang), "table": f.table,
                  "table_label": t(f.table, lang) if f.table else None} for f in report.figures],
        charts=charts,
        chart_note=note,
        tables=[_table(tb, lang) for tb in report.tables],
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _table(tb: Table, lang: Lang) -> dict[str, Any]:
    rows = []
    for row in tb.loaded_rows():
        cells = []
        for c in tb.columns:
            value = row.get(c.key)
            cls = "num" if c.kind in _NUMERIC else ""
            if c.key in ("meets",) and value is False:
                cls = "bad"
            cells.append({"text": cell(value, c, lang), "cls": cls})
        rows.append({"cells": cells, "total": row.get("unit") == TOTAL})
    return {"key": tb.key, "title": t(tb.key, lang), "headers": [t(c.label_key, lang) for c in tb.columns],
            "rows": rows}
