"""Score sheets as ``.xlsx``, laid out like the printed forms.

``"shanxi"``: 晋直管发〔2021〕39号 附件3 (山西省节约型机关创建自评表): 序号 | 评价单元 | 评价项目 |
评价标准 | 自评得分 | 核查得分 [| 复核得分], each score group split into 分项得分 (per criterion)
and 项目得分 (per item, merged over the item's rows).

``"hunan"``: 湘管发〔2020〕12号 附件 (湖南省节约型机关评价指标): 序号 | 单元 | 项目 | 评分要求 |
评分规则 | 分值, followed by the same score groups.

Both start with a title row and a ``单位：…（盖章）`` row, then a two-row header (rows 3–4), one
row per criterion, and a 总分 row. Scores are written as numbers: ``int`` when whole, else the
``Decimal`` itself (openpyxl serialises numbers with 16 significant digits, exact for any score
a rubric allows); nothing here computes with floats. Every text cell goes through ``safe_cell``
(a rubric text or unit name starting like a formula is written as text); the sheet has no
formulas of its own.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from ..domain.jsonnum import json_number
from ..domain.rubric import Criterion, Item, Rubric, Section, SheetScore
from ..domain.text import safe_cell

Value = str | int | Decimal | None

TITLE_ROW, UNIT_ROW, HEADER_ROW, SUBHEADER_ROW, FIRST_DATA_ROW = 1, 2, 3, 4, 5
SCORE_SUBHEADERS = ("分项得分", "项目得分")
SCORE_WIDTH = 10

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
) -> None:
    """Write the score sheet to ``out`` (via a temporary file in the same folder, then a rename).

    ``None`` scores leave their columns empty, and so does a criterion an incomplete sheet has no
    entry for (``SheetScore.missing``); 复核得分 columns appear only with ``recheck_score``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown score sheet layout {layout!r} (known: {', '.join(LAYOUTS)})")
    groups: list[tuple[str, SheetScore | None]] = [("自评得分", self_score), ("核查得分", verified_score)]
    if recheck_score is not None:
        groups.append(("复核得分", recheck_score))
    for name, score in groups:
        if score is not None and score.rubric_id != rubric.id:
            raise ValueError(f"{name}: sheet was scored with rubric {score.rubric_id}, not {rubric.id}")

    workbook = Workbook()
    sheet = workbook.active
    assert isinstance(sheet, Worksheet)
    _fill(sheet, LAYOUTS[layout], rubric, groups, unit_name, title or default_title(rubric))
    _save(workbook, Path(out))


def _fill(
    ws: Worksheet, layout: _Layout, rubric: Rubric, groups: list[tuple[str, SheetScore | None]],
    unit_name: str, title: str,
) -> None:
    ws.title = layout.sheet
    fixed = len(layout.columns)
    width = fixed + 2 * len(groups)
    _heading(ws, layout, groups, unit_name, title, width)
    row = FIRST_DATA_ROW
    for section in rubric.sections:
        section_start = row
        for item in section.items:
            item_start = row
            for criterion in item.criteria:
                for col, column in enumerate(layout.columns, start=1):
                    if column.scope == "row" or row == (item_start if column.scope == "item" else section_start):
                        ws.cell(row, col, safe_cell(column.value(section, item, criterion)))
                for g, (_, score) in enumerate(groups):
                    if score is not None:
                        col = fixed + 1 + 2 * g
                        if criterion.code not in score.missing:
                            ws.cell(row, col, json_number(score.criteria[criterion.code]))
                        if row == item_start:
                            ws.cell(row, col + 1, json_number(score.items[item.code]))
                row += 1
            item_cols = [c for c, column in enumerate(layout.columns, start=1) if column.scope == "item"]
            item_cols += [fixed + 2 + 2 * g for g in range(len(groups))]
            _merge_down(ws, item_cols, item_start, row - 1)
        section_cols = [c for c, column in enumerate(layout.columns, start=1) if column.scope == "section"]
        _merge_down(ws, section_cols, section_start, row - 1)

    total_row = row
    ws.cell(total_row, 1, "总分")
    _merge(ws, total_row, 1, total_row, layout.total_label_span)
    ws.cell(total_row, layout.total_label_span + 1, json_number(rubric.total))
    _merge(ws, total_row, layout.total_label_span + 1, total_row, fixed)
    for g, (_, score) in enumerate(groups):
        col = fixed + 1 + 2 * g
        if score is not None:
            ws.cell(total_row, col, json_number(score.total))
        ws.merge_cells(start_row=total_row, start_column=col, end_row=total_row, end_column=col + 1)

    _style(ws, layout, width, total_row)


def _heading(ws: Worksheet, layout: _Layout, groups: list[tuple[str, SheetScore | None]], unit_name: str,
             title: str, width: int) -> None:
    """The title, the unit's line, and the two header rows (分项得分 / 项目得分 under each group)."""
    fixed = len(layout.columns)
    ws.cell(TITLE_ROW, 1, safe_cell(title)).font = Font(bold=True, size=16)
    ws.cell(TITLE_ROW, 1).alignment = Alignment(horizontal="center", vertical="center")
    ws.merge_cells(start_row=TITLE_ROW, start_column=1, end_row=TITLE_ROW, end_column=width)
    unit_cell = ws.cell(UNIT_ROW, 1, safe_cell(f"单位：{unit_name}（盖章）"))
    unit_cell.alignment = Alignment(horizontal="left", vertical="center")
    ws.merge_cells(start_row=UNIT_ROW, start_column=1, end_row=UNIT_ROW, end_column=width)
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
    ws.print_title_rows = f"{HEADER_ROW}:{SUBHEADER_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)


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
