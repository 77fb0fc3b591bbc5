"""Rounds in SQL (the ``RoundStore`` port)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, insert, select
from sqlalchemy.exc import IntegrityError

from ...domain.errors import AlreadyExists
from ...domain.lifecycle import CERTIFIED_STATES
from ...service.ports import RoundRecord
from .tables import cases, jurisdictions, rounds, units
from .writes import require


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def round_record(row: Any) -> RoundRecord:
    return RoundRecord(row.id, row.province_id, row.year, row.rubric_id, row.calendar_id, Decimal(row.target_share),
                       Decimal(row.pass_mark), Decimal(row.max_total), _json(row.policy), _json(row.rubric_data),
                       list(_json(row.documents) or []), list(_json(row.targets) or []), row.opened_at, row.opened_by,
                       row.province_path)


class SqlRounds:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"add", "lock"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _select(self) -> Any:
        return (select(rounds, jurisdictions.c.path.label("province_path"))
                .join(jurisdictions, jurisdictions.c.id == rounds.c.province_id))

    def round(self, round_id: str) -> RoundRecord | None:
        row = self.conn.execute(self._select().where(rounds.c.id == round_id)).first()
        return None if row is None else round_record(row)

    def rounds(self) -> list[RoundRecord]:
        return [round_record(row) for row in self.conn.execute(self._select().order_by(rounds.c.province_id,
                                                                                       rounds.c.year))]

    def lock(self, round_id: str) -> bool:
        row = self.conn.execute(select(rounds.c.id).where(rounds.c.id == round_id).with_for_update()).first()
        return row is not None

    def add(self, record: RoundRecord) -> None:
        require(self.conn, jurisdictions, record.province_id, "province")
        try:
            with self.conn.begin_nested():
                self._insert(record)
        except IntegrityError as exc:  # opened at the same moment by someone else
            raise AlreadyExists(f"round {record.id} is already open", f"轮次 {record.id} 已开启",
                                round_id=record.id) from exc

    def _insert(self, record: RoundRecord) -> None:
        self.conn.execute(insert(rounds).values(
            id=record.id, province_id=record.province_id, year=record.year, rubric_id=record.rubric_id,
            calendar_id=record.calendar_id, target_share=record.target_share, pass_mark=record.pass_mark,
            max_total=record.max_total, policy=record.policy, rubric_data=record.rubric_data,
            documents=record.documents, targets=record.targets, opened_at=record.opened_at,
            opened_by=record.opened_by))

    def units_done_by(self, province_id: str, year: int) -> set[int]:
        earlier = select(rounds.c.id).where(and_(rounds.c.province_id == province_id, rounds.c.year < year))
        done = set(self.conn.execute(select(cases.c.unit_id).where(
            and_(cases.c.round_id.in_(earlier), cases.c.state.in_(CERTIFIED_STATES)))).scalars())
        return done | set(self.conn.execute(select(units.c.id).where(units.c.certified_year <= year)).scalars())

    def not_certified_in(self, round_id: str) -> dict[int, int]:
        rows = self.conn.execute(select(cases.c.unit_id, cases.c.id).where(
            and_(cases.c.round_id == round_id, cases.c.state == "not_certified")))
        return {int(unit_id): int(case_id) for unit_id, case_id in rows}
