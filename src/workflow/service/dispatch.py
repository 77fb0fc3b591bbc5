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
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from notifications import (
    Address,
    Attachment,
    DeliveryResult,
    OutgoingMessage,
    Rendered,
    Transport,
    deadline_event,
    render,
)
from notifications.robots import Robot, RobotMessage, RobotTransport

from ..domain.actions import REVOKERS
from ..domain.calendar import Calendar
from ..domain.case import Actor
from ..domain.dates import business_date, require_aware
from ..domain.errors import ConflictError, DomainError
from .cases import read_case, take
from .channels import deliveries_for, mobiles_of
from .ports import (
    Calendars,
    CaseReferent,
    ChannelRecord,
    CoordinatorRecord,
    OutboxEntry,
    OutboxRecord,
    RoundRecord,
    Storage,
)

DISPATCHER = Actor("system", "dispatch", channel="scheduler")
CASE_KINDS = ("reminder", "missed", "rectification", "rectification_missed", "rectification_notice",
              "revocation_notice")
DUTY_KINDS = ("duty_reminder", "duty_missed")
# the templates' last line says what it is; a robot's message is not a mail (a test holds every
# template to this line, so a changed template cannot slip past the replacement)
MAIL_FOOTER, ROBOT_FOOTER = "此邮件由系统自动发送，请勿直接回复。", "此消息由系统自动发送，请勿直接回复。"
NEEDS_TEXT = {"attachment": "请在系统中登记完成并上传相关材料",
              "filing_batches": "请先在系统中建立备案批次，再登记完成",
              "spot_checks": "请在系统中登记抽查记录，再登记完成", "nothing": "请在系统中登记完成"}


@dataclass(frozen=True)
class DispatchSettings:
    sender: Address = field(default_factory=lambda: Address("noreply@workflow.local", "节约型机关创建工作"))
    message_domain: str = "workflow.local"
    max_attempts: int = 20  # with the backoff capped at 6 h: an SMTP outage of about three days
    base_backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(minutes=10)
    batch: int = 200
    robot_per_batch: int = 10  # a channel's messages a batch (dispatch every 30 s: the platforms' 20 a minute)
    # the latest checkpoint of the audit chain, quoted in coordinators' digests (None: not quoted)
    anchor: Callable[[], Mapping[str, Any] | None] | None = None


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
    factor: int = 2 ** max(attempts - 1, 0)
    return min(settings.base_backoff * factor, settings.max_backoff)


def _claim(db: Storage, now: datetime, settings: DispatchSettings) -> list[OutboxRecord]:
    with db.unit_of_work(core=True) as uow:
        rows = uow.outbox.claim(now, now + settings.lease, settings.batch)
        uow.commit()
    return rows


