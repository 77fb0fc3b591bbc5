"""The read side: lists and details for coordinators, units and auditors."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..domain.calendar import Calendar
from ..domain.case import CaseState, allowed_actions
from ..domain.dates import business_date
from ..domain.duties import waiting_on
from ..domain.errors import NotFound
from ..domain.events import Event
from ..domain.lifecycle import STATES, state_zh
from .cases import read_case
from .ports import (
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

__all__ = ["CaseDetail", "CaseRow", "case_scope", "list_cases", "list_coordinators", "list_jurisdictions",
           "list_notifications", "list_rounds", "list_units", "round_calendar", "show_case", "unit_history"]


def list_cases(db: Storage, *, round_id: str | None = None, state: str | None = None,
               jurisdiction_id: str | None = None, after_id: int = 0, limit: int = 100,
               unit_id: int | None = None, within_path: str | None = None, overdue: bool | None = None,
               category: str | None = None, level: str | None = None) -> list[CaseRow]:
    """Cases in id order after ``after_id`` (a cursor). ``unit_id`` and ``within_path`` are
    the caller's scope (a unit's own cases; a jurisdiction subtree); the rest are filters."""
    if state is not None and state not in STATES:
        raise NotFound(f"unknown state {state!r}; states: {', '.join(STATES)}",
                       f"没有状态 {state!r}；可用的状态：{'、'.join(f'{state_zh(s)}（{s}）' for s in STATES)}")
    filter_path = None
    if jurisdiction_id:
        jurisdiction = db.directory.jurisdiction(jurisdiction_id)
        if jurisdiction is None:
            raise NotFound(f"unknown jurisdiction {jurisdiction_id!r}", f"地区 {jurisdiction_id!r} 不存在")
        filter_path = jurisdiction.path
    return db.read.case_rows(CaseFilter(round_id=round_id or None, state=state or None, within_path=within_path,
                                        filter_path=filter_path, unit_id=unit_id, overdue=overdue,
                                        category=category or None, level=level or None, after_id=after_id,
                                        limit=limit))


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
