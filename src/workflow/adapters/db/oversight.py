"""Spot checks and filing batches in SQL (the ``OversightStore`` port)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select

from ...service.ports import FilingRecord, OutcomeRecord, SpotCheckRecord
from .directory import within
from .tables import cases, filing_batches, jurisdictions, spot_check_outcomes, spot_checks, units
from .writes import insert_new


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


class SqlOversight:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"add_spot_check", "add_filing", "add_outcome"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def cases_in(self, round_id: str, path: str, states: tuple[str, ...]) -> list[int]:
        return list(self.conn.execute(
            select(cases.c.id).join(units, units.c.id == cases.c.unit_id)
            .join(jurisdictions, jurisdictions.c.id == units.c.jurisdiction_id)
            .where(cases.c.round_id == round_id, cases.c.state.in_(states), within(jurisdictions.c.path, path))
            .order_by(cases.c.id)).scalars())

    def unit_names(self, case_ids: list[int]) -> dict[int, str]:
        if not case_ids:
            return {}
        return dict(self.conn.execute(select(cases.c.id, units.c.name).join(units, units.c.id == cases.c.unit_id)
                                      .where(cases.c.id.in_(case_ids))).all())

    def count_spot_checks(self, round_id: str) -> int:
        return int(self.conn.execute(select(func.count()).select_from(spot_checks)
                                     .where(spot_checks.c.round_id == round_id)).scalar() or 0)

    def add_spot_check(self, record: SpotCheckRecord) -> None:
        insert_new(self.conn, insert(spot_checks).values(
            id=record.id, round_id=record.round_id, jurisdiction_id=record.jurisdiction_id, seed=record.seed,
            share=record.share, population=record.population, drawn=record.drawn, drawn_at=record.drawn_at,
            drawn_by=record.drawn_by), f"spot check {record.id} already exists", f"抽查 {record.id} 已存在",
            spot_check=record.id)

    def spot_checks(self, round_id: str, within_path: str | None = None) -> list[SpotCheckRecord]:
        rows = self.conn.execute(
            select(spot_checks, jurisdictions.c.path)
            .join(jurisdictions, jurisdictions.c.id == spot_checks.c.jurisdiction_id)
            .where(spot_checks.c.round_id == round_id, within(jurisdictions.c.path, within_path))
            .order_by(spot_checks.c.drawn_at, spot_checks.c.id))
        return [SpotCheckRecord(r.id, r.round_id, r.jurisdiction_id, r.seed, Decimal(r.share),
                                list(_json(r.population)),
                                list(_json(r.drawn)), r.drawn_at, r.drawn_by, r.path) for r in rows]

    def count_filings(self, round_id: str) -> int:
        return int(self.conn.execute(select(func.count()).select_from(filing_batches)
                                     .where(filing_batches.c.round_id == round_id)).scalar() or 0)

    def add_filing(self, record: FilingRecord) -> None:
        insert_new(self.conn, insert(filing_batches).values(
            id=record.id, round_id=record.round_id, jurisdiction_id=record.jurisdiction_id, cases=record.cases,
            totals=record.totals, filed_at=record.filed_at, filed_by=record.filed_by),
            f"filing batch {record.id} already exists", f"备案批次 {record.id} 已存在", batch_id=record.id)

    def _filings(self, *where: Any) -> list[FilingRecord]:
        rows = self.conn.execute(
            select(filing_batches, jurisdictions.c.path)
            .join(jurisdictions, jurisdictions.c.id == filing_batches.c.jurisdiction_id).where(*where)
            .order_by(filing_batches.c.filed_at, filing_batches.c.id))
        return [FilingRecord(r.id, r.round_id, r.jurisdiction_id, list(_json(r.cases)), dict(_json(r.totals)),
                             r.filed_at, r.filed_by, r.path) for r in rows]

    def filing(self, batch_id: str) -> FilingRecord | None:
        found = self._filings(filing_batches.c.id == batch_id)
        return found[0] if found else None

    def filings(self, round_id: str, within_path: str | None = None) -> list[FilingRecord]:
        return self._filings(filing_batches.c.round_id == round_id, within(jurisdictions.c.path, within_path))

    def add_outcome(self, record: OutcomeRecord) -> None:
        insert_new(self.conn, insert(spot_check_outcomes).values(
            check_id=record.check_id, case_id=record.case_id, round_id=record.round_id, outcome=record.outcome,
            consequence=record.consequence, decided_by=record.decided_by, findings=record.findings,
            evidence=record.evidence, due_on=record.due_on, recorded_at=record.recorded_at,
            recorded_by=record.recorded_by),
            f"case {record.case_id} already has an outcome of {record.check_id}",
            f"案件 {record.case_id} 在 {record.check_id} 中已有结果", check_id=record.check_id, case_id=record.case_id)

    def outcomes(self, round_id: str, check_id: str | None = None) -> list[OutcomeRecord]:
        t = spot_check_outcomes
        query = select(t).where(t.c.round_id == round_id)
        if check_id is not None:
            query = query.where(t.c.check_id == check_id)
        rows = self.conn.execute(query.order_by(t.c.check_id, t.c.case_id))
        return [OutcomeRecord(r.check_id, r.case_id, r.round_id, r.outcome, r.consequence, r.decided_by, r.findings,
                              r.evidence, r.due_on, r.recorded_at, r.recorded_by) for r in rows]
