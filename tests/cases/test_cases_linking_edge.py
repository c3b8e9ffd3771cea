"""Linking at the edge (issue 13), on SQLite and PostgreSQL: a recording in the short gap between two
back-to-back inspections of the same officers, within the clock tolerance of one window and a few
seconds beyond the other's, fits both about equally well — it goes to the review queue with both
candidates instead of to the one that happens to be a few seconds nearer.

Day 2026-11-23 (UTC+08:00), officers 310001 and 310002:
- JC-2026-0501 09:00:00–10:00:00
- JC-2026-0502 10:04:05–11:00:00 (a 245-second gap between the two)
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cases_support import (
    Recorder, active_cases, at, import_file, import_reference, make_clips, open_review, write_csv,
)

DAY = date(2026, 11, 23)
HEADER = ["case_no", "kind", "unit_code", "officers", "start", "end"]
CASES = [
    ["JC-2026-0501", "inspection", "310115000000", "310001;310002", "2026-11-23 09:00:00", "2026-11-23 10:00:00"],
    ["JC-2026-0502", "inspection", "310115000000", "310001;310002", "2026-11-23 10:04:05", "2026-11-23 11:00:00"],
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, ffmpeg_ok: None) -> list[Path]:
    return make_clips(tmp_path_factory.mktemp("clips"), 8)


def world(make_app, catalog_url: str, tmp_path: Path, extra: str = ""):  # noqa: ANN001, ANN201
    app = make_app(catalog_url=catalog_url, extra=extra)
    import_reference(app, tmp_path, cases=False)
    import_file(app, "cases", write_csv(tmp_path / "edge.csv", HEADER, CASES))
    return app


def test_recording_in_the_gap_fitting_both_goes_to_review(make_app, catalog_url: str, tmp_path: Path,
                                                           clips: list[Path]) -> None:  # noqa: ANN001
    app = world(make_app, catalog_url, tmp_path)
    rec = Recorder(app, clips)
    # 10:01:50–10:02:00: 110 s after 0501 ends (inside the 120 s clock tolerance), 125 s before 0502
    # starts (just outside it).  Today's rule linked it to 0501 for being 15 s nearer.
    mid = rec.record("A100001", "310001", at("10:01:50", DAY), 10 / 60)
    assert active_cases(app, mid) == {}
    item = open_review(app, mid)
    assert item is not None and "about equally well" in item.reason and "吻合程度相近" in item.reason
    assert [c["case_no"] for c in item.candidates] == ["JC-2026-0501", "JC-2026-0502"]


def test_a_clearly_nearer_case_is_still_linked(make_app, catalog_url: str, tmp_path: Path,
                                               clips: list[Path]) -> None:  # noqa: ANN001
    app = world(make_app, catalog_url, tmp_path)
    rec = Recorder(app, clips)
    inside = rec.record("A100001", "310001", at("09:50", DAY), 5)  # inside 0501, 6 min before 0502
    after = rec.record("A100002", "310002", at("10:00:30", DAY), 10 / 60)  # 30 s after 0501, 215 s before 0502
    assert set(active_cases(app, inside)) == {"JC-2026-0501"} and open_review(app, inside) is None
    assert set(active_cases(app, after)) == {"JC-2026-0501"} and open_review(app, after) is None


def test_the_margin_is_a_setting(make_app, catalog_url: str, tmp_path: Path, clips: list[Path]) -> None:  # noqa: ANN001
    # With the rule off (equal_fit_seconds = 0) the nearer strong case wins, as before.
    app = world(make_app, catalog_url, tmp_path, extra="[linking]\nequal_fit_seconds = 0\n")
    assert app.settings.linking.equal_fit_seconds == 0
    rec = Recorder(app, clips)
    mid = rec.record("A100001", "310001", at("10:01:50", DAY), 10 / 60)
    assert set(active_cases(app, mid)) == {"JC-2026-0501"} and open_review(app, mid) is None
