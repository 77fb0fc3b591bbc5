"""The progress report as a workbook (openpyxl), to file and to print.

进度: one row per jurisdiction, indented by depth; the share of all agencies certified to date
against the target, per level, then the round's own case counts and misses; the rules under the
table. 滞后单位: every overdue case and the deadlines it missed. Headers are Chinese; the codes
stay in their own last column (地区代码). Printed: A4, one page wide (进度 landscape, 滞后单位
portrait), the header row on every page, the page number in the footer, long texts wrapped in
rows as high as they need (the helpers of ``score_sheet_xlsx.py``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.lifecycle import STATE_NAMES, STATES
from ..domain.text import safe_row
from ..service.reports import LEVEL_NAMES, ROUND_RATE_RULE, SHARE_RULE, UNIT_LEVELS, Lagging, LevelShare, Progress
from .score_sheet_xlsx import lines_needed, print_setup, row_height

JURISDICTION_LEVELS = {"province": "省", "city": "市", "county": "县"}  # what a bureau calls each level
CODE_HEADER = "地区代码"


def progress_xlsx(report: Progress, out: Path | BinaryIO, lagging: Sequence[Lagging] = (),
                  milestone_names: Mapping[str, str] | None = None) -> None:
    """One row per jurisdiction, indented by depth; the share of all agencies certified to date
    against the target, per level, then the round's own case counts; the rule under the table.
    A miss is headed by its milestone's name (``milestone_names``: the calendar's, by id; else
    its id). Every row goes through ``safe_row``: a jurisdiction named ``=...`` is text, not a formula."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "进度"
    _progress_sheet(sheet, report, milestone_names or {})
    _lagging_sheet(book, report, lagging)
    book.save(out)


def _percent(share: Decimal) -> str:
    return f"{format((share * 100).normalize(), 'f')}%"


def _progress_header(levels: list[str], milestones: list[str],
                     names: Mapping[str, str]) -> tuple[list[str], list[int]]:
    """The header row and each column's width."""
    header = ["地区", "层级", "单位总数", "已建成", "达标占比", "目标", "达到目标"]
    widths = [20, 5, 6, 6, 8, 7, 5]
    for lv in levels:
        header += [f"{LEVEL_NAMES[lv]}单位", f"{LEVEL_NAMES[lv]}已建成", f"{LEVEL_NAMES[lv]}占比"]
        widths += [6, 6, 8]
    header += ["本轮案件", *[STATE_NAMES[s] for s in STATES], "本轮通过", "本轮通过率", "逾期",
               *[f"逾期：{names.get(m, m)}" for m in milestones], CODE_HEADER]
    widths += [6, *[6] * len(STATES), 6, 8, 5, *[12] * len(milestones), 18]
    return header, widths


def _progress_sheet(sheet: Any, report: Progress, names: Mapping[str, str]) -> None:
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    milestones = sorted({m for r in report.rows for m in r.missed})
    levels = [lv for lv in UNIT_LEVELS if any(r.by_level.get(lv) and r.by_level[lv].agencies for r in report.rows)]
    header, widths = _progress_header(levels, milestones, names)
    last = get_column_letter(len(header))
    sheet.append(safe_row([f"{report.round_id} 节约型机关创建进度（截至{report.year}年底目标 "
                           f"{_percent(report.target_share)}）"]))
    sheet.append(safe_row(header))
    percent_columns = {5, 6}
    for r in report.rows:
        met = r.target_met()
        values: list[Any] = [r.name, JURISDICTION_LEVELS.get(r.level, r.level), r.agencies, r.certified_to_date,
                             r.certified_share, r.target, None if met is None else ("是" if met else "否")]
        for lv in levels:
            ls = r.by_level.get(lv) or LevelShare(lv)
            values += [ls.agencies, ls.certified, ls.share]
            percent_columns.add(len(values))
        values += [r.cases, *[r.by_state[s] for s in STATES], r.certified, r.round_pass_rate, r.overdue,
                   *[r.missed.get(m, 0) for m in milestones], r.jurisdiction_id]
        percent_columns.add(len(values) - 2 - len(milestones))
        sheet.append(safe_row(values))
        sheet.cell(sheet.max_row, 1).alignment = Alignment(indent=r.depth, vertical="center")
        for column in percent_columns:
            sheet.cell(sheet.max_row, column).number_format = "0.00%"
    table_end = sheet.max_row
    _table_style(sheet, widths, table_end, centred=(2, 7))
    sheet.append([])
    for rule in (SHARE_RULE["zh"], ROUND_RATE_RULE["zh"]):  # the rules under the table, across its width
        sheet.append(safe_row([rule]))
        row = sheet.max_row
        sheet.merge_cells(f"A{row}:{last}{row}")
        sheet.cell(row, 1).alignment = Alignment(wrap_text=True, vertical="top")
        sheet.row_dimensions[row].height = row_height(lines_needed(rule, sum(widths)))
    _title(sheet, last, Font(bold=True, size=14))
    sheet.freeze_panes = "B3"
    print_setup(sheet, landscape=True, title_rows="2:2", area=f"A1:{last}{sheet.max_row}",
                header=(f"{report.round_id} 节约型机关创建进度", ""))


