"""A filtered case list as a workbook a clerk can file and print (openpyxl, write-only: the
rows stream into the file, a long list is never whole in memory)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from ..domain.dates import BUSINESS_TZ
from ..domain.lifecycle import STATE_NAMES
from ..domain.text import safe_row
from ..service.ports import CaseRow

HEADER = ("案件编号", "轮次", "单位", "所属地区", "单位类别", "状态", "状态代码", "版本", "自评得分", "评价得分",
          "复核得分", "整改期限", "最后更新（北京时间）")
WIDTHS = (10, 14, 32, 16, 12, 10, 14, 6, 9, 9, 9, 12, 20)


def case_list_xlsx(rows: Iterable[CaseRow], out: BinaryIO, title: str) -> int:
    """Write the rows (one sheet, its header repeated on every printed page, landscape A4 fitted
    to the page width); scores stay numbers; every text through ``safe_row``. Returns the count."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet("案件清单")
    for i, width in enumerate(WIDTHS):
        sheet.column_dimensions[chr(ord("A") + i)].width = width
    sheet.print_title_rows = "2:2"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = "9"  # A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    head = WriteOnlyCell(sheet, value=safe_row([title])[0])
    head.font = Font(bold=True, size=13)
    sheet.append([head])
    bold = []
    for text in HEADER:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = Font(bold=True)
        bold.append(cell)
    sheet.append(bold)
    count = 0
    for r in rows:
        sheet.append(safe_row([r.id, r.round_id, r.unit_name, r.jurisdiction_id, r.category,
                               STATE_NAMES.get(r.state, r.state), r.state, r.version, r.self_total, r.verified_total,
                               r.recheck_total, r.rectification_due,
                               r.updated_at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")]))
        count += 1
    book.save(out)
    return count
