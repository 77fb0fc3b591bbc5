"""The sweep: compare the deadlines (data) with now and do whatever is due. Idempotent.

For every round and milestone of its calendar:
- reminders: the latest tier whose day has come (before the due date) is written to the
  outbox for every case that still owes the milestone, in one set-based write; the outbox's
  unique dedupe key (case, milestone, tier) makes a re-run write nothing;
- misses: after the due date every case that still owes it gets one ``DeadlineMissed``
  event (with the day it was noticed) and is marked overdue; the unit is told, and each
  coordinator of the case's jurisdiction gets one digest of their overdue units;
- rectification: each case's own deadline (ordered + N days, or as extended) is reminded
  the same way; at expiry without a recheck request the case becomes not_certified;
- duties of jurisdictions (a city's report, a filing, the bureau's evaluation): reminders to
  the owing jurisdiction's coordinators, and a miss on its own duty stream.

A stage done for a round's milestone is marked, so a sweep with nothing due reads no cases.
After downtime the next sweep catches up: every miss is recorded, and of the reminder tiers
only the latest due is sent, never a burst. Every change of a case goes through
``service.cases.take``; every write of a batch commits together.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import structlog

from ..domain.calendar import Calendar, Milestone, tier_due
from ..domain.case import Actor, Notice
from ..domain.dates import business_date, require_aware
from ..domain.duties import DutyStream, apply_duty, record_missed
from ..domain.errors import ConflictError, DomainError
from ..domain.lifecycle import TERMINAL_STATES
from .cases import take, take_many
from .duties import owners, waiting_cases
from .ports import Calendars, CaseStore, OutboxEntry, OwingCase, RoundRecord, Storage, Workdays

log = structlog.get_logger(__name__)

SWEEPER = Actor("system", "sweep", channel="scheduler")
BATCH = 500  # cases per transaction when recording misses
RECTIFICATION = "rectification"
_AFTER = timedelta(days=31)  # a milestone's holiday data matters until a month after it is due
T = TypeVar("T")


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

    def warn(self, round_id: str, warnings: list[str]) -> None:
        for warning in warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
                log.warning("holiday data missing", round_id=round_id, detail=warning)


def sweep(db: Storage, calendars: Calendars, now: datetime) -> SweepReport:
    require_aware(now, "now")
    report = SweepReport(now)
    for rnd in db.rounds.rounds():
        try:
            calendar = calendars.get(rnd.calendar_id)
        except DomainError as exc:  # a bad calendar stops its rounds, not the sweep
            report.skipped.append(f"round {rnd.id}: {exc}")
            continue
        _sweep_round(db, rnd, calendar, calendars.workdays(calendar), now, report)
    return report


def _sweep_round(db: Storage, rnd: RoundRecord, calendar: Calendar, workdays: Workdays, now: datetime,
                 report: SweepReport) -> None:
    today = business_date(now)
    active = [m for m in calendar.milestones if not m.informational and today <= m.due_on(rnd.year) + _AFTER]
    report.warn(rnd.id, workdays.warnings({m.due_on(rnd.year).year for m in active}))
    for milestone in calendar.milestones:
        if milestone.informational:
            continue
        due = milestone.due_on(rnd.year)
        tier = tier_due(due, milestone.tiers, today, workdays)
        if milestone.by_level:
            _level_duty(db, rnd, milestone, due, tier, now, report)
            continue
        if tier is not None:
            _remind(db, rnd.id, milestone, due, tier, now, report)
        if today > due:
            if milestone.by_bureau:
                _bureau_missed(db, rnd, milestone, due, now, report)
            else:
                _record_misses(db, rnd.id, milestone, due, now, report)
    if calendar.rectification is not None and (rnd.policy or {}).get("on_fail") == RECTIFICATION:
        _rectification(db, rnd.id, calendar, today, now, workdays, report)


# ---------------------------------------------------------------- who hears of it

class Coordinators:
    """Active coordinators by jurisdiction, and the tree above each jurisdiction."""

    def __init__(self, db: Storage | CaseStore) -> None:
        self.by_jurisdiction: dict[str, list[int]] = {}
        for c in sorted(db.directory.coordinators(active_only=True), key=lambda c: c.id):
            self.by_jurisdiction.setdefault(c.jurisdiction_id, []).append(c.id)
        self.parents = {j.id: j.parent_id for j in db.directory.jurisdictions()}

    def nearest(self, start: str | None) -> list[int]:
        """The coordinators of ``start``, or of the nearest jurisdiction above it that has some:
        no overdue unit goes unnoticed for want of a coordinator."""
        at = start
        while at is not None:
            if self.by_jurisdiction.get(at):
                return self.by_jurisdiction[at]
            at = self.parents.get(at)
        return []

    def for_duty(self, m: Milestone, jurisdiction_id: str, stage: str) -> list[int]:
        """Reminders go to the owing jurisdiction's own coordinators only (a bureau's duty for a
        jurisdiction without any: the nearest above); a miss also to the jurisdiction it is owed
        to (``parent``) when the calendar escalates to it."""
        wanted = m.remind if stage == "remind" else m.escalate
        out: list[int] = []
        if "coordinators" in wanted:
            out += self.nearest(jurisdiction_id) if m.by_bureau else self.by_jurisdiction.get(jurisdiction_id, [])
        if "parent" in wanted:
            out += self.nearest(self.parents.get(jurisdiction_id))
        return sorted(set(out))


def _case_lists(uow: CaseStore, round_id: str, milestone: str, due: date, now: datetime, cases: list[OwingCase], *,
                kind: str, key: str, tier: int | None = None, with_due: bool = False) -> int:
    """One row per coordinator listing the given cases of the jurisdictions they look after."""
    if not cases:
        return 0
    coordinators = Coordinators(uow)
    by_coordinator: dict[int, list[dict[str, Any]]] = {}
    for case in cases:
        entry: dict[str, Any] = {"case_id": case.case_id, "unit_name": case.unit_name}
        if with_due and case.rectification_due is not None:
            entry["due_on"] = case.rectification_due.isoformat()
        for coordinator_id in coordinators.nearest(case.jurisdiction_id):
            by_coordinator.setdefault(coordinator_id, []).append(entry)
    return uow.outbox.add([OutboxEntry(f"{kind}:{cid}:{round_id}:{key}", kind, round_id, milestone, due,
                                       coordinator_id=cid, tier=tier, context={"rows": rows})
                           for cid, rows in sorted(by_coordinator.items())], now)


def _unit_notice(uow: CaseStore, round_id: str, case_id: int, milestone: str, kind: str, due: date,
                 now: datetime, tier: int | None = None, key: str | None = None) -> int:
    return uow.outbox.add([OutboxEntry(key or f"{kind}:{case_id}:{milestone}", kind, round_id, milestone, due,
                                       case_id=case_id, tier=tier)], now)


# ---------------------------------------------------------------- reminders

def _remind(db: Storage, round_id: str, m: Milestone, due: date, tier: int, now: datetime,
            report: SweepReport) -> None:
    stage = f"tier:{tier}"
    with db.unit_of_work(core=True) as uow:
        if uow.outbox.marked(round_id, m.id, stage):
            return
        if "unit" in m.remind:
            report.reminders += uow.outbox.remind_owing(round_id, m.id, tier, due, m.owing, now)
        if "coordinators" in m.remind:
            report.coordinator_reminders += _case_lists(
                uow, round_id, m.id, due, now, uow.read.owing_cases(round_id, m.owing),
                kind="coordinator_reminder", key=f"{m.id}:{tier}", tier=tier)
        uow.outbox.mark(round_id, m.id, stage, now)
        uow.commit()


# ---------------------------------------------------------------- misses

def _retrying(db: Storage, work: Callable[[CaseStore], T], attempts: int = 5) -> T:
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


def _record_misses(db: Storage, round_id: str, m: Milestone, due: date, now: datetime, report: SweepReport) -> None:
    if db.outbox.marked(round_id, m.id, "missed"):
        return
    ids = [c.case_id for c in db.read.owing_cases(round_id, m.owing)]
    data = {"milestone": m.id, "due_on": due, "noticed_on": business_date(now), "owed_in": m.owing.recorded()}
    for batch in _batches(ids, BATCH):
        def record(uow: CaseStore, batch: list[int] = batch) -> tuple[int, int]:
            """The batch's misses, decided case by case and written together (a statement for the
            batch's case rows, one for its events, one for its notices)."""
            found = uow.get_many(batch)
            owing = []
            for case_id in batch:
                case = found.get(case_id) or uow.get(case_id)  # (a case that is not there: NotFound)
                if any(mid == m.id for mid, _ in case.missed):
                    continue  # recorded by another or an earlier, interrupted sweep
                if case.state in TERMINAL_STATES or not m.owing.holds(case.state, case.contact_form):
                    continue  # moved on (submitted, withdrawn, closed, gave the form) since the ids were read
                owing.append(case)
            recorded = take_many(uow, owing, "record_missed_deadline", data, SWEEPER, now)
            notices = 0
            if "unit" in m.escalate:
                notices = uow.notify_many([(case, Notice("missed", f"missed:{case.id}:{m.id}", m.id, due))
                                           for case, _ in recorded], now)
            return len(recorded), notices

        missed, notices = _retrying(db, record)
        report.missed += missed
        report.unit_notices += notices
    with db.unit_of_work(core=True) as uow:
        if "coordinators" in m.escalate:
            report.digests += _case_lists(uow, round_id, m.id, due, now, uow.read.overdue_cases(round_id, m.id),
                                          kind="digest", key=f"{m.id}:missed")
        uow.outbox.mark(round_id, m.id, "missed", now)
        uow.commit()


