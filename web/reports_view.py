"""The ratio, coverage and usage reports for the browser.

The numbers come from `reports/` (the same builders the CLI uses), so the page and
`custody report ...` never disagree; this module only chooses periods and turns
each chart into bars an HTML page can draw without a build step.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.settings import Settings
from web.i18n import tagged

KINDS = ("ratio", "coverage", "usage")


@dataclass
class Bar:
    label: str
    series: str
    value: float
    pct: float  # of the largest value in the chart


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
    try:
        report = _make(s, settings, kind, first, last, unit or None)
    except ImportError as e:  # the reports package is missing or broken in this installation
        raise CustodyError(f"the {kind} report is not available in this installation: {e}") from e
    if hasattr(report, "load_details"):
        report.load_details()  # detail tables may be lazy; they need the open session
    return report


def _make(s: Session, settings: Settings, kind: str, first: date | None, last: date, unit: str | None) -> Any:
    if kind == "ratio":
        from reports.ratio import RatioOptions, ratio_report

        return ratio_report(s, settings, RatioOptions(at=last, unit=unit))
    if kind == "coverage":
        from reports.coverage import coverage_report

        try:
            from reports.context import CoverageOptions
        except ImportError:
            from reports.coverage import CoverageOptions  # type: ignore[no-redef]
        return coverage_report(s, settings, CoverageOptions(first=first or last - timedelta(days=29), last=last,
                                                            unit=unit))
    from reports.usage import UsageOptions, usage_report

    return usage_report(s, settings, UsageOptions(first=first, last=last, unit=unit))


def translator(lang: str):  # noqa: ANN201 - callable
    try:
        from reports.i18n import t as report_t
    except ImportError:
        return lambda key: key
    code = "zh" if lang == "zh-CN" else "en"
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
                bars.append(Bar(label=label, series=tr(series), value=v, pct=round(100 * max(v, 0) / top, 1)))
        ref_pct = round(100 * c.reference / top, 1) if c.reference else None
        out.append(ChartView(title=tr(c.key), bars=bars, reference=c.reference, reference_pct=ref_pct,
                             reference_label=tr(c.reference_label) if c.reference_label else ""))
    return out


def formatter(lang: str):  # noqa: ANN201 - callable(value, column) -> str
    """The reports' own cell formatting (same text as the CLI and HTML reports), else a plain one."""
    code = "zh" if lang == "zh-CN" else "en"
    try:
        from reports.render import cell as report_cell

        return lambda value, col: report_cell(value, col, code)
    except ImportError:
        return lambda value, col: plain(value, getattr(col, "kind", "text"))


def plain(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "ratio":
        return f"{float(value):.2f}"
    if kind == "share":
        return f"{100 * float(value):.1f}%"
    if kind == "hours":
        return f"{float(value):.1f}"
    if kind == "bool":
        return "✓" if value else "✗"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)
