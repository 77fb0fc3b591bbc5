"""The progress report as a workbook (openpyxl)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.lifecycle import STATE_NAMES, STATES
from ..domain.text import safe_row
from ..service.reports import LEVEL_NAMES, ROUND_RATE_RULE, SHARE_RULE, UNIT_LEVELS, Lagging, LevelShare, Progress


def progress_xlsx(report: Progress, out: Path | BinaryIO, lagging: Sequence[Lagging] = ()) -> None:
    """One row per jurisdiction, indented by depth; the share of all agencies certified to date
    against the target, per level, then the round's own case counts; the rule under the table.
    Every row goes through ``safe_row``: a jurisdiction named ``=...`` is text, not a formula."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.create_sheet(index=0)
    book.remove(book.worksheets[1])  # the empty sheet a new workbook starts with
    sheet.title = "进度"
    milestones = sorted({m for r in report.rows for m in r.missed})
    levels = [lv for lv in UNIT_LEVELS if any(r.by_level.get(lv) and r.by_level[lv].agencies for r in report.rows)]
    sheet.append(safe_row([f"{report.round_id} 节约型机关创建进度（截至{report.year}年底目标 {report.target_share}）"]))
    sheet["A1"].font = Font(bold=True, size=14)
    header = ["地区", "层级", "单位总数", "已建成", "达标占比", "目标", "达到目标"]
    for lv in levels:
        header += [f"{LEVEL_NAMES[lv]}单位", f"{LEVEL_NAMES[lv]}已建成", f"{LEVEL_NAMES[lv]}占比"]
    header += ["本轮案件", *[STATE_NAMES[s] for s in STATES], "本轮通过", "本轮通过率", "逾期",
               *[f"逾期:{m}" for m in milestones]]
    sheet.append(safe_row(header))
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
        sheet.append(safe_row(values))
        sheet.cell(sheet.max_row, 1).alignment = Alignment(indent=r.depth)
        for column in percent_columns:
            sheet.cell(sheet.max_row, column).number_format = "0.00%"
    sheet.append([])
    sheet.append(safe_row([SHARE_RULE["zh"]]))
    sheet.append(safe_row([ROUND_RATE_RULE["zh"]]))
    _lagging_sheet(book, report, lagging)
    sheet.column_dimensions["A"].width = 28
    book.save(out)


def _lagging_sheet(book: Any, report: Progress, lagging: Sequence[Lagging]) -> None:
    """滞后单位: every overdue case of the subtree, one row per deadline it missed and still owes."""
    from openpyxl.styles import Font

    sheet = book.create_sheet("滞后单位")
    sheet.append(safe_row([f"{report.round_id} 滞后单位（逾期未报事项）：{len(lagging)}个单位"]))
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(["案件编号", "单位", "所属地区", "单位类别", "状态", "逾期事项", "截止日期"])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for lag in lagging:
        for name, due in lag.missed or (("", None),):
            sheet.append(safe_row([lag.case_id, lag.unit_name, lag.jurisdiction_id, lag.category,
                                   STATE_NAMES.get(lag.state, lag.state), name, due]))
    for column, width in zip("ABCDEFG", (10, 32, 16, 12, 10, 30, 12), strict=True):
        sheet.column_dimensions[column].width = width
    sheet.print_title_rows = "2:2"
    if not lagging:
        sheet.append(["（无逾期单位）"])
