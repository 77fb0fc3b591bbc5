"""The duties of jurisdictions: what a city or a province bureau owes in a round (its yearly
report, its filing with the province or the national bureau, the evaluation of its own units)
as a hash-chained stream of events per (round, jurisdiction), beside the units' cases.

A duty is a calendar milestone owed by a level or by the bureau (``domain.calendar``). The
stream records when a duty was done (with what it needs: an attachment, the filing batches,
the spot checks) and when its date passed while it was still owed. Reminders are outbox rows
(not events), as for cases.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from .calendar import Calendar, Milestone
from .dates import BUSINESS_TZ, business_date, date_zh
from .errors import ActionRefused, InvalidInput, Problem
from .events import GENESIS_HASH, Chained, canonical_json, chain_hash, to_payload_value, utc_iso

DONE = "DutyDone"
MISSED = "DutyMissed"
EVENT_TYPES = (DONE, MISSED)
NEEDS_NAMES = {"attachment": ("an attachment (the report or filing itself)", "附件（报告或备案材料）"),
               "filing_batches": ("a filing batch of the round", "本轮的备案批次"),
               "spot_checks": ("a spot check of the round", "本轮的抽查记录")}


def stream_key(round_id: str, jurisdiction_id: str) -> str:
    """What a duty event's hash names instead of a case id."""
    return f"{round_id}/{jurisdiction_id}"


@dataclass(frozen=True, slots=True)
class DutyEvent(Chained):
    round_id: str
    jurisdiction_id: str
    seq: int
    type: str
    actor: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    position: int | None = None
    payload_text: str | None = None

    def stream(self) -> str:
        return stream_key(self.round_id, self.jurisdiction_id)

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "round_id": self.round_id, "jurisdiction_id": self.jurisdiction_id,
                "seq": self.seq, "type": self.type, "actor": self.actor, "occurred_at": utc_iso(self.occurred_at),
                "payload": dict(self.payload), "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class DutyStatus:
    done_at: datetime | None = None
    done_by: str | None = None
    missed_on: date | None = None  # the day the miss was noticed

    def to_data(self) -> dict[str, Any]:
        return {"done_at": None if self.done_at is None else utc_iso(self.done_at), "done_by": self.done_by,
                "missed_on": None if self.missed_on is None else self.missed_on.isoformat()}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> DutyStatus:
        return cls(None if data.get("done_at") is None else datetime.fromisoformat(data["done_at"]),
                   data.get("done_by"),
                   None if data.get("missed_on") is None else date.fromisoformat(data["missed_on"]))


@dataclass(frozen=True, slots=True)
class DutyStream:
    """The projection of one (round, jurisdiction) stream."""

    round_id: str
    jurisdiction_id: str
    version: int = 0
    last_hash: str = GENESIS_HASH
    duties: Mapping[str, DutyStatus] = field(default_factory=dict)
    updated_at: datetime | None = None

    def status(self, duty: str) -> DutyStatus:
        return self.duties.get(duty, DutyStatus())

    def duties_data(self) -> str:
        return canonical_json({k: v.to_data() for k, v in sorted(self.duties.items())})


def _event(stream: DutyStream, type_: str, actor: str, now: datetime, payload: Mapping[str, Any]) -> DutyEvent:
    clean = {k: to_payload_value(v) for k, v in payload.items()}
    body = canonical_json(clean)
    seq = stream.version + 1
    at = utc_iso(now)
    return DutyEvent(stream.round_id, stream.jurisdiction_id, seq, type_, actor, datetime.fromisoformat(at), clean,
                     stream.last_hash,
                     chain_hash(stream_key(stream.round_id, stream.jurisdiction_id), seq, type_, actor, at, body,
                                stream.last_hash), payload_text=body)


def _when_zh(moment: datetime) -> str:
    """A moment as a clerk reads it: 2021年10月20日 10:00（北京时间）."""
    local = moment.astimezone(BUSINESS_TZ)
    return f"{date_zh(local.date())} {local:%H:%M}（北京时间）"


