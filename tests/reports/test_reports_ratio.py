"""Ratio report against the bureau's 2021 figures, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from catalog.accounts import add_account
from custody.cli import cli
from catalog.models import CustodyEvent, Unit
from reports.ratio import RatioOptions, ratio_report, ratio_row
from reports.render import render_csv, render_table, to_json
from reports_bureau import BRIGADE, BUREAU, OFFICE, REVOKED_BADGE, REVOKED_ON, STREET, bureau_2021


@pytest.fixture
def bureau(make_app: Any, catalog_url: str) -> Any:
    app = make_app(catalog_url=catalog_url)
    with app.catalog.session() as s:
        bureau_2021(s)
        add_account(s, "admin", "administrator")
        add_account(s, "insp", "inspector")
    return app


def run(app: Any, *args: str, user: str = "admin") -> Any:
    result = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", user, "report", *args])
    return result


def ratio_json(app: Any, *args: str) -> dict:
    result = run(app, "ratio", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_unit(doc: dict) -> dict[str | None, dict]:
    return {r["unit"]: r for r in doc["rows"]}


def test_bureau_2021_meets_one_camera_per_four_officers(bureau: Any) -> None:
    doc = ratio_json(bureau, "--at", "2021-06-30")
    rows = by_unit(doc)
    total = rows["TOTAL"]
    assert (total["officers"], total["devices"]) == (29, 16)
    assert total["officers_per_device"] == pytest.approx(1.8, abs=0.05)
    assert total["standard"] == 4.0 and total["meets"] is True and total["shortfall"] == 0
    assert set(total) >= {"unit", "officers", "devices", "officers_per_device", "standard", "meets", "shortfall"}
    assert (rows[OFFICE]["officers"], rows[OFFICE]["devices"]) == (4, 2)
    assert (rows[BRIGADE]["officers"], rows[BRIGADE]["devices"]) == (25, 14)
    # The parent's row is the subtotal of its subtree; it holds nobody itself.
    assert (rows[BUREAU]["officers"], rows[BUREAU]["devices"], rows[BUREAU]["subtotal"]) == (29, 16, True)
    assert (rows[BUREAU]["own_officers"], rows[BUREAU]["own_devices"]) == (0, 0)
    # The statement traces the number: date, standard and what was counted or left out, and why.
    st = doc["statement"]
    assert st["at"] == "2021-06-30" and st["standard"]["total"] == 4.0
    assert st["counted"]["device_kinds"] == ["camera"]
    assert st["counted"]["officers_counted"] == 29 and st["counted"]["officers_excluded"] == 3
    reasons = {o["badge"]: o["reason"] for o in doc["details"]["officers_excluded"]}
    assert reasons == {"B0900": "certificate_expired", "B0901": "not_yet_certified", "099999": "no_certificate"}
    dev_reasons = {d["serial"]: d["reason"] for d in doc["details"]["devices_excluded"]}
    assert dev_reasons["CAM0900"] == "out_of_service" and dev_reasons["CAM0901"] == "not_yet_in_service"
    assert dev_reasons["TRM0001"] == "kind_not_counted" and dev_reasons["PRN0001"] == "kind_not_counted"
    assert len(doc["details"]["officers"]) == 29 and len(doc["details"]["devices"]) == 16


def test_revocation_takes_effect_on_its_date(bureau: Any) -> None:
    day_before = ratio_json(bureau, "--at", (REVOKED_ON - timedelta(days=1)).isoformat())
    on_the_day = ratio_json(bureau, "--at", REVOKED_ON.isoformat())
    assert by_unit(day_before)["TOTAL"]["officers"] == 29
    assert REVOKED_BADGE in {o["badge"] for o in day_before["details"]["officers"]}
    total = by_unit(on_the_day)["TOTAL"]
    assert total["officers"] == 28 and total["officers_per_device"] == 1.75
    assert by_unit(on_the_day)[BRIGADE]["officers"] == 24
    gone = {o["badge"]: o for o in on_the_day["details"]["officers_excluded"]}
    assert gone[REVOKED_BADGE]["reason"] == "revoked" and gone[REVOKED_BADGE]["status_changed_on"] == "2021-07-01"


def test_terminals_counted_when_asked(bureau: Any) -> None:
    total = by_unit(ratio_json(bureau, "--at", "2021-06-30", "--kinds", "camera,terminal"))["TOTAL"]
    assert (total["officers"], total["devices"]) == (29, 46)
    assert total["officers_per_device"] == pytest.approx(0.63, abs=0.01)


def test_stricter_standard_shows_shortfall(bureau: Any) -> None:
    rows = by_unit(ratio_json(bureau, "--at", "2021-06-30", "--standard", "1"))
    assert rows["TOTAL"]["meets"] is False and rows["TOTAL"]["shortfall"] == 13  # 29 needed, 16 held
    assert rows[OFFICE]["shortfall"] == 2 and rows[BRIGADE]["shortfall"] == 11
    assert all(r["standard"] == 1.0 for r in rows.values())


def test_standard_per_unit_from_catalog_then_config(make_app: Any, catalog_url: str) -> None:
    extra = f'[reports]\nstandard_officers_per_device = 3.0\n[reports.unit_standards]\n"{BRIGADE}" = 1.5\n'
    app = make_app(catalog_url=catalog_url, extra=extra)
    with app.catalog.session() as s:
        u = bureau_2021(s)
        u[OFFICE].standard_officers_per_device = 1.0  # the catalog's own value wins over config
        add_account(s, "admin", "administrator")
    rows = by_unit(ratio_json(app, "--at", "2021-06-30"))
    assert (rows[OFFICE]["standard"], rows[OFFICE]["standard_source"]) == (1.0, "units.standard_officers_per_device")
    assert rows[OFFICE]["meets"] is False and rows[OFFICE]["shortfall"] == 2
    assert (rows[BRIGADE]["standard"], rows[BRIGADE]["standard_source"]) == (1.5, "reports.unit_standards")
    assert rows[BRIGADE]["required"] == 17 and rows[BRIGADE]["shortfall"] == 3
    assert rows["TOTAL"]["standard"] == 3.0 and rows["TOTAL"]["meets"] is True


def test_unit_filter_takes_the_unit_and_its_children(bureau: Any) -> None:
    with bureau.catalog.session() as s:
        from catalog.models import Device, Officer

        street = Unit(code=STREET, name="街道办事处")
        s.add(street)
        s.flush()
        s.add(Officer(badge="S0001", cert_no="CERT-S1", unit_id=street.id, certified_from=date(2020, 1, 1)))
        s.add(Device(serial="SCAM01", kind="camera", unit_id=street.id, in_service_from=date(2020, 1, 1)))
    whole = by_unit(ratio_json(bureau, "--at", "2021-06-30"))
    assert (whole["TOTAL"]["officers"], whole["TOTAL"]["devices"]) == (30, 17)
    scoped = ratio_json(bureau, "--at", "2021-06-30", "--unit", BUREAU)
    rows = by_unit(scoped)
    assert set(rows) == {BUREAU, OFFICE, BRIGADE, "TOTAL"}
    assert (rows["TOTAL"]["officers"], rows["TOTAL"]["devices"]) == (29, 16)
    assert by_unit(ratio_json(bureau, "--at", "2021-06-30", "--unit", OFFICE))["TOTAL"]["officers"] == 4
    missing = run(bureau, "ratio", "--unit", "NOPE")
    assert missing.exit_code == 3 and "no unit with code 'NOPE'" in missing.output


def test_table_and_csv_in_chinese_and_english(bureau: Any) -> None:
    with bureau.catalog.session() as s:
        report = ratio_report(s, bureau.settings, RatioOptions(at=date(2021, 6, 30)))
    zh = render_table(report, "zh", detail=False)
    assert "执法人员与执法记录设备配比报告" in zh and "合计" in zh and "1.81" in zh and "2021-06-30" in zh
    assert REVOKED_BADGE not in zh  # lists only with --detail
    en_detail = render_table(report, "en", detail=True)
    assert "Officer-to-recording-device ratio" in en_detail and "certificate expired" in en_detail
    assert REVOKED_BADGE in en_detail
    csv_text = render_csv(report, "en", detail=False)
    lines = csv_text.splitlines()
    assert lines[0].startswith("# ") and any(line.startswith("# Date,2021-06-30") for line in lines)
    total_line = next(line for line in lines if line.startswith("Total,"))
    assert ",29,16,1.81,4.00,8,yes,0" in total_line
    assert to_json(report)["rows"][-1]["unit"] == "TOTAL"


def test_report_needs_the_reports_capability_and_is_logged(bureau: Any) -> None:
    refused = run(bureau, "ratio", "--at", "2021-06-30", user="insp")
    assert refused.exit_code == 4 and "may not reports" in refused.output
    assert run(bureau, "ratio", "--at", "2021-06-30").exit_code == 0
    with bureau.catalog.session() as s:
        events = s.execute(select(CustodyEvent).order_by(CustodyEvent.seq)).scalars().all()
    assert [(e.action, e.actor, e.outcome) for e in events[-2:]] == [("refused", "insp", "refused"),
                                                                     ("report", "admin", "ok")]
    assert events[-1].detail["params"]["at"] == "2021-06-30"


def test_bad_date_is_refused_with_the_expected_shape(bureau: Any) -> None:
    result = run(bureau, "ratio", "--at", "30/06/2021")
    assert result.exit_code == 1 and "not a date like 2021-07-01" in result.output


@pytest.mark.parametrize(("officers", "devices", "standard", "required", "shortfall", "meets"), [
    (29, 16, 4.0, 8, 0, True),
    (8, 2, 4.0, 2, 0, True),  # exactly at the standard
    (9, 2, 4.0, 3, 1, False),
    (0, 0, 4.0, 0, 0, True),
    (5, 0, 4.0, 2, 2, False),
    (3, 3, 1.0, 3, 0, True),
])
def test_ratio_row_arithmetic(officers: int, devices: int, standard: float, required: int, shortfall: int,
                              meets: bool) -> None:
    row = ratio_row("U", None, officers, devices, standard)
    assert (row["required"], row["shortfall"], row["meets"]) == (required, shortfall, meets)


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_html_states_date_standard_and_marks_a_unit_short(bureau: Any, tmp_path: Any) -> None:
    out = tmp_path / "ratio.html"
    result = run(bureau, "ratio", "--at", "2021-06-30", "--standard", "1", "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "执法人员与执法记录设备配比报告" in html and "2021-06-30" in html and "--standard" in html
    assert html.count('src="data:image/png;base64,') == 1
    assert '<td class="bad">否</td>' in html  # a unit that misses the standard stands out
    assert "证件已过期" in html and "B0900" in html  # the excluded officers and why
