"""The dispatcher: deliver pending outbox rows, retry with backoff, record every outcome.

Rows are claimed (``sending`` with a lease) in a short transaction — with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes never take the same row —
then rendered, sent over one SMTP connection per batch, and marked ``sent``, ``pending``
again (a temporary failure: attempts + 1, next attempt after an exponential backoff),
``failed`` (permanent refusal or too many attempts) or ``cancelled`` (the case moved on:
a milestone it no longer owes is never reminded). The Message-ID is derived from the row's
dedupe key, so a mail is recognisable as the same mail whatever happens.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from notifications import Address, Attachment, OutgoingMessage, Transport, deadline_event, render

from ..adapters.calendar_files import CalendarCatalog
from ..adapters.db.store import Database
from ..adapters.db.tables import Case, Coordinator, Jurisdiction, Outbox, Round, Unit
from ..clock import business_date, require_aware
from ..domain.calendar import Calendar
from ..domain.case import Actor, apply, decide
from ..domain.errors import ConflictError, DomainError

CASE_KINDS = ("reminder", "missed", "rectification", "rectification_missed", "rectification_notice")
DUTY_KINDS = ("duty_reminder", "duty_missed")
NEEDS_TEXT = {"attachment": "请在系统中登记完成并上传相关材料", "filing_batches": "请先在系统中建立备案批次，再登记完成",
              "spot_checks": "请在系统中登记抽查记录，再登记完成", "nothing": "请在系统中登记完成"}


@dataclass(frozen=True)
class DispatchSettings:
    sender: Address = Address("noreply@workflow.local", "节约型机关创建工作")
    message_domain: str = "workflow.local"
    max_attempts: int = 20  # with the backoff capped at 6 h: an SMTP outage of about three days
    base_backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(minutes=10)
    batch: int = 200


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)


def points_text(value: Any) -> str:
    """Points as a person writes them: 70, 76.5 (never 70.0 or 7E+1)."""
    text = format(value.normalize(), "f")
    return text


def message_id_for(dedupe_key: str, domain: str) -> str:
    local = "".join(ch if ch.isalnum() or ch in "-_." else "." for ch in dedupe_key)
    return f"<{local}@{domain}>"


def backoff(attempts: int, settings: DispatchSettings) -> timedelta:
    return min(settings.base_backoff * (2 ** max(attempts - 1, 0)), settings.max_backoff)


def _claim(db: Database, now: datetime, settings: DispatchSettings) -> list[Any]:
    due = or_(and_(Outbox.status == "pending", Outbox.next_attempt_at <= now),
              and_(Outbox.status == "sending", Outbox.claimed_until < now))
    ids = select(Outbox.id).where(due).order_by(Outbox.id).limit(settings.batch)
    if not db.is_sqlite:
        ids = ids.with_for_update(skip_locked=True)
    with db.write_connection() as conn:
        chosen = list(conn.execute(ids).scalars())
        if not chosen:
            return []
        conn.execute(update(Outbox).where(Outbox.id.in_(chosen)).values(
            status="sending", claimed_until=now + settings.lease))
        return conn.execute(select(Outbox.__table__).where(Outbox.id.in_(chosen)).order_by(Outbox.id)).all()


class _Skip(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _still_relevant(conn, row: Any, calendar: Calendar, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed cases that still owe the milestone (a reminder) or are still overdue (a digest)."""
    ids = [r["case_id"] for r in rows]
    if not ids:
        return []
    current = {r.id: r for r in conn.execute(select(Case.id, Case.state, Case.overdue, Case.contact_form)
                                             .where(Case.id.in_(ids)))}
    keep = []
    for r in rows:
        case = current.get(r["case_id"])
        if case is None:
            continue
        if row.kind == "digest" and row.milestone != "rectification" and not case.overdue:
            continue
        if row.kind in ("coordinator_reminder", "duty_missed"):
            milestone = calendar.milestone(row.milestone)
            if milestone.owes_states and case.state not in milestone.owes_states:
                continue
            if milestone.owes_contact_form and case.contact_form:
                continue
        keep.append(r)
    return keep


@dataclass
class _Batch:
    """What the rows of one claimed batch refer to, loaded with one query per table."""

    rounds: dict[str, Any]
    cases: dict[int, Any]
    coordinators: dict[int, Any]


