"""One contract for every case store: the in-memory fake, SQLite and PostgreSQL.

A store that passes these keeps the promises the services rely on: a unit of work
commits all or nothing, versions guard concurrent writers, duplicates and unknowns
are refused, events come back in order with their hashes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from workflow.adapters.memory import MemoryDatabase
from workflow.domain.case import RoundContext, apply, decide
from workflow.domain.errors import AlreadyExists, ConflictError, NotFound
from workflow.domain.events import GENESIS_HASH
from workflow.domain.policy import Policy
from workflow.domain.rubric import rubric_to_data
from workflow.service.audit import verify
from workflow.service.cases import perform_action, register_case

from ..support import (
    ADMIN,
    COORDINATOR,
    RUBRICS,
    ready_to_submit,
    seed_jurisdictions,
    sheet_for,
    unit_actor,
    write_units_csv,
)

NOW = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
SHANXI = Policy("rectification", 20, False)
RUBRIC = RUBRICS.get("shanxi-2020")


@dataclass
class World:
    store: Any  # has unit_of_work(), all_cases(), all_events()
    round_id: str
    unit_ids: list[int]


def _memory_world(tmp_path, request) -> World:
    mem = MemoryDatabase()
    mem.add_round(RoundContext("shanxi-2021", SHANXI, Decimal(80), Decimal(100), RUBRIC))
    for i in range(1, 6):
        mem.add_unit(i)
    return World(mem, "shanxi-2021", [1, 2, 3, 4, 5])


def _sql_world(fixture: str) -> Callable[..., World]:
    def build(tmp_path, request) -> World:
        from sqlalchemy import insert

        from workflow.adapters.db.tables import Round
        from workflow.files import import_units

        db = request.getfixturevalue(fixture)
        seed_jurisdictions(db)
        import_units(db, write_units_csv(tmp_path / "u.csv", [(f"单位{i}", "shanxi", "行政机关") for i in range(5)]), NOW)
        with db.engine.begin() as conn:
            conn.execute(insert(Round).values(
                id="shanxi-2021", province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                calendar_id="shanxi-2021", target_share=Decimal("0.5"), pass_mark=Decimal(80),
                max_total=Decimal(100), policy={"on_fail": "rectification", "rectification_days": 20,
                                                "carry_over": False}, rubric_data=rubric_to_data(RUBRIC),
                opened_at=NOW, opened_by="admin:test"))
        return World(db, "shanxi-2021", [1, 2, 3, 4, 5])
    return build


BACKENDS = {"memory": _memory_world, "sqlite": _sql_world("sqlite_db"), "postgres": _sql_world("pg_db")}


@pytest.fixture(params=list(BACKENDS))
def world(request, tmp_path) -> World:
    return BACKENDS[request.param](tmp_path, request)


def _register(world: World, unit_index: int = 0):
    return register_case(world.store, world.round_id, world.unit_ids[unit_index], ADMIN, NOW)


def test_register_then_get_returns_the_projection(world: World) -> None:
    case, event = _register(world)
    assert (event.type, event.seq, event.prev_hash) == ("CaseRegistered", 1, GENESIS_HASH)
    with world.store.unit_of_work() as uow:
        stored = uow.get(case.id)
        assert stored == case
        assert uow.find(world.round_id, world.unit_ids[0]) == case
        assert uow.find(world.round_id, world.unit_ids[1]) is None
        assert [e.hash for e in uow.events(case.id)] == [event.hash]


def test_case_ids_are_distinct(world: World) -> None:
    ids = {_register(world, i)[0].id for i in range(3)}
    assert len(ids) == 3


def test_duplicate_case_is_refused_and_nothing_written(world: World) -> None:
    case, _ = _register(world)
    with pytest.raises(AlreadyExists, match="already has a case"):
        _register(world)
    assert [c.id for c in world.store.all_cases()] == [case.id]
    assert len(list(world.store.all_events())) == 1


@pytest.mark.parametrize("what", ["unit", "round"])
def test_unknown_unit_or_round_is_refused(world: World, what: str) -> None:
    round_id, unit_id = (world.round_id, 999) if what == "unit" else ("nowhere-1999", world.unit_ids[0])
    with pytest.raises(NotFound, match=what):
        register_case(world.store, round_id, unit_id, ADMIN, NOW)
    assert list(world.store.all_cases()) == []


def test_unknown_case_is_not_found(world: World) -> None:
    with pytest.raises(NotFound, match="case 4242"):
        perform_action(world.store, 4242, "submit", {}, unit_actor(1), NOW)


def test_actions_append_events_in_order_with_a_chain(world: World) -> None:
    case, _ = _register(world)
    unit = unit_actor(case.unit_id)
    ready_to_submit(world.store, case.id, case.unit_id, "86.5", NOW - timedelta(minutes=1))
    with world.store.unit_of_work() as uow:
        attached = uow.get(case.id).version
    steps = [("submit", {}, unit), ("verify", {"entries": sheet_for(RUBRIC, "79.5")}, COORDINATOR),
             ("order_rectification", {}, COORDINATOR)]
    for i, (action, data, actor) in enumerate(steps):
        result = perform_action(world.store, case.id, action, data, actor, NOW + timedelta(minutes=i))
    assert result.case.state == "rectification"
    assert result.case.self_total == Decimal("86.5") and result.case.verified_total == Decimal("79.5")
    assert result.case.rectification_due.isoformat() == "2021-06-21"
    with world.store.unit_of_work() as uow:
        events = uow.events(case.id)
        assert uow.get(case.id) == result.case
    assert [e.seq for e in events] == list(range(1, attached + 4))
    assert all(e.prev_hash == p.hash for p, e in zip(events, events[1:]))
    assert all(e.expected_hash() == e.hash for e in events)
    assert [e.occurred_at for e in events][-3:] == [NOW + timedelta(minutes=i) for i in range(3)]
    assert events[-2].payload["entries"] == sheet_for(RUBRIC, "79.5")
    assert verify(world.store).ok


def test_stale_version_is_a_conflict_and_nothing_is_written(world: World) -> None:
    case, _ = _register(world)
    unit = unit_actor(case.unit_id)
    perform_action(world.store, case.id, "self_assess", {"entries": {"1.1.1": "9"}}, unit, NOW)
    with pytest.raises(ConflictError, match="version"):
        perform_action(world.store, case.id, "submit", {}, unit, NOW, expected_version=1)
    with world.store.unit_of_work() as uow:
        assert uow.get(case.id).state == "self_assessed"
        assert len(uow.events(case.id)) == 2


def test_interleaved_writers_one_wins(world: World) -> None:
    """Two units of work read the same version; the second to write is refused."""
    case, _ = _register(world)
    unit = unit_actor(case.unit_id)
    ctx = RoundContext(world.round_id, SHANXI, Decimal(80), Decimal(100), RUBRIC)
    first = decide(case, "self_assess", {"entries": {"1.1.1": "8"}}, unit, NOW, ctx)
    second = decide(case, "self_assess", {"entries": {"1.1.1": "9"}}, unit, NOW, ctx)
    with world.store.unit_of_work() as uow:
        uow.append(case, first, apply(case, first))
        uow.commit()
    with pytest.raises(ConflictError), world.store.unit_of_work() as uow:
        uow.append(case, second, apply(case, second))
        uow.commit()
    with world.store.unit_of_work() as uow:
        assert uow.get(case.id).self_total == Decimal("8")
        assert [e.hash for e in uow.events(case.id)][-1] == first.hash


def test_a_unit_of_work_left_without_commit_writes_nothing(world: World) -> None:
    case, _ = _register(world)
    unit = unit_actor(case.unit_id)
    ctx = RoundContext(world.round_id, SHANXI, Decimal(80), Decimal(100), RUBRIC)
    event = decide(case, "self_assess", {"entries": {"1.1.1": "9"}}, unit, NOW, ctx)
    with pytest.raises(RuntimeError), world.store.unit_of_work() as uow:
        uow.append(case, event, apply(case, event))
        uow.create(world.round_id, world.unit_ids[1], "admin:test", NOW)
        raise RuntimeError("crash before commit")
    with world.store.unit_of_work() as uow:
        assert uow.get(case.id).version == 1
        assert uow.find(world.round_id, world.unit_ids[1]) is None


def test_several_writes_commit_together(world: World) -> None:
    with world.store.unit_of_work() as uow:
        a, _ = uow.create(world.round_id, world.unit_ids[0], "admin:test", NOW)
        b, _ = uow.create(world.round_id, world.unit_ids[1], "admin:test", NOW)
        uow.commit()
    assert sorted(c.id for c in world.store.all_cases()) == sorted([a.id, b.id])
    assert verify(world.store).ok


def test_times_come_back_aware_and_equal(world: World) -> None:
    odd = datetime(2021, 10, 20, 23, 59, 59, 123456, tzinfo=timezone(timedelta(hours=8)))
    case, event = register_case(world.store, world.round_id, world.unit_ids[0], ADMIN, odd)
    with world.store.unit_of_work() as uow:
        stored = uow.events(case.id)[0]
        row = uow.get(case.id)
    assert stored.occurred_at == odd and stored.occurred_at.tzinfo is not None
    assert row.registered_at == odd and row.updated_at == odd
    assert stored.hash == event.hash == stored.expected_hash()
