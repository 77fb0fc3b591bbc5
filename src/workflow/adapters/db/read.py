"""The read side in SQL (the ``ReadModels`` port): lists, scopes, the counts behind the
reports, and what a notification refers to when it is sent."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy import case as sa_case

from ...domain.lifecycle import CERTIFIED_STATES, Owing
from ...service.ports import (AgencyGroup, CaseFilter, CaseGroup, CaseReferent, CaseRow, CaseScope, OwingCase,
                              TimelineRow)
from .directory import within
from .outbox import owing_clause
from .tables import Case, DutyEvent, Event, Jurisdiction, Outbox, Round, Unit


def _owing(row: Any) -> OwingCase:
    return OwingCase(row[0], row[1], row[2], row[3], row[4], row[5])


_OWING_COLUMNS = (Case.id, Case.unit_id, Unit.name, Unit.jurisdiction_id, Case.state, Case.rectification_due)


class SqlReadModels:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def case_rows(self, query: CaseFilter) -> list[CaseRow]:
        q = (select(Case.id, Case.round_id, Case.unit_id, Unit.name, Unit.jurisdiction_id, Unit.category, Case.state,
                    Case.version, Case.self_total, Case.verified_total, Case.recheck_total, Case.rectification_due,
                    Case.updated_at)
             .join(Unit, Case.unit_id == Unit.id).join(Jurisdiction, Unit.jurisdiction_id == Jurisdiction.id)
             .where(Case.id > query.after_id, within(Jurisdiction.path, query.within_path),
                    within(Jurisdiction.path, query.filter_path))
             .order_by(Case.id).limit(query.limit))
        for column, value in ((Case.round_id, query.round_id), (Case.state, query.state),
                              (Case.unit_id, query.unit_id), (Unit.category, query.category),
                              (Unit.level, query.level)):
            if value is not None and value != "":
                q = q.where(column == value)
        if query.overdue is not None:
            q = q.where(Case.overdue.is_(query.overdue))
        return [CaseRow(*row) for row in self.conn.execute(q)]

    def case_scope(self, case_id: int) -> CaseScope | None:
        row = self.conn.execute(select(Case.id, Case.unit_id, Case.round_id, Unit.name, Jurisdiction.path)
                                .join(Unit, Unit.id == Case.unit_id)
                                .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
                                .where(Case.id == case_id)).first()
        return None if row is None else CaseScope(*row)

    def unit_case_ids(self, unit_id: int) -> list[int]:
        return list(self.conn.execute(select(Case.id).where(Case.unit_id == unit_id).order_by(Case.id)).scalars())

    def has_case_in(self, round_id: str, unit_id: int) -> bool:
        return self.conn.execute(select(Case.id).where(Case.round_id == round_id, Case.unit_id == unit_id)
                                 ).first() is not None

    def case_groups(self, round_id: str, root_path: str) -> list[CaseGroup]:
        rows = self.conn.execute(
            select(Unit.jurisdiction_id, Case.state, Case.overdue, Case.missed, func.count())
            .join(Unit, Unit.id == Case.unit_id).join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
            .where(Case.round_id == round_id, within(Jurisdiction.path, root_path))
            .group_by(Unit.jurisdiction_id, Case.state, Case.overdue, Case.missed))
        return [CaseGroup(j, state, bool(overdue), tuple(m for m, _ in json.loads(missed)) if missed else (), int(n))
                for j, state, overdue, missed, n in rows]

    def agency_groups(self, province_id: str, year: int, root_path: str) -> list[AgencyGroup]:
        done = select(Case.unit_id).join(Round, Round.id == Case.round_id).where(
            Round.province_id == province_id, Round.year <= year, Case.state.in_(CERTIFIED_STATES))
        certified = or_(Unit.id.in_(done), Unit.certified_year <= year)
        rows = self.conn.execute(
            select(Unit.jurisdiction_id, Unit.level, func.count(), func.sum(sa_case((certified, 1), else_=0)))
            .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id).where(within(Jurisdiction.path, root_path))
            .group_by(Unit.jurisdiction_id, Unit.level))
        return [AgencyGroup(j, level, int(n), int(c or 0)) for j, level, n, c in rows]

    def owing_cases(self, round_id: str, owing: Owing, within_path: str | None = None) -> list[OwingCase]:
        rows = self.conn.execute(select(*_OWING_COLUMNS).join(Unit, Unit.id == Case.unit_id)
                                 .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
                                 .where(owing_clause(owing, round_id), within(Jurisdiction.path, within_path))
                                 .order_by(Case.id))
        return [_owing(r) for r in rows]

    def overdue_cases(self, round_id: str, milestone: str) -> list[OwingCase]:
        rows = self.conn.execute(select(*_OWING_COLUMNS).join(Unit, Unit.id == Case.unit_id)
                                 .where(Case.round_id == round_id, Case.overdue.is_(True),
                                        Case.missed.like(f'%"{milestone}"%')).order_by(Case.id))
        return [_owing(r) for r in rows]

    def rectifications(self, round_id: str) -> list[OwingCase]:
        # By the partial index of cases in rectification (a round_id filter in SQL would make
        # the planner walk the round's whole (round_id, unit_id) index instead).
        rows = self.conn.execute(select(*_OWING_COLUMNS, Case.round_id).join(Unit, Unit.id == Case.unit_id)
                                 .where(Case.state == "rectification"))
        return [_owing(r) for r in rows if r[-1] == round_id]

    def case_states(self, case_ids: list[int]) -> dict[int, CaseReferent]:
        if not case_ids:
            return {}
        rows = self.conn.execute(
            select(Case.id, Case.state, Case.rectification_due, Case.verified_total, Case.contact_form, Case.overdue,
                   Unit.name, Unit.contacts).join(Unit, Unit.id == Case.unit_id).where(Case.id.in_(case_ids)))
        return {r[0]: CaseReferent(r[0], r[1], r[2], None if r[3] is None else Decimal(r[3]), bool(r[4]), bool(r[5]),
                                   r[6], list(r[7] or [])) for r in rows}

    def cases_by_id(self, case_ids: list[int]) -> list[OwingCase]:
        if not case_ids:
            return []
        rows = self.conn.execute(select(*_OWING_COLUMNS).join(Unit, Unit.id == Case.unit_id)
                                 .where(Case.id.in_(case_ids)).order_by(Case.id))
        return [_owing(r) for r in rows]

    def jurisdictions_with_cases(self, round_id: str) -> list[str]:
        return list(self.conn.execute(select(Unit.jurisdiction_id).join(Case, Case.unit_id == Unit.id)
                                      .where(Case.round_id == round_id).group_by(Unit.jurisdiction_id)
                                      .order_by(Unit.jurisdiction_id)).scalars())

    def timeline(self, round_ids: list[str]) -> list[TimelineRow]:
        """Every event of the rounds' cases and duty streams, and every mail sent, in time order."""
        rows: list[TimelineRow] = []
        names = dict(self.conn.execute(select(Case.id, Unit.name).join(Unit, Unit.id == Case.unit_id)
                                       .where(Case.round_id.in_(round_ids))).all())
        for e in self.conn.execute(select(Event.case_id, Event.type, Event.occurred_at, Event.payload)
                                   .where(Event.case_id.in_(list(names))).order_by(Event.occurred_at, Event.position)):
            payload = json.loads(e.payload)
            detail = e.type + (f" ({payload['milestone']})" if e.type == "DeadlineMissed"
                               else f" ({payload['total']})" if "total" in payload else "")
            rows.append(TimelineRow(e.occurred_at, f"#{e.case_id} {names[e.case_id]}", detail, ""))
        jurisdictions = dict(self.conn.execute(select(Jurisdiction.id, Jurisdiction.name)).all())
        for d in self.conn.execute(select(DutyEvent.jurisdiction_id, DutyEvent.type, DutyEvent.occurred_at,
                                          DutyEvent.payload).where(DutyEvent.round_id.in_(round_ids))
                                   .order_by(DutyEvent.occurred_at, DutyEvent.position)):
            payload = json.loads(d.payload)
            waiting = f", {len(payload['cases'])} cases waiting" if payload.get("cases") else ""
            rows.append(TimelineRow(d.occurred_at, jurisdictions.get(d.jurisdiction_id, d.jurisdiction_id),
                                    f"{d.type} ({payload['duty']}{waiting})", ""))
        for m in self.conn.execute(select(Outbox.case_id, Outbox.kind, Outbox.milestone, Outbox.sent_at,
                                          Outbox.recipients)
                                   .where(Outbox.status == "sent", Outbox.round_id.in_(round_ids))
                                   .order_by(Outbox.sent_at)):
            who = ", ".join(json.loads(m.recipients)) if m.recipients else ""
            case = f"#{m.case_id} {names.get(m.case_id, '')}" if m.case_id else "coordinator"
            rows.append(TimelineRow(m.sent_at, case, "", f"{m.kind} {m.milestone} → {who}"))
        return sorted(rows, key=lambda r: r.at)
