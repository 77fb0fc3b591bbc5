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

from sqlalchemy import case as sa_case
from sqlalchemy import func, or_, select

from ..adapters.db.store import Database
from ..adapters.db.tables import Case, Jurisdiction, Round, Unit
from ..domain.calendar import Target
from ..domain.errors import NotFound
from ..domain.lifecycle import STATE_NAMES, STATES

CERTIFIED_STATES = ("certified", "filed")
UNIT_LEVELS = ("provincial", "city", "county")
SHARE_RULE = {
    "en": "share = agencies certified to date (certified or filed in this round or an earlier round of the "
          "province, or recorded as certified before the system was used; not withdrawn since) ÷ every agency in "
          "scope (every unit of the jurisdiction, taking part this year or not); compared with the target that "
          "applies there (per jurisdiction, per level, else the round's)",
    "zh": "达标占比 = 截至本年度已建成节约型机关的单位数（本轮或以前各轮认定或已备案，以及启用系统前已建成并登记的单位；"
          "其后撤回的不计）÷ 范围内全部单位数（该地区所有县级及以上党政机关，无论本年度是否参加）；与适用的目标"
          "（按地区、按层级，否则为本轮目标）比较",
}
ROUND_RATE_RULE = {"en": "round pass rate = certified or filed cases of this round ÷ cases taking part (not withdrawn)",
                   "zh": "本轮通过率 = 本轮认定或已备案的案件数 ÷ 本轮参加的案件数（不含撤回）"}


def _share(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def _met(part: int, whole: int, target: Decimal | None) -> bool | None:
    """Exactly (the share shown is rounded): part ≥ target × whole."""
    return None if not whole or target is None else Decimal(part) >= target * whole


@dataclass
class LevelShare:
    """One agency level within a jurisdiction's subtree: agencies in scope, certified to date."""

    level: str
    agencies: int = 0
    certified: int = 0
    target: Decimal | None = None

    @property
    def share(self) -> Decimal | None:
        return _share(self.certified, self.agencies)

    @property
    def target_met(self) -> bool | None:
        return _met(self.certified, self.agencies, self.target)


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
    agencies: int = 0  # every unit in scope, taking part this year or not
    certified_to_date: int = 0
    target: Decimal | None = None
    by_level: dict[str, LevelShare] = field(default_factory=lambda: {lv: LevelShare(lv) for lv in UNIT_LEVELS})

    @property
    def certified(self) -> int:
        """This round's certified or filed cases."""
        return sum(self.by_state[s] for s in CERTIFIED_STATES)

    @property
    def taking_part(self) -> int:
        """Cases that count for the round's pass rate: withdrawn cases left the round."""
        return self.cases - self.by_state["withdrawn"]

    @property
    def certified_share(self) -> Decimal | None:
        """The share of all agencies in scope certified to date (what the targets are about)."""
        return _share(self.certified_to_date, self.agencies)

    def target_met(self, target: Decimal | None = None) -> bool | None:
        """Exactly (the share shown is rounded): certified to date ≥ target × agencies."""
        return _met(self.certified_to_date, self.agencies, self.target if target is None else target)

    @property
    def round_pass_rate(self) -> Decimal | None:
        return _share(self.certified, self.taking_part)


@dataclass
class Progress:
    round_id: str
    year: int
    target_share: Decimal
    rows: list[ProgressRow]  # the root first, then its subtree in path order

    def to_dict(self) -> dict[str, Any]:
        def share(v: Decimal | None) -> str | None:
            return None if v is None else format(v, "f")

        return {"round_id": self.round_id, "year": self.year, "target_share": format(self.target_share, "f"),
                "rule": SHARE_RULE, "round_pass_rate_rule": ROUND_RATE_RULE, "jurisdictions": [
            {"id": r.jurisdiction_id, "name": r.name, "level": r.level, "depth": r.depth,
             "agencies": r.agencies, "certified_to_date": r.certified_to_date,
             "certified_share": share(r.certified_share), "target": share(r.target), "target_met": r.target_met(),
             "by_level": {lv: {"agencies": ls.agencies, "certified_to_date": ls.certified, "share": share(ls.share),
                               "target": share(ls.target), "target_met": ls.target_met}
                          for lv, ls in r.by_level.items() if ls.agencies},
             "cases": r.cases, "by_state": r.by_state, "certified": r.certified,
             "round_pass_rate": share(r.round_pass_rate),
             "overdue": r.overdue, "missed": dict(sorted(r.missed.items()))} for r in self.rows]}


def _round(conn: Any, round_id: str) -> Any:
    row = conn.execute(select(Round.id, Round.year, Round.calendar_id, Round.target_share, Round.province_id,
                              Round.targets).where(Round.id == round_id)).first()
    if row is None:
        raise NotFound(f"round {round_id!r} does not exist", round_id=round_id)
    return row


def _targets(rnd: Any) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """The round's targets by jurisdiction and by agency level (besides its overall share)."""
    entries = [Target.from_data(t) for t in (rnd.targets or [])]
    by_jurisdiction = {t.jurisdiction: t.share for t in entries if t.jurisdiction and not t.level}
    by_level = {t.level: t.share for t in entries if t.level and not t.jurisdiction}
    return by_jurisdiction, by_level


def progress(db: Database, round_id: str, root_path: str) -> Progress:
    """Progress of a round in the subtree at ``root_path`` (e.g. ``/shanxi/``): the share of all
    agencies in scope certified to date against the targets, per jurisdiction and level, and the
    round's own case counts."""
    with db.engine.connect() as conn:
        rnd = _round(conn, round_id)
        in_subtree = Jurisdiction.path.startswith(root_path, autoescape=True)
        jurisdictions = conn.execute(select(Jurisdiction.id, Jurisdiction.name, Jurisdiction.level, Jurisdiction.path)
                                     .where(in_subtree).order_by(Jurisdiction.path)).all()
        groups = conn.execute(
            select(Unit.jurisdiction_id, Case.state, Case.overdue, Case.missed, func.count())
            .join(Unit, Unit.id == Case.unit_id).join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
            .where(Case.round_id == round_id, in_subtree)
            .group_by(Unit.jurisdiction_id, Case.state, Case.overdue, Case.missed)).all()
        done = select(Case.unit_id).join(Round, Round.id == Case.round_id).where(
            Round.province_id == rnd.province_id, Round.year <= rnd.year, Case.state.in_(CERTIFIED_STATES))
        certified = or_(Unit.id.in_(done), Unit.certified_year <= rnd.year)
        agencies = conn.execute(
            select(Unit.jurisdiction_id, Unit.level, func.count(), func.sum(sa_case((certified, 1), else_=0)))
            .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id).where(in_subtree)
            .group_by(Unit.jurisdiction_id, Unit.level)).all()
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
    for jurisdiction_id, level, count, done_count in agencies:
        for a in ancestors.get(jurisdiction_id, ()):
            row = rows[a]
            row.agencies += count
            row.certified_to_date += int(done_count or 0)
            share = row.by_level.setdefault(level, LevelShare(level))
            share.agencies += count
            share.certified += int(done_count or 0)
    by_jurisdiction, by_level = _targets(rnd)
    overall = Decimal(rnd.target_share)
    for j in jurisdictions:
        row = rows[j.id]
        # the nearest jurisdiction up the path with a target of its own, else the round's
        chain = [p for p in paths[j.id].strip("/").split("/")][::-1]
        row.target = next((by_jurisdiction[p] for p in chain if p in by_jurisdiction), overall)
        for level, share in row.by_level.items():
            share.target = by_level.get(level, row.target)
    return Progress(rnd.id, rnd.year, overall, [rows[j.id] for j in jurisdictions])