# ---------------------------------------------------------------- rectification (per case)

def _rectification(db: Storage, round_id: str, calendar: Calendar, today: date, now: datetime,
                   workdays: Workdays, report: SweepReport) -> None:
    rule = calendar.rectification
    assert rule is not None
    open_cases = {c.case_id: c.rectification_due for c in db.read.rectifications(round_id)
                  if c.rectification_due is not None}
    expired = [case_id for case_id, due in open_cases.items() if today > due]
    with db.unit_of_work(core=True) as uow:
        for case_id, due in open_cases.items():
            tier = None if today > due else tier_due(due, rule.tiers, today, workdays)
            if tier is not None and "unit" in rule.remind:
                report.reminders += _unit_notice(uow, round_id, case_id, RECTIFICATION, "rectification", due, now,
                                                 tier=tier, key=f"rectification:{case_id}:{due.isoformat()}:{tier}")
        uow.commit()
    for batch in _batches(sorted(expired), BATCH):
        def expire(uow: CaseStore, batch: list[int] = batch) -> tuple[int, int]:
            count = notices = 0
            for case_id in batch:
                case = uow.get(case_id)
                if case.state != "rectification" or case.rectification_due is None or \
                        today <= case.rectification_due:
                    continue  # moved on (or extended) since it was read
                take(uow, case, "expire_rectification", None, SWEEPER, now)
                count += 1
                if "unit" in rule.escalate:
                    notices += _unit_notice(uow, round_id, case_id, RECTIFICATION, "rectification_missed",
                                            case.rectification_due, now, key=f"rectification_missed:{case_id}")
            if "coordinators" in rule.escalate:  # in the same transaction: never an expiry without its digest
                ended = [c for c in uow.read.cases_by_id(batch) if c.state in ("not_certified", "revoked")]
                report.digests += _case_lists(
                    uow, round_id, RECTIFICATION, max(open_cases[c] for c in batch), now, ended, kind="digest",
                    key=f"{RECTIFICATION}:expired:{today.isoformat()}:{batch[0]}", with_due=True)
            return count, notices

        count, notices = _retrying(db, expire)
        report.expired += count
        report.unit_notices += notices


