"""Score sheets as ``.xlsx``, laid out like the printed forms.

``"shanxi"``: 晋直管发〔2021〕39号 附件3 (山西省节约型机关创建自评表): 序号 | 评价单元 | 评价项目 |
评价标准 | 自评得分 | 核查得分 [| 复核得分], each score group split into 分项得分 (per criterion)
and 项目得分 (per item, merged over the item's rows).

``"hunan"``: 湘管发〔2020〕12号 附件 (湖南省节约型机关评价指标): 序号 | 单元 | 项目 | 评分要求 |
评分规则 | 分值, followed by the same score groups.

Both start with a title row and a ``单位：…（盖章）`` row (with ``案件编号：…　轮次：…`` at its right
when the sheet is a case's), then a two-row header (rows 3–4), one row per criterion, and a 总分
row. The last column, 编号, holds each criterion's code: a filled-in sheet is read back by it
(``score_sheet_upload.py``).

Printed, it is A4 landscape, one page wide, the header rows repeated on every page and the page
number in the footer; long texts wrap, and every row is as high as its longest text needs
(openpyxl does not size rows: :func:`lines_needed` estimates, a 汉字 counting two characters).
The helpers for that (:func:`print_setup`, :func:`lines_needed`, :func:`row_height`) serve the
other workbooks too (``progress_xlsx.py``, ``case_list_xlsx.py``).

Scores are written as numbers: ``int`` when whole, else the ``Decimal`` itself (openpyxl
serialises numbers with 16 significant digits, exact for any score a rubric allows); nothing
here computes with floats. Every text cell goes through ``safe_cell``
(a rubric text or unit name starting like a formula is written as text); the sheet has no
formulas of its own.
"""
from __future__ import annotations

import os
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from ..domain.jsonnum import json_number
from ..domain.rubric import Criterion, Item, Rubric, Section, SheetScore
from ..domain.text import safe_cell

Value = str | int | Decimal | None

TITLE_ROW, UNIT_ROW, HEADER_ROW, SUBHEADER_ROW, FIRST_DATA_ROW = 1, 2, 3, 4, 5
SCORE_SUBHEADERS = ("分项得分", "项目得分")
SCORE_WIDTH = 10
GROUP_NAMES = {"self": "自评得分", "verified": "核查得分", "recheck": "复核得分"}
CODE_HEADER, CODE_WIDTH = "编号", 9  # the criterion's code, the last column
CASE_LABEL, ROUND_LABEL = "案件编号", "轮次"  # 案件编号：7　轮次：shanxi-2021, at the right of row 2

LINE_POINTS = 16  # one line of 11-point text, 汉字 included (LibreOffice draws 16 pt, Excel about 14.3)
PAGE_FOOTER = "第 &P 页，共 &N 页"

_THIN = Side(style="thin")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_BOLD = Font(bold=True)


def points(value: Decimal) -> str:
    """``9`` -> ``"9"``, ``1.5`` -> ``"1.5"`` (for labels such as ``管理机构 (5分)``)."""
    return str(json_number(value))


def criterion_text(criterion: Criterion) -> str:
    """The criterion as printed: ``"{label}.{text}"``, or the bare text when it has no number."""
    return f"{criterion.label}.{criterion.text}" if criterion.label else criterion.text


