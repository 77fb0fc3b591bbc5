"""How far a simulation got, and the refusals it met, in SQL (the ``SimulationStore`` port)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, insert, select, update

from .tables import idempotency_keys, simulation_progress
from .writes import insert_new


class SqlSimulations:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"start", "finish_day", "remember_refusal"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def progress(self, digest: str) -> tuple[bool, date | None]:
        row = self.conn.execute(select(simulation_progress.c.day_done)
                                .where(simulation_progress.c.digest == digest)).first()
        return (False, None) if row is None else (True, row.day_done)

    def start(self, digest: str, scenario: str) -> None:
        insert_new(self.conn, insert(simulation_progress).values(digest=digest, scenario=scenario[-500:]),
                   "a run of this scenario was started here already", "此处已开始过该情景的演练")

    def finish_day(self, digest: str, day: date) -> None:
        self.conn.execute(update(simulation_progress).where(simulation_progress.c.digest == digest)
                          .values(day_done=day))

    def refusal(self, key: str) -> str | None:
        row = self.conn.execute(select(idempotency_keys.c.ref)
                                .where(idempotency_keys.c.key == f"{key}:refused")).first()
        return None if row is None else str(row.ref)

    def remember_refusal(self, key: str, why: str, now: datetime) -> None:
        shown = why if len(why) <= 100 else why[:99] + "…"  # the column holds 100 characters: say it was cut
        insert_new(self.conn, insert(idempotency_keys).values(key=f"{key}:refused", what="refused", ref=shown,
                                                             fingerprint="", created_at=now),
                   f"the refusal of {key} is recorded already", f"{key} 的拒绝记录已存在")
