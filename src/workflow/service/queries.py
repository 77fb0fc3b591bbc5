"""The read side: lists and details for coordinators, units and auditors."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..domain.calendar import Calendar
from ..domain.case import CaseState, allowed_actions
from ..domain.dates import business_date
from ..domain.duties import waiting_on
from ..domain.errors import InvalidInput, NotFound, Problem
from ..domain.events import Event
from ..domain.lifecycle import STATES, Owing, state_zh
from .cases import read_case
from .ports import (
    CASE_SORTS,
    CaseFilter,
    CaseRow,
    CaseScope,
    CoordinatorRecord,
    JurisdictionRecord,
    OutboxRecord,
    RoundRecord,
    Storage,
    UnitRecord,
)

__all__ = ["CASE_SORTS", "CaseDetail", "CaseRow", "case_scope", "count_cases", "list_cases", "list_coordinators",
           "list_jurisdictions", "list_notifications", "list_rounds", "list_units", "round_calendar", "show_case",
           "unit_history"]


# A name searched for is at most this long (a part of a unit's name, not a document).
NAME_MAX = 50
# A milestone's id (calendars: letters, digits and _) is at most this long here.
MILESTONE_MAX = 64
# The farthest a page of a sorted list starts (a page further in reads and sorts too much).
OFFSET_MAX = 1_000_000


def list_cases(db: Storage, *, round_id: str | None = None, state: str | None = None,
               jurisdiction_id: str | None = None, after_id: int = 0, limit: int = 100,
               unit_id: int | None = None, within_path: str | None = None, overdue: bool | None = None,
               category: str | None = None, level: str | None = None, name: str | None = None,
               missed: str | None = None, sort: str = "id", offset: int = 0,
               owing: Owing | None = None) -> list[CaseRow]:
    """Cases in ``sort`` order (one of :data:`CASE_SORTS`; ties by id), at most ``limit``.
    ``sort="id"`` pages by cursor: the cases with an id above ``after_id``; any other sort pages
    by ``offset`` (``after_id`` must stay 0). ``unit_id`` and ``within_path`` are the caller's
    scope (a unit's own cases; a jurisdiction subtree); the rest are filters: ``name`` a part of
    the unit's name (1-50 characters, taken literally, A-Z as a-z; blank: any name), ``missed``
    a milestone the case missed (overdue still or not), ``owing`` a milestone's rule of who owes it
    (``Milestone.owing``; with a round only). A ``sort`` of "" is the id order.
    InvalidInput for a sort, cursor, offset, name or milestone that cannot be (every problem at
    once); NotFound for an unknown state or jurisdiction."""
    return db.read.case_rows(_case_filter(
        db, round_id=round_id, state=state, jurisdiction_id=jurisdiction_id, unit_id=unit_id,
        within_path=within_path, overdue=overdue, category=category, level=level, name=name, missed=missed,
        sort=sort, after_id=after_id, offset=offset, limit=limit, owing=owing))


def count_cases(db: Storage, *, round_id: str | None = None, state: str | None = None,
                jurisdiction_id: str | None = None, unit_id: int | None = None, within_path: str | None = None,
                overdue: bool | None = None, category: str | None = None, level: str | None = None,
                name: str | None = None, missed: str | None = None, owing: Owing | None = None) -> int:
    """How many cases ``list_cases`` lists with these filters and scope, over all its pages."""
    return db.read.case_count(_case_filter(
        db, round_id=round_id, state=state, jurisdiction_id=jurisdiction_id, unit_id=unit_id,
        within_path=within_path, overdue=overdue, category=category, level=level, name=name, missed=missed,
        owing=owing))


def _case_filter(db: Storage, *, round_id: str | None, state: str | None, jurisdiction_id: str | None,
                 unit_id: int | None, within_path: str | None, overdue: bool | None, category: str | None,
                 level: str | None, name: str | None, missed: str | None, sort: str | None = "id",
                 after_id: int = 0, offset: int = 0, limit: int = 100, owing: Owing | None = None) -> CaseFilter:
    """The read model's filter of a case list, every argument checked (all problems at once)."""
    if state is not None and state not in STATES:
        raise NotFound(f"unknown state {state!r}; states: {', '.join(STATES)}",
                       f"没有状态 {state!r}；可用的状态：{'、'.join(f'{state_zh(s)}（{s}）' for s in STATES)}")
    sort = sort or "id"
    name = (name or "").strip() or None
    problems: list[Problem] = []
    if sort not in CASE_SORTS:
        problems.append(Problem("sort", f"must be one of {', '.join(CASE_SORTS)} (\"-\" before a key: "
                                        f"descending); got {sort[:40]!r}",
                                f"排序方式须为以下之一：{'、'.join(CASE_SORTS)}（键前加“-”为倒序）；"
                                f"填写的是 {sort[:40]!r}"))
    elif sort != "id" and after_id:
        problems.append(Problem("after_id", f"a cursor pages the id order only (sort=id); page sort={sort} "
                                            "with offset",
                                f"游标（after_id）只用于按编号排序（sort=id）；按 {sort} 排序请用 offset 翻页"))
    if not 0 <= offset <= OFFSET_MAX:
        problems.append(Problem("offset", f"must be 0 to {OFFSET_MAX:,}; got {offset}",
                                f"须为 0 至 {OFFSET_MAX} 之间的整数；填写的是 {offset}"))
    if name is not None and (len(name) > NAME_MAX or not name.isprintable()):
        problems.append(Problem("name", f"a part of a unit's name of 1-{NAME_MAX} printable characters; "
                                        f"got {len(name)} characters",
                                f"单位名称的检索词须为 1 至 {NAME_MAX} 个可打印字符；填写了 {len(name)} 个字符"))
    missed = missed or None
    if missed is not None and (len(missed) > MILESTONE_MAX or not missed.replace("_", "").isalnum()):
        problems.append(Problem("missed", f"a milestone id like self_assessment (letters, digits and _, at most "
                                          f"{MILESTONE_MAX}); got {missed[:MILESTONE_MAX]!r}",
                                f"须为时间节点编号，如 self_assessment（字母、数字和 _，至多 {MILESTONE_MAX} 个字符）；"
                                f"填写的是 {missed[:MILESTONE_MAX]!r}"))
    if owing is not None and not round_id:
        problems.append(Problem("owing", "who owes a milestone is asked within a round: give the round",
                                "按“仍欠报的事项”筛选须同时指定轮次"))
    if problems:
        raise InvalidInput("the case list cannot be read with these parameters", problems,
                           "案件清单的查询条件有误：" + "；".join(f"{p.where}：{p.zh}" for p in problems))
    filter_path = None
    if jurisdiction_id:
        jurisdiction = db.directory.jurisdiction(jurisdiction_id)
        if jurisdiction is None:
            raise NotFound(f"unknown jurisdiction {jurisdiction_id!r}", f"地区 {jurisdiction_id!r} 不存在")
        filter_path = jurisdiction.path
    return CaseFilter(round_id=round_id or None, state=state or None, within_path=within_path,
                      filter_path=filter_path, unit_id=unit_id, overdue=overdue, category=category or None,
                      level=level or None, after_id=after_id, limit=limit, name=name, missed=missed, sort=sort,
                      offset=offset, owing=owing)


def case_scope(db: Storage, case_id: int) -> CaseScope | None:
    return db.read.case_scope(case_id)


def unit_history(db: Storage, unit_id: int) -> tuple[UnitRecord, list[Event]]:
    """A unit (with its jurisdiction's path) and every event of its cases, all years, in order."""
    unit = db.directory.unit(unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在")
    events: list[Event] = []
    with db.reader() as uow:
        for case_id in db.read.unit_case_ids(unit_id):
            events.extend(uow.events(case_id))
    return unit, events


@dataclass(frozen=True)
class CaseDetail:
    case: CaseState
    unit: UnitRecord
    round: RoundRecord
    events: list[Event]
    allowed: list[str]
    documents: tuple[Any, ...] = ()  # what the round asks for besides evidence
    waiting_on: list[dict[str, Any]] = field(default_factory=list)  # the bureau's duties it waits for


def show_case(db: Storage, case_id: int, now: datetime, calendars: Any = None) -> CaseDetail:
    found = read_case(db, case_id, events=True)
    state, ctx, events = found.case, found.ctx, found.events
    unit = db.directory.unit(state.unit_id)
    rnd = db.rounds.round(state.round_id)
    assert unit is not None and rnd is not None
    waiting = [] if calendars is None else [
        {**w, "due_on": w["due_on"].isoformat()}
        for w in waiting_on(calendars.get(rnd.calendar_id), rnd.year, state.state, business_date(now))]
    return CaseDetail(state, unit, rnd, events, allowed_actions(state, ctx, now), ctx.documents, waiting)


def list_rounds(db: Storage) -> list[RoundRecord]:
    return db.rounds.rounds()


def round_calendar(db: Storage, calendars: Any, round_id: str) -> tuple[Calendar, int]:
    """The calendar a round runs by, and its year."""
    rnd = db.rounds.round(round_id)
    if rnd is None:
        raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
    return calendars.get(rnd.calendar_id), rnd.year


def list_units(db: Storage, jurisdiction_id: str | None = None) -> list[UnitRecord]:
    path = None
    if jurisdiction_id:
        jurisdiction = db.directory.jurisdiction(jurisdiction_id)
        if jurisdiction is None:
            raise NotFound(f"unknown jurisdiction {jurisdiction_id!r}", f"地区 {jurisdiction_id!r} 不存在")
        path = jurisdiction.path
    return db.directory.units(path)


def list_jurisdictions(db: Storage, within_path: str | None = None) -> list[JurisdictionRecord]:
    return db.directory.jurisdictions(within_path)


def list_coordinators(db: Storage) -> list[CoordinatorRecord]:
    return sorted(db.directory.coordinators(), key=lambda c: (c.jurisdiction_id, c.id))


def list_notifications(db: Storage, *, status: str | None = None, case_id: int | None = None,
                       limit: int = 200) -> list[OutboxRecord]:
    return db.outbox.rows(status=status, case_id=case_id, limit=limit)
