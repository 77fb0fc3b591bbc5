"""The chain checks asked for and their results in SQL (the ``AuditRunStore`` port)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ...service.ports import AuditRunRecord
from .tables import audit_runs

_COLUMNS = (audit_runs.c.id, audit_runs.c.scope, audit_runs.c.requested_by, audit_runs.c.requested_at,
            audit_runs.c.status, audit_runs.c.started_at, audit_runs.c.finished_at, audit_runs.c.ok,
            audit_runs.c.result, audit_runs.c.error)


def _record(row: Any) -> AuditRunRecord:
    return AuditRunRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                          None if row[7] is None else bool(row[7]), None if row[8] is None else json.loads(row[8]),
                          row[9])


class SqlAuditRuns:
    WRITES: frozenset[str] = frozenset({"add", "claim", "finish", "interrupt"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, *, scope: str, requested_by: str, requested_at: datetime) -> int:
        return int(self.conn.execute(insert(audit_runs).values(
            scope=scope, requested_by=requested_by, requested_at=requested_at, status="queued")
            .returning(audit_runs.c.id)).scalar_one())

    def get(self, run_id: int) -> AuditRunRecord | None:
        row = self.conn.execute(select(*_COLUMNS).where(audit_runs.c.id == run_id)).first()
        return None if row is None else _record(row)

    def runs(self, scopes: Sequence[str], limit: int) -> list[AuditRunRecord]:
        if not scopes:
            return []
        rows = self.conn.execute(select(*_COLUMNS).where(audit_runs.c.scope.in_(list(scopes)))
                                 .order_by(audit_runs.c.id.desc()).limit(limit))
        return [_record(r) for r in rows]

    def queued(self) -> list[AuditRunRecord]:
        rows = self.conn.execute(select(*_COLUMNS).where(audit_runs.c.status == "queued").order_by(audit_runs.c.id))
        return [_record(r) for r in rows]

    def claim(self, run_id: int, now: datetime) -> bool:
        done = self.conn.execute(update(audit_runs).where(audit_runs.c.id == run_id, audit_runs.c.status == "queued")
                                 .values(status="running", started_at=now))
        return bool(done.rowcount)

    def finish(self, run_id: int, now: datetime, *, ok: bool | None, result: dict[str, Any] | None,
               error: str | None) -> None:
        self.conn.execute(update(audit_runs).where(audit_runs.c.id == run_id, audit_runs.c.status == "running")
                          .values(status="failed" if error is not None else "done", finished_at=now, ok=ok,
                                  result=None if result is None else json.dumps(result, ensure_ascii=False),
                                  error=None if error is None else error[:400]))

    def interrupt(self, started_before: datetime, now: datetime, error: str) -> int:
        done = self.conn.execute(update(audit_runs).where(audit_runs.c.status == "running",
                                                          audit_runs.c.started_at < started_before)
                                 .values(status="failed", finished_at=now, error=error[:400]))
        return int(done.rowcount)
