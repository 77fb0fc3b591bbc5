"""The read side in SQL (the ``ReadModels`` port): lists, scopes, the counts behind the
reports, and what a notification refers to when it is sent."""
from __future__ import annotations

import json
import string
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Numeric, String, and_, cast, func, or_, select
from sqlalchemy import case as sa_case

from ...domain.lifecycle import STATES, Owing
from ...service.ports import (
    CASE_SORTS,
    AgencyGroup,
    CaseFilter,
    CaseGroup,
    CaseReferent,
    CaseRow,
    CaseScope,
    OwingCase,
    TimelineRow,
)
from .directory import within
from .outbox import owing_clause
from .tables import agency_counts, case_counts, cases, duty_events, events, jurisdictions, outbox, units


def _owing(row: Any) -> OwingCase:
    return OwingCase(row[0], row[1], row[2], row[3], row[4], row[5])


_OWING_COLUMNS = (cases.c.id, cases.c.unit_id, units.c.name, units.c.jurisdiction_id, cases.c.state,
                  cases.c.rectification_due)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _unit_name(dialect: str) -> Any:
    """The unit's name compared by code point, as SQLite's BINARY collation and Python compare
    (PostgreSQL's ``C`` collation: UTF-8 bytes; its database default may be a language's)."""
    return units.c.name.collate("C") if dialect == "postgresql" else units.c.name


def _case_order(query: CaseFilter, dialect: str) -> list[Any]:
    """ORDER BY of a case list: the sort's key, the id breaking ties (ascending); totals not
    given yet last either way. ValueError for a sort not in CASE_SORTS, or a cursor with
    another sort than id."""
    if query.sort not in CASE_SORTS:
        raise ValueError(f"unknown sort {query.sort!r}; sorts: {', '.join(CASE_SORTS)}")
    if query.sort != "id" and query.after_id:
        raise ValueError(f"after_id pages the id order only; sort={query.sort} pages with offset")
    key, descending = query.sort.removeprefix("-"), query.sort.startswith("-")
    if key == "id":
        return [cases.c.id.desc() if descending else cases.c.id]
    column: Any = {
        "unit": _unit_name(dialect),
        # the totals are stored as their exact text: ordered as numbers
        "self_total": cast(cases.c.self_total, Numeric()),
        "verified_total": cast(cases.c.verified_total, Numeric()),
        "updated": cases.c.updated_at,
        "state": sa_case({s: i for i, s in enumerate(STATES)}, value=cases.c.state, else_=len(STATES)),
    }[key]
    ordered = column.desc() if descending else column.asc()
    if key.endswith("_total"):
        ordered = ordered.nulls_last()
    return [ordered, cases.c.id]


def _case_matches(q: Any, query: CaseFilter, dialect: str, *, units_too: bool = False) -> Any:
    """The cases the filters and the scope keep, on a query of the case rows: joined to the units
    and the places only when a filter (or ``units_too``: the order) needs them."""
    places = query.within_path is not None or query.filter_path is not None
    if places or units_too or query.category or query.level or query.name:
        q = q.join(units, cases.c.unit_id == units.c.id)
    if places:
        q = (q.join(jurisdictions, units.c.jurisdiction_id == jurisdictions.c.id)
             .where(within(jurisdictions.c.path, query.within_path), within(jurisdictions.c.path, query.filter_path)))
    return _case_filters(q, query, dialect)


def _case_filters(q: Any, query: CaseFilter, dialect: str) -> Any:
    """The filters of a case list (the scope's paths aside) on a query that has the case rows
    (and the units' for a filter on a unit)."""
    for column, value in ((cases.c.round_id, query.round_id), (cases.c.state, query.state),
                          (cases.c.unit_id, query.unit_id), (units.c.category, query.category),
                          (units.c.level, query.level)):
        if value is not None and value != "":
            q = q.where(column == value)
    if query.overdue is not None:
        q = q.where(cases.c.overdue.is_(query.overdue))
    if query.name:
        # A-Z as a-z on both sides, nothing else folded (lower() of SQLite, and of PostgreSQL in
        # the C collation); the text is matched literally (% _ / escaped).
        q = q.where(func.lower(_unit_name(dialect), type_=String()).contains(query.name.translate(_ASCII_LOWER),
                                                                               autoescape=True))
    if query.missed:
        # A miss is [milestone, [states that owe it]] in the case's JSON list: its head
        # '["milestone", [' stands nowhere else (a list of states holds only strings), in the
        # spacing ``append`` writes and the compact one (rows written by other tools).
        spaced, compact = (json.dumps([query.missed, []], ensure_ascii=False, separators=seps)[:-2]
                           for seps in ((", ", ": "), (",", ":")))
        q = q.where(or_(cases.c.missed.contains(spaced, autoescape=True),
                        cases.c.missed.contains(compact, autoescape=True)))
    if query.owing is not None and query.round_id:
        q = q.where(owing_clause(query.owing, query.round_id))
    return q


