"""Files in and out, around the services: rosters and evidence read from people's files and
handed to the services; score sheets and reports written in the spreadsheet layouts bureaus
print (for the CLI, the API and the simulator)."""
from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from .adapters.progress_xlsx import progress_xlsx
from .adapters.rosters import DEFAULT_LIMITS, SheetLimits, read_file, read_jurisdictions_csv, stream_units
from .adapters.score_sheet_xlsx import export_score_sheet, layout_for
from .domain.case import Actor
from .domain.errors import InvalidInput, Problem
from .service.cases import ActionResult
from .service.directory import ImportResult, import_jurisdiction_rows, import_unit_rows
from .service.evidence import EvidenceQuota, attach_bytes
from .service.ports import EvidenceBlobs, Storage
from .service.reports import Lagging, Progress
from .service.sheets import CaseSheets


def import_jurisdictions(db: Storage, path: Path, *, actor: Actor, now: datetime,
                         limits: SheetLimits = DEFAULT_LIMITS) -> ImportResult:
    """Import jurisdictions from CSV (id, name, level, parent); all rows or none."""
    return import_jurisdiction_rows(db, read_jurisdictions_csv(Path(path), limits), str(path), actor=actor, now=now)


def import_units_data(db: Storage, data: bytes, source: str, now: datetime, *, update: bool = False,
                      within_path: str | None = None, limits: SheetLimits = DEFAULT_LIMITS,
                      actor: Actor) -> ImportResult:
    """Import a unit roster (.csv UTF-8/GBK, or .xlsx); every bad row named, nothing imported. A
    roster past ``limits`` (bytes, rows, columns, cells, merged ranges, unpacked size) is refused
    whole before its rows are read."""
    with stream_units(data, source, limits) as rows:  # read as they are imported, never all kept
        return import_unit_rows(db, rows, source, now, update=update, within_path=within_path, actor=actor)


def import_units(db: Storage, path: Path, now: datetime, *, update: bool = False,
                 limits: SheetLimits = DEFAULT_LIMITS, actor: Actor) -> ImportResult:
    """Import a unit roster file (refused unread past ``limits.max_bytes``); see :func:`import_units_data`."""
    return import_units_data(db, read_file(Path(path), limits), str(path), now, update=update, limits=limits,
                             actor=actor)


def read_bounded(paths: list[Path], max_bytes: int) -> list[tuple[str, bytes]]:
    """The files' names and bytes; every file over ``max_bytes`` (or unreadable) is named
    before any is read, so a huge file is never read into memory."""
    problems = []
    for path in map(Path, paths):
        try:
            size = path.stat().st_size
        except OSError as exc:
            problems.append(Problem(path.name, exc.strerror or str(exc), f"无法读取文件（{exc.strerror or exc}）"))
            continue
        if size > max_bytes:
            problems.append(Problem(path.name, f"{size} bytes; the limit is {max_bytes}",
                                    f"{size} 字节，超过上限 {max_bytes} 字节"))
    if problems:
        raise InvalidInput("evidence refused; nothing was attached", problems,
                           "佐证材料不符合要求，未添加：" + "；".join(f"{p.where}：{p.zh}" for p in problems))
    return [(p.name, p.read_bytes()) for p in map(Path, paths)]


def attach_files(store: Storage, blobs: EvidenceBlobs, case_id: int, criterion: str, paths: list[Path],
                 actor: Actor, now: datetime, *, max_bytes: int, quota: EvidenceQuota) -> list[ActionResult]:
    """Attach files from disk to ``criterion`` of the case, all or none (within the case's ``quota``)."""
    return attach_bytes(store, blobs, case_id, criterion, read_bounded(paths, max_bytes), actor, now, quota=quota)


def write_score_sheet(sheets: CaseSheets, out: Path) -> None:
    """The case's score sheet (自评表) as .xlsx in the province's printed layout."""
    export_score_sheet(sheets.rubric, unit_name=sheets.unit_name, layout=layout_for(sheets.rubric),
                       self_score=sheets.self, verified_score=sheets.verified, recheck_score=sheets.recheck, out=out,
                       case_id=sheets.case_id, round_id=sheets.round_id)


def score_sheet_xlsx(sheets: CaseSheets) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "sheet.xlsx"
        write_score_sheet(sheets, out)
        return out.read_bytes()


def progress_xlsx_bytes(report: Progress, lagging: Sequence[Lagging] = (),
                        milestone_names: Mapping[str, str] | None = None) -> bytes:
    """The progress workbook: the share per jurisdiction and level, and the 滞后单位 sheet
    (``milestone_names``: the calendar's names of its milestones, for the overdue columns)."""
    out = io.BytesIO()
    progress_xlsx(report, out, lagging, milestone_names)
    return out.getvalue()
