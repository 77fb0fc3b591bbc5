"""Reports for coordinators: a round's progress per jurisdiction, and deadlines at risk.

Progress counts come from one grouped query over the case projection (no event scan):
cases by state, the certified share against the round's target, overdue cases, and the
misses recorded per milestone. Each jurisdiction's row covers its whole subtree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select

from ..adapters.db.store import Database
from ..adapters.db.tables import Case, Jurisdiction, Round, Unit
from ..domain.errors import NotFound
from ..domain.lifecycle import STATES

CERTIFIED_STATES = ("certified", "filed")


@dataclass
class ProgressRow:
    jurisdiction_id: str
    name: str
    level: str
    depth: int
    cases: int = 0
    by_state: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATES})
    overdue: int = 0
    missed: dict[str, int] = field(default_factory=dict)

    @property
    def certified(self) -> int:
        return sum(self.by_state[s] for s in CERTIFIED_STATES)

    @property
    def taking_part(self) -> int:
        """Cases that count for the share: withdrawn cases left the round."""
        return self.cases - self.by_state["withdrawn"]

    def target_met(self, target: Decimal) -> bool | None:
        """Exactly (the share shown is rounded): certified ≥ target × cases taking part."""
        return None if not self.taking_part else Decimal(self.certified) >= target * self.taking_part

    @property
    def certified_share(self) -> Decimal | None:
        if not self.taking_part:
            return None
        return (Decimal(self.certified) / Decimal(self.taking_part)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


@dataclass
class Progress:
    round_id: str
    target_share: Decimal
    rows: list[ProgressRow]  # the root first, then its subtree in path order

    def to_dict(self) -> dict[str, Any]:
        def share(v: Decimal | None) -> str | None:
            return None if v is None else format(v, "f")

        return {"round_id": self.round_id, "target_share": format(self.target_share, "f"), "jurisdictions": [
            {"id": r.jurisdiction_id, "name": r.name, "level": r.level, "depth": r.depth, "cases": r.cases,
             "by_state": r.by_state, "certified": r.certified, "certified_share": share(r.certified_share),
             "target_met": r.target_met(self.target_share),
             "overdue": r.overdue, "missed": dict(sorted(r.missed.items()))} for r in self.rows]}


def _round(conn: Any, round_id: str) -> Any:
    row = conn.execute(select(Round.id, Round.year, Round.calendar_id, Round.target_share, Round.province_id)
                       .where(Round.id == round_id)).first()
    if row is None:
        raise NotFound(f"round {round_id!r} does not exist", round_id=round_id)
    return row


def progress(db: Database, round_id: str, root_path: str) -> Progress:
    """Progress of a round in the subtree at ``root_path`` (e.g. ``/shanxi/``)."""
    with db.engine.connect() as conn:
        rnd = _round(conn, round_id)
        jurisdictions = conn.execute(select(Jurisdiction.id, Jurisdiction.name, Jurisdiction.level, Jurisdiction.path)
                                     .where(Jurisdiction.path.startswith(root_path, autoescape=True))
                                     .order_by(Jurisdiction.path)).all()
        groups = conn.execute(
            select(Unit.jurisdiction_id, Case.state, Case.overdue, Case.missed, func.count())
            .join(Unit, Unit.id == Case.unit_id).join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
            .where(Case.round_id == round_id, Jurisdiction.path.startswith(root_path, autoescape=True))
            .group_by(Unit.jurisdiction_id, Case.state, Case.overdue, Case.missed)).all()
    base = root_path.count("/")
    rows = {j.id: ProgressRow(j.id, j.name, j.level, j.path.count("/") - base) for j in jurisdictions}
    paths = {j.id: j.path for j in jurisdictions}
    ancestors = {j.id: [a for a in rows if j.path.startswith(paths[a])] for j in jurisdictions}
    for jurisdiction_id, state, overdue, missed, count in groups:
        milestones = [m for m, _ in json.loads(missed)] if missed else []
        for a in ancestors.get(jurisdiction_id, ()):
            row = rows[a]
            row.cases += count
            row.by_state[state] += count
            row.overdue += count if overdue else 0
            for m in milestones:
                row.missed[m] = row.missed.get(m, 0) + count
    return Progress(rnd.id, Decimal(rnd.target_share), [rows[j.id] for j in jurisdictions])


def progress_xlsx(report: Progress, out: Path | BinaryIO) -> None:
    """The progress report as a workbook: one row per jurisdiction, indented by depth."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = "进度"
    milestones = sorted({m for r in report.rows for m in r.missed})
    sheet.append([f"{report.round_id} 创建进度（目标占比 {report.target_share}）"])
    sheet["A1"].font = Font(bold=True, size=14)
    header = ["地区", "层级", "参加单位", *STATES, "已达标", "达标占比", "达到目标", "逾期", *[f"逾期:{m}" for m in milestones]]
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for r in report.rows:
        share = r.certified_share
        met = r.target_met(report.target_share)
        sheet.append([r.name, r.level, r.cases, *[r.by_state[s] for s in STATES], r.certified, share,
                      None if met is None else ("是" if met else "否"),
                      r.overdue, *[r.missed.get(m, 0) for m in milestones]])
        sheet.cell(sheet.max_row, 1).alignment = Alignment(indent=r.depth)
        sheet.cell(sheet.max_row, 5 + len(STATES)).number_format = "0.00%"  # 达标占比
    sheet.column_dimensions["A"].width = 28
    book.save(out)


@dataclass(frozen=True, slots=True)
class AtRisk:
    milestone: str
    name: str
    due_on: date
    days_left: int
    case_id: int
    unit_id: int
    unit_name: str
    jurisdiction_id: str
    state: str


def at_risk(db: Database, calendars: Any, round_id: str, root_path: str, today: date,
            within_days: int = 3) -> list[AtRisk]:
    """Cases that still owe a milestone due within ``within_days`` from ``today`` (inclusive)."""
    from .deadlines import owing

    with db.engine.connect() as conn:
        rnd = _round(conn, round_id)
        calendar = calendars.get(rnd.calendar_id)
        out: list[AtRisk] = []
        for m in calendar.milestones:
            if m.informational:
                continue
            due = m.due_on(rnd.year)
            if not today <= due <= today + timedelta(days=within_days):
                continue
            for row in conn.execute(
                    select(Case.id, Case.unit_id, Unit.name, Unit.jurisdiction_id, Case.state)
                    .join(Unit, Unit.id == Case.unit_id).join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
                    .where(owing(m, round_id), Jurisdiction.path.startswith(root_path, autoescape=True))
                    .order_by(Case.id)):
                out.append(AtRisk(m.id, m.name, due, (due - today).days, *row))
    return sorted(out, key=lambda a: (a.due_on, a.milestone, a.case_id))
