"""Which units a report covers, and the equipment standard each one is held to.

`--unit U` means U and every unit under it (Unit.parent_code), so a bureau code
reports its office and brigade together.  Without it every unit is covered, plus
people and devices that no unit claims (shown as their own row, never dropped).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import CustodyError, NotFound
from core.settings import ReportSettings
from catalog.models import Unit


@dataclass(frozen=True)
class UnitInfo:
    id: int
    code: str
    name: str | None
    parent_code: str | None
    standard: float | None  # Unit.standard_officers_per_device, if the catalog sets one


@dataclass(frozen=True)
class Scope:
    units: tuple[UnitInfo, ...]
    root: str | None  # the --unit code, None = whole catalog
    # Every unit of the catalog (ancestors above --unit included): standards are inherited from them.
    catalog: tuple[UnitInfo, ...] = ()

    @property
    def unit_ids(self) -> set[int]:
        return {u.id for u in self.units}

    @property
    def unit_codes(self) -> set[str]:
        return {u.code for u in self.units}

    @property
    def includes_unassigned(self) -> bool:
        """Rows with no unit belong only to a whole-catalog report."""
        return self.root is None

    def covers(self, unit_id: int | None) -> bool:
        return unit_id in self.unit_ids if unit_id is not None else self.includes_unassigned

    def covers_code(self, code: str | None) -> bool:
        return code in self.unit_codes if code else self.includes_unassigned

    def by_id(self, unit_id: int | None) -> UnitInfo | None:
        return next((u for u in self.units if u.id == unit_id), None)

    def parent_of(self, unit: UnitInfo) -> UnitInfo | None:
        """The unit's parent anywhere in the catalog (None for a top unit or an unknown parent_code)."""
        if not unit.parent_code:
            return None
        return next((u for u in self.catalog or self.units if u.code == unit.parent_code), None)

    def tree(self) -> list[tuple[UnitInfo, int]]:
        """The units in scope depth first (children by code), each with its depth below the top of the
        scope (0 = a top unit, or the --unit unit).  A unit whose parent is not in scope is a top unit."""
        codes = self.unit_codes
        children: dict[str | None, list[UnitInfo]] = {}
        for u in sorted(self.units, key=lambda u: u.code):
            top = u.parent_code not in codes or u.code == self.root
            children.setdefault(None if top else u.parent_code, []).append(u)
        out: list[tuple[UnitInfo, int]] = []

        def walk(parent: str | None, level: int) -> None:
            for u in children.get(parent, []):
                out.append((u, level))
                walk(u.code, level + 1)

        walk(None, 0)
        # Units caught in a parent_code cycle (imports refuse one; older data may hold it) are not
        # lost: each is shown as a top unit.
        seen = {u.code for u, _ in out}
        for u in sorted(self.units, key=lambda u: u.code):
            if u.code not in seen:
                out.append((u, 0))
                seen.add(u.code)
        return out

    def subtree_codes(self, code: str) -> set[str]:
        """`code` and every unit under it, within the scope."""
        wanted = {code}
        while True:
            more = {u.code for u in self.units if u.parent_code in wanted} - wanted
            if not more:
                return wanted
            wanted |= more

    def describe(self) -> dict[str, object]:
        return {"unit_requested": self.root, "units": sorted(self.unit_codes),
                "includes_unassigned": self.includes_unassigned}


def load_scope(session: Session, unit_code: str | None) -> Scope:
    rows = session.execute(select(Unit).order_by(Unit.code)).scalars().all()
    units = [UnitInfo(u.id, u.code, u.name, u.parent_code, u.standard_officers_per_device) for u in rows]
    if unit_code is None:
        return Scope(tuple(units), None, tuple(units))
    if not any(u.code == unit_code for u in units):
        raise NotFound(f"no unit with code {unit_code!r}")
    wanted = {unit_code}
    # Walk down parent_code links; the set grows until no unit adds a child.
    while True:
        more = {u.code for u in units if u.parent_code in wanted} - wanted
        if not more:
            break
        wanted |= more
    return Scope(tuple(u for u in units if u.code in wanted), unit_code, tuple(units))


def standard_for(unit: UnitInfo | None, settings: ReportSettings, override: float | None,
                 scope: Scope | None = None) -> tuple[float, str]:
    """Officers per device a unit must not exceed, and where that number came from."""
    value, source, _ = standard_of(unit, settings, override, scope)
    return value, source


def standard_of(unit: UnitInfo | None, settings: ReportSettings, override: float | None,
                scope: Scope | None = None) -> tuple[float, str, str | None]:
    """(standard, the setting that gave it, the unit whose setting it is).

    A unit with no standard of its own (neither `units.standard_officers_per_device` nor
    `reports.unit_standards`) inherits its nearest ancestor's; with none up the tree the
    configured default applies (unit None)."""
    at, seen = unit, set()
    value: float | None = None
    source, owner = "reports.standard_officers_per_device", None
    if override is not None:
        value, source = override, "--standard"
    while value is None and at is not None and at.code not in seen:
        seen.add(at.code)
        if at.standard is not None:
            value, source, owner = at.standard, "units.standard_officers_per_device", at.code
        elif at.code in settings.unit_standards:
            value, source, owner = settings.unit_standards[at.code], "reports.unit_standards", at.code
        else:
            at = scope.parent_of(at) if scope is not None else None
    if value is None:
        value = settings.standard_officers_per_device
    if value <= 0:
        raise CustodyError(f"the standard ({source}) must be a positive number of officers per device, not {value}")
    return float(value), source, owner
