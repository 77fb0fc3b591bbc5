"""What a case still owes, and by when: the one answer a unit (and its coordinator) reads.

For a case now: every milestone of the round's calendar the unit owes (the same rule the sweep
and the dispatcher use: ``Milestone.owing``), with its date, the days left (negative: overdue),
what to do, and the reminders still to come (the working day each tier goes out, and to whom);
the rectification deadline while rectification runs; what still stands between the case and
submission (criteria without a score or evidence, documents); and what the case waits for from
its bureau.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ..domain.calendar import Calendar, reminder_date
from ..domain.dates import business_date, require_aware
from ..domain.duties import waiting_on
from ..domain.guards import submission_problems
from ..domain.state import CaseState
from .cases import read_case
from .ports import Calendars, Storage, Workdays

RECIPIENTS = {"unit": "the unit's contacts (附件2)", "coordinators": "the coordinators of its jurisdiction"}


@dataclass(frozen=True, slots=True)
class Reminder:
    on: date
    days_before: int
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Owed:
    id: str
    name: str
    due_on: date
    days_left: int  # negative: overdue by that many days
    what_to_do: str
    reminders: tuple[Reminder, ...]  # still to come, earliest first
    escalate: tuple[str, ...]  # told when it is missed


@dataclass
class Due:
    case_id: int
    state: str
    today: date
    owed: list[Owed] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)  # before submission
    waiting_on: list[dict[str, Any]] = field(default_factory=list)  # the bureau's part
    unit_emails: int = 0  # how many contacts of the unit a mail reaches


def what_is_due(db: Storage, calendars: Calendars, case_id: int, now: datetime) -> Due:
    require_aware(now, "now")
    found = read_case(db, case_id)
    case, ctx = found.case, found.ctx
    rnd = db.rounds.round(case.round_id)
    assert rnd is not None  # a case's round exists
    calendar = calendars.get(rnd.calendar_id)
    workdays = calendars.workdays(calendar)
    today = business_date(now)
    due = Due(case.id, case.state, today, waiting_on=waiting_on(calendar, rnd.year, case.state, today))
    due.owed = _owed(calendar, rnd.year, case, today, workdays)
    if case.state in ("registered", "self_assessed"):
        due.missing = [p.to_dict() for p in submission_problems(case, ctx)]
    referent = db.read.case_states([case.id]).get(case.id)
    due.unit_emails = len([c for c in (referent.contacts if referent else []) if c.get("email")])
    return due


def _owed(calendar: Calendar, year: int, case: CaseState, today: date, workdays: Workdays) -> list[Owed]:
    out = []
    for m in calendar.milestones:
        if m.informational or m.owed_by != "unit" or not m.owing.holds(case.state, case.contact_form):
            continue
        on = m.due_on(year)
        out.append(Owed(m.id, m.name, on, (on - today).days, m.what_to_do,
                        _to_come(on, m.tiers, m.remind, today, workdays), m.escalate))
    rule = calendar.rectification
    if case.state == "rectification" and case.rectification_due is not None and rule is not None:
        on = case.rectification_due
        out.append(Owed("rectification", rule.name, on, (on - today).days, rule.what_to_do,
                        _to_come(on, rule.tiers, rule.remind, today, workdays), rule.escalate))
    return sorted(out, key=lambda o: o.due_on)


def _to_come(on: date, tiers: tuple[int, ...], remind: tuple[str, ...], today: date,
             workdays: Workdays) -> tuple[Reminder, ...]:
    return tuple(r for r in _reminders(on, tiers, remind, workdays) if r.on >= today)


def _reminders(on: date, tiers: tuple[int, ...], remind: tuple[str, ...], workdays: Workdays) -> tuple[Reminder, ...]:
    """One reminder a working day, earliest first: two tiers moved back to the same working day
    (over a weekend) are one mail, the nearer tier's, as the sweep sends it (``tier_due``)."""
    by_day: dict[date, Reminder] = {}
    for t in sorted(tiers, reverse=True):
        r = Reminder(reminder_date(on, t, workdays), t, remind)
        by_day[r.on] = r  # a smaller tier on the same day replaces the larger one
    return tuple(sorted(by_day.values(), key=lambda r: r.on))