class SqlReadModels:
    WRITES: frozenset[str] = frozenset()

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def case_rows(self, query: CaseFilter) -> list[CaseRow]:
        dialect = self.conn.dialect.name
        order = _case_order(query, dialect)
        columns = (cases.c.id, cases.c.round_id, cases.c.unit_id, units.c.name, units.c.jurisdiction_id,
                   units.c.category, cases.c.state,
                   cases.c.version, cases.c.self_total, cases.c.verified_total, cases.c.recheck_total,
                   cases.c.rectification_due,
                   cases.c.updated_at)
        if query.sort == "id":
            # The cursor's page: a range scan in id order (of the round's index with a round) that
            # stops after LIMIT rows.
            q = (select(*columns)
                 .join(units, cases.c.unit_id == units.c.id).join(jurisdictions,
                                                                  units.c.jurisdiction_id == jurisdictions.c.id)
                 .where(cases.c.id > query.after_id, within(jurisdictions.c.path, query.within_path),
                        within(jurisdictions.c.path, query.filter_path))
                 .order_by(*order).limit(query.limit))
            if query.offset:
                q = q.offset(query.offset)
            q = _case_filters(q, query, dialect)
        else:
            # Any other order reads and sorts every case the filters keep: the ids alone (and the
            # key), with only the joins the filters and the key need, then the page's rows. A
            # deep offset keeps offset + limit of them in the sort, not as many whole rows.
            page = (_case_matches(select(cases.c.id), query, dialect, units_too=query.sort.endswith("unit"))
                    .order_by(*order).limit(query.limit))
            if query.offset:
                page = page.offset(query.offset)
            ids = page.subquery("page")
            q = (select(*columns).select_from(ids.join(cases, cases.c.id == ids.c.id)
                                              .join(units, cases.c.unit_id == units.c.id))
                 .order_by(*order))
        return [CaseRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12])
                for r in self.conn.execute(q)]

    def case_count(self, query: CaseFilter) -> int:
        """A round's cases filtered only by place, state, overdue and level: summed from the
        counts kept with every transition (``case_counts``: a few hundred rows for a province,
        not its 100,000 cases). Any other filter: counted on the case rows, joined to the units
        and places only for a filter on them."""
        if query.round_id and query.unit_id is None and not query.name and not query.category \
                and not query.missed and query.owing is None:
            q = (select(func.coalesce(func.sum(case_counts.c.n), 0))
                 .join(jurisdictions, jurisdictions.c.id == case_counts.c.jurisdiction_id)
                 .where(case_counts.c.round_id == query.round_id, within(jurisdictions.c.path, query.within_path),
                        within(jurisdictions.c.path, query.filter_path)))
            for column, value in ((case_counts.c.state, query.state), (case_counts.c.level, query.level)):
                if value:
                    q = q.where(column == value)
            if query.overdue is not None:
                q = q.where(case_counts.c.overdue.is_(query.overdue))
            return int(self.conn.execute(q).scalar_one())
        q = _case_matches(select(func.count()).select_from(cases), query, self.conn.dialect.name)
        return int(self.conn.execute(q).scalar_one())

    def case_scope(self, case_id: int) -> CaseScope | None:
        row = self.conn.execute(select(cases.c.id, cases.c.unit_id, cases.c.round_id, units.c.name,
                                       jurisdictions.c.path)
                                .join(units, units.c.id == cases.c.unit_id)
                                .join(jurisdictions, jurisdictions.c.id == units.c.jurisdiction_id)
                                .where(cases.c.id == case_id)).first()
        return None if row is None else CaseScope(*row)

    def unit_case_ids(self, unit_id: int) -> list[int]:
        return list(self.conn.execute(select(cases.c.id).where(cases.c.unit_id == unit_id)
                                      .order_by(cases.c.id)).scalars())

    def has_case_in(self, round_id: str, unit_id: int) -> bool:
        return self.conn.execute(select(cases.c.id).where(cases.c.round_id == round_id, cases.c.unit_id == unit_id)
                                 ).first() is not None

    def case_groups(self, round_id: str, root_path: str) -> list[CaseGroup]:
        """From the counts kept with every transition (``case_counts``), not the case rows."""
        rows = self.conn.execute(
            select(case_counts.c.jurisdiction_id, case_counts.c.state, case_counts.c.overdue, case_counts.c.missed,
                   func.sum(case_counts.c.n))
            .join(jurisdictions, jurisdictions.c.id == case_counts.c.jurisdiction_id)
            .where(case_counts.c.round_id == round_id, case_counts.c.n != 0, within(jurisdictions.c.path, root_path))
            .group_by(case_counts.c.jurisdiction_id, case_counts.c.state, case_counts.c.overdue,
                      case_counts.c.missed))
        return [CaseGroup(j, state, bool(overdue), tuple(missed.split(",")) if missed else (), int(n))
                for j, state, overdue, missed, n in rows]

    def agency_groups(self, year: int, root_path: str) -> list[AgencyGroup]:
        """From the counts kept with every change of a unit or a certification (``agency_counts``):
        a unit is certified by ``year`` when it counts as certified from that year or earlier (its
        cases are all in rounds of its own province)."""
        since = agency_counts.c.certified_since
        rows = self.conn.execute(
            select(agency_counts.c.jurisdiction_id, agency_counts.c.level, func.sum(agency_counts.c.n),
                   func.sum(sa_case((and_(since > 0, since <= year), agency_counts.c.n), else_=0)))
            .join(jurisdictions, jurisdictions.c.id == agency_counts.c.jurisdiction_id)
            .where(within(jurisdictions.c.path, root_path))
            .group_by(agency_counts.c.jurisdiction_id, agency_counts.c.level))
        return [AgencyGroup(j, level, int(n), int(c or 0)) for j, level, n, c in rows if n]

    def owing_cases(self, round_id: str, owing: Owing, within_path: str | None = None,
                    limit: int | None = None) -> list[OwingCase]:
        query = (select(*_OWING_COLUMNS).join(units, units.c.id == cases.c.unit_id)
                 .join(jurisdictions, jurisdictions.c.id == units.c.jurisdiction_id)
                 .where(owing_clause(owing, round_id), within(jurisdictions.c.path, within_path))
                 .order_by(cases.c.id))
        return [_owing(r) for r in self.conn.execute(query if limit is None else query.limit(limit))]

    def owing_count(self, round_id: str, owings: Sequence[Owing], within_path: str | None = None) -> int:
        if not owings:
            return 0
        if not any(o.contact_form_missing for o in owings):
            # by states alone: from the counts kept with every transition (a case has one state)
            states = sorted({state for o in owings for state in o.states})
            return int(self.conn.execute(
                select(func.coalesce(func.sum(case_counts.c.n), 0))
                .join(jurisdictions, jurisdictions.c.id == case_counts.c.jurisdiction_id)
                .where(case_counts.c.round_id == round_id, case_counts.c.state.in_(states),
                       within(jurisdictions.c.path, within_path))).scalar_one())
        query = select(func.count()).select_from(cases).where(or_(*(owing_clause(o, round_id) for o in owings)))
        if within_path is not None:
            query = query.where(cases.c.unit_id.in_(
                select(units.c.id).join(jurisdictions, jurisdictions.c.id == units.c.jurisdiction_id)
                .where(within(jurisdictions.c.path, within_path))))
        return int(self.conn.execute(query).scalar_one())

    def overdue_cases(self, round_id: str, milestone: str) -> list[OwingCase]:
        # The LIKE only narrows the rows read (the id may also stand in a miss's owed_in list, and
        # LIKE reads _ as any character); the misses themselves decide.
        rows = self.conn.execute(select(*_OWING_COLUMNS, cases.c.missed).join(units, units.c.id == cases.c.unit_id)
                                 .where(cases.c.round_id == round_id, cases.c.overdue.is_(True),
                                        cases.c.missed.contains(f'"{milestone}"', autoescape=True))
                                 .order_by(cases.c.id))
        return [_owing(r) for r in rows if any(m == milestone for m, _ in json.loads(r[-1] or "[]"))]

    def rectifications(self, round_id: str) -> list[OwingCase]:
        # By the partial index of cases in rectification (a round_id filter in SQL would make
        # the planner walk the round's whole (round_id, unit_id) index instead).
        rows = self.conn.execute(select(*_OWING_COLUMNS, cases.c.round_id).join(units, units.c.id == cases.c.unit_id)
                                 .where(cases.c.state == "rectification"))
        return [_owing(r) for r in rows if r[-1] == round_id]

    def case_states(self, case_ids: list[int]) -> dict[int, CaseReferent]:
        if not case_ids:
            return {}
        rows = self.conn.execute(
            select(cases.c.id, cases.c.state, cases.c.rectification_due, cases.c.verified_total, cases.c.contact_form,
                   cases.c.overdue, units.c.name, units.c.contacts, cases.c.held_title)
            .join(units, units.c.id == cases.c.unit_id).where(cases.c.id.in_(case_ids)))
        return {r[0]: CaseReferent(r[0], r[1], r[2], None if r[3] is None else Decimal(r[3]), bool(r[4]), bool(r[5]),
                                   r[6], list(r[7] or []), r[8]) for r in rows}

    def cases_by_id(self, case_ids: list[int]) -> list[OwingCase]:
        if not case_ids:
            return []
        rows = self.conn.execute(select(*_OWING_COLUMNS).join(units, units.c.id == cases.c.unit_id)
                                 .where(cases.c.id.in_(case_ids)).order_by(cases.c.id))
        return [_owing(r) for r in rows]

    def jurisdictions_with_cases(self, round_id: str) -> list[str]:
        return list(self.conn.execute(select(units.c.jurisdiction_id).join(cases, cases.c.unit_id == units.c.id)
                                      .where(cases.c.round_id == round_id).group_by(units.c.jurisdiction_id)
                                      .order_by(units.c.jurisdiction_id)).scalars())

    def timeline(self, round_ids: list[str]) -> list[TimelineRow]:
        """Every event of the rounds' cases and duty streams, and every mail sent, in time order."""
        rows: list[TimelineRow] = []
        names = dict(self.conn.execute(select(cases.c.id, units.c.name).join(units, units.c.id == cases.c.unit_id)
                                       .where(cases.c.round_id.in_(round_ids))).all())
        for e in self.conn.execute(select(events.c.case_id, events.c.type, events.c.occurred_at, events.c.payload)
                                   .where(events.c.case_id.in_(list(names))).order_by(events.c.occurred_at,
                                                                                      events.c.position)):
            payload = json.loads(e.payload)
            detail = e.type + (f" ({payload['milestone']})" if e.type == "DeadlineMissed"
                               else f" ({payload['total']})" if "total" in payload else "")
            rows.append(TimelineRow(e.occurred_at, f"#{e.case_id} {names[e.case_id]}", detail, ""))
        places = dict(self.conn.execute(select(jurisdictions.c.id, jurisdictions.c.name)).all())
        for d in self.conn.execute(select(duty_events.c.jurisdiction_id, duty_events.c.type, duty_events.c.occurred_at,
                                          duty_events.c.payload).where(duty_events.c.round_id.in_(round_ids))
                                   .order_by(duty_events.c.occurred_at, duty_events.c.position)):
            payload = json.loads(d.payload)
            waiting = f", {len(payload['cases'])} cases waiting" if payload.get("cases") else ""
            rows.append(TimelineRow(d.occurred_at, places.get(d.jurisdiction_id, d.jurisdiction_id),
                                    f"{d.type} ({payload['duty']}{waiting})", ""))
        for m in self.conn.execute(select(outbox.c.case_id, outbox.c.kind, outbox.c.milestone, outbox.c.sent_at,
                                          outbox.c.recipients)
                                   .where(outbox.c.status == "sent", outbox.c.round_id.in_(round_ids))
                                   .order_by(outbox.c.sent_at)):
            who = ", ".join(json.loads(m.recipients)) if m.recipients else ""
            case = f"#{m.case_id} {names.get(m.case_id, '')}" if m.case_id else "coordinator"
            rows.append(TimelineRow(m.sent_at, case, "", f"{m.kind} {m.milestone} → {who}"))
        return sorted(rows, key=lambda r: r.at)
