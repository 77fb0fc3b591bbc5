"""The workbooks the system writes, from a realistic round: Shanxi 2021 in October (35
provincial units: a few assessed, one verified below the pass mark and in rectification, one
certified, the rest late after the October sweep) and a Hunan round of 80 units beside it, so
that the case list runs over several pages."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workflow.adapters.case_list_xlsx import case_list_xlsx
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import upgrade
from workflow.adapters.db.store import Database
from workflow.adapters.progress_xlsx import progress_xlsx
from workflow.adapters.score_sheet_xlsx import export_score_sheet, layout_for
from workflow.domain.rubric import Rubric
from workflow.service.cases import perform_action
from workflow.service.deadlines import sweep
from workflow.service.queries import list_cases
from workflow.service.reports import lagging_units, progress
from workflow.service.sheets import CaseSheets, case_sheets

from ..support import CALENDARS, COORDINATOR, RUBRICS, open_hunan, open_shanxi, ready_to_submit, sheet_for, unit_actor

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
AFTER_DEADLINE = datetime(2021, 10, 21, 2, 0, tzinfo=UTC)
ROUND = "shanxi-2021"
SHEET_CASE = 1
NAMES = ("score-sheet", "progress", "case-list")


@dataclass(frozen=True)
class Workbooks:
    """The three workbooks and what they were written from."""

    score_sheet: Path
    progress: Path
    case_list: Path
    sheets: CaseSheets
    milestone_names: dict[str, str]
    cases: int

    @property
    def rubric(self) -> Rubric:
        return self.sheets.rubric

    def files(self) -> list[Path]:
        return [self.score_sheet, self.progress, self.case_list]


def build_world(db: Database, folder: Path) -> None:
    rubric = RUBRICS.get("shanxi-2020")
    open_shanxi(db, NOW)
    coordinator = COORDINATOR
    for case_id, total in ((1, 85), (2, 92), (3, 88), (4, 81), (5, 95), (6, 79)):
        ready_to_submit(db, case_id, case_id, total, NOW)
    for case_id in (1, 2):
        perform_action(db, case_id, "submit", None, unit_actor(case_id), NOW)
    perform_action(db, 1, "verify", {"entries": sheet_for(rubric, "78.5")}, coordinator, NOW)
    perform_action(db, 1, "order_rectification", None, coordinator, NOW)
    perform_action(db, 2, "verify", {"entries": sheet_for(rubric, 90)}, coordinator, NOW)
    perform_action(db, 2, "certify", None, coordinator, NOW)
    sweep(db, CALENDARS, AFTER_DEADLINE)  # the late ones: 滞后单位
    open_hunan(db, NOW, folder, units=80)


def write_workbooks(db: Database, folder: Path) -> Workbooks:
    """Each workbook as the system writes it (the score sheet as a case's: its id and round shown)."""
    sheets = case_sheets(db, SHEET_CASE)
    score_sheet = folder / "score-sheet.xlsx"
    export_score_sheet(sheets.rubric, unit_name=sheets.unit_name, layout=layout_for(sheets.rubric),
                       self_score=sheets.self, verified_score=sheets.verified, recheck_score=sheets.recheck,
                       out=score_sheet, case_id=SHEET_CASE, round_id=ROUND)
    rnd = db.rounds.round(ROUND)
    assert rnd is not None
    names = {m.id: m.name for m in CALENDARS.get(rnd.calendar_id).milestones}
    report = progress(db, ROUND, rnd.province_path)
    progress_file = folder / "progress.xlsx"
    progress_xlsx(report, progress_file, lagging_units(db, CALENDARS, ROUND, rnd.province_path), names)
    rows = list_cases(db, limit=1000)
    case_list = folder / "case-list.xlsx"
    with case_list.open("wb") as out:
        case_list_xlsx(rows, out, "案件清单：全部轮次")
    return Workbooks(score_sheet, progress_file, case_list, sheets, names, len(rows))


def fresh_database(folder: Path, template: Path | None = None) -> Database:
    """A migrated SQLite file in ``folder`` (a copy of ``template`` when given)."""
    path = folder / "workflow.db"
    if template is not None:
        shutil.copy(template, path)
    engine = make_engine(f"sqlite:///{path}")
    if template is None:
        upgrade(engine)
    return Database(engine)


def print_all(folder: Path, template: Path | None = None) -> tuple[Workbooks, list[Path]]:
    """The world's workbooks written in ``folder`` and printed to PDF by LibreOffice (one run)."""
    from .rendering import to_pdf

    db = fresh_database(folder, template)
    try:
        build_world(db, folder)
        books = write_workbooks(db, folder)
    finally:
        db.engine.dispose()
    return books, to_pdf(books.files(), folder / "pdf", folder / "libreoffice-profile")
