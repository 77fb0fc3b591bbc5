"""The operator audit log in SQL (the ``OperatorLog`` port): one hash-chained stream per kind
of thing changed; an append locks its stream's head row, so concurrent changes queue rather
than fork the chain."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ...domain.operator import OperatorEvent, new_operator_event
from .tables import operator_events, operator_streams


def event_from_row(row: Any) -> OperatorEvent:
    return OperatorEvent(row.stream, row.seq, row.type, row.actor, row.occurred_at, json.loads(row.payload),
                         row.prev_hash, row.hash, row.position, row.payload)


class SqlOperatorLog:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"append"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def append(self, stream: str, type_: str, actor: str, now: datetime, payload: dict[str, Any]) -> OperatorEvent:
        head = self.conn.execute(select(operator_streams.c.version, operator_streams.c.last_hash)
                                 .where(operator_streams.c.stream == stream).with_for_update()).first()
        if head is None:
            raise ValueError(f"unknown operator stream {stream!r}")
        event = new_operator_event(stream, head.version + 1, type_, actor, now, payload, head.last_hash)
        self.conn.execute(update(operator_streams).where(operator_streams.c.stream == stream)
                          .values(version=event.seq, last_hash=event.hash))
        self.conn.execute(insert(operator_events).values(
            stream=stream, seq=event.seq, type=event.type, actor=event.actor, occurred_at=event.occurred_at,
            payload=event.payload_json, prev_hash=event.prev_hash, hash=event.hash))
        return event

    def events(self, stream: str | None = None) -> list[OperatorEvent]:
        return list(all_operator_events(self.conn, stream))


def all_operator_events(conn: Connection, stream: str | None = None) -> Iterator[OperatorEvent]:
    query = select(operator_events).order_by(operator_events.c.stream, operator_events.c.seq)
    if stream is not None:
        query = query.where(operator_events.c.stream == stream)
    for row in conn.execute(query):
        yield event_from_row(row)