# ---------------------------------------------------------------- printing (shared by the workbooks)
def display_width(text: str) -> int:
    """The characters ``text`` takes in a column: two for a wide one (汉字, full-width punctuation)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def lines_needed(text: Any, width: float) -> int:
    """The lines ``text`` takes wrapped in a column ``width`` characters wide (Excel's unit, a
    digit): a column keeps one character for its padding and a twentieth to spare (Excel draws
    a 汉字 a little wider than two digits); each line of the text wraps on its own."""
    if text is None or text == "":
        return 1
    room = max(2, (int(width) - 1) * 19 // 20)
    return sum(max(1, -(-display_width(part) // room)) for part in str(text).split("\n"))


def row_height(lines: int) -> int:
    """The height in points of a row holding ``lines`` lines of 11-point text."""
    return lines * LINE_POINTS + 4


def header_text(text: str, limit: int = 100) -> str:
    """Text for a printed page header or footer (at most ``limit`` characters: Excel allows 255
    for the three parts together): ``&`` starts a code there (``&P``), so it is doubled."""
    return text[:limit].replace("&", "&&")


def print_setup(ws: Any, *, landscape: bool, title_rows: str, area: str, header: tuple[str, str] = ("", "")) -> None:
    """A4 (``landscape`` or portrait) fitted to one page wide and as many pages down as it takes,
    ``title_rows`` (``"3:4"``) repeated on every page, ``area`` printed, narrow margins, the
    table centred, ``header`` (left, right) at the top of every page and 第 1 页，共 N 页 below."""
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = title_rows
    ws.print_area = area
    ws.page_margins = PageMargins(left=0.4, right=0.4, top=0.6, bottom=0.6, header=0.25, footer=0.25)
    ws.print_options.horizontalCentered = True
    for part, text in zip((ws.oddHeader.left, ws.oddHeader.right), header, strict=True):
        if text:
            part.text, part.size = header_text(text), 9
    ws.oddFooter.center.text, ws.oddFooter.center.size = PAGE_FOOTER, 9


@dataclass(frozen=True)
class _Column:
    header: str
    width: float
    scope: str  # "section" / "item": merged over that many rows; "row": one cell per criterion
    value: Callable[[Section, Item, Criterion], Value]
    left: bool = False


@dataclass(frozen=True)
class _Layout:
    sheet: str
    columns: tuple[_Column, ...]
    total_label_span: int  # 总分 spans this many leading columns; the rubric total spans the rest


LAYOUTS: dict[str, _Layout] = {
    "shanxi": _Layout(
        sheet="自评表",
        columns=(
            _Column("序号", 6, "section", lambda s, i, c: s.code),
            _Column("评价单元", 16, "section", lambda s, i, c: f"{s.name} ({points(s.max_points)}分)"),
            _Column("评价项目", 18, "item", lambda s, i, c: f"{i.name} ({points(i.max_points)}分)"),
            _Column("评价标准", 60, "row", lambda s, i, c: criterion_text(c), left=True),
        ),
        total_label_span=1,
    ),
    "hunan": _Layout(
        sheet="评价指标",
        columns=(
            _Column("序号", 6, "section", lambda s, i, c: s.code),
            _Column("单元", 10, "section", lambda s, i, c: s.name),
            _Column("项目", 14, "item", lambda s, i, c: i.name),
            _Column("评分要求", 28, "item", lambda s, i, c: i.requirement, left=True),
            _Column("评分规则", 60, "row", lambda s, i, c: criterion_text(c), left=True),
            _Column("分值", 8, "item", lambda s, i, c: json_number(i.max_points)),
        ),
        total_label_span=5,
    ),
}

_PROVINCE_LAYOUT = {"shanxi": "shanxi", "hunan": "hunan"}


def default_title(rubric: Rubric) -> str:
    """The printed form's title: 山西省节约型机关创建评价标准 → 山西省节约型机关创建自评表."""
    base = rubric.title
    for suffix in ("评价标准", "评价指标"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return f"{base}自评表"


def layout_for(rubric: Rubric) -> str:
    """The layout of the rubric's province's printed form."""
    try:
        return _PROVINCE_LAYOUT[rubric.province]
    except KeyError:
        known = ", ".join(sorted(_PROVINCE_LAYOUT))
        raise ValueError(f"no score sheet layout for province {rubric.province!r} (known: {known})") from None


def export_score_sheet(
    rubric: Rubric,
    *,
    unit_name: str,
    layout: str,
    self_score: SheetScore | None,
    verified_score: SheetScore | None,
    out: Path,
    title: str | None = None,
    recheck_score: SheetScore | None = None,
    case_id: int | None = None,
    round_id: str | None = None,
) -> None:
    """Write the score sheet to ``out`` (via a temporary file in the same folder, then a rename).

    ``None`` scores leave their columns empty, and so does a criterion an incomplete sheet has no
    entry for (``SheetScore.missing``); 复核得分 columns appear only with ``recheck_score``. A
    case's sheet (``case_id``, ``round_id``) names them at the right of the unit's row, so that the
    sheet filled in and uploaded again is known for the case's own.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown score sheet layout {layout!r} (known: {', '.join(LAYOUTS)})")
    groups: list[tuple[str, SheetScore | None]] = [(GROUP_NAMES["self"], self_score),
                                                   (GROUP_NAMES["verified"], verified_score)]
    if recheck_score is not None:
        groups.append((GROUP_NAMES["recheck"], recheck_score))
    for name, score in groups:
        if score is not None and score.rubric_id != rubric.id:
            raise ValueError(f"{name}: sheet was scored with rubric {score.rubric_id}, not {rubric.id}")

    workbook = Workbook()
    sheet = workbook.active
    assert isinstance(sheet, Worksheet)
    heading = _Heading(title or default_title(rubric), unit_name, case_label(case_id, round_id))
    _fill(sheet, LAYOUTS[layout], rubric, groups, heading)
    _save(workbook, Path(out))


def case_label(case_id: int | None, round_id: str | None) -> str | None:
    """``案件编号：7　轮次：shanxi-2021`` (what is known of the two), or None."""
    parts = [f"{label}：{value}" for label, value in ((CASE_LABEL, case_id), (ROUND_LABEL, round_id))
             if value is not None]
    return "　".join(parts) or None


@dataclass(frozen=True)
class _Heading:
    title: str
    unit_name: str
    case: str | None  # 案件编号：…　轮次：…


def _fill(ws: Worksheet, layout: _Layout, rubric: Rubric, groups: list[tuple[str, SheetScore | None]],
          heading: _Heading) -> None:
    ws.title = layout.sheet
    fixed = len(layout.columns)
    width = fixed + 2 * len(groups) + 1  # the criterion codes last
    _heading(ws, layout, groups, heading, width)
    lines: dict[int, int] = {}  # the lines each criterion row needs
    blocks: list[tuple[int, int, int]] = []  # merged texts: first row, last row, the lines they need
    row = FIRST_DATA_ROW
    for section in rubric.sections:
        section_start = row
        for item in section.items:
            item_start = row
            for criterion in item.criteria:
                need = _fixed_cells(ws, layout, row, (section, item, criterion),
                                    {"item": row == item_start, "section": row == section_start})
                lines[row] = need["row"]
                if row == item_start:
                    blocks.append((item_start, item_start + len(item.criteria) - 1, need["item"]))
                if row == section_start:
                    section_rows = sum(len(i.criteria) for i in section.items)
                    blocks.append((section_start, section_start + section_rows - 1, need["section"]))
                _score_cells(ws, fixed, groups, row, item, criterion, first_of_item=row == item_start)
                ws.cell(row, width, safe_cell(criterion.code))
                row += 1
            item_cols = [c for c, column in enumerate(layout.columns, start=1) if column.scope == "item"]
            item_cols += [fixed + 2 + 2 * g for g in range(len(groups))]
            _merge_down(ws, item_cols, item_start, row - 1)
        section_cols = [c for c, column in enumerate(layout.columns, start=1) if column.scope == "section"]
        _merge_down(ws, section_cols, section_start, row - 1)

    _total(ws, layout, rubric, groups, row)
    _style(ws, layout, width, row)
    _size_rows(ws, lines, blocks, row)
    print_setup(ws, landscape=True, title_rows=f"{HEADER_ROW}:{SUBHEADER_ROW}",
                area=f"A1:{get_column_letter(width)}{row}", header=(heading.unit_name, heading.case or ""))


def _fixed_cells(ws: Worksheet, layout: _Layout, row: int, triple: tuple[Section, Item, Criterion],
                 first: dict[str, bool]) -> dict[str, int]:
    """The rubric's columns of a criterion row (an item's or section's only on its first row);
    the lines their texts need in their columns, per scope."""
    need = {"row": 1, "item": 1, "section": 1}
    for col, column in enumerate(layout.columns, start=1):
        if column.scope == "row" or first[column.scope]:
            value = column.value(*triple)
            ws.cell(row, col, safe_cell(value))
            need[column.scope] = max(need[column.scope], lines_needed(value, column.width))
    return need


def _score_cells(ws: Worksheet, fixed: int, groups: list[tuple[str, SheetScore | None]], row: int, item: Item,
                 criterion: Criterion, *, first_of_item: bool) -> None:
    for g, (_, score) in enumerate(groups):
        if score is not None:
            col = fixed + 1 + 2 * g
            if criterion.code not in score.missing:
                ws.cell(row, col, json_number(score.criteria[criterion.code]))
            if first_of_item:
                ws.cell(row, col + 1, json_number(score.items[item.code]))


def _total(ws: Worksheet, layout: _Layout, rubric: Rubric, groups: list[tuple[str, SheetScore | None]],
           total_row: int) -> None:
    fixed = len(layout.columns)
    ws.cell(total_row, 1, "总分")
    _merge(ws, total_row, 1, total_row, layout.total_label_span)
    ws.cell(total_row, layout.total_label_span + 1, json_number(rubric.total))
    _merge(ws, total_row, layout.total_label_span + 1, total_row, fixed)
    for g, (_, score) in enumerate(groups):
        col = fixed + 1 + 2 * g
        if score is not None:
            ws.cell(total_row, col, json_number(score.total))
        ws.merge_cells(start_row=total_row, start_column=col, end_row=total_row, end_column=col + 1)


def _heading(ws: Worksheet, layout: _Layout, groups: list[tuple[str, SheetScore | None]], heading: _Heading,
             width: int) -> None:
    """The title, the unit's line (and the case's at its right), and the two header rows
    (分项得分 / 项目得分 under each group; 编号 last)."""
    fixed = len(layout.columns)
    ws.cell(TITLE_ROW, 1, safe_cell(heading.title)).font = Font(bold=True, size=16)
    ws.cell(TITLE_ROW, 1).alignment = Alignment(horizontal="center", vertical="center")
    ws.merge_cells(start_row=TITLE_ROW, start_column=1, end_row=TITLE_ROW, end_column=width)
    unit_cell = ws.cell(UNIT_ROW, 1, safe_cell(f"单位：{heading.unit_name}（盖章）"))
    unit_cell.alignment = Alignment(horizontal="left", vertical="center")
    ws.merge_cells(start_row=UNIT_ROW, start_column=1, end_row=UNIT_ROW,
                   end_column=width if heading.case is None else fixed)
    if heading.case is not None:
        case_cell = ws.cell(UNIT_ROW, fixed + 1, safe_cell(heading.case))
        case_cell.alignment = Alignment(horizontal="right", vertical="center")
        ws.merge_cells(start_row=UNIT_ROW, start_column=fixed + 1, end_row=UNIT_ROW, end_column=width)
    for col, column in enumerate(layout.columns, start=1):
        ws.cell(HEADER_ROW, col, column.header)
        ws.merge_cells(start_row=HEADER_ROW, start_column=col, end_row=SUBHEADER_ROW, end_column=col)
        ws.column_dimensions[get_column_letter(col)].width = column.width
    for g, (name, _) in enumerate(groups):
        col = fixed + 1 + 2 * g
        ws.cell(HEADER_ROW, col, name)
        ws.merge_cells(start_row=HEADER_ROW, start_column=col, end_row=HEADER_ROW, end_column=col + 1)
        for offset, sub in enumerate(SCORE_SUBHEADERS):
            ws.cell(SUBHEADER_ROW, col + offset, sub)
            ws.column_dimensions[get_column_letter(col + offset)].width = SCORE_WIDTH
    ws.cell(HEADER_ROW, width, CODE_HEADER)
    ws.merge_cells(start_row=HEADER_ROW, start_column=width, end_row=SUBHEADER_ROW, end_column=width)
    ws.column_dimensions[get_column_letter(width)].width = CODE_WIDTH


def _merge(ws: Worksheet, first_row: int, first_col: int, last_row: int, last_col: int) -> None:
    """Merge a range of more than one cell (a single cell is left alone)."""
    if (last_row, last_col) != (first_row, first_col):
        ws.merge_cells(start_row=first_row, start_column=first_col, end_row=last_row, end_column=last_col)


def _merge_down(ws: Worksheet, columns: list[int], first: int, last: int) -> None:
    for col in columns:
        _merge(ws, first, col, last, col)


def _style(ws: Worksheet, layout: _Layout, width: int, total_row: int) -> None:
    left_cols = {c for c, column in enumerate(layout.columns, start=1) if column.left}
    for row in range(HEADER_ROW, total_row + 1):
        header = row in (HEADER_ROW, SUBHEADER_ROW, total_row)
        for col in range(1, width + 1):
            cell = ws.cell(row, col)
            cell.border = _BORDER
            cell.alignment = _LEFT if col in left_cols and not header else _CENTER
            if header:
                cell.font = _BOLD
    ws.freeze_panes = f"A{FIRST_DATA_ROW}"


def _size_rows(ws: Worksheet, lines: dict[int, int], blocks: list[tuple[int, int, int]], total_row: int) -> None:
    """Every criterion row as high as its text needs; a merged text (an item's name, its
    requirement) that needs more than its rows together gets the rest on its last row."""
    heights = {row: row_height(n) for row, n in lines.items()}
    for first, last, need in blocks:
        short = row_height(need) - sum(heights[r] for r in range(first, last + 1))
        if short > 0:
            heights[last] += short
    heights |= {TITLE_ROW: 30, UNIT_ROW: 22, HEADER_ROW: row_height(1), SUBHEADER_ROW: row_height(1),
                total_row: row_height(1)}
    for row, height in heights.items():
        ws.row_dimensions[row].height = height


def _save(workbook: Workbook, out: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, out.stat().st_mode & 0o777 if out.exists() else 0o644)  # mkstemp makes it 0600
        workbook.save(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
