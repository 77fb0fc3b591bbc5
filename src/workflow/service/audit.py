"""``audit verify``: every hash chain intact, every case row equal to its replay, every filing
batch and the ``CaseFiled`` events that name it in agreement. (What the database itself cannot
show — a chain cut short or rewritten with every hash recomputed — is checked against the signed
checkpoints kept outside it: ``service/checkpoints.py``.)"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..domain.case import CaseState, CorruptHistory, apply
from ..domain.duties import CorruptDutyHistory, DutyEvent, DutyStream, apply_duty, stream_key
from ..domain.events import GENESIS_HASH, Event
from ..domain.operator import OperatorEvent
from ..domain.rubric import Rubric
from .ports import EventSource

_NAMES = {"case": "case", "duties": "duty stream", "filing": "filing batch", "checkpoint": "checkpoint",
          "operator": "operator stream", "counts": "progress counts"}


@dataclass(frozen=True, slots=True)
class Finding:
    # a case id, a duty stream's key (round/jurisdiction), a filing batch's id, or a checkpoint
    # ("#3"; "directory": the checkpoints as a whole)
    case_id: int | str
    seq: int | None  # the bad event, or None when the row itself is wrong
    what: str
    kind: str = "case"  # or "duties", "filing", "checkpoint"

    def __str__(self) -> str:
        name = _NAMES.get(self.kind, self.kind)
        where = f"{name} {self.case_id} event #{self.seq}" if self.seq is not None else f"{name} {self.case_id}"
        return f"{where}: {self.what}"


@dataclass
class AuditReport:
    cases: int = 0
    events: int = 0
    duty_streams: int = 0
    duty_events: int = 0
    operator_streams: int = 0
    operator_events: int = 0
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


def sequence_gap(expected: int, seq: int) -> str:
    """What is wrong when the event numbered ``seq`` comes where ``expected`` should."""
    if seq < expected:
        return f"event #{seq} again after #{expected - 1} (a duplicate, or out of order)"
    missing = f"event #{expected} is missing" if seq == expected + 1 else f"events #{expected}–#{seq - 1} are missing"
    return f"{missing}: the chain starts at #{seq}" if expected == 1 else f"{missing}: #{expected - 1} is followed " \
                                                                          f"by #{seq}"


def _check_chain(case_id: int, events: list[Event], rubric: Rubric | None = None
                 ) -> tuple[CaseState | None, Finding | None]:
    state: CaseState | None = None
    prev = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return state, Finding(case_id, event.seq, sequence_gap(expected_seq, event.seq))
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


def verify(source: EventSource, *, scoped: bool = False) -> AuditReport:
    """Stream every case and every event (both in case order) and check them; then every
    jurisdiction's duty stream the same way, and the filing batches against the ``CaseFiled``
    events. ``scoped``: ``source`` is one subtree (a batch may list cases outside it)."""
    report = AuditReport()
    filed: dict[int, list[tuple[int, str | None]]] = {}  # case → (seq, batch named) of its CaseFiled events
    seen: set[int] = set()
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
        seen.add(row.id)
        if group is None or group[0] > row.id:
            report.findings.append(Finding(row.id, None, "case row has no events"))
            row = next(cases, None)
            continue
        events = group[1]
        report.events += len(events)
        filed[row.id] = [(e.seq, e.payload.get("batch")) for e in events if e.type == "CaseFiled"]
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
    _verify_operator(source, report)
    _verify_filings(source, report, filed, seen, scoped)
    for i, line in enumerate(source.count_differences(), start=1):
        report.findings.append(Finding(f"#{i}", None, f"{line} (repair: workflow db recount --repair)", "counts"))
    return report


_BATCH_ID = re.compile(r"-filing-\d+$")  # the ids ``service/oversight.file_round`` gives its batches


def _verify_filings(source: EventSource, report: AuditReport, filed: dict[int, list[tuple[int, str | None]]],
                    seen: set[int], scoped: bool) -> None:
    """Every case a batch lists has a ``CaseFiled`` event naming the batch; every ``CaseFiled``
    event naming a batch of this system (``<round>-filing-<n>``) names one that exists and lists
    the case. (A case filed by hand may name a reference from outside the system, or none.)"""
    batches = {batch.id: batch for batch in source.all_filings()}
    for batch in batches.values():
        for listed in batch.cases:
            case_id = listed.get("case_id")
            if case_id not in seen:
                if not scoped:
                    report.findings.append(Finding(batch.id, None, f"lists case {case_id}, which does not exist",
                                                   "filing"))
                continue
            if all(named != batch.id for _, named in filed.get(case_id, ())):
                report.findings.append(Finding(case_id, None, f"filing batch {batch.id} lists this case, but no "
                                                              "CaseFiled event of the case names that batch"))
    for case_id, events in sorted(filed.items()):
        for seq, named in events:
            if not isinstance(named, str):
                continue
            found = batches.get(named)
            if found is None and _BATCH_ID.search(named):
                report.findings.append(Finding(case_id, seq, f"CaseFiled names filing batch {named}, which does "
                                                             "not exist"))
            elif found is not None and all(c.get("case_id") != case_id for c in found.cases):
                report.findings.append(Finding(case_id, seq, f"CaseFiled names filing batch {named}, which does "
                                                             "not list this case"))


def link_finding(name: str, kind: str, event: DutyEvent | OperatorEvent, expected_seq: int,
                 prev: str) -> Finding | None:
    """What is wrong with a stream's event as a link of its chain (its number, its link to the
    one before, its hash of its content); None when nothing is."""
    if event.seq != expected_seq:
        return Finding(name, event.seq, sequence_gap(expected_seq, event.seq), kind)
    if event.prev_hash != prev:
        return Finding(name, event.seq, "previous-hash link does not match the event before it", kind)
    if event.expected_hash() != event.hash:
        return Finding(name, event.seq, f"{event.type}: stored hash does not match its content (altered)", kind)
    return None


def _verify_operator(source: EventSource, report: AuditReport) -> None:
    """Each operator stream: numbered from 1 without a gap, each event linked to the one before
    and its hash equal to its content's (the streams have no projection to replay)."""
    current: str | None = None
    prev, expected_seq, broken = GENESIS_HASH, 1, False
    for event in source.all_operator_events():
        if event.stream_name != current:
            current, prev, expected_seq, broken = event.stream_name, GENESIS_HASH, 1, False
            report.operator_streams += 1
        report.operator_events += 1
        if broken:
            continue
        bad = link_finding(event.stream(), "operator", event, expected_seq, prev)
        if bad is not None:
            report.findings.append(bad)
            broken = True
            continue
        prev, expected_seq = event.hash, expected_seq + 1


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
            bad = link_finding(name, "duties", event, expected_seq, prev)
            if bad is None:
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