# ---------------------------------------------------------------- duties of jurisdictions

def _duty_entry(round_id: str, m: Milestone, due: date, *, kind: str, coordinator_id: int, key: str,
                context: dict[str, Any], tier: int | None = None) -> OutboxEntry:
    return OutboxEntry(f"{kind}:{coordinator_id}:{round_id}:{key}", kind, round_id, m.id, due,
                       coordinator_id=coordinator_id, tier=tier, context=context)


def _missed_digests(uow: CaseStore, round_id: str, m: Milestone, due: date, now: datetime,
                    missed: dict[int, list[dict[str, Any]]], report: SweepReport) -> None:
    """One notice per coordinator, listing every jurisdiction (and the cases waiting on it, for
    a bureau's duty) whose duty passed its date: a province hears of its cities' misses once."""
    report.duty_notices += uow.outbox.add([
        _duty_entry(round_id, m, due, kind="duty_missed", coordinator_id=cid, key=m.id,
                    context={"jurisdictions": items}) for cid, items in sorted(missed.items())], now)


def _level_duty(db: Storage, rnd: RoundRecord, m: Milestone, due: date, tier: int | None, now: datetime,
                report: SweepReport) -> None:
    """A duty every jurisdiction of a level owes (a city's report, a filing): reminders to
    those that have not recorded it done; after its date a miss on each one's duty stream."""
    today = business_date(now)
    stages = ([f"tier:{tier}"] if tier is not None else []) + (["missed"] if today > due else [])
    with db.unit_of_work(core=True) as uow:
        todo = [stage for stage in stages if not uow.outbox.marked(rnd.id, m.id, stage)]
        if not todo:
            return
        owing = owners(uow, rnd, m.owed_by)
        streams = uow.duties.streams(rnd.id)
        coordinators = Coordinators(uow)
        for stage in todo:
            missed: dict[int, list[dict[str, Any]]] = {}
            entries: list[OutboxEntry] = []
            for owner in owing:
                stream = streams.get(owner.id) or DutyStream(rnd.id, owner.id)
                if stream.status(m.id).done_at is not None:
                    continue
                if stage != "missed":
                    entries += [_duty_entry(rnd.id, m, due, kind="duty_reminder", coordinator_id=cid,
                                            key=f"{owner.id}:{m.id}:{tier}", context={"jurisdiction_id": owner.id},
                                            tier=tier) for cid in coordinators.for_duty(m, owner.id, "remind")]
                    continue
                event = record_missed(stream, m, actor=str(SWEEPER), now=now, due_on=due, noticed_on=today)
                if event is not None:
                    streams[owner.id] = apply_duty(stream, event)
                    uow.duties.append(stream, event, streams[owner.id], now)
                    report.duties_missed += 1
                for cid in coordinators.for_duty(m, owner.id, "escalate"):
                    missed.setdefault(cid, []).append({"jurisdiction_id": owner.id})
            report.duty_reminders += uow.outbox.add(entries, now)
            _missed_digests(uow, rnd.id, m, due, now, missed, report)
            uow.outbox.mark(rnd.id, m.id, stage, now)
        uow.commit()


