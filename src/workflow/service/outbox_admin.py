"""The outbox as a coordinator sees it: the mails of their subtree that failed (why, how many
attempts, to whom), and sending a failed mail again.

A failed row is final for the dispatcher (it claims only pending rows), and the outbox port
offers no way to make it pending again: ``settle`` writes only a row still held with its lease
(status ``sending``). So a mail is sent again as a NEW outbox entry, a copy of the failed one
(kind, round, case or coordinator, milestone, tier, due date, context) under the dedupe key
``<the original key>:resend:<the failed row's id>``. That key makes the resend idempotent (a
second click, or a second coordinator, writes nothing: ``add`` skips a key written before), it
names the row it replaces, and the Message-ID derived from it is new (it is another sending).
Who asked for it, and when, is kept in the new entry's context (``resend_of``) and its
``created_at``; the dispatcher checks the mail again before sending, as for any row (a
reminder whose deadline has passed is cancelled, a unit still without a contact email fails
again).

The port reads rows only newest first, by status or case (no row by id), so the page lists
the failed mails among the latest ``SCAN`` failed rows (and says so when there are more), and
links a failed mail to its resend among the latest ``RECENT`` rows; a resend older than that
is not shown beside it, and asking again then writes nothing (the key exists).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.access import Principal
from ..domain.dates import require_aware
from ..domain.errors import ActionRefused, Forbidden, NotFound
from .ports import OutboxEntry, OutboxRecord, Storage

RESEND_MARK = ":resend:"
SCAN = 2000  # the latest failed rows of the outbox read to list them (or find the one to send again)
RECENT = 500  # the latest rows (any status) read to find the resends of the failed ones
KIND_NAMES = {
    "reminder": "截止提醒", "missed": "逾期通知", "rectification": "整改提醒", "rectification_notice": "整改通知",
    "rectification_missed": "整改逾期通知", "coordinator_reminder": "协调人员提醒", "digest": "逾期汇总",
    "duty_reminder": "职责提醒", "duty_missed": "职责逾期通知", "checkpoint": "检查点锚定",
}
STATUS_NAMES = {"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败",
                "cancelled": "已取消（无需发送）"}


@dataclass(frozen=True)
class FailedMail:
    row: OutboxRecord
    kind_zh: str
    about: str  # the unit (a case's mail) or the coordinator it was for
    case_id: int | None
    jurisdiction_id: str | None
    recipients: list[str]  # as sent (empty: it failed before it had any)
    resend_of: int | None  # this row is a resend of that row
    resent_as: OutboxRecord | None  # the row that sends it again (None: not sent again)


@dataclass(frozen=True)
class FailedMails:
    mails: list[FailedMail]  # of the subtree (and round), newest first
    scanned: int  # failed rows of the whole outbox read (of every round)
    truncated: bool  # there are older failed rows than those read (not listed)
    scan_limit: int = SCAN


@dataclass(frozen=True)
class Resent:
    original: OutboxRecord
    dedupe_key: str
    created: bool  # False: it had been sent again already (nothing written)


def resend_key(row: OutboxRecord) -> str:
    """The dedupe key of the entry that sends ``row`` again (at most 200 characters)."""
    base = row.dedupe_key.split(RESEND_MARK, 1)[0]
    return f"{base[:150]}{RESEND_MARK}{row.id}"


def resend_of(row: OutboxRecord) -> int | None:
    """The row this one sends again (None: an original)."""
    _, mark, rest = row.dedupe_key.rpartition(RESEND_MARK)
    return int(rest) if mark and rest.isdigit() else None


def _paths(db: Storage, rows: list[OutboxRecord]) -> dict[int, tuple[str | None, str, int | None, str | None]]:
    """row id → (jurisdiction path or None, who it is about, case id, jurisdiction id)."""
    jurisdictions = {j.id: j.path for j in db.directory.jurisdictions()}
    cases = {c.case_id: c for c in db.read.cases_by_id(sorted({r.case_id for r in rows if r.case_id is not None}))}
    coordinators = {c.id: c for c in db.directory.coordinators()} if any(r.coordinator_id for r in rows) else {}
    out: dict[int, tuple[str | None, str, int | None, str | None]] = {}
    for r in rows:
        if r.case_id is not None:
            case = cases.get(r.case_id)
            out[r.id] = (None, "", r.case_id, None) if case is None else \
                (jurisdictions.get(case.jurisdiction_id), case.unit_name, r.case_id, case.jurisdiction_id)
        elif r.coordinator_id is not None and r.coordinator_id in coordinators:
            c = coordinators[r.coordinator_id]
            about = f"{c.name}（{c.jurisdiction_name or c.jurisdiction_id}）"
            out[r.id] = (jurisdictions.get(c.jurisdiction_id), about, None, c.jurisdiction_id)
        else:
            out[r.id] = (None, "", r.case_id, None)
    return out


def _sees(who: Principal, path: str | None) -> bool:
    """A mail of a case or coordinator of the person's subtree (one of no known place: an admin's)."""
    if who.role == "admin":
        return True
    return path is not None and who.sees_path(path)


def _recipients(row: OutboxRecord) -> list[str]:
    try:
        found = json.loads(row.recipients or "[]")
    except ValueError:
        return [row.recipients or ""]
    return [str(x) for x in found] if isinstance(found, list) else [str(found)]


def failed_mails(db: Storage, who: Principal, round_id: str | None = None, within_path: str | None = None, *,
                 scan: int = SCAN) -> FailedMails:
    """The failed mails of the person's subtree (of one round, and of the subtree at
    ``within_path``, when given), newest first, among the latest ``scan`` failed rows of the
    outbox, each with the row that sent it again."""
    failed = db.outbox.rows(status="failed", limit=scan + 1)
    truncated = len(failed) > scan
    failed = failed[:scan]
    read = len(failed)
    if round_id is not None:
        failed = [r for r in failed if r.round_id == round_id]
    resends = {of: r for r in db.outbox.rows(limit=RECENT) if (of := resend_of(r)) is not None}
    where = _paths(db, failed)
    mails = []
    for r in failed:
        path, about, case_id, jurisdiction_id = where[r.id]
        if not _sees(who, path) or (within_path is not None and path is not None and not path.startswith(within_path)):
            continue
        mails.append(FailedMail(r, KIND_NAMES.get(r.kind, r.kind), about, case_id, jurisdiction_id, _recipients(r),
                                resend_of(r), resends.get(r.id)))
    return FailedMails(mails, read, truncated, scan)


def _find(db: Storage, row_id: int, scan: int) -> OutboxRecord | None:
    found = next((r for r in db.outbox.rows(status="failed", limit=scan) if r.id == row_id), None)
    if found is None:
        found = next((r for r in db.outbox.rows(limit=scan) if r.id == row_id), None)
    return found


def resend(db: Storage, row_id: int, by: Principal, now: datetime, *, scan: int = SCAN) -> Resent:
    """Send a failed mail again (see the module's text): a coordinator a mail of their subtree,
    an admin any. NotFound outside the subtree (or among rows too old to be read), Forbidden
    for a role that changes nothing, ActionRefused for a mail that has not failed."""
    require_aware(now, "now")
    if by.role not in ("coordinator", "admin") or by.read_only:
        raise Forbidden(f"a {by.role} does not send mail again", "只有协调人员或管理员可以重新发送邮件")
    row = _find(db, row_id, scan)
    if row is None or not _sees(by, _paths(db, [row])[row.id][0]):
        raise NotFound(f"mail {row_id} does not exist", f"邮件 {row_id} 不存在")
    if row.status != "failed":
        raise ActionRefused(f"mail {row_id} is {row.status}: only a failed mail is sent again",
                            f"邮件 {row_id} 的状态为“{STATUS_NAMES.get(row.status, row.status)}”，"
                            "只有发送失败的邮件可以重新发送")
    if row.channel_id is not None:  # a robot's message goes again to its channel, if it is still on
        channel = db.channels.get(row.channel_id)
        if channel is None or channel.disabled_at is not None:
            raise ActionRefused(f"message {row_id} went to a channel that is disabled now: enable or add one first",
                                f"消息 {row_id} 的推送渠道已停用，无法重新发送")
    context: dict[str, Any] = json.loads(row.context) if row.context else {}
    context["resend_of"] = {"row": row.id, "by": str(by.actor), "at": now.isoformat()}
    key = resend_key(row)
    entry = OutboxEntry(dedupe_key=key, kind=row.kind, round_id=row.round_id, milestone=row.milestone,
                        due_on=row.due_on, case_id=row.case_id, coordinator_id=row.coordinator_id, tier=row.tier,
                        context=context, channel_id=row.channel_id)
    with db.unit_of_work(core=True) as uow:
        written = uow.outbox.add([entry], now)
        if written:  # who sent which mail again, on the operator log (a second press adds nothing)
            uow.operator.append("mail", "MailResent", str(by.actor), now,
                                {"row": row.id, "key": key, "kind": row.kind, "case_id": row.case_id,
                                 "round_id": row.round_id, "recipients": _recipients(row)})
        uow.commit()
    return Resent(row, key, written > 0)
