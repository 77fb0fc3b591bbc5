"""The jurisdictions' duties in a round: who owes what and by when, recording one done, and
the history of a jurisdiction's duty stream.

A level's duty (a city's report, a filing) is owed by every jurisdiction of that level in
the round's province until it is recorded done; a bureau's duty (the evaluation) by each
jurisdiction for its own units' cases that wait for it. Misses are recorded by the sweep
(``service.deadlines``) on the jurisdiction's stream, never on the units' cases.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from ..adapters.db.duty_store import append, load_stream, stream_events, streams_of_round
from ..adapters.db.store import Database
from ..adapters.db.tables import Case, FilingBatch, Jurisdiction, Round, SpotCheck, Unit
from ..clock import require_aware
from ..domain.calendar import Calendar, Milestone
from ..domain.case import Actor
from ..domain.duties import DutyEvent, DutyStream, apply_duty, record_done
from ..domain.errors import ActionRefused, InvalidInput, NotFound, StorageUnavailable

LEVEL_NAMES = {"province": "省级", "city": "市级", "county": "县级", "bureau": "各级机关事务管理部门"}


@dataclass(frozen=True, slots=True)
class DutyRow:
    round_id: str
    jurisdiction_id: str
    jurisdiction_name: str
    duty: str
    name: str
    owed_by: str
    needs: str
    due_on: date
    status: str  # done, done_late, owed, overdue, clear (a bureau's duty with no case waiting)
    done_at: datetime | None
    done_by: str | None
    missed_on: date | None
    waiting: int  # cases waiting on the bureau (a bureau's duty)


def _round(conn: Connection, round_id: str) -> Any:
    row = conn.execute(select(Round.id, Round.year, Round.calendar_id, Round.province_id).where(Round.id == round_id)
                       ).first()
    if row is None:
        raise NotFound(f"round {round_id!r} does not exist", round_id=round_id)
    return row


def owners(conn: Connection, province_id: str, level: str) -> list[Any]:
    """The jurisdictions of ``level`` in the province (id, name, path, parent), in path order."""
    province = conn.execute(select(Jurisdiction.path).where(Jurisdiction.id == province_id)).scalar_one()
    return conn.execute(select(Jurisdiction.id, Jurisdiction.name, Jurisdiction.path, Jurisdiction.parent_id)
                        .where(Jurisdiction.level == level, Jurisdiction.path.startswith(province, autoescape=True))
                        .order_by(Jurisdiction.path)).all()


def waiting_cases(conn: Connection, round_id: str, duty: Milestone) -> dict[str, list[int]]:
    """A bureau's duty: the cases waiting for it, by the jurisdiction of their unit."""
    out: dict[str, list[int]] = {}
    for case_id, jurisdiction_id in conn.execute(
            select(Case.id, Unit.jurisdiction_id).join(Unit, Unit.id == Case.unit_id)
            .where(Case.round_id == round_id, Case.state.in_(sorted(duty.owes_states))).order_by(Case.id)):
        out.setdefault(jurisdiction_id, []).append(case_id)
    return out


def duty_board(db: Database, calendars: Any, round_id: str, within_path: str, today: date) -> list[DutyRow]:
    """Every duty of the round owed in the subtree at ``within_path``, with its status today."""
    with db.engine.connect() as conn:
        rnd = _round(conn, round_id)
        calendar: Calendar = calendars.get(rnd.calendar_id)
        streams = streams_of_round(conn, round_id)
        names = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.name)).all())
        paths = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.path)).all())
        rows: list[DutyRow] = []
        for duty in calendar.duties():
            due = duty.due_on(rnd.year)
            if duty.by_level:
                owing = [(o.id, 0) for o in owners(conn, rnd.province_id, duty.owed_by)]
            else:
                waiting = waiting_cases(conn, round_id, duty)
                with_cases = conn.execute(select(Unit.jurisdiction_id).join(Case, Case.unit_id == Unit.id)
                                          .where(Case.round_id == round_id).group_by(Unit.jurisdiction_id)
                                          .order_by(Unit.jurisdiction_id)).scalars().all()
                owing = [(j, len(waiting.get(j, ()))) for j in with_cases]
            for jurisdiction_id, count in owing:
                if not paths[jurisdiction_id].startswith(within_path):
                    continue
                status = streams.get(jurisdiction_id, DutyStream(round_id, jurisdiction_id)).status(duty.id)
                if duty.by_level:
                    state = ("done_late" if status.missed_on is not None else "done") if status.done_at else \
                        ("overdue" if today > due else "owed")
                else:
                    state = "clear" if count == 0 else ("overdue" if today > due else "owed")
                rows.append(DutyRow(round_id, jurisdiction_id, names[jurisdiction_id], duty.id, duty.name,
                                    duty.owed_by, duty.needs, due, state, status.done_at, status.done_by,
                                    status.missed_on, count))
    return sorted(rows, key=lambda r: (r.due_on, r.duty, paths[r.jurisdiction_id]))


