"""Issue 14: case search through the trigram index (SQLite FTS5 / PostgreSQL pg_trgm) gives
exactly the rows the scan gives — substring, prefix, exact, Chinese enterprise names,
LIKE metacharacters — on both catalogs, and the index follows inserts, updates and deletes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from cases.search import Criteria, search
from catalog import search_index
from catalog.accounts import Actor
from catalog.db import Catalog
from catalog.models import Case, Media, MediaLink
from web.queries import SearchForm, search_cases

TZ = timezone(timedelta(hours=8))
ADMIN = Actor(username="admin", role="admin", account_id=None)
T0 = datetime(2026, 11, 1, 1, 0, tzinfo=timezone.utc)

CASES = [  # case_no, record_id, enterprise
    ("JC-2026-000123", "R2026-0001", "临安化工有限公司"),
    ("JC-2026-001234", "R2026-0002", "临安精细化工厂"),
    ("JC-2025-000123", None, "杭州市西湖区某某餐饮店"),
    ("jc-2026-9%99", "R_50%", "100% Pure Water Co."),
    ("XC_2026_7", "rx-Ünïcode", "Ärzte & Söhne GmbH"),
    ("ABC\\DEF-1", "quote\"id", "O'Brien \"Quoted\" Ltd"),
    ("ZD-2026-000777", "R2026-0777", None),
    ("AB", None, "化工"),
]

NEEDLES = [
    # exact
    "JC-2026-000123", "R2026-0001", "临安化工有限公司", "jc-2026-9%99", "R_50%", "ABC\\DEF-1", "quote\"id",
    # prefix
    "JC-2026", "jc-2026", "R2026", "临安", "临安精", "XC_", "ab", "AB",
    # substring
    "000123", "2026-0", "化工", "化工有", "西湖区", "9%9", "%", "_", "50%", "C_2", "\\DE", "Quoted", "\"Q", "'Br",
    "üNï", "ÄRZTE", "ärzte", "Pure", "pure", "0777",
    # no match
    "JC-2024", "不存在的企业", "%%%", "__x", "zzz",
]


def _fill(cat: Catalog) -> None:
    with cat.session() as s:
        for i, (no, rid, ent) in enumerate(CASES):
            s.add(Case(case_no=no, record_id=rid, enterprise=ent, start=T0 + timedelta(hours=i)))


def _no_index_scan(s) -> None:  # noqa: ANN001
    """PostgreSQL: keep the planner off the trigram indexes for this transaction."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL enable_bitmapscan = off"))
        s.execute(text("SET LOCAL enable_indexscan = off"))


def _web(s, needle: str, field: str, use_index: bool) -> list[str]:  # noqa: ANN001
    form = SearchForm(**{field: needle})
    return [c.case_no for c in search_cases(s, ADMIN, form, TZ, use_index=use_index)]


def _oracle(needle: str, cols: tuple[str, ...], dialect: str) -> set[str]:
    """ILIKE as each database defines it: PostgreSQL folds every letter, SQLite only ASCII."""
    def fold(x: str) -> str:
        return x.lower() if dialect == "postgresql" else "".join(c.lower() if c.isascii() else c for c in x)
    out = set()
    for no, rid, ent in CASES:
        vals = {"case_no": no, "record_id": rid, "enterprise": ent}
        if any(vals[c] is not None and fold(needle) in fold(vals[c]) for c in cols):
            out.add(no)
    return out


def test_index_is_built_on_both_catalogs(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    try:
        with cat.session() as s:
            assert search_index.index_kind(s) == ("fts5" if cat.dialect == "sqlite" else "pg_trgm")
    finally:
        cat.dispose()


@pytest.mark.parametrize("field", ["case_no", "enterprise"])
def test_web_search_same_rows_with_and_without_index(catalog_url: str, field: str) -> None:
    cat = Catalog(catalog_url)
    try:
        _fill(cat)
        cols = ("case_no", "record_id") if field == "case_no" else ("enterprise",)
        for needle in NEEDLES:
            with cat.sessionmaker() as s:
                indexed = _web(s, needle, field, True)
            with cat.sessionmaker() as s:
                _no_index_scan(s)
                scanned = _web(s, needle, field, False)
            assert indexed == scanned, needle
            assert set(indexed) == _oracle(needle, cols, cat.dialect), needle
    finally:
        cat.dispose()


def test_cli_enterprise_search_same_rows_with_and_without_index(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    try:
        _fill(cat)
        with cat.session() as s:
            cases = s.query(Case).order_by(Case.id).all()
            for i, c in enumerate(cases):
                m = Media(sha256=f"{i:064x}", size=1, kind="video", storage_key=f"k{i}", status="stored",
                          original_path=f"p{i}", original_name=f"n{i}.mp4", recorded_start=c.start)
                s.add(m)
                s.flush()
                s.add(MediaLink(media_id=m.id, case_id=c.id, method="manual", reason="test"))
        for needle in [n for n in NEEDLES if n.strip() == n]:
            with cat.sessionmaker() as s:
                indexed = [r.case for r in search(s, Criteria(enterprise=needle))]
            with cat.sessionmaker() as s:
                _no_index_scan(s)
                scanned = [r.case for r in search(s, Criteria(enterprise=needle, use_index=False))]
            assert indexed == scanned, needle
    finally:
        cat.dispose()


def test_index_follows_insert_update_delete(catalog_url: str) -> None:
    cat = Catalog(catalog_url)
    try:
        _fill(cat)
        with cat.session() as s:
            c = s.query(Case).filter_by(case_no="ZD-2026-000777").one()
            c.case_no, c.enterprise = "ZD-2026-000888", "新安江水泥厂"
            s.add(Case(case_no="NEW-2026-42", enterprise="新安江电站", start=T0))
            s.delete(s.query(Case).filter_by(case_no="AB").one())
        with cat.sessionmaker() as s:
            assert _web(s, "000777", "case_no", True) == []
            assert _web(s, "000888", "case_no", True) == ["ZD-2026-000888"]
            assert sorted(_web(s, "新安江", "enterprise", True)) == ["NEW-2026-42", "ZD-2026-000888"]
            assert _web(s, "化工", "enterprise", True) == _web(s, "化工", "enterprise", False)
            assert "AB" not in _web(s, "化工", "enterprise", True)
            if cat.dialect == "sqlite":  # the FTS5 table agrees with its content table
                s.execute(text("INSERT INTO cases_search(cases_search) VALUES ('integrity-check')"))
    finally:
        cat.dispose()


def test_search_without_the_index_falls_back_to_the_scan(catalog_url: str) -> None:
    """A catalog whose database could not build the index (no FTS5 / no pg_trgm privilege)."""
    cat = Catalog(catalog_url)
    try:
        _fill(cat)
        with cat.engine.begin() as conn:
            search_index.drop(conn)
        search_index.forget(cat.engine)
        with cat.sessionmaker() as s:
            assert search_index.index_kind(s) is None
            assert sorted(_web(s, "000123", "case_no", True)) == ["JC-2025-000123", "JC-2026-000123"]
            assert sorted(_web(s, "化工", "enterprise", True)) == ["AB", "JC-2026-000123", "JC-2026-001234"]
    finally:
        search_index.forget(cat.engine)
        cat.dispose()
