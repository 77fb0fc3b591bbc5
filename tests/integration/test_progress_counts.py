"""The counts the progress report reads, kept in each change's transaction: equal to a recount
after every kind of change, found by ``audit verify`` when they are not, and rewritten by
``workflow db recount --repair``."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from workflow.adapters.db import counts
from workflow.adapters.db.store import Database
from workflow.service.audit import verify
from workflow.service.directory import update_unit
from workflow.service.reports import progress

from ..contract.worlds import NOW, World, act, certify, register, rich_world
from ..support import OPERATOR


def _kept_and_recounted(db: Database) -> tuple[Any, Any]:
    with db.engine.connect() as conn:
        on = counts.OnConnection(conn)
        kept_cases, kept_agencies = counts.kept(on.rows, None)
        cases, agencies, wrong = counts.recount(on.rows, None)
    assert wrong == {}
    return (kept_cases, kept_agencies), (cases, agencies)


def _certified_to_date(db: Database) -> int:
    return progress(db, "shanxi-2021", "/shanxi/").rows[0].certified_to_date


def test_every_kind_of_change_keeps_the_counts_equal_to_a_recount(db: Database) -> None:
    world: World = rich_world(db)  # certified, overdue, rectification, withdrawn, another province
    kept, recounted = _kept_and_recounted(db)
    assert kept == recounted and sum(recounted[0].values()) == 7 and sum(recounted[1].values()) == 7
    assert db.count_differences() == []
    assert _certified_to_date(db) == 2  # 省直甲 in the round, 大同戊 before the system

    later = NOW + timedelta(days=2)
    # a certified case withdrawn: it no longer counts as certified to date
    act(world, world.cases["省直甲"], "withdraw", {"reason": "机构撤并"}, now=later)
    assert _certified_to_date(db) == 1
    # a unit's year of certification before the system: set, and taken away
    unit = world.unit("省直乙")
    update_unit(db, unit, {"certified_year": 2019}, later, actor=OPERATOR)
    assert _certified_to_date(db) == 2
    update_unit(db, world.unit("大同戊"), {"certified_year": None, "certified_note": None}, later, actor=OPERATOR)
    assert _certified_to_date(db) == 1
    # a unit with a certification before the system that is certified again in the round
    certify(world, "省直庚", world.cases["省直庚"], later)
    assert _certified_to_date(db) == 2
    kept, recounted = _kept_and_recounted(db)
    assert kept == recounted
    assert verify(db).ok
    report = progress(db, "shanxi-2021", "/shanxi/").rows[0]
    assert (report.by_state["certified"], report.by_state["withdrawn"], report.cases) == (1, 2, 6)


def test_a_count_changed_by_hand_is_found_and_repaired(db: Database, tmp_path: Any, monkeypatch: Any) -> None:
    world = rich_world(db)
    register(world, "大同戊", "hunan-2021")  # a second case of one unit, in another round
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE case_counts SET n = n + 3 WHERE state = 'rectification'"))
        conn.execute(text("UPDATE units SET certified_since = 2001 WHERE name = '太原丙'"))
    report = verify(db)
    found = sorted(f.what for f in report.findings if f.kind == "counts")
    assert [f.kind for f in report.findings] == ["counts"] * 2, report.findings
    assert found[0].startswith("round shanxi-2021, shanxi-taiyuan, city, rectification: kept 4, recounted 1"), found
    assert found[1].startswith(f"unit {world.unit('太原丙')}: certified since 2001 kept, never recounted"), found
    assert str(report.findings[0]).startswith("progress counts #1: ")
    assert _certified_to_date(db) == 2  # the report reads what is kept: the unit row alone is not enough to lie
    assert counts.repair(db.engine) == (7, 6)  # rows written: 7 case counts, 6 unit counts
    assert verify(db).ok and db.count_differences() == []
