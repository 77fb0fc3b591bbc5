"""The bulk methods of the case store and the directory on every backend (memory, SQLite,
PostgreSQL): ``get_many``, ``create_many``, ``append_many``, ``notify_many``, ``unit_keys``,
``unit_ids``, ``add_units`` do what the one-at-a-time methods do for each, with the same
refusals, and a unit of work left without its commit keeps nothing of them."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from workflow.domain.case import CaseState, Notice, apply, decide, registration_event
from workflow.domain.errors import AlreadyExists, ConflictError, NotFound
from workflow.domain.events import Event
from workflow.service.audit import verify
from workflow.service.ports import NewUnit, Storage

from ..support import SYSTEM
from .worlds import add_round, directory, round_record

NOW = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
ACTOR = "admin:test"
NAMES = ("省直甲", "省直乙", "太原丙", "小店丁", "大同戊", "长沙己")


@dataclass
class World:
    store: Storage
    units: list[int]  # in NAMES order (the last one is Hunan's)


@pytest.fixture
def world(storage: Storage) -> World:
    """The contract world's units; rounds shanxi-2021 and shanxi-2022 (no case yet)."""
    units = directory(storage).units
    add_round(storage, round_record(opened_at=NOW))
    add_round(storage, round_record("shanxi-2022", year=2022, opened_at=NOW))
    return World(storage, [units[n] for n in NAMES])


def _cases(store: Storage) -> list[CaseState]:
    return list(store.all_cases())


def _events(store: Storage) -> list[Event]:
    return list(store.all_events())


def _without_identity(case: CaseState) -> CaseState:
    return replace(case, id=0, round_id="", last_hash="")


def _miss(uow: Any, case: CaseState, milestone: str = "self_assessment") -> tuple[CaseState, Event, CaseState]:
    """(before, event, after) of the sweep recording a miss on the case, decided by the domain."""
    data = {"milestone": milestone, "due_on": "2021-05-31", "noticed_on": "2021-06-01",
            "owed_in": ["registered", "self_assessed"]}
    event = decide(case, "record_missed_deadline", data, SYSTEM, NOW + timedelta(days=1),
                   uow.round_context(case.round_id))
    return case, event, apply(case, event)


# ---------------------------------------------------------------- create_many

def test_create_many_registers_each_unit_as_create_does(world: World) -> None:
    shanxi = world.units[:5]
    with world.store.unit_of_work() as uow:
        made = uow.create_many("shanxi-2021", [(u, None) for u in shanxi], ACTOR, NOW)
        uow.commit()
    with world.store.unit_of_work() as uow:
        single = [uow.create("shanxi-2022", u, ACTOR, NOW)[0].id for u in shanxi]
        uow.commit()
    assert made == sorted(made) and len(set(made)) == 5
    with world.store.unit_of_work() as uow:
        for unit_id, bulk_id, single_id in zip(shanxi, made, single, strict=True):
            bulk, one = uow.get(bulk_id), uow.get(single_id)
            assert (bulk.unit_id, bulk.round_id, one.round_id) == (unit_id, "shanxi-2021", "shanxi-2022")
            assert _without_identity(bulk) == _without_identity(one)
            [event] = uow.events(bulk_id)
            expected = registration_event(bulk_id, "shanxi-2021", unit_id, ACTOR, NOW)
            assert (event.type, event.seq, event.payload, event.hash) == (
                expected.type, 1, expected.payload, expected.hash)
            assert bulk.last_hash == event.hash
    assert verify(world.store).ok
    assert world.store.count_differences() == []


def test_create_many_with_nothing_registers_nothing(world: World) -> None:
    with world.store.unit_of_work() as uow:
        assert uow.create_many("shanxi-2021", [], ACTOR, NOW) == []
        uow.commit()
    assert _cases(world.store) == []


def _existing_case(world: World) -> int:
    with world.store.unit_of_work() as uow:
        case, _ = uow.create("shanxi-2021", world.units[2], ACTOR, NOW)
        uow.commit()
    return case.id


