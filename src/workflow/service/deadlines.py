"""The sweep: compare the deadlines (data) with now and do whatever is due. Idempotent.

For every round and milestone of its calendar:
- reminders: the latest tier whose day has come (before the due date) is written to the
  outbox for every case that still owes the milestone, in one set-based statement; the
  outbox's unique dedupe key (case, milestone, tier) makes a re-run write nothing;
- misses: after the due date every case that still owes it gets one ``DeadlineMissed``
  event (with the day it was noticed) and is marked overdue; the unit is told, and each
  coordinator of the case's jurisdiction gets one digest of their overdue units;
- rectification: each case's own deadline (ordered + N days, or as extended) is reminded
  the same way; at expiry without a recheck request the case becomes not_certified.

A stage done for a round's milestone is marked (``sweep_marks``), so a sweep with nothing
due reads no cases. After downtime the next sweep catches up: every miss is recorded, and
of the reminder tiers only the latest due is sent, never a burst.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterator

from sqlalchemy import Connection, Date, String, and_, cast, literal, select
from sqlalchemy.dialects import postgresql, sqlite

import structlog

from ..adapters.calendar_files import CalendarCatalog
from ..adapters.db.duty_store import append as append_duty
from ..adapters.db.duty_store import streams_of_round
from ..adapters.db.store import Database
from ..adapters.db.tables import Case, Coordinator, Jurisdiction, Outbox, Round, SweepMark, Unit
from ..adapters.db.types import UTCDateTime
from ..adapters.workdays import WorkdayCalendar
from ..clock import business_date, require_aware
from ..domain.calendar import Calendar, Milestone, tier_due
from ..domain.case import Actor, apply, decide
from ..domain.duties import DutyStream, apply_duty, record_missed
from ..domain.errors import ConflictError, DomainError
from ..domain.lifecycle import CONTACT_FORM, TERMINAL_STATES
from .duties import owners, waiting_cases

log = structlog.get_logger(__name__)

SWEEPER = Actor("system", "sweep")
BATCH = 500  # cases per transaction when recording misses
RECTIFICATION = "rectification"
_AFTER = timedelta(days=31)  # a milestone's holiday data matters until a month after it is due


@dataclass
class SweepReport:
    now: datetime
    reminders: int = 0
    coordinator_reminders: int = 0
    missed: int = 0
    expired: int = 0
    digests: int = 0
    unit_notices: int = 0
    duty_reminders: int = 0
    duties_missed: int = 0
    duty_notices: int = 0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a year without official holiday data

    @property
    def total(self) -> int:
        return (self.reminders + self.coordinator_reminders + self.missed + self.expired + self.digests
                + self.duty_reminders + self.duties_missed)


def _insert(conn: Connection, table: Any = Outbox):
    """INSERT in the connection's dialect (for ON CONFLICT DO NOTHING)."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _inserted(conn: Connection, stmt: Any) -> int:
    """Run an INSERT … ON CONFLICT DO NOTHING and say how many rows it wrote: the driver's
    row count on SQLite; on PostgreSQL psycopg reports none here, so the ids are returned."""
    if conn.dialect.name == "sqlite":
        return max(conn.execute(stmt).rowcount, 0)
    return len(conn.execute(stmt.returning(Outbox.id)).all())


def _marked(conn: Connection, round_id: str, milestone: str, stage: str) -> bool:
    return conn.execute(select(SweepMark.stage).where(and_(
        SweepMark.round_id == round_id, SweepMark.milestone == milestone, SweepMark.stage == stage))).first() is not None


def _mark(conn: Connection, round_id: str, milestone: str, stage: str, now: datetime) -> None:
    conn.execute(_insert(conn, SweepMark).values(
        round_id=round_id, milestone=milestone, stage=stage, done_at=now).on_conflict_do_nothing())


def owing(milestone: Milestone, round_id: str):
    """The cases of a round that still owe a milestone (or, for a bureau's duty, that wait
    for the bureau)."""
    cond = [Case.round_id == round_id]
    if milestone.owes_states:
        cond.append(Case.state.in_(sorted(milestone.owes_states)))
    if milestone.owes_contact_form:
        cond.append(Case.state.notin_(sorted(TERMINAL_STATES)))
        cond.append(Case.contact_form.is_(False))
    return and_(*cond)


