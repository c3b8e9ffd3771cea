"""Time-travel tests of the pure retention decision over the shipped default rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.errors import ConfigError
from core.settings import SHIPPED_CONFIG_DIR
from retention.decide import decide
from retention.facts import CaseFact, HoldFact, LinkFact, Recording, TagFact
from retention.rules import add_months, compare_rules, load_rules, parse_duration, rules_from_dict

UTC = timezone.utc
CST = timezone(timedelta(hours=8))
REC = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


@pytest.fixture(scope="module")
def rules():  # noqa: ANN201
    return load_rules(SHIPPED_CONFIG_DIR / "retention.toml", CST)


def rec(**kw) -> Recording:  # noqa: ANN003
    base = dict(media_id=7, sha256="ab" * 32, recorded_start=REC, stored_at=REC + timedelta(hours=20),
                device_serial="DEV0001", officer_badge=None)
    base.pop("officer_badge")
    base.update(kw)
    return Recording(**base)


def case(no: str, kind: str = "inspection", **kw) -> CaseFact:  # noqa: ANN003
    return CaseFact(case_no=no, kind=kind, **kw)


def linked(c: CaseFact, **kw) -> LinkFact:  # noqa: ANN003
    return LinkFact(case=c, linked_at=REC + timedelta(days=1), **kw)


def hold(kind: str, ref: str, at: datetime, released: datetime | None = None, hid: int = 1) -> HoldFact:
    return HoldFact(hid, kind, ref, "litigation", "admin1", at, released)


def test_routine_six_calendar_months_from_recording(rules) -> None:  # noqa: ANN001
    d = decide(rec(), [], [], [], REC + timedelta(days=10), rules)
    assert d.rule == "routine" and d.keep_until == datetime(2026, 7, 10, 2, 0, tzinfo=UTC)
    assert not d.expired and not d.held
    assert "recorded 2026-01-10 10:00 +0800 + 6 months" in d.reason
    assert not decide(rec(), [], [], [], datetime(2026, 7, 10, 1, 59, tzinfo=UTC), rules).expired
    assert decide(rec(), [], [], [], datetime(2026, 7, 10, 2, 0, tzinfo=UTC), rules).expired


def test_months_are_counted_in_station_time(rules) -> None:  # noqa: ANN001
    # 2026-08-31 20:00 UTC is already 1 September in Beijing: six months later is 1 March,
    # not the "28 February" a UTC calendar would give.
    r = rec(recorded_start=datetime(2026, 8, 31, 20, 0, tzinfo=UTC))
    d = decide(r, [], [], [], r.recorded_start, rules)
    assert d.keep_until.astimezone(CST) == datetime(2027, 3, 1, 4, 0, tzinfo=CST)
    assert add_months(datetime(2026, 8, 31, tzinfo=UTC), 6) == datetime(2027, 2, 28, tzinfo=UTC)


def test_unknown_recording_time_counts_from_storage(rules) -> None:  # noqa: ANN001
    d = decide(rec(recorded_start=None), [], [], [], REC, rules)
    assert d.keep_until == add_months(REC + timedelta(hours=20), 6)
    assert "recording time unknown" in d.reason


def test_inspection_without_hazards_is_routine(rules) -> None:  # noqa: ANN001
    c = case("JC-1", closed_at=REC + timedelta(days=2))
    d = decide(rec(), [linked(c)], [], [], REC + timedelta(days=400), rules)
    assert d.rule == "routine" and d.expired


def test_hazard_inspection_kept_while_follow_up_open_then_six_months(rules) -> None:  # noqa: ANN001
    follow_up = datetime(2027, 3, 1, tzinfo=UTC)
    c = case("JC-2", hazards_found=True, closed_at=REC + timedelta(days=1), follow_up_closed_at=follow_up)
    # Before the follow-up closes (time travel to 2026-12): the close date has not happened yet.
    d = decide(rec(), [linked(c)], [], [], datetime(2026, 12, 1, tzinfo=UTC), rules)
    assert d.rule == "hazard_inspection" and d.permanent and "follow-up still open" in d.reason
    d = decide(rec(), [linked(c)], [], [], datetime(2027, 8, 31, tzinfo=UTC), rules)
    assert d.keep_until == add_months(follow_up.astimezone(CST), 6).astimezone(UTC) and not d.expired
    assert decide(rec(), [linked(c)], [], [], datetime(2027, 9, 2, tzinfo=UTC), rules).expired


def test_hazard_inspection_without_follow_up_date_uses_case_close(rules) -> None:  # noqa: ANN001
    closed = datetime(2026, 5, 1, tzinfo=UTC)
    c = case("JC-3", hazards_found=True, closed_at=closed)
    d = decide(rec(), [linked(c)], [], [], datetime(2027, 1, 1, tzinfo=UTC), rules)
    assert d.keep_until == datetime(2026, 11, 1, tzinfo=UTC) and "no follow-up date" in d.reason


def test_penalty_case_permanent_until_closed_then_ten_years(rules) -> None:  # noqa: ANN001
    c_open = case("CF-1", "penalty")
    d = decide(rec(), [linked(c_open)], [], [], datetime(2040, 1, 1, tzinfo=UTC), rules)
    assert d.permanent and d.rule == "enforcement_case" and not d.expired
    closed = datetime(2027, 6, 30, 16, 0, tzinfo=UTC)  # 2027-07-01 00:00 Beijing
    c = case("CF-1", "penalty", closed_at=closed)
    d = decide(rec(), [linked(c)], [], [], datetime(2030, 1, 1, tzinfo=UTC), rules)
    assert d.keep_until == datetime(2037, 6, 30, 16, 0, tzinfo=UTC)
    assert decide(rec(), [linked(c)], [], [], datetime(2037, 7, 1, tzinfo=UTC), rules).expired


def test_two_cases_with_different_rules_longest_wins(rules) -> None:  # noqa: ANN001
    hazard = case("JC-4", hazards_found=True, closed_at=datetime(2026, 2, 1, tzinfo=UTC),
                  follow_up_closed_at=datetime(2026, 4, 1, tzinfo=UTC))
    coercive = case("QZ-1", "coercive", closed_at=datetime(2026, 3, 1, tzinfo=UTC))
    now = datetime(2027, 1, 1, tzinfo=UTC)
    d = decide(rec(), [linked(hazard), linked(coercive)], [], [], now, rules)
    assert d.rule == "enforcement_case" and d.keep_until == datetime(2036, 3, 1, tzinfo=UTC)
    assert {a.rule for a in d.applied} == {"routine", "hazard_inspection", "enforcement_case"}
    # Unlinked from the coercive case (link removed): the hazard rule decides again.
    gone = LinkFact(case=coercive, linked_at=REC, removed_at=datetime(2026, 6, 1, tzinfo=UTC))
    d = decide(rec(), [linked(hazard), gone], [], [], now, rules)
    assert d.rule == "hazard_inspection" and d.keep_until == datetime(2026, 10, 1, tzinfo=UTC) and d.expired
    # ... but only once the removal has happened.
    assert decide(rec(), [linked(hazard), gone], [], [], datetime(2026, 5, 1, tzinfo=UTC), rules).rule == "enforcement_case"


def test_follow_on_penalty_case_keeps_the_inspection_footage(rules) -> None:  # noqa: ANN001
    pen = case("CF-9", "penalty")
    d = decide(rec(), [LinkFact(case=pen, linked_at=REC, via="JC-9")], [], [], datetime(2030, 1, 1, tzinfo=UTC), rules)
    assert d.permanent and "follow-on of linked case JC-9" in d.reason


def test_reviewer_tag_is_permanent_until_removed(rules) -> None:  # noqa: ANN001
    t = TagFact("complaint", "rev", REC + timedelta(days=3))
    d = decide(rec(), [], [], [t], datetime(2035, 1, 1, tzinfo=UTC), rules)
    assert d.permanent and d.rule == "reviewer_flag" and "complaint" in d.reason
    removed = TagFact("complaint", "rev", REC + timedelta(days=3), removed_at=datetime(2026, 2, 1, tzinfo=UTC))
    assert decide(rec(), [], [], [removed], datetime(2027, 1, 1, tzinfo=UTC), rules).rule == "routine"
    # A tag no rule names has no retention meaning.
    assert decide(rec(), [], [], [TagFact("funny", "rev", REC)], REC, rules).rule == "routine"


def test_case_closed_after_hold_placed_stays_held_until_release(rules) -> None:  # noqa: ANN001
    placed = datetime(2026, 3, 1, tzinfo=UTC)
    closed = datetime(2026, 9, 1, tzinfo=UTC)
    released = datetime(2040, 1, 1, tzinfo=UTC)
    pen = case("CF-2", "penalty", closed_at=closed)
    h = hold("case", "CF-2", placed, released)
    long_after = datetime(2039, 1, 1, tzinfo=UTC)  # case closed + 10 years has passed
    d = decide(rec(), [linked(pen)], [h], [], long_after, rules)
    assert d.keep_until == datetime(2036, 9, 1, tzinfo=UTC)
    assert d.held and not d.expired and "hold #1 on case CF-2" in d.reason
    after_release = decide(rec(), [linked(pen)], [h], [], datetime(2040, 1, 2, tzinfo=UTC), rules)
    assert not after_release.held and after_release.expired


def test_case_hold_survives_an_unlink_made_after_it(rules) -> None:  # noqa: ANN001
    c = case("JC-5")
    placed = datetime(2026, 2, 1, tzinfo=UTC)
    unlinked_after = LinkFact(case=c, linked_at=REC, removed_at=datetime(2026, 2, 2, tzinfo=UTC))
    unlinked_before = LinkFact(case=c, linked_at=REC, removed_at=datetime(2026, 1, 20, tzinfo=UTC))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert decide(rec(), [unlinked_after], [hold("case", "JC-5", placed)], [], now, rules).held
    assert not decide(rec(), [unlinked_before], [hold("case", "JC-5", placed)], [], now, rules).held


@pytest.mark.parametrize("kind,ref,held", [
    ("media", "7", True), ("media", "ab" * 32, True), ("media", "8", False),
    ("device", "DEV0001", True), ("device", "DEV0002", False),
    ("officer", "000123", True), ("officer", "000999", False),
])
def test_holds_on_recording_device_and_officer(rules, kind: str, ref: str, held: bool) -> None:  # noqa: ANN001
    r = rec(officer_badges=("000123",))
    now = datetime(2030, 1, 1, tzinfo=UTC)
    d = decide(r, [], [hold(kind, ref, REC)], [], now, rules)
    assert d.held is held and d.expired is (not held)


def test_hold_placed_in_the_future_of_a_release_does_not_block(rules) -> None:  # noqa: ANN001
    h = hold("media", "7", REC, released=datetime(2026, 5, 1, tzinfo=UTC))
    assert decide(rec(), [], [h], [], datetime(2026, 4, 1, tzinfo=UTC), rules).held
    assert not decide(rec(), [], [h], [], datetime(2026, 8, 1, tzinfo=UTC), rules).held


def test_rules_validation_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="floor"):
        rules_from_dict({"classes": {"x": {"label": "x", "trigger": "tagged", "tags": ["a"], "keep": "permanent"}}})
    with pytest.raises(ConfigError, match="not a duration"):
        rules_from_dict({"classes": {"r": {"label": "r", "trigger": "recorded", "keep": "six months"}}})
    with pytest.raises(ConfigError, match="needs tags"):
        rules_from_dict({"classes": {"r": {"label": "r", "trigger": "recorded", "keep": "1 year"},
                                     "t": {"label": "t", "trigger": "tagged", "keep": "permanent"}}})
    with pytest.raises(ConfigError, match="unknown"):
        rules_from_dict({"classes": {"r": {"label": "r", "trigger": "recorded", "keep": "1 year", "kep": 1}}})
    assert parse_duration("1 year").after(REC, UTC) == datetime(2027, 1, 10, 2, tzinfo=UTC)


def test_compare_rules_reports_a_shortened_class(rules) -> None:  # noqa: ANN001
    snap = rules.as_dict()
    snap["routine"] = {**snap["routine"], "keep": "12 months"}
    changes = compare_rules(snap, rules)
    assert changes == [{"class": "routine", "change": "shortened", "keep_before": "12 months",
                        "keep_after": "6 months", "fields": ["keep"]}]
    assert compare_rules(rules.as_dict(), rules) == []
