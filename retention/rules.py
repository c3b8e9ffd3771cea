"""Retention rules: classes of recordings, each with a trigger and a duration.

Loaded from `config/retention.toml` (`settings.retention_rules_file`).  The rules are
plain data handed to the pure `retention.decide.decide`; their digest lets a plan
notice that the rules changed since the previous plan.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from core.errors import ConfigError

Trigger = Literal["recorded", "follow_up_closed", "case_closed", "tagged"]
CASE_TRIGGERS = ("follow_up_closed", "case_closed")
_DURATION = re.compile(r"^\s*(\d+)\s*(day|days|month|months|year|years)\s*$")


@dataclass(frozen=True)
class Duration:
    """A calendar duration; `permanent` when `amount` is None."""

    amount: int | None
    unit: str = "months"  # days|months|years

    @property
    def permanent(self) -> bool:
        return self.amount is None

    def text(self) -> str:
        return "permanent" if self.amount is None else f"{self.amount} {self.unit}"

    def days_equivalent(self) -> float:
        """For comparing two durations (rule shortened or lengthened)."""
        if self.amount is None:
            return float("inf")
        return self.amount * {"days": 1, "months": 30.44, "years": 365.25}[self.unit]

    def after(self, start: datetime, tz: tzinfo) -> datetime | None:
        """`start` plus this duration, counting calendar months/years in the station's zone."""
        if self.amount is None:
            return None
        local = start.astimezone(tz)
        if self.unit == "days":
            return (local + timedelta(days=self.amount)).astimezone(timezone.utc)
        months = self.amount * (12 if self.unit == "years" else 1)
        return add_months(local, months).astimezone(timezone.utc)


def add_months(dt: datetime, months: int) -> datetime:
    """Calendar months; the 31st becomes the last day of a shorter month."""
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


def parse_duration(text: str) -> Duration:
    if text.strip().lower() == "permanent":
        return Duration(None)
    m = _DURATION.match(text.lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration like '6 months', '10 years', '30 days' or 'permanent'")
    unit = m.group(2) if m.group(2).endswith("s") else m.group(2) + "s"
    return Duration(int(m.group(1)), unit)


class RuleClassConfig(BaseModel):
    """One `[classes.NAME]` table as written in the file."""

    model_config = ConfigDict(extra="forbid")
    label: str
    label_zh: str = ""
    trigger: Trigger
    keep: str
    case_kinds: list[str] = []
    hazards_found: bool | None = None
    tags: list[str] = []

    @field_validator("keep")
    @classmethod
    def _keep_is_duration(cls, v: str) -> str:
        parse_duration(v)
        return v


@dataclass(frozen=True)
class RuleClass:
    name: str
    label: str
    label_zh: str
    trigger: Trigger
    keep: Duration
    case_kinds: tuple[str, ...] = ()
    hazards_found: bool | None = None
    tags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "label_zh": self.label_zh, "trigger": self.trigger,
                "keep": self.keep.text(), "case_kinds": list(self.case_kinds),
                "hazards_found": self.hazards_found, "tags": list(self.tags)}


@dataclass(frozen=True)
class Rules:
    classes: tuple[RuleClass, ...]
    tz: tzinfo = timezone.utc
    source: str = ""
    _by_name: dict[str, RuleClass] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.classes})

    def get(self, name: str) -> RuleClass | None:
        return self._by_name.get(name)

    def as_dict(self) -> dict[str, Any]:
        return {c.name: c.as_dict() for c in self.classes}

    @property
    def digest(self) -> str:
        canon = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

    @property
    def known_tags(self) -> set[str]:
        return {t for c in self.classes if c.trigger == "tagged" for t in c.tags}


def rules_from_dict(data: dict[str, Any], tz: tzinfo = timezone.utc, source: str = "") -> Rules:
    """Validate the parsed TOML (or a plan's snapshot) into Rules; errors name the class and key."""
    extra = set(data) - {"classes"}
    if extra:
        raise ConfigError(f"retention rules {source}: unknown top-level keys {sorted(extra)}")
    tables = data.get("classes") or {}
    if not tables:
        raise ConfigError(f"retention rules {source}: no [classes.NAME] tables")
    classes = []
    for name, table in tables.items():
        try:
            cfg = RuleClassConfig.model_validate(table)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or name}: "
                                 f"{'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
                                 for err in e.errors())
            raise ConfigError(f"retention rules {source}: class {name!r}: {problems}") from e
        if cfg.trigger == "tagged" and not cfg.tags:
            raise ConfigError(f"retention rules {source}: class {name!r}: trigger 'tagged' needs tags = [...]")
        if cfg.trigger not in CASE_TRIGGERS and (cfg.case_kinds or cfg.hazards_found is not None):
            raise ConfigError(f"retention rules {source}: class {name!r}: case filters need a case trigger")
        classes.append(RuleClass(name=name, label=cfg.label, label_zh=cfg.label_zh, trigger=cfg.trigger,
                                 keep=parse_duration(cfg.keep), case_kinds=tuple(cfg.case_kinds),
                                 hazards_found=cfg.hazards_found, tags=tuple(cfg.tags)))
    if not any(c.trigger == "recorded" for c in classes):
        # Without a floor, a recording with no case and no tag would have no rule at all.
        raise ConfigError(f"retention rules {source}: one class needs trigger = \"recorded\" (the floor)")
    return Rules(classes=tuple(classes), tz=tz, source=source)


_cache: dict[tuple[str, int], Rules] = {}


def load_rules(path: Path, tz: tzinfo = timezone.utc) -> Rules:
    try:
        stamp = (str(path.resolve()), path.stat().st_mtime_ns)
    except FileNotFoundError as e:
        raise ConfigError(f"retention rules file {path} not found") from e
    cached = _cache.get(stamp)
    if cached is not None and cached.tz == tz:
        return cached
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"retention rules file {path}: {e}") from e
    rules = rules_from_dict(data, tz=tz, source=str(path))
    _cache[stamp] = rules
    return rules


def rules_for(app: Any) -> Rules:
    """The rules the App's settings name, in the station's time zone."""
    return load_rules(app.settings.retention_rules_file, app.settings.tz)


def compare_rules(old: dict[str, Any], new: Rules) -> list[dict[str, Any]]:
    """Per-class differences between a plan's rule snapshot and the current rules."""
    changes: list[dict[str, Any]] = []
    cur = new.as_dict()
    for name in sorted(set(old) | set(cur)):
        before, after = old.get(name), cur.get(name)
        if before == after:
            continue
        if before is None or after is None:
            changes.append({"class": name, "change": "added" if before is None else "removed"})
            continue
        b, a = parse_duration(before["keep"]), parse_duration(after["keep"])
        direction = ("shortened" if a.days_equivalent() < b.days_equivalent()
                     else "lengthened" if a.days_equivalent() > b.days_equivalent() else "changed")
        changes.append({"class": name, "change": direction, "keep_before": before["keep"],
                        "keep_after": after["keep"],
                        "fields": sorted(k for k in after if after.get(k) != before.get(k))})
    return changes