@pytest.mark.parametrize(("bad", "error", "match"), [
    ("unknown unit", NotFound, "unit 999"),
    ("a unit with a case in the round", AlreadyExists, "already has a case"),
    ("a unit twice", AlreadyExists, "already has a case"),
    ("carried over from an unknown case", NotFound, "case 4242"),
])
def test_create_many_refuses_what_create_refuses_and_keeps_nothing(world: World, bad: str, error: type,
                                                                  match: str) -> None:
    existing = _existing_case(world)
    before = (_cases(world.store), _events(world.store))
    good: list[tuple[int, int | None]] = [(world.units[0], None), (world.units[1], existing)]
    last: tuple[int, int | None] = {"unknown unit": (999, None), "a unit with a case in the round": (world.units[2], None),
                                    "a unit twice": (world.units[0], None),
                                    "carried over from an unknown case": (world.units[3], 4242)}[bad]
    with pytest.raises(error, match=match), world.store.unit_of_work() as uow:
        uow.create_many("shanxi-2021", [*good, last], ACTOR, NOW)
        uow.commit()
    assert (_cases(world.store), _events(world.store)) == before


def test_create_many_in_an_unknown_round_is_not_found(world: World) -> None:
    with pytest.raises(NotFound, match="nowhere-1999"), world.store.unit_of_work() as uow:
        uow.create_many("nowhere-1999", [(world.units[0], None)], ACTOR, NOW)
    assert _cases(world.store) == []


def test_a_case_carried_over_is_named_in_its_registration(world: World) -> None:
    existing = _existing_case(world)
    with world.store.unit_of_work() as uow:
        [made] = uow.create_many("shanxi-2022", [(world.units[2], existing)], ACTOR, NOW)
        uow.commit()
    with world.store.unit_of_work() as uow:
        assert uow.get(made).carried_over_from == existing
        assert uow.events(made)[0].payload["carried_over_from"] == existing
    assert verify(world.store).ok


# ---------------------------------------------------------------- get_many, append_many

def _registered(world: World, n: int = 4) -> list[int]:
    with world.store.unit_of_work() as uow:
        made = uow.create_many("shanxi-2021", [(u, None) for u in world.units[:n]], ACTOR, NOW)
        uow.commit()
    return made


def test_get_many_is_get_for_each_that_exists(world: World) -> None:
    ids = _registered(world)
    with world.store.unit_of_work() as uow:
        found = uow.get_many([ids[2], 4242, ids[0], ids[2]])
        assert found == {ids[0]: uow.get(ids[0]), ids[2]: uow.get(ids[2])}
        assert uow.get_many([]) == {}


def test_append_many_is_append_for_each(world: World) -> None:
    ids = _registered(world)
    with world.store.unit_of_work() as uow:
        cases = uow.get_many(ids)
        changes = [_miss(uow, cases[i]) for i in ids[:3]]
        uow.append_many(changes)
        uow.commit()
    with world.store.unit_of_work() as uow:
        for before, event, after in changes:
            assert uow.get(before.id) == after
            assert [e.hash for e in uow.events(before.id)][-1] == event.hash
        assert uow.get(ids[3]).version == 1  # not in the batch
    assert verify(world.store).ok
    assert world.store.count_differences() == []


def test_append_many_with_one_case_moved_meanwhile_is_a_conflict_and_keeps_nothing(world: World) -> None:
    ids = _registered(world)
    with world.store.unit_of_work() as uow:
        cases = uow.get_many(ids)
    stale = cases[ids[1]]
    with world.store.unit_of_work() as uow:  # someone else records a miss on the second case first
        uow.append(*_miss(uow, stale, "contact_form"))
        uow.commit()
    before = (_cases(world.store), _events(world.store))
    with pytest.raises(ConflictError, match=f"case {ids[1]} changed"), world.store.unit_of_work() as uow:
        uow.append_many([_miss(uow, cases[i]) for i in ids[:3]])
        uow.commit()
    assert (_cases(world.store), _events(world.store)) == before
    assert verify(world.store).ok


# ---------------------------------------------------------------- notify_many

