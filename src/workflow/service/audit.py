"""``audit verify``: every hash chain intact, every case row equal to its replay."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..domain.case import CaseState, CorruptHistory, apply
from ..domain.duties import CorruptDutyHistory, DutyEvent, DutyStream, apply_duty, stream_key
from ..domain.events import GENESIS_HASH, Event
from ..domain.rubric import Rubric
from .ports import EventSource


@dataclass(frozen=True, slots=True)
class Finding:
    case_id: int | str  # a case id, or a duty stream's key (round/jurisdiction)
    seq: int | None  # the bad event, or None when the row itself is wrong
    what: str
    kind: str = "case"  # or "duties"

    def __str__(self) -> str:
        name = "case" if self.kind == "case" else "duty stream"
        where = f"{name} {self.case_id} event #{self.seq}" if self.seq is not None else f"{name} {self.case_id}"
        return f"{where}: {self.what}"


@dataclass
class AuditReport:
    cases: int = 0
    events: int = 0
    duty_streams: int = 0
    duty_events: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def _grouped(events: Iterator[Event]) -> Iterator[tuple[int, list[Event]]]:
    current: list[Event] = []
    for event in events:
        if current and event.case_id != current[0].case_id:
            yield current[0].case_id, current
            current = []
        current.append(event)
    if current:
        yield current[0].case_id, current


def _check_chain(case_id: int, events: list[Event], rubric: Rubric | None = None
                 ) -> tuple[CaseState | None, Finding | None]:
    state: CaseState | None = None
    prev = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            missing = f"event #{expected_seq} is missing" if event.seq > expected_seq else "duplicate sequence number"
            return state, Finding(case_id, event.seq, f"follows #{expected_seq - 1}: {missing}")
        if event.prev_hash != prev:
            return state, Finding(case_id, event.seq, "previous-hash link does not match the event before it")
        if event.expected_hash() != event.hash:
            return state, Finding(case_id, event.seq, f"{event.type}: stored hash does not match its content (altered)")
        try:
            state = apply(state, event, rubric)
        except CorruptHistory as exc:
            return state, Finding(case_id, event.seq, str(exc))
        prev = event.hash
    return state, None


_COMPARED = ("round_id", "unit_id", "state", "version", "last_hash", "carried_over_from", "self_total",
             "verified_total", "recheck_total", "passed", "rectification_due", "self_entries", "evidence", "missed",
             "overdue", "documents", "contact_form")


def verify(source: EventSource) -> AuditReport:
    """Stream every case and every event (both in case order) and check them; then every
    jurisdiction's duty stream the same way."""
    report = AuditReport()
    rubrics: dict[str, Rubric] = {}

    def rubric_of(round_id: str) -> Rubric:  # a version-1 sheet is read with its round's rubric
        if round_id not in rubrics:
            rubrics[round_id] = source.rubric_of(round_id)
        return rubrics[round_id]

    cases = iter(source.all_cases())
    groups = _grouped(iter(source.all_events()))
    row = next(cases, None)
    group = next(groups, None)
    while row is not None or group is not None:
        if group is not None and (row is None or group[0] < row.id):
            report.events += len(group[1])
            report.findings.append(Finding(group[0], None, f"{len(group[1])} events but no case row"))
            group = next(groups, None)
            continue
        assert row is not None
        report.cases += 1
        if group is None or group[0] > row.id:
            report.findings.append(Finding(row.id, None, "case row has no events"))
            row = next(cases, None)
            continue
        events = group[1]
        report.events += len(events)
        replayed, finding = _check_chain(row.id, events, rubric_of(row.round_id))
        if finding is not None:
            report.findings.append(finding)
        elif replayed is not None:
            diffs = [f"{name} is {getattr(row, name)!r}, replay gives {getattr(replayed, name)!r}"
                     for name in _COMPARED if getattr(row, name) != getattr(replayed, name)]
            if diffs:
                report.findings.append(Finding(row.id, None, "case row differs from the replay of its events: "
                                               + "; ".join(diffs)))
        row = next(cases, None)
        group = next(groups, None)
    _verify_duties(source, report)
    return report


def _verify_duties(source: EventSource, report: AuditReport) -> None:
    streams = {(s.round_id, s.jurisdiction_id): s for s in source.all_duty_streams()}
    grouped: dict[tuple[str, str], list[DutyEvent]] = {}
    for event in source.all_duty_events():
        grouped.setdefault((event.round_id, event.jurisdiction_id), []).append(event)
    for key in sorted(set(streams) | set(grouped)):
        name = stream_key(*key)
        events = grouped.get(key, [])
        report.duty_streams += 1
        report.duty_events += len(events)
        row = streams.get(key)
        if row is None:
            report.findings.append(Finding(name, None, f"{len(events)} events but no stream row", "duties"))
            continue
        state, prev = DutyStream(*key), GENESIS_HASH
        bad = None
        for expected_seq, event in enumerate(events, start=1):
            if event.seq != expected_seq:
                bad = Finding(name, event.seq, f"follows #{expected_seq - 1}: an event is missing or doubled", "duties")
            elif event.prev_hash != prev:
                bad = Finding(name, event.seq, "previous-hash link does not match the event before it", "duties")
            elif event.expected_hash() != event.hash:
                bad = Finding(name, event.seq, f"{event.type}: stored hash does not match its content (altered)",
                              "duties")
            else:
                try:
                    state = apply_duty(state, event)
                except (CorruptDutyHistory, KeyError, ValueError) as exc:
                    bad = Finding(name, event.seq, str(exc), "duties")
            if bad is not None:
                break
            prev = event.hash
        if bad is not None:
            report.findings.append(bad)
            continue
        diffs = [f"{what} is {mine!r}, replay gives {theirs!r}" for what, mine, theirs in (
            ("version", row.version, state.version), ("last_hash", row.last_hash, state.last_hash),
            ("duties", row.duties_data(), state.duties_data())) if mine != theirs]
        if diffs:
            report.findings.append(Finding(name, None, "stream row differs from the replay of its events: "
                                           + "; ".join(diffs), "duties"))
