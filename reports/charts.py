"""Charts as PNG bytes (matplotlib, Agg backend: no display on a station or server).

Chinese labels need a CJK font.  Debian's fonts-noto-cjk provides one (./dev installs
it); matplotlib's font cache may predate the install, so fontconfig is asked too.
Without any CJK font the charts fall back to English labels rather than drawing
empty boxes; the HTML text around them stays in the chosen language.
"""
from __future__ import annotations

import io
import subprocess
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from reports.i18n import Lang, t  # noqa: E402
from reports.model import Chart  # noqa: E402

_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
                 "WenQuanYi Zen Hei", "Noto Serif CJK SC", "AR PL UMing CN")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """A font family that draws Simplified Chinese, or None."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    for family in _CJK_FAMILIES:
        if family in names:
            return family
    for path in _fontconfig_cjk_files():
        try:
            font_manager.fontManager.addfont(path)
        except (OSError, RuntimeError, ValueError):
            continue
    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((family for family in _CJK_FAMILIES if family in names), None)


def _fontconfig_cjk_files() -> list[str]:
    try:
        out = subprocess.run(["fc-list", ":lang=zh-cn", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]
    return sorted(files, key=lambda p: ("Sans" not in p, p))


def chart_lang(lang: Lang) -> Lang:
    """The language charts can be drawn in here."""
    return lang if lang == "en" or cjk_font() else "en"


def draw(chart: Chart, lang: Lang) -> bytes:
    """One chart as PNG bytes."""
    lang = chart_lang(lang)
    family = cjk_font() if lang == "zh" else None
    rc = {"font.family": [family, "DejaVu Sans"] if family else ["DejaVu Sans"], "axes.unicode_minus": False}
    with plt.rc_context(rc):
        height = 4.2 if chart.type != "barh" else max(3.0, 0.28 * len(chart.categories) + 1.2)
        fig, ax = plt.subplots(figsize=(8, height), dpi=100)
        try:
            _plot(ax, chart, lang)
            ax.set_title(t(chart.key, lang))
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            return buf.getvalue()
        finally:
            plt.close(fig)


def _plot(ax: plt.Axes, chart: Chart, lang: Lang) -> None:
    cats = [t(c, lang) if chart.translate_categories else c for c in chart.categories]
    if chart.type == "hist":  # pre-binned: categories are the left edges of unit-wide bins
        counts = next(iter(chart.series.values()), [])
        ax.bar([float(c) for c in chart.categories], counts, width=1.0, align="edge", color="#4472c4")
        if chart.reference is not None:
            ax.axvline(chart.reference, color="#c00000", linestyle="--", label=t(chart.reference_label or "", lang))
            ax.legend()
    elif chart.type == "barh":
        values = next(iter(chart.series.values()), [])
        ax.barh(range(len(cats)), values, color="#4472c4")
        ax.set_yticks(range(len(cats)), cats)
        ax.invert_yaxis()
    else:
        _bars(ax, chart, cats, lang)
    if chart.x_label:
        ax.set_xlabel(t(chart.x_label, lang))
    if chart.y_label:
        ax.set_ylabel(t(chart.y_label, lang))


def _bars(ax: plt.Axes, chart: Chart, cats: list[str], lang: Lang) -> None:
    n = max(1, len(chart.series))
    width = 0.8 / n
    for i, (key, values) in enumerate(chart.series.items()):
        xs = [x + (i - (n - 1) / 2) * width for x in range(len(cats))]
        bars = ax.bar(xs, values, width=width, label=t(key, lang))
        if len(cats) <= 16:
            ax.bar_label(bars, fmt="%g", fontsize=8)
    crowded = len(cats) > 6
    ax.set_xticks(range(len(cats)), cats, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    if chart.reference is not None:
        ax.axhline(chart.reference, color="#c00000", linestyle="--", label=t(chart.reference_label or "", lang))
    if n > 1 or chart.reference is not None:
        ax.legend()
