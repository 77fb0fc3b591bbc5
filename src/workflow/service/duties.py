"""The jurisdictions' duties in a round: who owes what and by when, recording one done, and
the history of a jurisdiction's duty stream.

A level's duty (a city's report, a filing) is owed by every jurisdiction of that level in
the round's province until it is recorded done; a bureau's duty (the evaluation) by each
jurisdiction for its own units' cases that wait for it. Misses are recorded by the sweep
(``service.deadlines``) on the jurisdiction's stream, never on the units' cases.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ..domain.calendar import OWED_BY_NAMES, Calendar, Milestone
from ..domain.case import Actor
from ..domain.dates import require_aware
from ..domain.duties import DutyEvent, DutyStream, apply_duty, record_done
from ..domain.errors import ActionRefused, InvalidInput, NotFound, Problem, StorageUnavailable
from ..domain.lifecycle import Owing
from .ports import Calendars, CaseStore, EvidenceBlobs, JurisdictionRecord, RoundRecord, Storage

LEVEL_NAMES = OWED_BY_NAMES


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


def round_of(db: Storage, round_id: str) -> RoundRecord:
    rnd = db.rounds.round(round_id)
    if rnd is None:
        raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
    return rnd


def owners(db: Storage | CaseStore, rnd: RoundRecord, level: str) -> list[JurisdictionRecord]:
    """The jurisdictions of ``level`` in the round's province, in path order."""
    return sorted((j for j in db.directory.jurisdictions(rnd.province_path) if j.level == level),
                  key=lambda j: j.path)


def waiting_cases(db: Storage | CaseStore, round_id: str, duty: Milestone) -> dict[str, list[int]]:
    """A bureau's duty: the cases waiting for it, by the jurisdiction of their unit."""
    out: dict[str, list[int]] = {}
    for case in db.read.owing_cases(round_id, Owing(tuple(sorted(duty.owes_states)))):
        out.setdefault(case.jurisdiction_id, []).append(case.case_id)
    return out


def _row(rnd: RoundRecord, duty: Milestone, jurisdiction: JurisdictionRecord, stream: DutyStream,
         waiting: int, today: date) -> DutyRow:
    due = duty.due_on(rnd.year)
    status = stream.status(duty.id)
    if duty.by_level:
        state = ("done_late" if status.missed_on is not None else "done") if status.done_at else \
            ("overdue" if today > due else "owed")
    else:
        state = "clear" if waiting == 0 else ("overdue" if today > due else "owed")
    return DutyRow(rnd.id, jurisdiction.id, jurisdiction.name, duty.id, duty.name, duty.owed_by, duty.needs, due,
                   state, status.done_at, status.done_by, status.missed_on, waiting)


def duty_board(db: Storage, calendars: Calendars, round_id: str, within_path: str, today: date) -> list[DutyRow]:
    """Every duty of the round owed in the subtree at ``within_path``, with its status today."""
    rnd = round_of(db, round_id)
    calendar: Calendar = calendars.get(rnd.calendar_id)
    streams = db.duties.streams(round_id)
    jurisdictions = {j.id: j for j in db.directory.jurisdictions()}
    # the round's cases by jurisdiction and state, from the kept counts (not the 100,000 case rows)
    groups = [g for g in db.read.case_groups(round_id, rnd.province_path) if g.count]
    with_cases = sorted({g.jurisdiction_id for g in groups})
    rows: list[DutyRow] = []
    for duty in calendar.duties():
        if duty.by_level:
            owing = [(j.id, 0) for j in owners(db, rnd, duty.owed_by)]
        else:  # a bureau's duty: the cases waiting for it (in one of the states that owe it)
            waiting: Counter[str] = Counter()
            for g in groups:
                if g.state in duty.owes_states:
                    waiting[g.jurisdiction_id] += g.count
            owing = [(j, waiting.get(j, 0)) for j in with_cases]
        for jurisdiction_id, count in owing:
            jurisdiction = jurisdictions[jurisdiction_id]
            if jurisdiction.path.startswith(within_path):
                stream = streams.get(jurisdiction_id, DutyStream(round_id, jurisdiction_id))
                rows.append(_row(rnd, duty, jurisdiction, stream, count, today))
    return sorted(rows, key=lambda r: (r.due_on, r.duty, jurisdictions[r.jurisdiction_id].path))


def _duty(calendar: Calendar, round_id: str, duty_id: str) -> Milestone:
    duty = next((d for d in calendar.duties() if d.id == duty_id), None)
    if duty is None:
        known = ", ".join(f"{d.id} ({d.name})" for d in calendar.duties() if d.by_level) or "none"
        known_zh = "、".join(f"{d.name}（{d.id}）" for d in calendar.duties() if d.by_level) or "无"
        raise NotFound(f"round {round_id} has no duty {duty_id!r}; duties recorded done: {known}",
                       f"轮次 {round_id} 没有 {duty_id!r} 这项工作；可登记完成的工作：{known_zh}",
                       round_id=round_id, duty=duty_id)
    return duty


