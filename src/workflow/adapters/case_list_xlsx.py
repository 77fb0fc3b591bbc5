"""A filtered case list as a workbook a clerk can file and print (openpyxl, write-only: the
rows stream into the file, a long list is never whole in memory).

Printed: A4 landscape, one page wide, the header row on every page, the grid drawn, the page
number in the footer; a long unit name wraps in a row as high as it needs. Only the header and
the 单位 cells too long for their column carry a style of their own, so a list of 200,000 cases
costs little more than its values."""
from __future__ import annotations

from collections.abc import Iterable
from copy import copy
from typing import Any, BinaryIO

from ..domain.dates import BUSINESS_TZ
from ..domain.lifecycle import STATE_NAMES
from ..domain.text import safe_row
from ..service.ports import CaseRow
from .score_sheet_xlsx import lines_needed, print_setup, row_height

HEADER = ("案件编号", "轮次", "单位", "所属地区", "单位类别", "状态", "状态代码", "版本", "自评得分", "评价得分",
          "复核得分", "整改期限", "最后更新（北京时间）")
WIDTHS = (8, 13, 32, 16, 12, 9, 13, 5, 7, 7, 7, 13, 17)
UNIT_COLUMN = 3  # 单位, wrapped


def case_list_xlsx(rows: Iterable[CaseRow], out: BinaryIO, title: str) -> int:
    """Write the rows (one sheet, its header repeated on every printed page, landscape A4 fitted
    to the page width); scores stay numbers; every text through ``safe_row``. Returns the count."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet("案件清单")
    for i, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    # before the first row: a write-only sheet writes its properties (fit to page) with it
    print_setup(sheet, landscape=True, title_rows="2:2", area=f"A1:{get_column_letter(len(HEADER))}2",
                header=(title, ""))
    sheet.print_options.gridLines = True
    head = WriteOnlyCell(sheet, value=safe_row([title])[0])
    head.font = Font(bold=True, size=13)
    sheet.row_dimensions[1].height = 24
    sheet.append([head])
    sheet.row_dimensions[2].height = row_height(max(lines_needed(t, w) for t, w in zip(HEADER, WIDTHS, strict=True)))
    bold = []
    for text in HEADER:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        bold.append(cell)
    sheet.append(bold)
    wrapped = WriteOnlyCell(sheet)
    wrapped.alignment = Alignment(wrap_text=True)
    try:
        count = _append_rows(sheet, rows, wrapped)
    except BaseException:
        sheet.close()  # the rows' writer finished and its temporary file closed, then the error goes on
        raise
    sheet.print_area = f"A1:{get_column_letter(len(HEADER))}{count + 2}"
    book.save(out)
    return count


def _append_rows(sheet: Any, rows: Iterable[CaseRow], wrapped: Any) -> int:
    """One row per case from row 3 on; the unit's name wrapped (``wrapped``'s style) in a row as
    high as it needs. Returns the count."""
    from openpyxl.cell import WriteOnlyCell

    count = 0
    for r in rows:
        values = safe_row([r.id, r.round_id, r.unit_name, r.jurisdiction_id, r.category,
                           STATE_NAMES.get(r.state, r.state), r.state, r.version, r.self_total, r.verified_total,
                           r.recheck_total, r.rectification_due,
                           r.updated_at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")])
        lines = lines_needed(r.unit_name, WIDTHS[UNIT_COLUMN - 1])
        if lines > 1:  # a name longer than the column: wrapped (most fit, and cost nothing more)
            unit = WriteOnlyCell(sheet, value=values[UNIT_COLUMN - 1])
            unit._style = copy(wrapped._style)  # type: ignore[attr-defined]  # its indexes: no lookup per row
            values[UNIT_COLUMN - 1] = unit
            sheet.row_dimensions[count + 3].height = row_height(lines)
        sheet.append(values)
        count += 1
    return count
