"""The read side: lists and details for coordinators and auditors."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import and_, select

from ..adapters.db.store import Database
from ..adapters.db.tables import Case, Coordinator, Jurisdiction, Outbox, Round, Unit
from ..domain.case import allowed_actions
from ..domain.errors import NotFound
from ..domain.events import Event
from ..domain.lifecycle import STATES


@dataclass(frozen=True, slots=True)
class CaseRow:
    id: int
    round_id: str
    unit_id: int
    unit_name: str
    jurisdiction_id: str
    category: str
    state: str
    version: int
    self_total: Any
    verified_total: Any
    recheck_total: Any
    rectification_due: Any
    updated_at: datetime


def list_cases(db: Database, *, round_id: str | None = None, state: str | None = None,
               jurisdiction_id: str | None = None, after_id: int = 0, limit: int = 100,
               unit_id: int | None = None, within_path: str | None = None, overdue: bool | None = None,
               category: str | None = None, level: str | None = None) -> list[CaseRow]:
    """Cases in id order after ``after_id`` (a cursor). ``unit_id`` and ``within_path`` are
    the caller's scope (a unit's own cases; a jurisdiction subtree); the rest are filters."""
    if state is not None and state not in STATES:
        raise NotFound(f"unknown state {state!r}; states: {', '.join(STATES)}")
    q = (select(Case.id, Case.round_id, Case.unit_id, Unit.name, Unit.jurisdiction_id, Unit.category, Case.state,
                Case.version, Case.self_total, Case.verified_total, Case.recheck_total, Case.rectification_due,
                Case.updated_at)
         .join(Unit, Case.unit_id == Unit.id).join(Jurisdiction, Unit.jurisdiction_id == Jurisdiction.id)
         .where(Case.id > after_id).order_by(Case.id).limit(limit))
    if round_id:
        q = q.where(Case.round_id == round_id)
    if state:
        q = q.where(Case.state == state)
    if unit_id is not None:
        q = q.where(Case.unit_id == unit_id)
    if within_path is not None:
        q = q.where(Jurisdiction.path.startswith(within_path, autoescape=True))
    if overdue is not None:
        q = q.where(Case.overdue.is_(overdue))
    if category:
        q = q.where(Unit.category == category)
    if level:
        q = q.where(Unit.level == level)
    if jurisdiction_id:
        with db.engine.connect() as conn:
            path = conn.execute(select(Jurisdiction.path).where(Jurisdiction.id == jurisdiction_id)).scalar()
        if path is None:
            raise NotFound(f"unknown jurisdiction {jurisdiction_id!r}")
        q = q.where(Jurisdiction.path.startswith(path, autoescape=True))
    with db.engine.connect() as conn:
        return [CaseRow(*row) for row in conn.execute(q).all()]


def unit_history(db: Database, unit_id: int) -> tuple[Any, list[Any]]:
    """A unit (with its jurisdiction's path) and every event of its cases, all years, in order."""
    with db.engine.connect() as conn:
        unit = conn.execute(select(Unit.id, Unit.name, Jurisdiction.path).join(
            Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id).where(Unit.id == unit_id)).first()
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist")
        case_ids = list(conn.execute(select(Case.id).where(Case.unit_id == unit_id).order_by(Case.id)).scalars())
    events = []
    with db.reader() as uow:
        for case_id in case_ids:
            events.extend(uow.events(case_id))
    return unit, events


@dataclass(frozen=True)
class CaseDetail:
    case: Any
    unit: Mapping[str, Any]
    round: Mapping[str, Any]
    events: list[Event]
    allowed: list[str]
    documents: tuple[Any, ...] = ()  # what the round asks for besides evidence
    waiting_on: list[dict[str, Any]] = field(default_factory=list)  # the bureau's duties it waits for


def show_case(db: Database, case_id: int, now: datetime, calendars: Any = None) -> CaseDetail:
    from ..clock import business_date
    from ..domain.duties import waiting_on

    with db.reader() as uow:
        state = uow.get(case_id)
        ctx = uow.round_context(state.round_id)
        events = uow.events(case_id)
        conn = uow.connection
        unit = conn.execute(select(Unit.__table__).where(Unit.id == state.unit_id)).mappings().one()
        rnd = conn.execute(select(Round.__table__).where(Round.id == state.round_id)).mappings().one()
    waiting = [] if calendars is None else [
        {**w, "due_on": w["due_on"].isoformat()}
        for w in waiting_on(calendars.get(rnd["calendar_id"]), rnd["year"], state.state, business_date(now))]
    return CaseDetail(state, unit, rnd, events, allowed_actions(state, ctx, now), ctx.documents, waiting)


def list_rounds(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(select(Round.__table__).order_by(Round.province_id, Round.year)).mappings())


def round_calendar(db: Database, calendars: Any, round_id: str) -> tuple[Any, int]:
    """The calendar a round runs by, and its year."""
    with db.engine.connect() as conn:
        row = conn.execute(select(Round.calendar_id, Round.year).where(Round.id == round_id)).first()
    if row is None:
        raise NotFound(f"round {round_id!r} does not exist", round_id=round_id)
    return calendars.get(row.calendar_id), row.year


def list_units(db: Database, jurisdiction_id: str | None = None) -> list[Any]:
    q = select(Unit.id, Unit.name, Unit.jurisdiction_id, Unit.level, Unit.category, Unit.contacts).order_by(Unit.id)
    with db.engine.connect() as conn:
        if jurisdiction_id:
            path = conn.execute(select(Jurisdiction.path).where(Jurisdiction.id == jurisdiction_id)).scalar()
            if path is None:
                raise NotFound(f"unknown jurisdiction {jurisdiction_id!r}")
            q = q.join(Jurisdiction, Unit.jurisdiction_id == Jurisdiction.id).where(
                and_(Jurisdiction.path.startswith(path)))
        return conn.execute(q).all()


def list_jurisdictions(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        return conn.execute(select(Jurisdiction.__table__).order_by(Jurisdiction.path)).all()


def list_coordinators(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        return conn.execute(select(Coordinator.__table__).order_by(Coordinator.jurisdiction_id, Coordinator.id)).all()


def list_notifications(db: Database, *, status: str | None = None, case_id: int | None = None,
                       limit: int = 200) -> list[Any]:
    q = select(Outbox.__table__).order_by(Outbox.id.desc()).limit(limit)
    if status:
        q = q.where(Outbox.status == status)
    if case_id is not None:
        q = q.where(Outbox.case_id == case_id)
    with db.engine.connect() as conn:
        return conn.execute(q).all()