def _attachments(blobs: EvidenceBlobs, files: list[tuple[str, bytes]]) -> list[dict[str, object]]:
    attachments, problems = [], []
    for name, data in files:
        try:
            sha256, kind = blobs.check(data, name)
            attachments.append({"sha256": sha256, "filename": name, "size": len(data), "type": kind})
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput("attachment refused; nothing was recorded", problems,
                           f"附件不符合要求，未登记：{_listed_zh(problems)}")
    return attachments


def _owed_by_zh(level: str) -> str:
    """省级地区, 市级地区 ... (the bureaus as they are)."""
    name = LEVEL_NAMES.get(level, level)
    return name if level == "bureau" or name == level else f"{name}地区（{level}）"


def _listed_zh(problems: list[Problem]) -> str:
    return "；".join(f"{p.where}：{p.zh or p.what}" for p in problems)


def record_duty(db: Storage, calendars: Calendars, blobs: EvidenceBlobs, round_id: str, jurisdiction_id: str,
                duty_id: str, *, actor: Actor, now: datetime, files: Sequence[tuple[str, bytes]] = (),
                note: str | None = None) -> DutyEvent:
    """Record that ``jurisdiction_id`` did ``duty_id`` of the round, with what the duty needs:
    its attachment (stored like evidence), or the round's filing batches or spot checks in its
    subtree, which are listed in the event. Refused, with nothing written, when the duty is not
    this jurisdiction's, is done already, or what it needs is missing."""
    require_aware(now, "now")
    rnd = round_of(db, round_id)
    duty = _duty(calendars.get(rnd.calendar_id), round_id, duty_id)
    jurisdiction = db.directory.jurisdiction(jurisdiction_id)
    if jurisdiction is None:
        raise NotFound(f"jurisdiction {jurisdiction_id!r} does not exist", f"地区 {jurisdiction_id!r} 不存在",
                       jurisdiction_id=jurisdiction_id)
    if duty.by_level and (jurisdiction.level != duty.owed_by or
                          jurisdiction_id not in {j.id for j in owners(db, rnd, duty.owed_by)}):
        raise ActionRefused(f"{duty.id} ({duty.name}) is owed by each {duty.owed_by} of {rnd.province_id}; "
                            f"{jurisdiction_id} is a {jurisdiction.level}",
                            f"“{duty.name}”（{duty.id}）由 {rnd.province_id} 的各{_owed_by_zh(duty.owed_by)}承担；"
                            f"{jurisdiction_id} 是{_owed_by_zh(jurisdiction.level)}",
                            duty=duty.id, jurisdiction_id=jurisdiction_id)
    batches = [f.id for f in db.oversight.filings(round_id, jurisdiction.path)] \
        if duty.needs == "filing_batches" else []
    spot_checks = [s.id for s in db.oversight.spot_checks(round_id, jurisdiction.path)] \
        if duty.needs == "spot_checks" else []
    attachments = _attachments(blobs, list(files))
    with db.unit_of_work(core=True) as uow:  # check against the stream as it is, then store the files
        stream = uow.duties.stream(round_id, jurisdiction_id)
        event = record_done(stream, duty, actor=str(actor), now=now, due_on=duty.due_on(rnd.year),
                            attachments=attachments, batches=sorted(batches), spot_checks=sorted(spot_checks),
                            note=note)
        for name, data in files:
            try:
                blobs.put(data, name)
            except OSError as exc:
                raise StorageUnavailable(f"cannot store {name}: {exc.strerror or type(exc).__name__}; "
                                         f"nothing was recorded",
                                         f"无法保存 {name}（{exc.strerror or type(exc).__name__}），未登记",
                                         errno=exc.errno) from exc
        uow.duties.append(stream, event, apply_duty(stream, event), now)
        uow.commit()
    return event


def duty_history(db: Storage, round_id: str, jurisdiction_id: str) -> list[DutyEvent]:
    round_of(db, round_id)
    return db.duties.events(round_id, jurisdiction_id)


def duty_summary(db: Storage, calendars: Calendars, round_id: str, within_path: str, today: date
                 ) -> dict[str, dict[str, int]]:
    """duty id → status → how many jurisdictions (for a round's summary)."""
    out: dict[str, dict[str, int]] = {}
    for row in duty_board(db, calendars, round_id, within_path, today):
        out.setdefault(row.duty, {})
        out[row.duty][row.status] = out[row.duty].get(row.status, 0) + 1
    return out
