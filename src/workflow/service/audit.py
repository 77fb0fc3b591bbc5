"""``audit verify``: every hash chain intact, every case row equal to its replay."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from ..domain.case import CaseState, CorruptHistory, apply
from ..domain.events import GENESIS_HASH, Event
from .ports import EventSource


@dataclass(frozen=True, slots=True)
class Finding:
    case_id: int
    seq: int | None  # the bad event, or None when the case row itself is wrong
    what: str

    def __str__(self) -> str:
        where = f"case {self.case_id} event #{self.seq}" if self.seq is not None else f"case {self.case_id}"
        return f"{where}: {self.what}"


@dataclass
class AuditReport:
    cases: int = 0
    events: int = 0
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


def _check_chain(case_id: int, events: list[Event]) -> tuple[CaseState | None, Finding | None]:
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
            state = apply(state, event)
        except CorruptHistory as exc:
            return state, Finding(case_id, event.seq, str(exc))
        prev = event.hash
    return state, None


_COMPARED = ("round_id", "unit_id", "state", "version", "last_hash", "carried_over_from", "self_total",
             "verified_total", "recheck_total", "passed", "rectification_due", "self_entries", "evidence", "missed", "overdue")


def verify(source: EventSource) -> AuditReport:
    """Stream every case and every event (both in case order) and check them."""
    report = AuditReport()
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
        replayed, finding = _check_chain(row.id, events)
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
    return report