def _load(conn, rows: list[Any]) -> _Batch:
    round_ids = sorted({r.round_id for r in rows})
    case_ids = sorted({r.case_id for r in rows if r.case_id is not None})
    coordinator_ids = sorted({r.coordinator_id for r in rows if r.coordinator_id is not None})
    rounds = {r.id: r for r in conn.execute(select(Round.id, Round.year, Round.calendar_id, Round.pass_mark)
                                            .where(Round.id.in_(round_ids)))}
    cases = {r.id: r for r in conn.execute(
        select(Case.id, Case.state, Case.rectification_due, Case.verified_total, Case.contact_form,
               Unit.name.label("unit_name"), Unit.contacts).join(Unit, Unit.id == Case.unit_id)
        .where(Case.id.in_(case_ids)))} if case_ids else {}
    coordinators = {r.id: r for r in conn.execute(
        select(Coordinator.id, Coordinator.name, Coordinator.email, Coordinator.active,
               Jurisdiction.name.label("jurisdiction")).join(Jurisdiction, Jurisdiction.id == Coordinator.jurisdiction_id)
        .where(Coordinator.id.in_(coordinator_ids)))} if coordinator_ids else {}
    return _Batch(rounds, cases, coordinators)


def _unit_recipients(row: Any, case: Any, calendar: Calendar) -> list[Address]:
    if row.kind in ("reminder", "missed"):
        milestone = calendar.milestone(row.milestone)
        if milestone.owes_states and case.state not in milestone.owes_states:
            raise _Skip("cancelled", f"case is {case.state}: it no longer owes {milestone.id}")
        if milestone.owes_contact_form and case.contact_form:
            raise _Skip("cancelled", "the contact form of this round is on file")
    if row.kind in ("rectification", "rectification_notice") and (
            case.state != "rectification" or case.rectification_due != row.due_on):
        raise _Skip("cancelled", f"case is {case.state}, due {case.rectification_due}: this reminder is stale")
    emails = [Address(c["email"], c.get("name", "")) for c in (case.contacts or []) if c.get("email")]
    if not emails:
        raise _Skip("failed", f"unit {case.unit_name} has no contact email (附件2 not on file)")
    return emails


def _build(db: Database, calendars: CalendarCatalog, batch: _Batch, row: Any, now: datetime,
           settings: DispatchSettings) -> OutgoingMessage:
    today = business_date(now)
    rnd = batch.rounds[row.round_id]
    calendar = calendars.get(rnd.calendar_id)
    title = calendar.title_for(rnd.year)
    attachments: tuple[Attachment, ...] = ()
    due: date = row.due_on
    if row.kind in DUTY_KINDS:
        return _duty_message(db, calendar, batch, row, title, today, settings)
    if row.kind in ("reminder", "rectification", "coordinator_reminder", "rectification_notice") and today > due:
        raise _Skip("cancelled", f"the deadline {due} passed before this reminder went out "
                                 "(the miss is recorded and notified on its own)")
    if row.kind in CASE_KINDS:
        case = batch.cases[row.case_id]
        to = _unit_recipients(row, case, calendar)
        base = {"unit_name": case.unit_name, "case_id": row.case_id}
        if row.kind in ("reminder", "missed"):
            m = calendar.milestone(row.milestone)
            name, todo = m.name, m.what_to_do
        else:
            rule = calendar.rectification
            name, todo = (rule.name, rule.what_to_do) if rule else ("整改", "")
        if row.kind == "reminder":
            kind = "reminder"
            context = {**base, "round_title": title, "milestone_name": name, "due_date": due,
                       "days_left": (due - today).days, "what_to_do": todo, "contact_line": calendar.contact}
        elif row.kind in ("rectification", "rectification_notice"):
            kind = row.kind
            context = {**base, "round_title": title, "due_date": due, "days_left": (due - today).days,
                       "verified_total": points_text(case.verified_total) if case.verified_total is not None
                       else "", "pass_mark": points_text(rnd.pass_mark), "what_to_do": todo,
                       "contact_line": calendar.contact}
        else:
            kind = "missed"
            context = {**base, "round_title": title, "milestone_name": name, "due_date": due,
                       "noticed_on": today, "what_to_do": todo}
        if row.kind in ("reminder", "rectification", "rectification_notice"):
            attachments = (Attachment("deadline.ics", "text/calendar; method=PUBLISH; charset=utf-8",
                                      deadline_event(uid=f"deadline.{row.case_id}.{row.milestone}@"
                                                         f"{settings.message_domain}",
                                                     summary=f"{name}截止", description=todo, due=due,
                                                     stamp=now)),)
    else:
        coordinator = batch.coordinators[row.coordinator_id]
        if not coordinator.active:
            raise _Skip("cancelled", "coordinator is no longer active")
        to = [Address(coordinator.email, coordinator.name)]
        with db.engine.connect() as conn:
            rows = _still_relevant(conn, row, calendar, json.loads(row.context or "{}").get("rows", []))
        if not rows:
            raise _Skip("cancelled", "every case listed has moved on since")
        if row.milestone == "rectification":
            name = calendar.rectification.name if calendar.rectification else "整改"
        else:
            name = calendar.milestone(row.milestone).name
        kind = "digest"

        def due_of(r: dict[str, Any]) -> date:  # a rectification digest lists each case's own date
            return date.fromisoformat(r["due_on"]) if r.get("due_on") else due

        context = {"coordinator_name": coordinator.name, "jurisdiction_name": coordinator.jurisdiction,
                   "round_title": title, "as_of": today,
                   "rows": [{"unit_name": r["unit_name"], "case_id": r["case_id"], "milestone_name": name,
                             "due_date": due_of(r), "days_overdue": (today - due_of(r)).days} for r in rows]}
        if row.kind == "coordinator_reminder":
            kind = "coordinator_reminder"
            context = {"coordinator_name": coordinator.name, "jurisdiction_name": coordinator.jurisdiction,
                       "round_title": title, "milestone_name": name, "due_date": due,
                       "days_left": (due - today).days, "rows": rows}
    rendered = render(kind, context)
    return OutgoingMessage(message_id=message_id_for(row.dedupe_key, settings.message_domain),
                           sender=settings.sender, to=tuple(to), subject=rendered.subject, text=rendered.text,
                           html=rendered.html, attachments=attachments,
                           headers=(("X-Workflow-Key", row.dedupe_key),))


