"""A report as data: statement, headline figures, tables and charts.

The three reports build this one shape; the renderers (terminal table, CSV, JSON,
HTML) only lay it out, so every format shows the same numbers.  Column and figure
labels are i18n keys (reports.i18n); JSON uses the stable keys themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Literal

# How a value is shown: text as is, counts, ratios (2 decimals), shares (percent),
# hours (1 decimal), yes/no, local instants and dates (already text).
ValueKind = Literal["text", "int", "ratio", "share", "hours", "seconds", "bool"]


@dataclass(frozen=True)
class Column:
    key: str
    kind: ValueKind = "text"
    label: str | None = None  # i18n key; defaults to `key`
    translate: bool = False  # values are i18n keys (statuses, reasons, kinds)

    @property
    def label_key(self) -> str:
        return self.label or self.key


@dataclass
class Table:
    """Rows of dicts keyed by column key.  Detail tables are the cases/devices behind a figure.

    A large list may be left unloaded (rows None, `loader` set) when the output
    will not show it; Report.load_details fetches it while the session is open.
    """

    key: str
    columns: list[Column]
    rows: list[dict[str, Any]] | None
    detail: bool = False  # terminal/CSV show it only with --detail; JSON/HTML always
    loader: Callable[[], list[dict[str, Any]]] | None = field(default=None, repr=False)

    def load(self) -> None:
        if self.rows is None and self.loader is not None:
            self.rows = self.loader()
        self.loader = None  # it holds the session: never call it later

    def loaded_rows(self) -> list[dict[str, Any]]:
        if self.rows is None:
            raise RuntimeError(f"table {self.key} was not loaded; build the report with details")
        return self.rows


@dataclass(frozen=True)
class Figure:
    """One headline number; `table` names the detail table listing what it counts."""

    key: str
    value: Any
    kind: ValueKind = "int"
    of: int | None = None  # denominator, for shares ("42 of 800")
    table: str | None = None


@dataclass(frozen=True)
class Chart:
    """A chart drawn by reports.charts: bars (grouped when several series) or a histogram."""

    key: str  # i18n key of the title
    type: Literal["bar", "barh", "hist"]
    categories: list[str] = field(default_factory=list)  # labels (already text) or i18n keys
    series: dict[str, list[float]] = field(default_factory=dict)  # i18n key -> values
    reference: float | None = None  # a line: the standard, the deadline
    reference_label: str | None = None  # i18n key
    x_label: str | None = None
    y_label: str | None = None
    translate_categories: bool = False


@dataclass
class Report:
    kind: Literal["ratio", "coverage", "usage"]
    statement: dict[str, Any]
    tables: list[Table]
    figures: list[Figure] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def load_details(self) -> None:
        for t in self.tables:
            t.load()

    def drop_loaders(self) -> None:
        """Forget unloaded lists (their loaders hold the session)."""
        for t in self.tables:
            t.loader = None

    def table(self, key: str) -> Table:
        for t in self.tables:
            if t.key == key:
                return t
        raise KeyError(key)

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)