def record_done(stream: DutyStream, duty: Milestone, *, actor: str, now: datetime, due_on: date,
                attachments: Iterable[Mapping[str, Any]] = (), batches: Iterable[str] = (),
                spot_checks: Iterable[str] = (), note: str | None = None) -> DutyEvent:
    """The event that records ``duty`` done by the stream's jurisdiction, or an error saying
    why not (not a recordable duty, done already, what it needs is missing)."""
    if not duty.by_level:
        raise ActionRefused(f"{duty.id} ({duty.name}) is done by acting on the cases it is owed for, "
                            "not by recording it", f"“{duty.name}”随案件办理完成，无需登记", duty=duty.id)
    done_at = stream.status(duty.id).done_at
    if done_at is not None:
        raise ActionRefused(f"{duty.id} of {stream.jurisdiction_id} in round {stream.round_id} is already recorded "
                            f"done ({utc_iso(done_at)})",
                            f"{stream.jurisdiction_id} 在轮次 {stream.round_id} 的“{duty.name}”（{duty.id}）已于"
                            f"{_when_zh(done_at)}登记完成，不能重复登记",
                            duty=duty.id, jurisdiction_id=stream.jurisdiction_id)
    attachments, batches, spot_checks = list(attachments), sorted(batches), sorted(spot_checks)
    given = {"attachment": attachments, "filing_batches": batches, "spot_checks": spot_checks}
    if duty.needs in given and not given[duty.needs]:
        en, zh = NEEDS_NAMES[duty.needs]
        raise InvalidInput(f"{duty.id} is recorded done with {en}", [Problem(duty.needs, f"{en} is needed",
                                                                             f"需要{zh}")],
                           f"登记“{duty.name}”完成需要{zh}", duty=duty.id)
    if note is not None and len(note) > 2000:
        raise InvalidInput("note too long", [Problem("note", f"at most 2000 characters, got {len(note)}",
                                                     f"最多2000字，实际{len(note)}字")],
                           f"备注过长：最多2000字，实际{len(note)}字")
    payload: dict[str, Any] = {"duty": duty.id, "due_on": due_on, "late": business_date(now) > due_on}
    if attachments:
        payload["attachments"] = [dict(a) for a in attachments]
    if batches:
        payload["filing_batches"] = batches
    if spot_checks:
        payload["spot_checks"] = spot_checks
    if note:
        payload["note"] = note.strip()
    return _event(stream, DONE, actor, now, payload)


def record_missed(stream: DutyStream, duty: Milestone, *, actor: str, now: datetime, due_on: date,
                  noticed_on: date, cases: Iterable[int] = ()) -> DutyEvent | None:
    """The miss of ``duty`` (None when it is done or its miss is recorded already)."""
    status = stream.status(duty.id)
    if status.done_at is not None or status.missed_on is not None:
        return None
    payload: dict[str, Any] = {"duty": duty.id, "due_on": due_on, "noticed_on": noticed_on}
    waiting = sorted(cases)
    if waiting:
        payload["cases"] = waiting
    return _event(stream, MISSED, actor, now, payload)


class CorruptDutyHistory(Exception):
    """The duty events do not describe a possible history."""


def apply_duty(stream: DutyStream, event: DutyEvent) -> DutyStream:
    if event.seq != stream.version + 1:
        raise CorruptDutyHistory(f"duty stream {stream_key(stream.round_id, stream.jurisdiction_id)}: "
                                 f"event #{event.seq} follows #{stream.version}")
    if event.type not in EVENT_TYPES:
        raise CorruptDutyHistory(f"unknown duty event type {event.type!r}")
    duty = event.payload["duty"]
    status = stream.status(duty)
    if event.type == DONE:
        if status.done_at is not None:
            raise CorruptDutyHistory(f"{duty} recorded done twice")
        status = replace(status, done_at=event.occurred_at, done_by=event.actor)
    else:
        status = replace(status, missed_on=date.fromisoformat(event.payload["noticed_on"]))
    return replace(stream, version=event.seq, last_hash=event.hash, duties={**stream.duties, duty: status},
                   updated_at=event.occurred_at)


def waiting_on(calendar: Calendar, year: int, state: str, today: date) -> list[dict[str, Any]]:
    """What a case in ``state`` waits for from its bureau (the evaluation, say), and how late:
    a case past the bureau's date shows it waits on the bureau, not that the unit missed."""
    out = []
    for duty in calendar.duties():
        if duty.by_bureau and state in duty.owes_states:
            due = duty.due_on(year)
            out.append({"party": "bureau", "duty": duty.id, "name": duty.name, "due_on": due,
                        "days_overdue": max((today - due).days, 0)})
    return out