LEVEL_NAMES = {"provincial": "省级", "city": "市级", "county": "县级"}


def progress_xlsx(report: Progress, out: Path | BinaryIO) -> None:
    """The progress report as a workbook: one row per jurisdiction, indented by depth; the
    share of all agencies certified to date against the target, per level, then the round's
    own case counts; the rule under the table."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = "进度"
    milestones = sorted({m for r in report.rows for m in r.missed})
    levels = [lv for lv in UNIT_LEVELS if any(r.by_level.get(lv) and r.by_level[lv].agencies for r in report.rows)]
    sheet.append([f"{report.round_id} 节约型机关创建进度（截至{report.year}年底目标 {report.target_share}）"])
    sheet["A1"].font = Font(bold=True, size=14)
    header = ["地区", "层级", "单位总数", "已建成", "达标占比", "目标", "达到目标"]
    for lv in levels:
        header += [f"{LEVEL_NAMES[lv]}单位", f"{LEVEL_NAMES[lv]}已建成", f"{LEVEL_NAMES[lv]}占比"]
    header += ["本轮案件", *[STATE_NAMES[s] for s in STATES], "本轮通过", "本轮通过率", "逾期",
               *[f"逾期:{m}" for m in milestones]]
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    percent_columns = {5, 6}
    for r in report.rows:
        met = r.target_met()
        values: list[Any] = [r.name, r.level, r.agencies, r.certified_to_date, r.certified_share, r.target,
                             None if met is None else ("是" if met else "否")]
        for lv in levels:
            ls = r.by_level.get(lv) or LevelShare(lv)
            values += [ls.agencies, ls.certified, ls.share]
            percent_columns.add(len(values))
        values += [r.cases, *[r.by_state[s] for s in STATES], r.certified, r.round_pass_rate, r.overdue,
                   *[r.missed.get(m, 0) for m in milestones]]
        percent_columns.add(len(values) - 1 - len(milestones))
        sheet.append(values)
        sheet.cell(sheet.max_row, 1).alignment = Alignment(indent=r.depth)
        for column in percent_columns:
            sheet.cell(sheet.max_row, column).number_format = "0.00%"
    sheet.append([])
    sheet.append([SHARE_RULE["zh"]])
    sheet.append([ROUND_RATE_RULE["zh"]])
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
            if m.informational or m.by_level:  # a jurisdiction's duty is on the duty board, not a case's
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
