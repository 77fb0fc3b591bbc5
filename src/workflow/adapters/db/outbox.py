"""The outbox and the sweep's marks in SQL (the ``OutboxStore`` port).

Reminders for a milestone are one ``INSERT … SELECT`` over the cases that owe it, built from
the domain's rule (``Owing``); every insert is ``ON CONFLICT (dedupe_key) DO NOTHING``, so a
second sweep or a second process writes nothing twice. A claim takes due rows with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's writer lock does the same).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Date, String, and_, cast, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ...domain.lifecycle import Owing
from ...service.ports import OutboxEntry, OutboxRecord
from .tables import cases, outbox, sweep_marks
from .types import UTCDateTime

_COLUMNS = ["dedupe_key", "kind", "round_id", "case_id", "milestone", "tier", "due_on", "status", "attempts",
            "next_attempt_at", "created_at"]


def owing_clause(owing: Owing, round_id: str) -> Any:
    """The SQL form of the domain's rule: the round's cases that owe (or wait for) a milestone."""
    cond = [cases.c.round_id == round_id, cases.c.state.in_(owing.states)]
    if owing.contact_form_missing:
        cond.append(cases.c.contact_form.is_(False))
    return and_(*cond)


def outbox_record(row: Any) -> OutboxRecord:
    return OutboxRecord(row.id, row.dedupe_key, row.kind, row.round_id, row.case_id, row.coordinator_id,
                        row.milestone, row.tier, row.due_on, row.context, row.status, row.attempts,
                        row.next_attempt_at, row.claimed_until, row.last_error, row.message_id, row.recipients,
                        row.created_at, row.sent_at, row.channel_id)


class SqlOutbox:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"mark", "remind_owing", "add", "claim", "settle", "release_claims"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    def _insert(self, table: Any = outbox) -> Any:
        return (postgresql.insert if self.postgres else sqlite.insert)(table)

    def _written(self, statement: Any) -> int:
        """Rows an ``INSERT … ON CONFLICT DO NOTHING`` wrote: the driver's count on SQLite; on
        PostgreSQL psycopg reports none here, so the ids are returned and counted."""
        if not self.postgres:
            return max(self.conn.execute(statement).rowcount, 0)
        return len(self.conn.execute(statement.returning(outbox.c.id)).all())

    # -- the sweep's marks
    def marked(self, round_id: str, milestone: str, stage: str) -> bool:
        return self.conn.execute(select(sweep_marks.c.stage).where(and_(
            sweep_marks.c.round_id == round_id, sweep_marks.c.milestone == milestone, sweep_marks.c.stage == stage))
        ).first() is not None

    def mark(self, round_id: str, milestone: str, stage: str, now: datetime) -> None:
        self.conn.execute(self._insert(sweep_marks).values(round_id=round_id, milestone=milestone, stage=stage,
                                                         done_at=now).on_conflict_do_nothing())

    # -- writing
    def remind_owing(self, round_id: str, milestone: str, tier: int, due: date, owing: Owing, now: datetime) -> int:
        key = literal("reminder:") + cast(cases.c.id, String) + literal(f":{milestone}:{tier}")
        rows = select(key, literal("reminder"), cases.c.round_id, cases.c.id, literal(milestone), literal(tier),
                      literal(due, Date()), literal("pending"), literal(0), literal(now, UTCDateTime()),
                      literal(now, UTCDateTime())).where(owing_clause(owing, round_id))
        return self._written(self._insert().from_select(_COLUMNS, rows)
                             .on_conflict_do_nothing(index_elements=["dedupe_key"]))

    def add(self, entries: list[OutboxEntry], now: datetime) -> int:
        written = 0
        for e in entries:
            written += self._written(self._insert().values(
                dedupe_key=e.dedupe_key, kind=e.kind, round_id=e.round_id, case_id=e.case_id,
                coordinator_id=e.coordinator_id, milestone=e.milestone, tier=e.tier, due_on=e.due_on,
                context=None if e.context is None else json.dumps(e.context, ensure_ascii=False),
                status="pending", attempts=0, next_attempt_at=now, created_at=now, channel_id=e.channel_id,
            ).on_conflict_do_nothing(index_elements=["dedupe_key"]))
        return written

    # -- delivering
    def claim(self, now: datetime, lease_until: datetime, batch: int) -> list[OutboxRecord]:
        due = or_(and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
                  and_(outbox.c.status == "sending", outbox.c.claimed_until < now))
        ids = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(batch)
        if self.postgres:
            ids = ids.with_for_update(skip_locked=True)
        chosen = list(self.conn.execute(ids).scalars())
        if not chosen:
            return []
        self.conn.execute(update(outbox).where(outbox.c.id.in_(chosen)).values(status="sending",
                                                                            claimed_until=lease_until))
        return [outbox_record(r) for r in self.conn.execute(select(outbox).where(outbox.c.id.in_(chosen))
                                                            .order_by(outbox.c.id))]

    def settle(self, row_id: int, claimed_until: datetime | None, values: Mapping[str, Any]) -> bool:
        held = self.conn.execute(update(outbox).where(and_(
            outbox.c.id == row_id, outbox.c.status == "sending",
                                                           outbox.c.claimed_until == claimed_until)).values(**values))
        return bool(held.rowcount)

    def release_claims(self) -> int:
        return int(self.conn.execute(update(outbox).where(outbox.c.status == "sending")
                                     .values(status="pending", claimed_until=None)).rowcount)

    # -- reading
    def rows(self, *, status: str | None = None, case_id: int | None = None, limit: int = 200) -> list[OutboxRecord]:
        q = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
        if status:
            q = q.where(outbox.c.status == status)
        if case_id is not None:
            q = q.where(outbox.c.case_id == case_id)
        return [outbox_record(r) for r in self.conn.execute(q)]

    def count_by_status(self, mail_only: bool = False) -> dict[str, int]:
        q = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        if mail_only:
            q = q.where(outbox.c.channel_id.is_(None))
        return {status: int(n) for status, n in self.conn.execute(q)}
