"""Score sheets of a case: the latest self-assessment, verification and recheck, scored."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..domain.rubric import Rubric, SheetScore, entries_as_points, score_sheet
from .cases import read_case
from .ports import Storage

_KINDS = {"SelfAssessmentRecorded": "self", "CaseVerified": "verified", "CaseRechecked": "recheck"}


@dataclass(frozen=True)
class CaseSheets:
    rubric: Rubric
    unit_name: str
    self: SheetScore | None
    verified: SheetScore | None
    recheck: SheetScore | None
    case_id: int | None = None  # printed on the sheet, so that a filled-in sheet comes back to its case
    round_id: str | None = None


def case_sheets(db: Storage, case_id: int) -> CaseSheets:
    found = read_case(db, case_id, events=True)
    case, rubric, events = found.case, found.ctx.rubric, found.events
    unit = db.directory.unit(case.unit_id)
    assert unit is not None
    latest: dict[str, dict[str, Decimal]] = {}
    for e in events:
        if e.type in _KINDS:  # every version of the payload, in points
            latest[_KINDS[e.type]] = entries_as_points(e.payload, rubric)

    def scored(kind: str) -> SheetScore | None:
        entries = latest.get(kind)
        if entries is None:
            return None
        return score_sheet(rubric, entries, complete=False)

    return CaseSheets(rubric, unit.name, scored("self"), scored("verified"), scored("recheck"), case.id, case.round_id)