def sweep(db: Database, calendars: CalendarCatalog, now: datetime) -> SweepReport:
    require_aware(now, "now")
    report = SweepReport(now)
    today = business_date(now)
    with db.engine.connect() as conn:
        rounds = conn.execute(select(Round.id, Round.year, Round.calendar_id, Round.policy, Round.province_id)).all()
    for round_id, year, calendar_id, policy, province_id in rounds:
        try:
            calendar = calendars.get(calendar_id)
        except DomainError as exc:  # a bad calendar stops its rounds, not the sweep
            report.skipped.append(f"round {round_id}: {exc}")
            continue
        workdays = WorkdayCalendar(calendar.extra_holidays, calendar.extra_workdays)
        active = [m for m in calendar.milestones if not m.informational and today <= m.due_on(year) + _AFTER]
        for warning in workdays.warnings({m.due_on(year).year for m in active}):
            if warning not in report.warnings:
                report.warnings.append(warning)
                log.warning("holiday data missing", round_id=round_id, detail=warning)
        for milestone in calendar.milestones:
            if milestone.informational:
                continue
            due = milestone.due_on(year)
            tier = tier_due(due, milestone.tiers, today, workdays)
            if milestone.by_level:
                _level_duty(db, round_id, province_id, milestone, due, tier, now, report)
                continue
            if tier is not None:
                _remind(db, round_id, calendar, milestone, due, tier, now, report)
            if today > due:
                if milestone.by_bureau:
                    _bureau_missed(db, round_id, milestone, due, now, report)
                else:
                    _record_misses(db, round_id, calendar, milestone, due, now, report)
        if calendar.rectification is not None and (policy or {}).get("on_fail") == RECTIFICATION:
            _rectification(db, round_id, calendar, today, now, workdays, report)
    return report


# ---------------------------------------------------------------- reminders

def _remind(db: Database, round_id: str, calendar: Calendar, m: Milestone, due: date, tier: int, now: datetime,
            report: SweepReport) -> None:
    stage = f"tier:{tier}"
    with db.write_connection() as conn:
        if _marked(conn, round_id, m.id, stage):
            return
        if "unit" in m.remind:
            key = literal("reminder:") + cast(Case.id, String) + literal(f":{m.id}:{tier}")
            rows = select(key, literal("reminder"), Case.round_id, Case.id, literal(m.id), literal(tier),
                          literal(due, Date()), literal("pending"), literal(0), literal(now, UTCDateTime()),
                          literal(now, UTCDateTime())).where(owing(m, round_id))
            report.reminders += _inserted(conn, _insert(conn).from_select(
                ["dedupe_key", "kind", "round_id", "case_id", "milestone", "tier", "due_on", "status", "attempts",
                 "next_attempt_at", "created_at"], rows).on_conflict_do_nothing(index_elements=["dedupe_key"]))
        if "coordinators" in m.remind:
            report.coordinator_reminders += _coordinator_rows(
                conn, round_id, m.id, due, now, kind="coordinator_reminder", key=f"{m.id}:{tier}", tier=tier,
                where=owing(m, round_id))
        _mark(conn, round_id, m.id, stage, now)


def _coordinator_rows(conn: Connection, round_id: str, milestone: str, due: date, now: datetime, *, kind: str,
                      key: str, where, tier: int | None = None, with_due: bool = False) -> int:
    """One row per coordinator listing the matching cases of the jurisdictions they run.
    A jurisdiction without an active coordinator is looked after by the nearest one above it,
    so no overdue unit goes unnoticed."""
    columns = [Case.id, Unit.name, Unit.jurisdiction_id] + ([Case.rectification_due] if with_due else [])
    cases = conn.execute(select(*columns).join(Unit, Unit.id == Case.unit_id).where(where).order_by(Case.id)).all()
    if not cases:
        return 0
    paths = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.path)).all())
    coordinators: dict[str, list[int]] = {}
    for coordinator_id, jurisdiction_id in conn.execute(
            select(Coordinator.id, Coordinator.jurisdiction_id).where(Coordinator.active.is_(True))):
        coordinators.setdefault(jurisdiction_id, []).append(coordinator_id)
    by_coordinator: dict[int, list[dict[str, Any]]] = {}
    for row in cases:
        entry = {"case_id": row[0], "unit_name": row[1]}
        if with_due and row[3] is not None:
            entry["due_on"] = row[3].isoformat()
        for ancestor in reversed([p for p in paths.get(row[2], "").split("/") if p]):
            if ancestor in coordinators:
                for coordinator_id in coordinators[ancestor]:
                    by_coordinator.setdefault(coordinator_id, []).append(entry)
                break
    written = 0
    for coordinator_id, rows in sorted(by_coordinator.items()):
        written += _inserted(conn, _insert(conn).values(
            dedupe_key=f"{kind}:{coordinator_id}:{round_id}:{key}", kind=kind, round_id=round_id,
            coordinator_id=coordinator_id, milestone=milestone, tier=tier, due_on=due,
            context=json.dumps({"rows": rows}, ensure_ascii=False), status="pending", attempts=0,
            next_attempt_at=now, created_at=now).on_conflict_do_nothing(index_elements=["dedupe_key"]))
    return written