class _Skip(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _still_relevant(db: Storage, row: OutboxRecord, calendar: Calendar, rows: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """The listed cases that still owe the milestone (a reminder, a bureau's miss) or are still
    overdue (a digest)."""
    current = db.read.case_states([r["case_id"] for r in rows])
    keep = []
    for r in rows:
        case = current.get(r["case_id"])
        if case is None:
            continue
        if row.kind == "digest" and row.milestone != "rectification" and not case.overdue:
            continue
        if row.kind in ("coordinator_reminder", "duty_missed") and \
                not calendar.milestone(row.milestone).owing.holds(case.state, case.contact_form):
            continue
        keep.append(r)
    return keep


@dataclass
class _Batch:
    """What the rows of one claimed batch refer to, read once per batch."""

    rounds: dict[str, RoundRecord]
    cases: dict[int, CaseReferent]
    coordinators: dict[int, CoordinatorRecord]


def _load(db: Storage, rows: list[OutboxRecord]) -> _Batch:
    rounds = {rid: r for rid in sorted({r.round_id for r in rows}) if (r := db.rounds.round(rid)) is not None}
    cases = db.read.case_states(sorted({r.case_id for r in rows if r.case_id is not None}))
    wanted = {r.coordinator_id for r in rows if r.coordinator_id is not None}
    coordinators = {c.id: c for c in db.directory.coordinators() if c.id in wanted} if wanted else {}
    return _Batch(rounds, cases, coordinators)


def _unit_recipients(row: OutboxRecord, case: CaseReferent, calendar: Calendar, need_email: bool = True
                     ) -> list[Address]:
    if row.kind in ("reminder", "missed") and \
            not calendar.milestone(row.milestone).owing.holds(case.state, case.contact_form):
        raise _Skip("cancelled", f"case is {case.state}: it no longer owes {row.milestone}"
                    + (" (the contact form of this round is on file)" if case.contact_form else ""))
    if row.kind in ("rectification", "rectification_notice") and (
            case.state != "rectification" or case.rectification_due != row.due_on):
        raise _Skip("cancelled", f"case is {case.state}, due {case.rectification_due}: this reminder is stale")
    emails = [Address(c["email"], c.get("name", "")) for c in (case.contacts or []) if c.get("email")]
    if not emails and need_email:
        raise _Skip("failed", f"unit {case.unit_name} has no contact email (附件2 not on file)")
    return emails


def _message(row: OutboxRecord, rendered: Rendered, to: list[Address], settings: DispatchSettings,
             attachments: tuple[Attachment, ...] = ()) -> OutgoingMessage:
    return OutgoingMessage(message_id=message_id_for(row.dedupe_key, settings.message_domain),
                           sender=settings.sender, to=tuple(to), subject=rendered.subject, text=rendered.text,
                           html=rendered.html, attachments=attachments,
                           headers=(("X-Workflow-Key", row.dedupe_key),))


def _build(db: Storage, calendars: Calendars, batch: _Batch, row: OutboxRecord, now: datetime,
           settings: DispatchSettings) -> OutgoingMessage:
    rnd = batch.rounds[row.round_id]
    calendar = calendars.get(rnd.calendar_id)
    if row.kind in DUTY_KINDS:
        return _duty_message(db, calendar, batch, row, rnd, business_date(now), settings)
    if row.kind == "checkpoint":  # the audit chain's daily anchor (service/checkpoints.py)
        coordinator = _coordinator(batch, row)
        values = {**json.loads(row.context or "{}"), "coordinator_name": coordinator.name,
                  "round_title": calendar.title_for(rnd.year), "as_of": row.due_on}
        return _message(row, render("checkpoint", values), [Address(coordinator.email, coordinator.name)], settings)
    if row.kind in ("reminder", "rectification", "coordinator_reminder", "rectification_notice") and \
            business_date(now) > row.due_on:
        raise _Skip("cancelled", f"the deadline {row.due_on} passed before this reminder went out "
                                 "(the miss is recorded and notified on its own)")
    if row.kind == "revocation_notice":
        return _revocation_message(db, calendar, batch, row, rnd, settings)
    if row.kind in CASE_KINDS:
        return _case_message(db, calendar, batch, row, rnd, now, settings)
    return _coordinator_message(db, calendar, batch, row, rnd, business_date(now), settings)


def _what(calendar: Calendar, row: OutboxRecord) -> tuple[str, str]:
    """The name of what the mail is about, and what to do about it."""
    if row.milestone != "rectification":
        m = calendar.milestone(row.milestone)
        return m.name, m.what_to_do
    rule = calendar.rectification
    return (rule.name, rule.what_to_do) if rule else ("整改", "")


def _case_message(db: Storage, calendar: Calendar, batch: _Batch, row: OutboxRecord, rnd: RoundRecord, now: datetime,
                  settings: DispatchSettings) -> OutgoingMessage:
    """A mail to a unit about its case: a reminder, a miss, the 整改通知 and its reminders."""
    today, due = business_date(now), row.due_on
    case = batch.cases[row.case_id or 0]
    # a channel's delivery (row.channel_id) reads only the mail's subject and text: no address needed
    to = _unit_recipients(row, case, calendar, need_email=row.channel_id is None) or [settings.sender]
    name, todo = _what(calendar, row)
    context: dict[str, Any] = {"unit_name": case.unit_name, "case_id": row.case_id,
                               "round_title": calendar.title_for(rnd.year), "due_date": due, "what_to_do": todo}
    if row.kind == "reminder":
        context.update(milestone_name=name, days_left=(due - today).days, contact_line=calendar.contact)
    elif row.kind in ("rectification", "rectification_notice"):
        context.update(days_left=(due - today).days, pass_mark=points_text(rnd.pass_mark),
                       contact_line=calendar.contact,
                       verified_total="" if case.verified_total is None else points_text(case.verified_total),
                       # a spot check's problems, not a score, are what to rectify
                       spot_findings=_spot_findings(db, row.case_id or 0) if case.held_title is not None else "")
    else:
        context.update(milestone_name=name, noticed_on=today)
    attachments: tuple[Attachment, ...] = ()
    if row.kind in ("reminder", "rectification", "rectification_notice"):
        ics = deadline_event(uid=f"deadline.{row.case_id}.{row.milestone}@{settings.message_domain}",
                             summary=f"{name}截止", description=todo, due=due, stamp=now)
        attachments = (Attachment("deadline.ics", "text/calendar; method=PUBLISH; charset=utf-8", ics),)
    kind = row.kind if row.kind in ("reminder", "rectification", "rectification_notice") else "missed"
    return _message(row, render(kind, context), to, settings, attachments)


def _spot_findings(db: Storage, case_id: int) -> str:
    """What the spot check found, from the event that ordered its rectification."""
    events = read_case(db, case_id, events=True).events
    ordered = next((e for e in reversed(events) if e.type == "SpotRectificationOrdered"), None)
    return str(ordered.payload["findings"]) if ordered is not None else ""


def _revocation_message(db: Storage, calendar: Calendar, batch: _Batch, row: OutboxRecord, rnd: RoundRecord,
                        settings: DispatchSettings) -> OutgoingMessage:
    """The unit told its title was taken back: who decided, why, on what (from the event)."""
    case = batch.cases[row.case_id or 0]
    to = _unit_recipients(row, case, calendar, need_email=row.channel_id is None) or [settings.sender]
    events = read_case(db, row.case_id or 0, events=True).events
    revoked = next((e for e in reversed(events) if e.type == "TitleRevoked"), None)
    if revoked is None:
        raise _Skip("cancelled", "the case's title was not revoked")
    p = revoked.payload
    context = {"unit_name": case.unit_name, "case_id": row.case_id, "round_title": calendar.title_for(rnd.year),
               "decided_by": REVOKERS.get(p.get("decided_by", "province"), p.get("decided_by")),
               "reason": p["reason"], "evidence": p.get("evidence"), "as_of": business_date(revoked.occurred_at),
               "contact_line": calendar.contact}
    return _message(row, render("revocation_notice", context), to, settings)


def _coordinator(batch: _Batch, row: OutboxRecord) -> CoordinatorRecord:
    coordinator = batch.coordinators.get(row.coordinator_id or 0)
    if coordinator is None or not coordinator.active:
        raise _Skip("cancelled", "coordinator is no longer active")
    return coordinator


def _coordinator_message(db: Storage, calendar: Calendar, batch: _Batch, row: OutboxRecord, rnd: RoundRecord,
                         today: date, settings: DispatchSettings) -> OutgoingMessage:
    """A coordinator's list: the cases of their jurisdictions that a milestone is due for, or
    that missed it (what moved on since is left out; nothing left, the mail is cancelled)."""
    coordinator = _coordinator(batch, row)
    rows = _still_relevant(db, row, calendar, json.loads(row.context or "{}").get("rows", []))
    if not rows:
        raise _Skip("cancelled", "every case listed has moved on since")
    name, _ = _what(calendar, row)
    due = row.due_on
    # a coordinators' group (a channel's delivery) is greeted as a group, not as the coordinator
    # whose mail it stands beside
    greeting = coordinator.name if row.channel_id is None else f"{coordinator.jurisdiction_name or ''}各位协调人员"
    context: dict[str, Any] = {"coordinator_name": greeting, "jurisdiction_name": coordinator.jurisdiction_name,
                               "round_title": calendar.title_for(rnd.year)}
    if row.kind == "coordinator_reminder":
        context.update(milestone_name=name, due_date=due, days_left=(due - today).days, rows=rows)
    else:
        def due_of(r: dict[str, Any]) -> date:  # a rectification digest lists each case's own date
            return date.fromisoformat(r["due_on"]) if r.get("due_on") else due

        context.update(as_of=today, rows=[{"unit_name": r["unit_name"], "case_id": r["case_id"],
                                           "milestone_name": name, "due_date": due_of(r),
                                           "days_overdue": (today - due_of(r)).days} for r in rows],
                       anchor=settings.anchor() if settings.anchor is not None else None)
    kind = "coordinator_reminder" if row.kind == "coordinator_reminder" else "digest"
    return _message(row, render(kind, context), [Address(coordinator.email, coordinator.name)], settings)


def _duty_message(db: Storage, calendar: Calendar, batch: _Batch, row: OutboxRecord, rnd: RoundRecord, today: date,
                  settings: DispatchSettings) -> OutgoingMessage:
    """A duty's reminder (one jurisdiction) or its misses (every jurisdiction this coordinator
    hears of), to a coordinator: what was done since, or no longer waits, is left out; nothing
    left, the mail is cancelled."""
    coordinator = _coordinator(batch, row)
    context = json.loads(row.context or "{}")
    duty = calendar.milestone(row.milestone)
    due = row.due_on
    if row.kind == "duty_reminder" and today > due:
        raise _Skip("cancelled", f"the deadline {due} passed before this reminder went out")
    listed = context.get("jurisdictions") or [{"jurisdiction_id": context["jurisdiction_id"]}]
    names = {j.id: j.name for j in db.directory.jurisdictions()}
    items = []
    for item in listed:
        if db.duties.stream(row.round_id, item["jurisdiction_id"]).status(duty.id).done_at is not None:
            continue
        rows = _still_relevant(db, row, calendar, item["rows"]) if "rows" in item else []
        if "rows" in item and not rows:
            continue
        items.append({"jurisdiction_name": names.get(item["jurisdiction_id"], item["jurisdiction_id"]), "rows": rows})
    if not items:
        raise _Skip("cancelled", f"{duty.id}: done, or nothing waits for it any more")
    values: dict[str, Any] = {
        "coordinator_name": coordinator.name, "round_title": calendar.title_for(rnd.year), "duty_name": duty.name,
        "due_date": due, "what_to_do": duty.what_to_do,
        "how_to_record": NEEDS_TEXT.get(duty.needs, NEEDS_TEXT["nothing"]) if duty.by_level else ""}
    if row.kind == "duty_reminder":
        values.update(jurisdiction_name=items[0]["jurisdiction_name"], days_left=(due - today).days)
    else:
        values.update(items=items, days_overdue=(today - due).days)
    return _message(row, render(row.kind, values), [Address(coordinator.email, coordinator.name)], settings)


async def dispatch(db: Storage, calendars: Calendars, transport: Transport, now: datetime,
                   settings: DispatchSettings = DispatchSettings(), robots: RobotTransport | None = None
                   ) -> DispatchReport:
    """Deliver what is due now; call again for more (each call handles at most one batch).
    A mail row's channel deliveries (``service/channels.deliveries_for``) are written with its
    outcome and delivered by a later batch, through ``robots`` (default: over HTTP)."""
    require_aware(now, "now")
    report = DispatchReport()
    rows = _claim(db, now, settings)
    report.claimed = len(rows)
    if not rows:
        return report
    outgoing, to_robots, outcomes = _prepare(db, calendars, rows, now, settings, report)
    if outgoing:
        results = await transport.send_many([(msg, now) for _, msg in outgoing])
        outcomes += [(row.id, _outcome(row, result, msg.message_id, json.dumps([a.email for a in msg.to]), now,
                                       settings, report)) for (row, msg), result in zip(outgoing, results)]
    if to_robots:
        answered = await (robots or RobotTransport()).send_many(
            [(Robot(c.kind, c.url, c.secret), m, now) for _, c, m in to_robots])
        outcomes += [(row.id, _outcome(row, sent, m.message_id,
                                       json.dumps([f"{channel.kind}:{channel.name}"], ensure_ascii=False), now,
                                       settings, report, wait=sent.retry_after))
                     for (row, channel, m), sent in zip(to_robots, answered)]
    cancelled = {row_id for row_id, values in outcomes if values.get("status") == "cancelled"}
    fanned = deliveries_for(db, [r for r in rows if r.id not in cancelled])
    _record(db, rows, outcomes, now, report, fanned)
    return report


def _prepare(db: Storage, calendars: Calendars, rows: list[OutboxRecord], now: datetime, settings: DispatchSettings,
             report: DispatchReport) -> tuple[list[tuple[OutboxRecord, OutgoingMessage]],
                                              list[tuple[OutboxRecord, ChannelRecord, RobotMessage]],
                                              list[tuple[int, dict[str, Any]]]]:
    """Each claimed row built: a mail to send, a robot message to post, or its outcome now
    (cancelled, failed, again later). A channel takes at most ``robot_per_batch`` messages a
    batch (the platforms take 20 a minute); the rest wait a minute, no attempt counted."""
    outgoing: list[tuple[OutboxRecord, OutgoingMessage]] = []
    to_robots: list[tuple[OutboxRecord, ChannelRecord, RobotMessage]] = []
    outcomes: list[tuple[int, dict[str, Any]]] = []
    batch = _load(db, rows)
    channels = {c.id: c for c in db.channels.channels()} if any(r.channel_id for r in rows) else {}
    taken: Counter[int] = Counter()
    for row in rows:
        try:
            msg = _build(db, calendars, batch, row, now, settings)
            if row.channel_id is None:
                outgoing.append((row, msg))
                continue
            channel = channels.get(row.channel_id)
            if channel is None or channel.disabled_at is not None:
                raise _Skip("cancelled", "the channel was disabled")
            taken[channel.id] += 1
            if taken[channel.id] > settings.robot_per_batch:
                report.retrying += 1
                outcomes.append((row.id, {"status": "pending", "claimed_until": None,
                                          "next_attempt_at": now + timedelta(minutes=1)}))
                continue
            # a unit's own people are @-ed in its group by their mobile numbers (none: no @)
            case = batch.cases.get(row.case_id or 0) if channel.audience in ("units", "unit") else None
            to_robots.append((row, channel, RobotMessage(msg.message_id, msg.subject,
                                                         msg.text.replace(MAIL_FOOTER, ROBOT_FOOTER),
                                                         mobiles_of(case.contacts) if case else ())))
        except _Skip as skip:
            outcomes.append((row.id, {"status": skip.status, "last_error": skip.reason, "claimed_until": None}))
            report.cancelled += skip.status == "cancelled"
            report.failed += skip.status == "failed"
        except Exception as exc:  # a row that cannot be rendered must not block the others
            outcomes.append((row.id, _retry(row, f"cannot build the message: {type(exc).__name__}: {exc}", now,
                                            settings, report)))
    return outgoing, to_robots, outcomes


def _outcome(row: OutboxRecord, result: DeliveryResult, message_id: str, recipients: str, now: datetime,
             settings: DispatchSettings, report: DispatchReport, wait: int | None = None) -> dict[str, Any]:
    """What a delivery's result writes on its row: sent, failed for good, or again later."""
    error = f"{result.code or ''} {result.detail}".strip()
    if result.ok:
        report.sent += 1
        return {"status": "sent", "sent_at": now, "message_id": message_id, "recipients": recipients,
                "claimed_until": None, "attempts": row.attempts + 1, "last_error": None}
    if result.permanent:
        report.failed += 1
        return {"status": "failed", "attempts": row.attempts + 1, "recipients": recipients, "last_error": error,
                "claimed_until": None}
    return _retry(row, error, now, settings, report, wait=wait)


def _record(db: Storage, rows: list[OutboxRecord], outcomes: list[tuple[int, dict[str, Any]]], now: datetime,
            report: DispatchReport, deliveries: list[OutboxEntry] | None = None) -> None:
    """Write every outcome, the channel deliveries of the batch's mails, and for a case's mail
    that failed its NotificationFailed event, in one transaction. Only the holder of a row's
    lease writes it: if the lease ran out and another dispatcher took the row, this one's
    outcome is dropped (that one decides)."""
    by_id = {row.id: row for row in rows}
    for attempt in range(5):
        lost, notes = [], []
        try:
            with db.unit_of_work(core=True) as uow:
                if deliveries:
                    uow.outbox.add(deliveries, now)
                for row_id, values in outcomes:
                    row = by_id[row_id]
                    if not uow.outbox.settle(row_id, row.claimed_until, values):
                        lost.append(row_id)
                    elif values.get("status") == "failed" and row.case_id is not None:
                        data = {"notification": row.dedupe_key, "kind": row.kind,
                                "error": (values.get("last_error") or "")[:2000]}
                        try:
                            take(uow, uow.get(row.case_id), "record_notification_failure", data, DISPATCHER, now)
                        except ConflictError:
                            raise
                        except DomainError as exc:  # a closed case takes no more events
                            notes.append(f"case {row.case_id}: {exc}")
                uow.commit()
        except ConflictError:  # someone acted on one of the cases meanwhile: do it again
            if attempt == 4:
                raise
            continue
        report.errors.extend(notes)
        report.errors.extend(f"outbox row {row_id}: its lease ran out and another dispatcher took it"
                             for row_id in lost)
        return


def _retry(row: OutboxRecord, error: str, now: datetime, settings: DispatchSettings, report: DispatchReport,
           wait: int | None = None) -> dict[str, Any]:
    """Again later: after the backoff, or after ``wait`` seconds when the receiver asked for longer
    (a platform's rate limit, which is not counted as an attempt: a busy group must not use up
    the tries of its messages)."""
    attempts = row.attempts + (0 if wait else 1)
    if attempts >= settings.max_attempts:
        report.failed += 1
        return {"status": "failed", "attempts": attempts, "last_error": f"gave up after {attempts} attempts: {error}",
                "claimed_until": None}
    report.retrying += 1
    return {"status": "pending", "attempts": attempts, "last_error": error, "claimed_until": None,
            "next_attempt_at": now + max(backoff(attempts, settings),
                                         min(timedelta(seconds=wait or 0), settings.max_backoff))}