def test_notify_many_writes_each_key_once(world: World) -> None:
    ids = _registered(world, 3)
    due = date(2021, 10, 20)
    with world.store.unit_of_work(core=True) as uow:
        cases = uow.get_many(ids)
        notices = [(cases[i], Notice("missed", f"missed:{i}:self_assessment", "self_assessment", due)) for i in ids]
        assert uow.notify_many(notices, NOW) == 3
        assert uow.notify_many(notices[1:], NOW) == 0
        assert uow.notify_many([], NOW) == 0
        uow.commit()
    rows = sorted(world.store.outbox.rows(limit=10), key=lambda r: r.id)
    assert [(r.case_id, r.kind, r.milestone, r.due_on, r.status, r.round_id) for r in rows] == [
        (i, "missed", "self_assessment", due, "pending", "shanxi-2021") for i in ids]


# ---------------------------------------------------------------- the directory

def _new(name: str, jurisdiction: str = "shanxi-taiyuan", certified: int | None = None) -> NewUnit:
    contacts: list[dict[str, Any]] = [{"name": "王五", "position": "", "phone": "0351-7654321", "email": ""}]
    return NewUnit(jurisdiction, name, "city", "行政机关", contacts, certified, "名单" if certified else None)


def test_add_units_adds_each_as_add_unit_does(world: World) -> None:
    later = NOW + timedelta(hours=1)
    with world.store.unit_of_work(core=True) as uow:
        assert uow.directory.add_units([_new("新甲"), _new("新乙", certified=2019)], later) == 2
        one = uow.directory.add_unit(_new("新丙", "shanxi-datong"), later)
        assert uow.directory.add_units([], later) == 0
        uow.commit()
    keys = world.store.directory.unit_keys()
    a, b = (world.store.directory.unit(keys[("shanxi-taiyuan", n)]) for n in ("新甲", "新乙"))
    assert a is not None and b is not None
    assert a.id < b.id < one.id  # in the order given, before the one added after them
    assert replace(a, id=0, name="", jurisdiction_id="", path="") == replace(one, id=0, name="", jurisdiction_id="",
                                                                            path="")
    assert (b.certified_year, b.certified_note) == (2019, "名单")
    assert len(keys) == len(NAMES) + 3
    assert verify(world.store).ok
    assert world.store.count_differences() == []


def test_units_of_are_the_units_of_those_ids(world: World) -> None:
    found = world.store.directory.units_of([world.units[3], 4242, world.units[1], world.units[3]])
    assert found == [world.store.directory.unit(world.units[1]), world.store.directory.unit(world.units[3])]
    assert world.store.directory.units_of([]) == []


def test_unit_ids_are_the_units_of_the_subtree_in_id_order(world: World) -> None:
    ids = world.store.directory.unit_ids("/shanxi/shanxi-taiyuan/")
    assert ids == [u.id for u in world.store.directory.units("/shanxi/shanxi-taiyuan/")] and len(ids) == 2
    assert world.store.directory.unit_ids() == sorted(world.units)


@pytest.mark.parametrize(("bad", "error", "match"), [
    (_new("太原丙"), AlreadyExists, "太原丙"),  # a name taken in its jurisdiction
    (_new("新甲"), AlreadyExists, "新甲"),  # twice in the batch
    (_new("新乙", "nowhere"), NotFound, "nowhere"),
])
def test_add_units_refuses_what_add_unit_refuses_and_keeps_nothing(world: World, bad: NewUnit, error: type,
                                                                  match: str) -> None:
    before = world.store.directory.units()
    with pytest.raises(error, match=match), world.store.unit_of_work(core=True) as uow:
        uow.directory.add_units([_new("新甲"), bad], NOW)
        uow.commit()
    assert world.store.directory.units() == before
    assert world.store.count_differences() == []


def test_the_bulk_writes_are_refused_outside_a_unit_of_work(world: World) -> None:
    with pytest.raises(RuntimeError, match="unit of work"):
        world.store.directory.add_units([_new("新甲")], NOW)
