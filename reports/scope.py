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

    def describe(self) -> dict[str, object]:
        return {"unit_requested": self.root, "units": sorted(self.unit_codes),
                "includes_unassigned": self.includes_unassigned}


def load_scope(session: Session, unit_code: str | None) -> Scope:
    rows = session.execute(select(Unit).order_by(Unit.code)).scalars().all()
    units = [UnitInfo(u.id, u.code, u.name, u.parent_code, u.standard_officers_per_device) for u in rows]
    if unit_code is None:
        return Scope(tuple(units), None)
    if not any(u.code == unit_code for u in units):
        raise NotFound(f"no unit with code {unit_code!r}")
    wanted = {unit_code}
    # Walk down parent_code links; the set grows until no unit adds a child.
    while True:
        more = {u.code for u in units if u.parent_code in wanted} - wanted
        if not more:
            break
        wanted |= more
    return Scope(tuple(u for u in units if u.code in wanted), unit_code)


def standard_for(unit: UnitInfo | None, settings: ReportSettings, override: float | None) -> tuple[float, str]:
    """Officers per device a unit must not exceed, and where that number came from."""
    if override is not None:
        value, source = override, "--standard"
    elif unit is not None and unit.standard is not None:
        value, source = unit.standard, "units.standard_officers_per_device"
    elif unit is not None and unit.code in settings.unit_standards:
        value, source = settings.unit_standards[unit.code], "reports.unit_standards"
    else:
        value, source = settings.standard_officers_per_device, "reports.standard_officers_per_device"
    if value <= 0:
        raise CustodyError(f"the standard ({source}) must be a positive number of officers per device, not {value}")
    return float(value), source