# ---------------------------------------------------------------- misses

def _retrying(db: Database, work: Any, attempts: int = 5) -> tuple[int, int]:
    """Run ``work(uow)`` in a unit of work and commit; if a concurrent writer (another
    sweep, a person acting on a case) got there first, run it again on fresh rows."""
    for attempt in range(attempts):
        try:
            with db.unit_of_work(core=True) as uow:
                result = work(uow)
                uow.commit()
                return result
        except ConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _batches(ids: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _record_misses(db: Database, round_id: str, calendar: Calendar, m: Milestone, due: date, now: datetime,
                   report: SweepReport) -> None:
    with db.engine.connect() as conn:
        if _marked(conn, round_id, m.id, "missed"):
            return
        ids = list(conn.execute(select(Case.id).where(owing(m, round_id)).order_by(Case.id)).scalars())
    noticed = business_date(now)
    owed = [CONTACT_FORM] if m.owes_contact_form else sorted(m.owes_states)
    for batch in _batches(ids, BATCH):
        def record(uow: Any) -> tuple[int, int]:
            missed = notices = 0
            for case_id in batch:
                case = uow.get(case_id)
                if any(mid == m.id for mid, _ in case.missed):
                    continue  # recorded by another or an earlier, interrupted sweep
                if case.state in TERMINAL_STATES or (m.owes_states and case.state not in m.owes_states) \
                        or (m.owes_contact_form and case.contact_form):
                    continue  # moved on (submitted, withdrawn, closed, gave the form) since the ids were read
                ctx = uow.round_context(case.round_id)
                event = decide(case, "record_missed_deadline",
                               {"milestone": m.id, "due_on": due, "noticed_on": noticed, "owed_in": owed},
                               SWEEPER, now, ctx)
                uow.append(case, event, apply(case, event))
                missed += 1
                if "unit" in m.escalate:
                    notices += _unit_notice(uow.connection, round_id, case_id, m.id, "missed", due, now)
            return missed, notices

        missed, notices = _retrying(db, record)
        report.missed += missed
        report.unit_notices += notices
    with db.write_connection() as conn:
        if "coordinators" in m.escalate:
            report.digests += _coordinator_rows(
                conn, round_id, m.id, due, now, kind="digest", key=f"{m.id}:missed",
                where=and_(Case.round_id == round_id, Case.overdue.is_(True),
                           Case.missed.like(f'%"{m.id}"%')))
        _mark(conn, round_id, m.id, "missed", now)


def _unit_notice(conn: Connection, round_id: str, case_id: int, milestone: str, kind: str, due: date,
                 now: datetime, tier: int | None = None, key: str | None = None) -> int:
    return _inserted(conn, _insert(conn).values(
        dedupe_key=key or f"{kind}:{case_id}:{milestone}", kind=kind, round_id=round_id, case_id=case_id,
        milestone=milestone, tier=tier, due_on=due, status="pending", attempts=0, next_attempt_at=now,
        created_at=now).on_conflict_do_nothing(index_elements=["dedupe_key"]))


# ---------------------------------------------------------------- rectification (per case)

def _rectification(db: Database, round_id: str, calendar: Calendar, today: date, now: datetime,
                   workdays: WorkdayCalendar, report: SweepReport) -> None:
    rule = calendar.rectification
    assert rule is not None
    with db.engine.connect() as conn:
        # By the partial index of cases in rectification (a round_id filter in SQL would make
        # the planner walk the round's whole (round_id, unit_id) index instead).
        open_cases = [(case_id, due) for case_id, rid, due in conn.execute(
            select(Case.id, Case.round_id, Case.rectification_due).where(Case.state == "rectification"))
            if rid == round_id]
    expired: list[int] = []
    with db.write_connection() as conn:
        for case_id, due in open_cases:
            if today > due:
                expired.append(case_id)
                continue
            tier = tier_due(due, rule.tiers, today, workdays)
            if tier is not None and "unit" in rule.remind:
                report.reminders += _unit_notice(conn, round_id, case_id, RECTIFICATION, "rectification", due, now,
                                                 tier=tier, key=f"rectification:{case_id}:{due.isoformat()}:{tier}")
    for batch in _batches(expired, BATCH):
        def expire(uow: Any) -> tuple[int, int]:
            count = notices = 0
            for case_id in batch:
                case = uow.get(case_id)
                if case.state != "rectification" or case.rectification_due is None or \
                        today <= case.rectification_due:
                    continue  # moved on (or extended) since it was read
                ctx = uow.round_context(case.round_id)
                event = decide(case, "expire_rectification", None, SWEEPER, now, ctx)
                uow.append(case, event, apply(case, event))
                count += 1
                if "unit" in rule.escalate:
                    notices += _unit_notice(uow.connection, round_id, case_id, RECTIFICATION,
                                            "rectification_missed", case.rectification_due, now,
                                            key=f"rectification_missed:{case_id}")
            if "coordinators" in rule.escalate:  # in the same transaction: never an expiry without its digest
                report.digests += _coordinator_rows(
                    uow.connection, round_id, RECTIFICATION,
                    max(due for case_id, due in open_cases if case_id in set(batch)), now, kind="digest",
                    key=f"{RECTIFICATION}:expired:{today.isoformat()}:{batch[0]}",
                    where=and_(Case.id.in_(batch), Case.state == "not_certified"), with_due=True)
            return count, notices

        count, notices = _retrying(db, expire)
        report.expired += count
        report.unit_notices += notices


# ---------------------------------------------------------------- duties of jurisdictions

def _coordinators(conn: Connection) -> tuple[dict[str, list[int]], dict[str, str | None]]:
    """Active coordinators by jurisdiction, and each jurisdiction's parent."""
    by_jurisdiction: dict[str, list[int]] = {}
    for coordinator_id, jurisdiction_id in conn.execute(
            select(Coordinator.id, Coordinator.jurisdiction_id).where(Coordinator.active.is_(True))
            .order_by(Coordinator.id)):
        by_jurisdiction.setdefault(jurisdiction_id, []).append(coordinator_id)
    parents = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.parent_id)).all())
    return by_jurisdiction, parents