def _duty_message(db: Database, calendar: Calendar, batch: _Batch, row: Any, title: str, today: date,
                  settings: DispatchSettings) -> OutgoingMessage:
    """A duty's reminder (one jurisdiction) or its misses (every jurisdiction this coordinator
    hears of), to a coordinator: what was done since, or no longer waits, is left out; nothing
    left, the mail is cancelled."""
    from ..adapters.db.duty_store import load_stream

    coordinator = batch.coordinators[row.coordinator_id]
    if not coordinator.active:
        raise _Skip("cancelled", "coordinator is no longer active")
    context = json.loads(row.context or "{}")
    duty = calendar.milestone(row.milestone)
    due: date = row.due_on
    if row.kind == "duty_reminder" and today > due:
        raise _Skip("cancelled", f"the deadline {due} passed before this reminder went out")
    listed = context.get("jurisdictions") or [{"jurisdiction_id": context["jurisdiction_id"]}]
    items = []
    with db.engine.connect() as conn:
        names = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.name)).all())
        for item in listed:
            stream = load_stream(conn, row.round_id, item["jurisdiction_id"])
            if stream.status(duty.id).done_at is not None:
                continue
            rows = _still_relevant(conn, row, calendar, item["rows"]) if "rows" in item else []
            if "rows" in item and not rows:
                continue
            items.append({"jurisdiction_name": names.get(item["jurisdiction_id"], item["jurisdiction_id"]),
                          "rows": rows})
    if not items:
        raise _Skip("cancelled", f"{duty.id}: done, or nothing waits for it any more")
    values = {"coordinator_name": coordinator.name, "round_title": title, "duty_name": duty.name, "due_date": due,
              "what_to_do": duty.what_to_do,
              "how_to_record": NEEDS_TEXT.get(duty.needs, NEEDS_TEXT["nothing"]) if duty.by_level else ""}
    if row.kind == "duty_reminder":
        values.update(jurisdiction_name=items[0]["jurisdiction_name"], days_left=(due - today).days)
    else:
        values.update(items=items, days_overdue=(today - due).days)
    rendered = render(row.kind, values)
    return OutgoingMessage(message_id=message_id_for(row.dedupe_key, settings.message_domain),
                           sender=settings.sender, to=(Address(coordinator.email, coordinator.name),),
                           subject=rendered.subject, text=rendered.text, html=rendered.html,
                           headers=(("X-Workflow-Key", row.dedupe_key),))


