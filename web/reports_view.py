"""The ratio, coverage and usage reports for the browser.

The numbers come from `reports/` (the same builders the CLI uses), so the page and
`custody report ...` never disagree; this module only chooses periods and turns
each chart into bars an HTML page can draw without a build step.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.errors import CustodyError
from core.settings import Settings
from reports.context import CoverageOptions
from reports.coverage import coverage_report
from reports.i18n import t as report_t
from reports.numbers import fixed
from reports.ratio import RatioOptions, ratio_report
from reports.render import cell as report_cell
from reports.render import figure_text
from reports.usage import UsageOptions, usage_report
from web.i18n import tagged

KINDS = ("ratio", "coverage", "usage")


@dataclass
class Bar:
    label: str
    series: str
    value: float
    pct: float  # of the largest value in the chart
    text: str = ""  # the value for people: 2 decimals, rounded half up (四舍五入)


@dataclass
class ChartView:
    title: str
    bars: list[Bar]
    reference: float | None
    reference_pct: float | None
    reference_label: str


def build(s: Session, settings: Settings, kind: str, first: date | None, last: date, unit: str | None) -> Any:
    """A reports.model.Report with its detail tables loaded (call inside the session)."""
    if kind not in KINDS:
        raise tagged(CustodyError(f"report must be one of {', '.join(KINDS)}"), "error.report_kind", kinds=", ".join(KINDS))
    unit = unit or None
    if kind == "ratio":
        report = ratio_report(s, settings, RatioOptions(at=last, unit=unit))
    elif kind == "coverage":
        report = coverage_report(s, settings, CoverageOptions(first=first or last - timedelta(days=29), last=last,
                                                              unit=unit))
    else:
        report = usage_report(s, settings, UsageOptions(first=first, last=last, unit=unit))
    report.load_details()  # detail tables are lazy; they need the open session
    return report


def _code(lang: str) -> str:
    return "zh" if lang == "zh-CN" else "en"


def translator(lang: str):  # noqa: ANN201 - callable
    code = _code(lang)
    return lambda key: report_t(key, code) if key else ""


def charts(report: Any, lang: str) -> list[ChartView]:
    tr = translator(lang)
    out: list[ChartView] = []
    for c in getattr(report, "charts", []):
        values = [v for vals in c.series.values() for v in vals if v is not None]
        top = max(values + ([c.reference] if c.reference else []) + [1e-9])
        bars: list[Bar] = []
        for i, cat in enumerate(c.categories):
            label = tr(cat) if c.translate_categories else str(cat)
            for series, vals in c.series.items():
                v = float(vals[i]) if i < len(vals) and vals[i] is not None else 0.0
                bars.append(Bar(label=label, series=tr(series), value=v, pct=round(100 * max(v, 0) / top, 1),
                               text=fixed(v, 2)))
        ref_pct = round(100 * c.reference / top, 1) if c.reference else None
        out.append(ChartView(title=tr(c.key), bars=bars, reference=c.reference, reference_pct=ref_pct,
                             reference_label=tr(c.reference_label) if c.reference_label else ""))
    return out


def formatter(lang: str):  # noqa: ANN201 - callable(value, column) -> str
    """The reports' own cell formatting: the same text as the CLI and HTML reports."""
    code = _code(lang)
    return lambda value, col: report_cell(value, col, code)


def figure_formatter(lang: str):  # noqa: ANN201 - callable(figure) -> str
    """'42 / 800 (5.3%)' for shares, as the CLI and HTML reports print them."""
    code = _code(lang)
    return lambda f: figure_text(f, code)