@dataclass(frozen=True, slots=True)
class Dated:
    """A milestone of a round's calendar, dated for the round's year."""

    id: str
    name: str
    due_on: date
    owed_by: str  # unit, bureau, or each jurisdiction of a level
    owes: tuple[str, ...]  # the case states that owe it (and "contact_form" when the form does)
    what_to_do: str
    reminders: tuple[Reminder, ...]  # every tier's working day, earliest first
    escalate: tuple[str, ...]


def round_timeline(db: Storage, calendars: Calendars, round_id: str) -> tuple[Calendar, list[Dated]]:
    """The round's calendar dated for its year: each milestone's due date, who owes it, and the
    working day each reminder tier goes out (official holidays and the calendar's extras)."""
    rnd = db.rounds.round(round_id)
    if rnd is None:
        from ..domain.errors import NotFound

        raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
    calendar = calendars.get(rnd.calendar_id)
    workdays = calendars.workdays(calendar)
    out = []
    for m in calendar.milestones:
        on = m.due_on(rnd.year)
        owes = tuple(sorted(m.owes_states)) + (("contact_form",) if m.owes_contact_form else ())
        reminders = _reminders(on, m.tiers, m.remind, workdays)
        who = "informational" if m.informational else ("bureau" if m.by_bureau else
                                                       ("each jurisdiction" if m.by_level else m.owed_by))
        out.append(Dated(m.id, m.name, on, who, owes, m.what_to_do, reminders, m.escalate))
    return calendar, sorted(out, key=lambda d: d.due_on)


@dataclass(frozen=True, slots=True)
class Upcoming:
    """A reminder the sweep will send within the days asked: of which milestone, on which day,
    to whom, and the cases of the subtree it concerns (those owing it now)."""

    on: date
    milestone: str
    name: str
    due_on: date
    days_before: int
    to: tuple[str, ...]
    case_ids: tuple[int, ...]  # every one, or the first ``sample`` of them (``cases`` counts them all)
    cases: int


def upcoming_reminders(db: Storage, calendars: Calendars, round_id: str, root_path: str, today: date,
                       days: int, sample: int | None = None) -> list[Upcoming]:
    """Every reminder due out from ``today`` to ``today + days`` for the round's cases in the
    subtree: the milestones' tiers (for the cases that owe them now) and each open
    rectification's tiers. A case that moves on before the day is not reminded (the dispatcher
    checks again when it sends). ``sample``: list only the first so many case ids of a
    milestone's reminder, and count the rest (a page; the API lists them all)."""
    from datetime import timedelta

    calendar, dated = round_timeline(db, calendars, round_id)
    last = today + timedelta(days=days)
    out = []
    for d in dated:
        m = calendar.milestone(d.id)
        if m.informational or m.owed_by != "unit" or not m.remind:
            continue
        coming = [r for r in d.reminders if today <= r.on <= last]
        if coming:
            owing = tuple(c.case_id for c in db.read.owing_cases(round_id, m.owing, root_path, limit=sample))
            count = len(owing) if sample is None or len(owing) < sample else \
                db.read.owing_count(round_id, [m.owing], root_path)
            out += [Upcoming(r.on, d.id, d.name, d.due_on, r.days_before, r.to, owing, count)
                    for r in coming if owing]
    rule = calendar.rectification
    if rule is not None and rule.remind:
        paths = {j.id: j.path for j in db.directory.jurisdictions()}
        workdays = calendars.workdays(calendar)
        for c in db.read.rectifications(round_id):
            if c.rectification_due is None or not paths.get(c.jurisdiction_id, "").startswith(root_path):
                continue
            for r in _to_come(c.rectification_due, rule.tiers, rule.remind, today, workdays):
                if r.on <= last:
                    out.append(Upcoming(r.on, "rectification", rule.name, c.rectification_due, r.days_before, r.to,
                                        (c.case_id,), 1))
    return sorted(out, key=lambda u: (u.on, u.milestone, u.case_ids))