def _title(sheet: Any, last: str, font: Any) -> None:
    sheet["A1"].font = font
    sheet.merge_cells(f"A1:{last}1")
    sheet.row_dimensions[1].height = 26


def _table_style(sheet: Any, widths: Sequence[int], last_row: int, wrapped: Sequence[int] = (),
                 centred: Sequence[int] = ()) -> None:
    """Rows 2..``last_row`` as a table: the header bold, centred and wrapped, every cell bordered,
    the ``wrapped`` columns (1-based) wrapped, the ``centred`` ones centred; every row as high as
    its longest text needs."""
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    bold = Font(bold=True)
    for col, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(col)].width = width
    for row in range(2, last_row + 1):
        lines = 1
        for col, width in enumerate(widths, start=1):
            cell = sheet.cell(row, col)
            cell.border = border
            if row == 2:
                cell.font = bold
                cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
            elif col in wrapped:
                cell.alignment = Alignment(vertical="center", wrap_text=True)
            elif col in centred:
                cell.alignment = Alignment(horizontal="center", vertical="center")
            elif cell.alignment.indent == 0:
                cell.alignment = Alignment(vertical="center")
            if row == 2 or col in wrapped:
                lines = max(lines, lines_needed(cell.value, width))
        sheet.row_dimensions[row].height = row_height(lines)


def _lagging_sheet(book: Any, report: Progress, lagging: Sequence[Lagging]) -> None:
    """滞后单位: every overdue case of the subtree, one row per deadline it missed and still owes;
    its jurisdiction by name (the code in 地区代码)."""
    from openpyxl.styles import Font

    sheet = book.create_sheet("滞后单位")
    names = {r.jurisdiction_id: r.name for r in report.rows}
    sheet.append(safe_row([f"{report.round_id} 滞后单位（逾期未报事项）：{len(lagging)}个单位"]))
    sheet.append(["案件编号", "单位", "所属地区", "单位类别", "状态", "逾期事项", "截止日期", CODE_HEADER])
    for lag in lagging:
        for name, due in lag.missed or (("", None),):
            sheet.append(safe_row([lag.case_id, lag.unit_name, names.get(lag.jurisdiction_id, lag.jurisdiction_id),
                                   lag.category, STATE_NAMES.get(lag.state, lag.state), name, due,
                                   lag.jurisdiction_id]))
            sheet.cell(sheet.max_row, 7).number_format = "yyyy-mm-dd"
    if not lagging:
        sheet.append(["（无逾期单位）"])
    _table_style(sheet, (8, 26, 12, 12, 9, 26, 12, 18), sheet.max_row, wrapped=(2, 3, 6), centred=(4, 5, 7))
    _title(sheet, "H", Font(bold=True, size=14))
    sheet.freeze_panes = "A3"
    print_setup(sheet, landscape=False, title_rows="2:2", area=f"A1:H{sheet.max_row}",
                header=(f"{report.round_id} 滞后单位", ""))