def _nearest(start: str | None, coordinators: dict[str, list[int]], parents: dict[str, str | None]) -> list[int]:
    """The coordinators of ``start``, or of the nearest jurisdiction above it that has some."""
    at = start
    while at is not None:
        if coordinators.get(at):
            return coordinators[at]
        at = parents.get(at)
    return []


def _duty_recipients(m: Milestone, jurisdiction_id: str, coordinators: dict[str, list[int]],
                     parents: dict[str, str | None], stage: str) -> list[int]:
    """Reminders go to the owing jurisdiction's own coordinators only (a bureau's duty for a
    jurisdiction without any: the nearest above); a miss also to the jurisdiction it is owed to
    (``parent``) when the calendar escalates to it."""
    wanted = m.remind if stage == "remind" else m.escalate
    out: list[int] = []
    if "coordinators" in wanted:
        out += _nearest(jurisdiction_id, coordinators, parents) if m.by_bureau else coordinators.get(jurisdiction_id, [])
    if "parent" in wanted:
        out += _nearest(parents.get(jurisdiction_id), coordinators, parents)
    return sorted(set(out))


def _duty_row(conn: Connection, round_id: str, m: Milestone, due: date, now: datetime, *, kind: str,
              coordinator_id: int, key: str, context: dict[str, Any], tier: int | None = None) -> int:
    return _inserted(conn, _insert(conn).values(
        dedupe_key=f"{kind}:{coordinator_id}:{round_id}:{key}", kind=kind, round_id=round_id,
        coordinator_id=coordinator_id, milestone=m.id, tier=tier, due_on=due,
        context=json.dumps(context, ensure_ascii=False), status="pending", attempts=0, next_attempt_at=now,
        created_at=now).on_conflict_do_nothing(index_elements=["dedupe_key"]))


