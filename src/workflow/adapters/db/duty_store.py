"""The jurisdictions' duty streams in SQL: the projection row and its hash-chained events,
written together, guarded by the stream's version (as a case's are)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from ...domain.duties import DutyEvent, DutyStatus, DutyStream
from ...domain.errors import ConflictError
from .tables import duty_events, duty_streams, jurisdictions, rounds
from .writes import require


def _stream(row: Any) -> DutyStream:
    return DutyStream(row.round_id, row.jurisdiction_id, row.version, row.last_hash,
                      {k: DutyStatus.from_data(v) for k, v in json.loads(row.duties).items()}, row.updated_at)


def _event(row: Any) -> DutyEvent:
    return DutyEvent(row.round_id, row.jurisdiction_id, row.seq, row.type, row.actor, row.occurred_at,
                     json.loads(row.payload), row.prev_hash, row.hash, row.position, row.payload)


class SqlDuties:
    """The ``DutyStore`` port over one connection."""
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"append"})


    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def stream(self, round_id: str, jurisdiction_id: str) -> DutyStream:
        return load_stream(self.conn, round_id, jurisdiction_id)

    def streams(self, round_id: str) -> dict[str, DutyStream]:
        return streams_of_round(self.conn, round_id)

    def append(self, before: DutyStream, event: DutyEvent, after: DutyStream, now: datetime) -> None:
        append(self.conn, before, event, after, now)

    def events(self, round_id: str, jurisdiction_id: str) -> list[DutyEvent]:
        return stream_events(self.conn, round_id, jurisdiction_id)


def load_stream(conn: Connection, round_id: str, jurisdiction_id: str) -> DutyStream:
    row = conn.execute(select(duty_streams).where(and_(
        duty_streams.c.round_id == round_id, duty_streams.c.jurisdiction_id == jurisdiction_id))).first()
    return DutyStream(round_id, jurisdiction_id) if row is None else _stream(row)


def streams_of_round(conn: Connection, round_id: str) -> dict[str, DutyStream]:
    rows = conn.execute(select(duty_streams).where(duty_streams.c.round_id == round_id))
    return {row.jurisdiction_id: _stream(row) for row in rows}


def append(conn: Connection, before: DutyStream, event: DutyEvent, after: DutyStream, now: datetime) -> None:
    """Store ``event`` and the new projection if the stream is still at ``before.version``."""
    values = {"version": after.version, "last_hash": after.last_hash, "duties": after.duties_data(),
              "updated_at": now}
    if before.version == 0:  # a stream's first event: what it belongs to must exist
        require(conn, rounds, after.round_id, "round")
        require(conn, jurisdictions, after.jurisdiction_id, "jurisdiction")
    try:
        with conn.begin_nested():  # a refusal leaves the transaction usable (PostgreSQL)
            _write(conn, before, event, after, values)
    except IntegrityError as exc:
        raise ConflictError(f"the duties of {before.jurisdiction_id} in round {before.round_id} changed since they "
                            "were read; reload and retry",
                            f"{before.jurisdiction_id} 在轮次 {before.round_id} 的工作事项在读取后已被他人修改，"
                            "请刷新后重试") from exc


def _write(conn: Connection, before: DutyStream, event: DutyEvent, after: DutyStream, values: dict[str, Any]) -> None:
    if before.version == 0:
        conn.execute(insert(duty_streams).values(round_id=after.round_id, jurisdiction_id=after.jurisdiction_id,
                                                  **values))
    else:
        done = conn.execute(update(duty_streams).where(and_(
            duty_streams.c.round_id == before.round_id, duty_streams.c.jurisdiction_id == before.jurisdiction_id,
            duty_streams.c.version == before.version)).values(**values))
        if done.rowcount != 1:
            raise ConflictError(f"the duties of {before.jurisdiction_id} in round {before.round_id} changed "
                                "since they were read; reload and retry",
                                f"{before.jurisdiction_id} 在轮次 {before.round_id} 的工作事项在读取后已被他人修改，"
                                "请刷新后重试")
    conn.execute(insert(duty_events).values(
        round_id=event.round_id, jurisdiction_id=event.jurisdiction_id, seq=event.seq, type=event.type,
        actor=event.actor, occurred_at=event.occurred_at, payload=event.payload_json,
        prev_hash=event.prev_hash, hash=event.hash))


def stream_events(conn: Connection, round_id: str, jurisdiction_id: str) -> list[DutyEvent]:
    rows = conn.execute(select(duty_events).where(and_(
        duty_events.c.round_id == round_id, duty_events.c.jurisdiction_id == jurisdiction_id))
        .order_by(duty_events.c.seq))
    return [_event(r) for r in rows]


def all_streams(conn: Connection, jurisdiction_ids: list[str] | None = None) -> Iterator[DutyStream]:
    """Every stream (of these jurisdictions), in (round, jurisdiction) order."""
    query = select(duty_streams).order_by(duty_streams.c.round_id, duty_streams.c.jurisdiction_id)
    if jurisdiction_ids is not None:
        query = query.where(duty_streams.c.jurisdiction_id.in_(jurisdiction_ids))
    for row in conn.execute(query):
        yield _stream(row)


def all_duty_events(conn: Connection, jurisdiction_ids: list[str] | None = None) -> Iterator[DutyEvent]:
    """Every duty event (of these jurisdictions), in (round, jurisdiction, seq) order."""
    query = select(duty_events).order_by(duty_events.c.round_id, duty_events.c.jurisdiction_id,
                                                    duty_events.c.seq)
    if jurisdiction_ids is not None:
        query = query.where(duty_events.c.jurisdiction_id.in_(jurisdiction_ids))
    for row in conn.execute(query):
        yield _event(row)