async def dispatch(db: Database, calendars: CalendarCatalog, transport: Transport, now: datetime,
                   settings: DispatchSettings = DispatchSettings()) -> DispatchReport:
    """Deliver what is due now; call again for more (each call handles at most one batch)."""
    require_aware(now, "now")
    report = DispatchReport()
    rows = _claim(db, now, settings)
    report.claimed = len(rows)
    outgoing: list[tuple[Any, OutgoingMessage]] = []
    outcomes: list[tuple[int, dict[str, Any]]] = []
    if not rows:
        return report
    with db.engine.connect() as conn:
        batch = _load(conn, rows)
    for row in rows:
        try:
            outgoing.append((row, _build(db, calendars, batch, row, now, settings)))
        except _Skip as skip:
            outcomes.append((row.id, {"status": skip.status, "last_error": skip.reason, "claimed_until": None}))
            report.cancelled += skip.status == "cancelled"
            report.failed += skip.status == "failed"
        except Exception as exc:  # a row that cannot be rendered must not block the others
            outcomes.append((row.id, _retry(row, f"cannot build the message: {type(exc).__name__}: {exc}", now,
                                            settings, report)))
    if outgoing:
        results = await transport.send_many([(msg, now) for _, msg in outgoing])
        for (row, msg), result in zip(outgoing, results):
            recipients = json.dumps([a.email for a in msg.to])
            if result.ok:
                report.sent += 1
                outcomes.append((row.id, {"status": "sent", "sent_at": now, "message_id": msg.message_id,
                                          "recipients": recipients, "claimed_until": None,
                                          "attempts": row.attempts + 1, "last_error": None}))
            elif result.permanent:
                report.failed += 1
                outcomes.append((row.id, {"status": "failed", "attempts": row.attempts + 1, "recipients": recipients,
                                          "last_error": f"{result.code or ''} {result.detail}".strip(),
                                          "claimed_until": None}))
            else:
                outcomes.append((row.id, _retry(row, f"{result.code or ''} {result.detail}".strip(), now, settings,
                                                report)))
    _record(db, rows, outcomes, now, report)
    return report


def _record(db: Database, rows: list[Any], outcomes: list[tuple[int, dict[str, Any]]], now: datetime,
            report: DispatchReport) -> None:
    """Write every outcome, and for a case's mail that failed its NotificationFailed event, in
    one transaction. Only the holder of a row's lease writes it: if the lease ran out and
    another dispatcher took the row, this one's outcome is dropped (that one decides)."""
    by_id = {row.id: row for row in rows}
    for attempt in range(5):
        lost = []
        notes = []
        try:
            with db.unit_of_work(core=True) as uow:
                for row_id, values in outcomes:
                    row = by_id[row_id]
                    held = uow.connection.execute(update(Outbox).where(and_(
                        Outbox.id == row_id, Outbox.status == "sending",
                        Outbox.claimed_until == row.claimed_until)).values(**values))
                    if held.rowcount == 0:
                        lost.append(row_id)
                        continue
                    if values.get("status") == "failed" and row.case_id is not None:
                        case = uow.get(row.case_id)
                        try:
                            event = decide(case, "record_notification_failure",
                                           {"notification": row.dedupe_key, "kind": row.kind,
                                            "error": (values.get("last_error") or "")[:2000]},
                                           Actor("system", "dispatch"), now, uow.round_context(case.round_id))
                        except DomainError as exc:  # a closed case takes no more events
                            notes.append(f"case {row.case_id}: {exc}")
                            continue
                        uow.append(case, event, apply(case, event))
                uow.commit()
        except ConflictError:  # someone acted on one of the cases meanwhile: do it again
            if attempt == 4:
                raise
            continue
        report.errors.extend(notes)
        report.errors.extend(f"outbox row {row_id}: its lease ran out and another dispatcher took it"
                             for row_id in lost)
        return


def _retry(row: Any, error: str, now: datetime, settings: DispatchSettings, report: DispatchReport) -> dict[str, Any]:
    attempts = row.attempts + 1
    if attempts >= settings.max_attempts:
        report.failed += 1
        return {"status": "failed", "attempts": attempts, "last_error": f"gave up after {attempts} attempts: {error}",
                "claimed_until": None}
    report.retrying += 1
    return {"status": "pending", "attempts": attempts, "last_error": error, "claimed_until": None,
            "next_attempt_at": now + backoff(attempts, settings)}