def _bureau_missed(db: Storage, rnd: RoundRecord, m: Milestone, due: date, now: datetime,
                   report: SweepReport) -> None:
    """A bureau's duty past its date (the evaluation): for each jurisdiction whose own units'
    cases still wait for it, a miss on the jurisdiction's duty stream listing them; the cases
    themselves record nothing (they wait on the bureau; the unit did not miss anything)."""
    today = business_date(now)
    with db.unit_of_work(core=True) as uow:
        if uow.outbox.marked(rnd.id, m.id, "missed"):
            return
        waiting = waiting_cases(uow, rnd.id, m)
        names = {c.case_id: c.unit_name for c in uow.read.owing_cases(rnd.id, m.owing)}
        streams = uow.duties.streams(rnd.id)
        coordinators = Coordinators(uow)
        missed: dict[int, list[dict[str, Any]]] = {}
        for jurisdiction_id, case_ids in sorted(waiting.items()):
            stream = streams.get(jurisdiction_id) or DutyStream(rnd.id, jurisdiction_id)
            event = record_missed(stream, m, actor=str(SWEEPER), now=now, due_on=due, noticed_on=today,
                                  cases=case_ids)
            if event is None:
                continue
            uow.duties.append(stream, event, apply_duty(stream, event), now)
            report.duties_missed += 1
            rows = [{"case_id": c, "unit_name": names.get(c, "")} for c in case_ids]
            for cid in coordinators.for_duty(m, jurisdiction_id, "escalate"):
                missed.setdefault(cid, []).append({"jurisdiction_id": jurisdiction_id, "rows": rows})
        _missed_digests(uow, rnd.id, m, due, now, missed, report)
        uow.outbox.mark(rnd.id, m.id, "missed", now)
        uow.commit()
