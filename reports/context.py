"""What every section of the coverage report shares: period, units, rules, device register."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import Settings
from catalog.models import Device, Unit
from reports.periods import Period
from reports.scope import Scope

MIN_RECORDING_OFFICERS = 2  # 行政处罚法 Art. 42: at least two officers


@dataclass(frozen=True)
class CoverageOptions:
    first: date
    last: date
    unit: str | None = None
    kinds: tuple[str, ...] | None = None
    deadline_hours: float | None = None
    undocked_days: int | None = None
    clock_threshold_seconds: float | None = None
    unlinked_days: int | None = None
    now: datetime | None = None  # the report's "now"; tests pin it


@dataclass(frozen=True)
class Rules:
    """The thresholds applied, after flags override settings."""

    deadline: timedelta
    undocked: timedelta
    clock_seconds: float
    unlinked: timedelta
    tolerance: timedelta
    kinds: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "upload_deadline_hours": self.deadline.total_seconds() / 3600,
            "min_recording_officers": MIN_RECORDING_OFFICERS,
            "coverage_tolerance_seconds": self.tolerance.total_seconds(),
            "undocked_days": self.undocked.days,
            "clock_error_threshold_seconds": self.clock_seconds,
            "unlinked_days": self.unlinked.days,
            "device_kinds": list(self.kinds),
        }


def rules_for(settings: Settings, o: CoverageOptions) -> Rules:
    r = settings.reports
    return Rules(
        deadline=timedelta(hours=o.deadline_hours if o.deadline_hours is not None else r.upload_deadline_hours),
        undocked=timedelta(days=o.undocked_days if o.undocked_days is not None else r.undocked_days),
        clock_seconds=o.clock_threshold_seconds if o.clock_threshold_seconds is not None
        else r.clock_error_threshold_seconds,
        unlinked=timedelta(days=o.unlinked_days if o.unlinked_days is not None else r.unlinked_days),
        tolerance=timedelta(seconds=r.coverage_tolerance_seconds),
        kinds=tuple(o.kinds or r.counted_device_kinds),
    )


@dataclass
class Context:
    period: Period
    scope: Scope
    rules: Rules
    now: datetime
    dialect: str
    devices: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def tz(self) -> timezone:
        return self.period.tz

    @property
    def as_of(self) -> datetime:
        """Dock and clock state is judged at the period's end, or now if that is earlier."""
        return min(self.now, self.period.end_utc)

    def serial(self, device_id: int | None) -> str | None:
        return self.devices[device_id]["serial"] if device_id in self.devices else None

    def unit_of_device(self, device_id: int | None) -> str | None:
        return self.devices[device_id]["unit"] if device_id in self.devices else None


def device_register(session: Session) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(Device.id, Device.serial, Device.kind, Device.unit_id, Unit.code)
        .outerjoin(Unit, Unit.id == Device.unit_id)
    ).all()
    return {r.id: {"serial": r.serial, "kind": r.kind, "unit_id": r.unit_id, "unit": r.code} for r in rows}
