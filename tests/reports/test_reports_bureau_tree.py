"""Issue 13: the bureau's own figure from a unit tree, standards inherited down the tree, and
figures rounded half up (四舍五入) — with reference data imported the way a bureau imports it
(units with parent_code, officers, devices), on SQLite and PostgreSQL.

The district (区应急局, standard 4 officers per camera) has the bureau's own part (局本级: the
office 局机关 and the enforcement brigade 执法大队 with a squad under it) and two street
offices; one street office sets its own standard (2), the other inherits the district's.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cases_support import import_file, write_csv, write_json
from catalog.accounts import add_account
from custody.cli import cli
from reports.numbers import fixed, percent, round_half_up
from reports.ratio import RatioOptions, ratio_report
from reports.render import render_csv, render_table, to_json
from cases.refdata import ImportRejected

DISTRICT, OWN, OFFICE, BRIGADE, SQUAD = "120102000000", "120102000100", "120102000101", "120102000102", "120102000103"
STREET_A, STREET_B = "120102100000", "120102200000"

UNITS = [
    {"code": DISTRICT, "name": "河东区应急管理局", "standard_officers_per_device": 4},
    # Children before parents in the file, on purpose: a parent may come later in the same file.
    {"code": OFFICE, "name": "局机关", "parent_code": OWN},
    {"code": BRIGADE, "name": "执法大队", "parent_code": OWN},
    {"code": SQUAD, "name": "执法大队一中队", "parent_code": BRIGADE},
    {"code": OWN, "name": "局本级(局机关和执法大队)", "parent_code": DISTRICT},
    {"code": STREET_A, "name": "大王庄街道", "parent_code": DISTRICT, "standard_officers_per_device": 2},
    {"code": STREET_B, "name": "大直沽街道", "parent_code": DISTRICT},
]
# Officers / cameras per unit.  局本级 in total: 34 officers, 16 cameras -> 2.125 -> 2.13.
PEOPLE = {OFFICE: (4, 2), BRIGADE: (20, 10), SQUAD: (10, 4), STREET_A: (5, 2), STREET_B: (9, 2)}


@pytest.fixture
def bureau(make_app: Any, catalog_url: str, tmp_path: Path) -> Any:
    app = make_app(catalog_url=catalog_url)
    d = tmp_path / "ref"
    d.mkdir()
    import_file(app, "units", write_json(d / "units.json", UNITS))
    officers, devices = [], []
    for k, (unit, (n_off, n_dev)) in enumerate(PEOPLE.items()):
        for i in range(n_off):
            officers.append([f"{k}{i:05d}", f"津应急证{k}{i:03d}", f"人员{k}-{i}", unit, "2020-01-01"])
        for i in range(n_dev):
            devices.append([f"C{k}{i:05d}", "执法记录仪", unit, "2020-01-01"])
    import_file(app, "officers", write_csv(d / "officers.csv", ["badge", "cert_no", "name", "unit_code",
                                                                "certified_from"], officers))
    import_file(app, "devices", write_csv(d / "devices.csv", ["serial", "kind", "unit_code", "in_service_from"],
                                          devices))
    with app.catalog.session() as s:
        add_account(s, "admin", "administrator")
    return app


def ratio_json(app: Any, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["--config", str(app.settings.config_path), "--user", "admin", "report",
                                      "ratio", "--at", "2021-06-30", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_parent_shows_the_subtotal_of_its_whole_subtree(bureau: Any) -> None:
    doc = ratio_json(bureau)
    rows = doc["rows"]
    # Tree order: a parent before its children, children by code; then the total.
    assert [(r["unit"], r["level"], r["parent"]) for r in rows] == [
        (DISTRICT, 0, None), (OWN, 1, DISTRICT), (OFFICE, 2, OWN), (BRIGADE, 2, OWN), (SQUAD, 3, BRIGADE),
        (STREET_A, 1, DISTRICT), (STREET_B, 1, DISTRICT), ("TOTAL", None, None)]
    by = {r["unit"]: r for r in rows}
    # 局本级 = 局机关 + 执法大队 (+ its squad, any depth): the figure the annual report states.
    own = by[OWN]
    assert (own["officers"], own["devices"], own["subtotal"]) == (34, 16, True)
    assert (own["own_officers"], own["own_devices"]) == (0, 0)
    assert (by[BRIGADE]["officers"], by[BRIGADE]["devices"], by[BRIGADE]["subtotal"]) == (30, 14, True)
    assert (by[BRIGADE]["own_officers"], by[BRIGADE]["own_devices"]) == (20, 10)
    assert (by[SQUAD]["officers"], by[SQUAD]["subtotal"]) == (10, False)
    assert (by[DISTRICT]["officers"], by[DISTRICT]["devices"]) == (48, 20)
    assert (by["TOTAL"]["officers"], by["TOTAL"]["devices"]) == (48, 20)
    # Street offices report on their own rows, outside the bureau's own subtotal.
    assert (by[STREET_A]["officers"], by[STREET_B]["officers"]) == (5, 9)


def test_a_unit_without_a_standard_inherits_its_parents(bureau: Any) -> None:
    by = {r["unit"]: r for r in ratio_json(bureau)["rows"]}
    assert (by[STREET_A]["standard"], by[STREET_A]["standard_unit"]) == (2.0, STREET_A)
    assert (by[STREET_B]["standard"], by[STREET_B]["standard_unit"]) == (4.0, DISTRICT)
    assert by[STREET_B]["standard_source"] == "units.standard_officers_per_device"
    assert (by[SQUAD]["standard"], by[SQUAD]["standard_unit"]) == (4.0, DISTRICT)  # three levels up
    # 9 officers, 2 cameras, standard 4 inherited: 3 required, 1 short.
    assert (by[STREET_B]["required"], by[STREET_B]["shortfall"], by[STREET_B]["meets"]) == (3, 1, False)
    # STREET_A holds 5 officers to its own standard 2: 3 required, 1 short.
    assert (by[STREET_A]["required"], by[STREET_A]["shortfall"]) == (3, 1)


def test_unit_option_covers_the_subtree_with_that_unit_on_top(bureau: Any) -> None:
    doc = ratio_json(bureau, "--unit", OWN)
    assert [(r["unit"], r["level"]) for r in doc["rows"]] == [
        (OWN, 0), (OFFICE, 1), (BRIGADE, 1), (SQUAD, 2), ("TOTAL", None)]
    total = doc["rows"][-1]
    # The standard of 局本级 is inherited from the district above the scope.
    assert (total["officers"], total["devices"], total["standard"], total["standard_unit"]) == (34, 16, 4.0, DISTRICT)
    assert doc["statement"]["scope"]["units"] == sorted([OWN, OFFICE, BRIGADE, SQUAD])


def test_ratios_are_rounded_half_up_and_the_raw_value_kept(bureau: Any) -> None:
    doc = ratio_json(bureau, "--unit", OWN)
    own = doc["rows"][0]
    assert own["officers_per_device"] == 2.13  # 34 / 16 = 2.125; round() would give 2.12
    assert own["officers_per_device_raw"] == 2.125
    with bureau.catalog.session() as s:
        report = ratio_report(s, bureau.settings, RatioOptions(at=date(2021, 6, 30), unit=OWN))
    table = render_table(report, "zh", detail=False)
    own_line = next(line for line in table.splitlines() if "局本级" in line)
    assert " 2.13 " in own_line and "2.12" not in own_line
    csv_text = render_csv(report, "en", detail=False)
    assert ",34,16,2.13,4.00," in csv_text
    assert to_json(report)["rows"][0]["officers_per_device_raw"] == 2.125


@pytest.mark.parametrize(("value", "digits", "text"), [
    (2.125, 2, "2.13"), (1.005, 2, "1.01"), (0.125, 2, "0.13"), (2.5, 0, "3"), (1.81, 2, "1.81"), (-0.001, 2, "0.00")])
def test_half_up(value: float, digits: int, text: str) -> None:
    assert fixed(value, digits) == text
    assert round_half_up(value, digits) == float(text)


def test_shares_are_rounded_half_up() -> None:
    assert percent(1 / 8) == "12.5%" and percent(0.0125) == "1.3%" and percent(0.00125, 2) == "0.13%"


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_unit_tree_import_refuses_unknown_parents_and_cycles(bureau: Any, tmp_path: Path) -> None:
    bad = write_json(tmp_path / "bad_units.json", [
        {"code": "X1", "parent_code": "NOPE"},
        {"code": DISTRICT, "parent_code": SQUAD},  # the district under its own squad
    ])
    with pytest.raises(ImportRejected) as ei:
        import_file(bureau, "units", bad)
    text = str(ei.value)
    assert "parent_code 'NOPE' is not a known unit" in text
    assert "makes a cycle" in text