def _missed_digests(conn: Connection, round_id: str, m: Milestone, due: date, now: datetime,
                    missed: dict[int, list[dict[str, Any]]], report: SweepReport) -> None:
    """One notice per coordinator, listing every jurisdiction (and the cases waiting on it, for
    a bureau's duty) whose duty passed its date: a province hears of its cities' misses once."""
    for cid, items in sorted(missed.items()):
        report.duty_notices += _duty_row(conn, round_id, m, due, now, kind="duty_missed", coordinator_id=cid,
                                         key=m.id, context={"jurisdictions": items})


def _level_duty(db: Database, round_id: str, province_id: str, m: Milestone, due: date, tier: int | None,
                now: datetime, report: SweepReport) -> None:
    """A duty every jurisdiction of a level owes (a city's report, a filing): reminders to
    those that have not recorded it done; after its date a miss on each one's duty stream."""
    today = business_date(now)
    stages = ([f"tier:{tier}"] if tier is not None else []) + (["missed"] if today > due else [])
    if not stages:
        return
    with db.write_connection() as conn:
        todo = [stage for stage in stages if not _marked(conn, round_id, m.id, stage)]
        if not todo:
            return
        streams = streams_of_round(conn, round_id)
        coordinators, parents = _coordinators(conn)
        for stage in todo:
            missed: dict[int, list[dict[str, Any]]] = {}
            for owner in owners(conn, province_id, m.owed_by):
                stream = streams.get(owner.id) or DutyStream(round_id, owner.id)
                if stream.status(m.id).done_at is not None:
                    continue
                if stage != "missed":
                    for cid in _duty_recipients(m, owner.id, coordinators, parents, "remind"):
                        report.duty_reminders += _duty_row(conn, round_id, m, due, now, kind="duty_reminder",
                                                           coordinator_id=cid, key=f"{owner.id}:{m.id}:{tier}",
                                                           context={"jurisdiction_id": owner.id}, tier=tier)
                    continue
                event = record_missed(stream, m, actor=str(SWEEPER), now=now, due_on=due, noticed_on=today)
                if event is not None:
                    after = apply_duty(stream, event)
                    append_duty(conn, stream, event, after, now)
                    streams[owner.id] = after
                    report.duties_missed += 1
                for cid in _duty_recipients(m, owner.id, coordinators, parents, "escalate"):
                    missed.setdefault(cid, []).append({"jurisdiction_id": owner.id})
            _missed_digests(conn, round_id, m, due, now, missed, report)
            _mark(conn, round_id, m.id, stage, now)


def _bureau_missed(db: Database, round_id: str, m: Milestone, due: date, now: datetime, report: SweepReport) -> None:
    """A bureau's duty past its date (the evaluation): for each jurisdiction whose own units'
    cases still wait for it, a miss on the jurisdiction's duty stream listing them; the cases
    themselves record nothing (they wait on the bureau; the unit did not miss anything)."""
    today = business_date(now)
    with db.write_connection() as conn:
        if _marked(conn, round_id, m.id, "missed"):
            return
        waiting = waiting_cases(conn, round_id, m)
        names = dict(conn.execute(select(Case.id, Unit.name).join(Unit, Unit.id == Case.unit_id)
                                  .where(Case.round_id == round_id, Case.state.in_(sorted(m.owes_states)))).all())
        streams = streams_of_round(conn, round_id)
        coordinators, parents = _coordinators(conn)
        missed: dict[int, list[dict[str, Any]]] = {}
        for jurisdiction_id, case_ids in sorted(waiting.items()):
            stream = streams.get(jurisdiction_id) or DutyStream(round_id, jurisdiction_id)
            event = record_missed(stream, m, actor=str(SWEEPER), now=now, due_on=due, noticed_on=today,
                                  cases=case_ids)
            if event is None:
                continue
            append_duty(conn, stream, event, apply_duty(stream, event), now)
            report.duties_missed += 1
            rows = [{"case_id": c, "unit_name": names.get(c, "")} for c in case_ids]
            for cid in _duty_recipients(m, jurisdiction_id, coordinators, parents, "escalate"):
                missed.setdefault(cid, []).append({"jurisdiction_id": jurisdiction_id, "rows": rows})
        _missed_digests(conn, round_id, m, due, now, missed, report)
        _mark(conn, round_id, m.id, "missed", now)
