"""Score sheets of a case: the latest self-assessment, verification and recheck, scored."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from ..adapters.db.store import Database
from ..adapters.db.tables import Unit
from ..domain.rubric import Rubric, SheetScore, entries_as_points, score_sheet

_KINDS = {"SelfAssessmentRecorded": "self", "CaseVerified": "verified", "CaseRechecked": "recheck"}


@dataclass(frozen=True)
class CaseSheets:
    rubric: Rubric
    unit_name: str
    self: SheetScore | None
    verified: SheetScore | None
    recheck: SheetScore | None


def case_sheets(db: Database, case_id: int) -> CaseSheets:
    with db.reader() as uow:
        case = uow.get(case_id)
        rubric = uow.round_context(case.round_id).rubric
        events = uow.events(case_id)
        unit_name = uow.connection.execute(select(Unit.name).where(Unit.id == case.unit_id)).scalar_one()
    latest: dict[str, dict[str, Decimal]] = {}
    for e in events:
        if e.type in _KINDS:  # every version of the payload, in points
            latest[_KINDS[e.type]] = entries_as_points(e.payload, rubric)

    def scored(kind: str) -> SheetScore | None:
        entries = latest.get(kind)
        if entries is None:
            return None
        return score_sheet(rubric, entries, complete=False)

    return CaseSheets(rubric, unit_name, scored("self"), scored("verified"), scored("recheck"))


def export_case_sheet(db: Database, case_id: int, out: Path) -> CaseSheets:
    """The case's score sheet as .xlsx in its province's printed layout."""
    from ..adapters.score_sheet_xlsx import export_score_sheet, layout_for

    sheets = case_sheets(db, case_id)
    export_score_sheet(sheets.rubric, unit_name=sheets.unit_name, layout=layout_for(sheets.rubric),
                       self_score=sheets.self, verified_score=sheets.verified, recheck_score=sheets.recheck, out=out)
    return sheets