def _subtree_ids(conn: Connection, table: Any, round_id: str, path: str) -> list[str]:
    return list(conn.execute(select(table.id).join(Jurisdiction, Jurisdiction.id == table.jurisdiction_id)
                             .where(table.round_id == round_id,
                                    Jurisdiction.path.startswith(path, autoescape=True))
                             .order_by(table.id)).scalars())


def record_duty(db: Database, calendars: Any, blobs: Any, round_id: str, jurisdiction_id: str, duty_id: str, *,
                actor: Actor, now: datetime, files: list[tuple[str, bytes]] = (), note: str | None = None
                ) -> DutyEvent:
    """Record that ``jurisdiction_id`` did ``duty_id`` of the round, with what the duty needs:
    its attachment (stored like evidence), or the round's filing batches or spot checks in its
    subtree, which are listed in the event. Refused, with nothing written, when the duty is not
    this jurisdiction's, is done already, or what it needs is missing."""
    require_aware(now, "now")
    with db.engine.connect() as conn:
        rnd = _round(conn, round_id)
        calendar: Calendar = calendars.get(rnd.calendar_id)
        duty = next((d for d in calendar.duties() if d.id == duty_id), None)
        if duty is None:
            known = ", ".join(f"{d.id} ({d.name})" for d in calendar.duties() if d.by_level) or "none"
            raise NotFound(f"round {round_id} has no duty {duty_id!r}; duties recorded done: {known}",
                           f"本轮没有“{duty_id}”这项工作", round_id=round_id, duty=duty_id)
        jurisdiction = conn.execute(select(Jurisdiction.level, Jurisdiction.path).where(
            Jurisdiction.id == jurisdiction_id)).first()
        if jurisdiction is None:
            raise NotFound(f"jurisdiction {jurisdiction_id!r} does not exist", jurisdiction_id=jurisdiction_id)
        if duty.by_level and (jurisdiction.level != duty.owed_by or jurisdiction_id not in
                              {o.id for o in owners(conn, rnd.province_id, duty.owed_by)}):
            raise ActionRefused(f"{duty.id} ({duty.name}) is owed by each {duty.owed_by} of {rnd.province_id}; "
                                f"{jurisdiction_id} is a {jurisdiction.level}",
                                f"“{duty.name}”由{LEVEL_NAMES.get(duty.owed_by, duty.owed_by)}承担",
                                duty=duty.id, jurisdiction_id=jurisdiction_id)
        batches = _subtree_ids(conn, FilingBatch, round_id, jurisdiction.path) \
            if duty.needs == "filing_batches" else []
        spot_checks = _subtree_ids(conn, SpotCheck, round_id, jurisdiction.path) \
            if duty.needs == "spot_checks" else []
    attachments = []
    problems = []
    for name, data in files:
        try:
            sha256, kind = blobs.check(data, name)
            attachments.append({"sha256": sha256, "filename": name, "size": len(data), "type": kind})
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput("attachment refused; nothing was recorded", problems, "附件不符合要求，未登记")
    due = duty.due_on(rnd.year)
    with db.write_connection() as conn:  # check against the stream as it is, then store the files
        stream = load_stream(conn, round_id, jurisdiction_id)
        event = record_done(stream, duty, actor=str(actor), now=now, due_on=due, attachments=attachments,
                            batches=batches, spot_checks=spot_checks, note=note)
        for name, data in files:
            try:
                blobs.put(data, name)
            except OSError as exc:
                raise StorageUnavailable(f"cannot store {name}: {exc.strerror or exc}; nothing was recorded",
                                         errno=exc.errno) from exc
        append(conn, stream, event, apply_duty(stream, event), now)
    return event


def duty_history(db: Database, round_id: str, jurisdiction_id: str) -> list[DutyEvent]:
    with db.engine.connect() as conn:
        _round(conn, round_id)
        return stream_events(conn, round_id, jurisdiction_id)


def duty_summary(db: Database, calendars: Any, round_id: str, within_path: str, today: date
                 ) -> dict[str, dict[str, int]]:
    """duty id → status → how many jurisdictions (for a round's summary)."""
    out: dict[str, dict[str, int]] = {}
    for row in duty_board(db, calendars, round_id, within_path, today):
        out.setdefault(row.duty, {})
        out[row.duty][row.status] = out[row.duty].get(row.status, 0) + 1
    return out
