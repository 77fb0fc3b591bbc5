"""The case list's search, miss filter, orders and count (``service.queries.list_cases`` and
``count_cases`` on the ``ReadModels`` port), the same on every backend: a unit's name matched
literally (% and _ are no wildcards) with A-Z as a-z; a milestone missed; every sort both ways,
the id breaking ties and the totals not given last either way; a sort other than id paged by
offset; the count of what the list lists; bad sorts and cursors refused."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from workflow.domain.errors import InvalidInput, NotFound
from workflow.domain.lifecycle import OPEN_STATES, Owing
from workflow.service.ports import CaseFilter, CaseRow, NewUnit, Storage
from workflow.service.queries import CASE_SORTS, count_cases, list_cases

from ..support import sheet_for, unit_actor
from .worlds import NOW, RUBRIC, World, act, add_round, certify, directory, miss, rectify, register, round_record

# name → (jurisdiction, level, category, contacts, certified before the system); the names in
# the order of their cases' ids (1-8 in the comments below)
UNITS: dict[str, tuple[str, str, str, list[dict[str, str]], int | None]] = {
    "Alpha 100%_局": ("shanxi", "provincial", "行政机关", [], None),  # 1: a % and a _ in the name
    "alpha 100x局": ("shanxi", "provincial", "行政机关", [], None),  # 2: what "100%_" matches as a pattern
    "ABC办公室": ("shanxi-taiyuan", "city", "行政机关", [], None),  # 3
    "abc/中心": ("shanxi-taiyuan", "city", "党的机关", [], None),  # 4: the escape character of LIKE
    "省直乙": ("shanxi", "provincial", "党的机关", [], None),  # 5
    "太原丙": ("shanxi-taiyuan", "city", "行政机关", [], None),  # 6
    "小店丁": ("shanxi-taiyuan-xiaodian", "county", "行政机关", [], None),  # 7
}
CHANGSHA = "省直乙 (长沙)"  # 8: a unit of 长沙 named 省直乙 as well (the world's key for it)


@pytest.fixture
def world(storage: Storage) -> World:
    """Eight cases, all registered at NOW (``numbered`` says their ids):

    1 Alpha 100%_局  self_assessed 90 at +2h
    2 alpha 100x局   self_assessed 100 at +1h
    3 ABC办公室      self_assessed 9.5 at +3h
    4 abc/中心       registered; missed self_assessment at +1d (overdue)
    5 省直乙         self_assessed 90 at +2h; missed contact_form, then self_assessment at +1d
    6 太原丙         certified at NOW (self 86.5, verified 86.5)
    7 小店丁         in rectification at NOW (self 86.5, verified 79.5)
    8 省直乙 (长沙)  registered in hunan-2021
    """
    world = directory(storage, UNITS)
    with storage.unit_of_work(core=True) as uow:
        world.units[CHANGSHA] = uow.directory.add_unit(NewUnit("hunan-changsha", "省直乙", "city", "行政机关", [],
                                                               None, None), NOW).id
        uow.commit()
    add_round(storage, round_record())
    add_round(storage, round_record("hunan-2021", "hunan", 2021))
    for name in UNITS:
        register(world, name)
    register(world, CHANGSHA, "hunan-2021")

    def self_assess(name: str, total: str, hours: int) -> None:
        act(world, world.cases[name], "self_assess", {"entries": sheet_for(RUBRIC, total)},
            actor=unit_actor(world.unit(name)), now=NOW + timedelta(hours=hours))

    self_assess("Alpha 100%_局", "90", 2)
    self_assess("alpha 100x局", "100", 1)
    self_assess("ABC办公室", "9.5", 3)
    self_assess("省直乙", "90", 2)
    later = NOW + timedelta(days=1)
    miss(world, world.cases["abc/中心"], "self_assessment", ["registered", "self_assessed"], later)
    # owed in a "state" named as the milestone: a miss's head is matched, not the states it is owed in
    miss(world, world.cases["省直乙"], "contact_form", ["contact_form"], later)
    miss(world, world.cases["省直乙"], "self_assessment", ["registered", "self_assessed"], later)
    certify(world, "太原丙", world.cases["太原丙"])
    rectify(world, "小店丁", world.cases["小店丁"])
    return world


def numbered(world: World) -> dict[int, int]:
    """Case 1-8 (as in the fixture's docstring) → its id."""
    return {n: world.cases[name] for n, name in enumerate([*UNITS, CHANGSHA], start=1)}


def listed(world: World, **query: Any) -> list[int]:
    """The cases listed, as their numbers 1-8."""
    number = {case_id: n for n, case_id in numbered(world).items()}
    return [number[r.id] for r in list_cases(world.db, limit=1000, **query)]


def test_the_default_is_the_id_order_paged_by_cursor(world: World) -> None:
    ids = numbered(world)
    assert listed(world) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert listed(world, sort="id") == listed(world, sort="") == listed(world)
    page = list_cases(world.db, after_id=ids[2], limit=3)
    assert [r.id for r in page] == [ids[3], ids[4], ids[5]]
    # an offset composes with the cursor of the id order: skipped after it
    assert [r.id for r in list_cases(world.db, after_id=ids[2], offset=1, limit=2)] == [ids[4], ids[5]]


def test_a_name_is_searched_literally_and_ascii_letters_in_any_case(world: World) -> None:
    assert listed(world, name="100%_") == [1]  # as a LIKE pattern it would match 100x too
    assert listed(world, name="%") == [1]
    assert listed(world, name="_") == [1]
    assert listed(world, name="0%_局") == [1]
    assert listed(world, name="ALPHA") == [1, 2]
    assert listed(world, name="alpha 100") == [1, 2]
    assert listed(world, name="abc") == [3, 4]
    assert listed(world, name="c/中") == [4]  # the escape character, literally
    assert listed(world, name="/") == [4]
    assert listed(world, name="\\") == []
    assert listed(world, name="'") == []
    assert listed(world, name="省直") == [5, 8]
    assert listed(world, name="  省直乙 ") == [5, 8]  # surrounding blanks are not searched for
    assert listed(world, name="") == listed(world, name="   ") == listed(world, name=None) == list(range(1, 9))
    assert listed(world, name="x" * 50) == []
    assert listed(world, name="省直", round_id="hunan-2021") == [8]
    assert listed(world, name="局", sort="-unit") == [2, 1]


def test_the_cases_that_missed_a_milestone(world: World) -> None:
    assert listed(world, missed="self_assessment") == [4, 5]
    assert listed(world, missed="contact_form") == [5]
    # a state the miss is owed in, a prefix, a milestone nobody missed: no miss of theirs
    for milestone in ("registered", "self_assessed", "self", "self_assessmen", "contact", "evaluation"):
        assert listed(world, missed=milestone) == [], milestone
    assert listed(world, missed="self_assessment", overdue=True) == [4, 5]
    assert listed(world, missed="self_assessment", name="abc") == [4]
    assert listed(world, missed="self_assessment", sort="-id") == [5, 4]
    assert listed(world, missed="") == list(range(1, 9))


# sort → the cases 1-8 in its order (the fixture's docstring says why)
ORDERS = {
    "id": [1, 2, 3, 4, 5, 6, 7, 8],
    "-id": [8, 7, 6, 5, 4, 3, 2, 1],
    # by code point: capitals before small letters, then the CJK names (太 < 小 < 省); 省直乙 twice: by id
    "unit": [3, 1, 4, 2, 6, 7, 5, 8],
    "-unit": [5, 8, 7, 6, 2, 4, 1, 3],
    # as numbers (as text "100" < "86.5" < "9.5" < "90"); 90 twice and 86.5 twice: by id; none last
    "self_total": [3, 6, 7, 1, 5, 2, 4, 8],
    "-self_total": [2, 1, 5, 6, 7, 3, 4, 8],
    "verified_total": [7, 6, 1, 2, 3, 4, 5, 8],
    "-verified_total": [6, 7, 1, 2, 3, 4, 5, 8],
    # NOW: 6, 7, 8; +1h: 2; +2h: 1; +3h: 3; +1d: 4, 5
    "updated": [6, 7, 8, 2, 1, 3, 4, 5],
    "-updated": [4, 5, 3, 1, 2, 6, 7, 8],
    # the lifecycle's order: registered, self_assessed, ..., rectification, ..., certified
    "state": [4, 8, 1, 2, 3, 5, 7, 6],
    "-state": [6, 7, 1, 2, 3, 5, 4, 8],
}


def test_the_orders_are_every_sort(world: World) -> None:
    assert set(ORDERS) == set(CASE_SORTS)


@pytest.mark.parametrize("sort", CASE_SORTS)
def test_every_sort_both_ways_ties_by_id_no_total_last(world: World, sort: str) -> None:
    assert listed(world, sort=sort) == ORDERS[sort]


KEYS: dict[str, Callable[[CaseRow], Any]] = {
    "id": lambda r: r.id, "unit": lambda r: r.unit_name, "self_total": lambda r: r.self_total,
    "verified_total": lambda r: r.verified_total, "updated": lambda r: r.updated_at, "state": lambda r: r.state,
}


@pytest.mark.parametrize("sort", CASE_SORTS)
def test_the_rows_themselves_are_in_order(world: World, sort: str) -> None:
    """The rows' own values in order: the key's (none last), then the id's, ascending."""
    rows = list_cases(world.db, sort=sort, limit=1000)
    key, descending = KEYS[sort.lstrip("-")], sort.startswith("-")
    given = [r for r in rows if key(r) is not None]
    assert all(key(r) is None for r in rows[len(given):])
    assert [r.id for r in rows[len(given):]] == sorted(r.id for r in rows[len(given):])
    if sort.lstrip("-") == "state":
        return  # the lifecycle's order, not the text's (ORDERS pins it)
    for a, b in zip(given, given[1:], strict=False):
        if key(a) == key(b):
            assert a.id < b.id, (sort, a, b)
        else:
            assert (key(a) > key(b)) if descending else (key(a) < key(b)), (sort, a, b)


@pytest.mark.parametrize("sort", ["unit", "-self_total", "updated", "-state", "-id"])
def test_a_sort_other_than_id_pages_by_offset(world: World, sort: str) -> None:
    pages = [[r.id for r in list_cases(world.db, sort=sort, offset=offset, limit=3)] for offset in (0, 3, 6, 9)]
    ids = numbered(world)
    assert pages[0] + pages[1] + pages[2] == [ids[n] for n in ORDERS[sort]]
    assert [len(p) for p in pages] == [3, 3, 2, 0]
    assert list_cases(world.db, sort=sort, offset=1_000_000) == []
    assert listed(world, sort=sort, offset=2, name="省直") == []
    assert listed(world, sort=sort, offset=1, missed="self_assessment") == [n for n in ORDERS[sort] if n in (4, 5)][1:]


def test_the_count_is_what_the_list_lists(world: World) -> None:
    filters: list[dict[str, Any]] = [
        {}, {"round_id": "shanxi-2021"}, {"round_id": "hunan-2021"}, {"state": "self_assessed"},
        {"jurisdiction_id": "shanxi-taiyuan"}, {"within_path": "/shanxi/shanxi-taiyuan/"},
        {"within_path": "/shanxi/", "jurisdiction_id": "shanxi-taiyuan-xiaodian"},
        {"unit_id": world.unit("ABC办公室")}, {"overdue": True}, {"overdue": False}, {"category": "党的机关"},
        {"level": "provincial"}, {"name": "100%_"}, {"name": "abc"}, {"name": "ALPHA", "level": "provincial"},
        {"missed": "self_assessment"}, {"missed": "contact_form", "overdue": False},
        {"missed": "registered"}, {"name": "省直", "jurisdiction_id": "hunan"}, {"name": "nobody"},
        # a round's cases by place, state, overdue and level: counted from the kept counts in SQL
        {"round_id": "shanxi-2021", "state": "self_assessed"}, {"round_id": "shanxi-2021", "overdue": True},
        {"round_id": "shanxi-2021", "overdue": False, "level": "provincial"},
        {"round_id": "shanxi-2021", "within_path": "/shanxi/shanxi-taiyuan/"},
        {"round_id": "shanxi-2021", "within_path": "/shanxi/", "jurisdiction_id": "shanxi-taiyuan-xiaodian"},
        {"round_id": "hunan-2021", "within_path": "/shanxi/"}, {"round_id": "shanxi-2021", "state": "filed"},
        # who owes a milestone (the console's 仍欠报的事项)
        {"round_id": "shanxi-2021", "owing": Owing(("registered", "self_assessed"))},
        {"round_id": "shanxi-2021", "owing": Owing(OPEN_STATES, contact_form_missing=True),
         "within_path": "/shanxi/shanxi-taiyuan/"},
    ]
    for f in filters:
        assert count_cases(world.db, **f) == len(list_cases(world.db, limit=1000, **f)), f
    assert count_cases(world.db) == 8
    assert count_cases(world.db, name="abc") == 2
    assert count_cases(world.db, missed="self_assessment") == 2
    assert count_cases(world.db, within_path="/shanxi/shanxi-taiyuan/") == 4
    # the count is of every page: not cut by a page's size
    assert len(list_cases(world.db, limit=3, sort="unit")) == 3 and count_cases(world.db) == 8


def test_the_count_refuses_what_the_list_refuses(world: World) -> None:
    with pytest.raises(NotFound):
        count_cases(world.db, state="lost")
    with pytest.raises(NotFound):
        count_cases(world.db, jurisdiction_id="atlantis")
    with pytest.raises(InvalidInput):
        count_cases(world.db, name="x" * 51)
    with pytest.raises(InvalidInput):
        count_cases(world.db, missed="self-assessment")


def problems_of(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, tuple[str, str | None]]:
    return {p.where: (p.what, p.zh) for p in exc.value.problems}


def test_an_unknown_sort_is_invalid_input_saying_what_is_allowed(world: World) -> None:
    for sort in ("name", "-", "ID", "--id", "unit ", "id,-unit", "self_total desc"):
        with pytest.raises(InvalidInput) as refused:
            list_cases(world.db, sort=sort)
        what, zh = problems_of(refused)["sort"]
        assert all(s in what for s in CASE_SORTS) and repr(sort) in what
        assert zh is not None and "排序" in zh and all(s in zh for s in CASE_SORTS)
        assert refused.value.message_zh


def test_a_cursor_with_another_sort_is_invalid_input(world: World) -> None:
    ids = numbered(world)
    with pytest.raises(InvalidInput) as refused:
        list_cases(world.db, sort="unit", after_id=ids[2])
    what, zh = problems_of(refused)["after_id"]
    assert "offset" in what and zh is not None and "offset" in zh
    with pytest.raises(InvalidInput):
        list_cases(world.db, sort="-id", after_id=ids[2])
    # the read model itself refuses them as well (ValueError: a caller's mistake, not a user's)
    with pytest.raises(ValueError):
        world.db.read.case_rows(CaseFilter(sort="unit", after_id=ids[2]))
    with pytest.raises(ValueError):
        world.db.read.case_rows(CaseFilter(sort="colour"))


def test_bounds_of_the_offset_the_name_and_the_milestone(world: World) -> None:
    for bad in ({"offset": -1}, {"offset": 1_000_001, "sort": "unit"}, {"name": "x" * 51}, {"name": "a\x00b"},
                {"name": "a\tb"}, {"missed": "self-assessment"}, {"missed": "x" * 65}, {"missed": '"]'}):
        with pytest.raises(InvalidInput) as refused:
            list_cases(world.db, **bad)
        assert set(problems_of(refused)) == {next(iter(bad))}, bad
    # every problem at once
    with pytest.raises(InvalidInput) as refused:
        list_cases(world.db, sort="nope", offset=-5, name="y" * 60, missed="a b")
    assert set(problems_of(refused)) == {"sort", "offset", "name", "missed"}
    assert listed(world, sort="unit", offset=1_000_000) == []


def test_the_cases_that_owe_a_milestone(world: World) -> None:
    """``owing``: exactly the cases the rule's ``owing_cases`` gives, in any sort; only in a round."""
    for owing in (Owing(("registered", "self_assessed")), Owing(OPEN_STATES, contact_form_missing=True),
                  Owing(("certified",))):
        expected = [c.case_id for c in world.db.read.owing_cases("shanxi-2021", owing)]
        assert [r.id for r in list_cases(world.db, round_id="shanxi-2021", owing=owing, limit=1000)] == expected
        assert sorted(r.id for r in list_cases(world.db, round_id="shanxi-2021", owing=owing, sort="-unit",
                                               limit=1000)) == expected
    with pytest.raises(InvalidInput) as refused:
        list_cases(world.db, owing=Owing(("registered",)))
    assert [p.where for p in refused.value.problems] == ["owing"]
