"""Score sheets exported as .xlsx and read back with openpyxl.

Expectations are derived from the rubric files and from ``score_sheet`` results, never copied
from an exported file.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl import Workbook
from openpyxl.cell.cell import MergedCell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from workflow.adapters.rubric_files import load_rubric
from workflow.adapters.score_sheet_xlsx import export_score_sheet, layout_for
from workflow.config import REPO_ROOT
from workflow.domain.rubric import Criterion, Item, Rubric, Section, SheetScore, score_sheet

SHANXI = load_rubric(REPO_ROOT / "rubrics" / "shanxi-2020.yaml")
HUNAN = load_rubric(REPO_ROOT / "rubrics" / "hunan-2020.yaml")
UNIT = "山西省机关事务管理局"
FIRST = 5  # first criterion row: title, 单位, two header rows


def entries(rubric: Rubric, changes: Mapping[str, Decimal | int]) -> dict[str, Decimal | int]:
    """Every criterion at its cap (in points), then ``changes``."""
    full: dict[str, Decimal | int] = {c.code: c.cap for c in rubric.criteria()}
    return full | dict(changes)


SHANXI_SELF = score_sheet(SHANXI, entries(SHANXI, {"2.1.2": 1, "2.2.2": 3, "3.1.4": Decimal("1.5"), "5.1.1": 2}),
                          complete=True)
SHANXI_VERIFIED = score_sheet(SHANXI, entries(SHANXI, {"2.1.2": 0, "2.2.2": 2, "4.1.1": Decimal("0.5"), "5.2.2": 2}),
                              complete=True)
SHANXI_RECHECK = score_sheet(SHANXI, entries(SHANXI, {"1.1.1": Decimal("8.5")}), complete=True)
HUNAN_SELF = score_sheet(HUNAN, entries(HUNAN, {"4.1.2": Decimal("2.5"), "2.2.5": 3}), complete=True)  # 3 rules
# 10 + 4 + 4 + 2.5 points lost: a verified total of 79.5, just below the pass mark
HUNAN_VERIFIED = score_sheet(HUNAN, entries(HUNAN, {"1.1.1": 0, "2.2.1": 0, "2.2.2": 0, "4.1.2": 1}), complete=True)


@dataclass(frozen=True)
class Expected:
    """The printed layout as the brief describes it, written independently of the module."""

    layout: str
    sheet: str
    headers: tuple[str, ...]
    fixed: Mapping[str, Callable[[Section, Item, Criterion], Any]]  # column letter -> value
    section_cols: str
    item_cols: str  # fixed columns merged over an item's rows
    total_label: str  # merged range of 总分 (columns)
    total_value: str  # merged range holding the rubric total (columns)


def _pts(d: Decimal) -> str:
    return str(int(d)) if d == d.to_integral_value() else str(d)


def _text(c: Criterion) -> str:
    return f"{c.label}.{c.text}" if c.label else c.text


SHANXI_LAYOUT = Expected(
    layout="shanxi", sheet="自评表", headers=("序号", "评价单元", "评价项目", "评价标准"),
    fixed={
        "A": lambda s, i, c: s.code,
        "B": lambda s, i, c: f"{s.name} ({_pts(s.max_points)}分)",
        "C": lambda s, i, c: f"{i.name} ({_pts(i.max_points)}分)",
        "D": lambda s, i, c: _text(c),
    },
    section_cols="AB", item_cols="C", total_label="A", total_value="BD",
)
HUNAN_LAYOUT = Expected(
    layout="hunan", sheet="评价指标", headers=("序号", "单元", "项目", "评分要求", "评分规则", "分值"),
    fixed={
        "A": lambda s, i, c: s.code,
        "B": lambda s, i, c: s.name,
        "C": lambda s, i, c: i.name,
        "D": lambda s, i, c: i.requirement,
        "E": lambda s, i, c: _text(c),
        "F": lambda s, i, c: i.max_points,
    },
    section_cols="AB", item_cols="CDF", total_label="AE", total_value="F",
)


# ---------------------------------------------------------------- helpers
def export(tmp_path: Path, rubric: Rubric, layout: str, self_score: SheetScore | None,
           verified: SheetScore | None, recheck: SheetScore | None = None, **kw: Any) -> Worksheet:
    out = tmp_path / f"{rubric.id}-{layout}.xlsx"
    export_score_sheet(rubric, unit_name=UNIT, layout=layout, self_score=self_score, verified_score=verified,
                       out=out, recheck_score=recheck, **kw)
    ws = openpyxl.load_workbook(out).active
    assert isinstance(ws, Worksheet)
    return ws


def rows(rubric: Rubric) -> list[tuple[int, Section, Item, Criterion]]:
    """(row, section, item, criterion) for every criterion row, in rubric order."""
    triples = [(s, i, c) for s in rubric.sections for i in s.items for c in i.criteria]
    return [(FIRST + n, s, i, c) for n, (s, i, c) in enumerate(triples)]


def span(rubric: Rubric, codes: Callable[[Section, Item], bool]) -> tuple[int, int]:
    """First and last row of the criteria whose section/item match."""
    matching = [r for r, s, i, _ in rows(rubric) if codes(s, i)]
    return matching[0], matching[-1]


def col_range(cols: str, first: int, last: int) -> str:
    return f"{cols[0]}{first}:{cols[-1]}{last}"


def number(value: Any) -> Decimal | None:
    """A cell's number as an exact Decimal (openpyxl reads int or float); None stays None."""
    if value is None:
        return None
    assert isinstance(value, (int, float)) and not isinstance(value, bool), value
    return Decimal(str(value))


def score_cols(exp: Expected, groups: int) -> list[tuple[str, str]]:
    start = len(exp.headers) + 1
    return [(get_column_letter(start + 2 * g), get_column_letter(start + 2 * g + 1)) for g in range(groups)]


def code_col(exp: Expected, groups: int) -> str:
    """The last column, 编号: each criterion's code."""
    return get_column_letter(len(exp.headers) + 2 * groups + 1)


def expected_merges(exp: Expected, rubric: Rubric, groups: int) -> set[str]:
    width = code_col(exp, groups)
    total = FIRST + len(rubric.criteria())
    merges = {f"A1:{width}1", f"A2:{width}2", f"{width}3:{width}4"}
    merges |= {f"{get_column_letter(n)}3:{get_column_letter(n)}4" for n in range(1, len(exp.headers) + 1)}
    merges |= {f"{sub}3:{item}3" for sub, item in score_cols(exp, groups)}
    merges |= {f"{sub}{total}:{item}{total}" for sub, item in score_cols(exp, groups)}
    for cols in (exp.total_label, exp.total_value):
        if len(cols) > 1:
            merges.add(col_range(cols, total, total))
    for section in rubric.sections:
        first, last = span(rubric, lambda s, i, section=section: s.code == section.code)
        if last > first:
            merges |= {f"{c}{first}:{c}{last}" for c in exp.section_cols}
        for item in section.items:
            first, last = span(rubric, lambda s, i, item=item: i.code == item.code)
            if last > first:
                cols = list(exp.item_cols) + [item_col for _, item_col in score_cols(exp, groups)]
                merges |= {f"{c}{first}:{c}{last}" for c in cols}
    return merges


def check_sheet(ws: Worksheet, exp: Expected, rubric: Rubric, scores: list[SheetScore | None],
                group_names: tuple[str, ...]) -> None:
    """Everything about a sheet: header, merges, every criterion row, the 总分 row."""
    assert ws.title == exp.sheet
    assert ws.max_column == len(exp.headers) + 2 * len(scores) + 1  # 编号 last
    assert [ws.cell(3, n).value for n in range(1, len(exp.headers) + 1)] == list(exp.headers)
    assert ws[f"{code_col(exp, len(scores))}3"].value == "编号"
    cols = score_cols(exp, len(scores))
    assert [ws[f"{sub}3"].value for sub, _ in cols] == list(group_names)
    assert [(ws[f"{sub}4"].value, ws[f"{item}4"].value) for sub, item in cols] == [("分项得分", "项目得分")] * len(cols)
    assert {str(r) for r in ws.merged_cells.ranges} == expected_merges(exp, rubric, len(scores))

    first_of_section: set[int] = set()
    first_of_item: set[int] = set()
    for section in rubric.sections:
        first_of_section.add(span(rubric, lambda s, i, section=section: s.code == section.code)[0])
        first_of_item |= {span(rubric, lambda s, i, item=item: i.code == item.code)[0] for item in section.items}
    for row, s, i, c in rows(rubric):
        for col, value in exp.fixed.items():
            scope_first = (first_of_section if col in exp.section_cols
                           else first_of_item if col in exp.item_cols else None)
            want = value(s, i, c) if scope_first is None or row in scope_first else None
            got = ws[f"{col}{row}"].value
            assert (number(got) if isinstance(want, Decimal) else got) == want, (col, row)
        for (sub, item_col), score in zip(cols, scores):
            want_sub = None if score is None else score.criteria[c.code]
            want_item = None if score is None or row not in first_of_item else score.items[i.code]
            assert number(ws[f"{sub}{row}"].value) == want_sub, (sub, row, c.code)
            assert number(ws[f"{item_col}{row}"].value) == want_item, (item_col, row, i.code)
        assert ws[f"{code_col(exp, len(scores))}{row}"].value == c.code

    total = FIRST + len(rubric.criteria())
    assert ws.max_row == total
    assert ws[f"{exp.total_label[0]}{total}"].value == "总分"
    assert number(ws[f"{exp.total_value[0]}{total}"].value) == rubric.total
    for (sub, _), score in zip(cols, scores):
        assert number(ws[f"{sub}{total}"].value) == (None if score is None else score.total)


# ---------------------------------------------------------------- layouts
def test_shanxi_sheet(tmp_path: Path) -> None:
    ws = export(tmp_path, SHANXI, "shanxi", SHANXI_SELF, SHANXI_VERIFIED)
    assert ws["A1"].value == "山西省节约型机关创建自评表"  # as printed in 附件3
    assert ws["A2"].value == f"单位：{UNIT}（盖章）"
    check_sheet(ws, SHANXI_LAYOUT, SHANXI, [SHANXI_SELF, SHANXI_VERIFIED], ("自评得分", "核查得分"))


def test_hunan_sheet(tmp_path: Path) -> None:
    ws = export(tmp_path, HUNAN, "hunan", HUNAN_SELF, HUNAN_VERIFIED)
    assert ws["A1"].value == "湖南省节约型机关自评表"
    check_sheet(ws, HUNAN_LAYOUT, HUNAN, [HUNAN_SELF, HUNAN_VERIFIED], ("自评得分", "核查得分"))


def test_per_occurrence_points_and_lowered_scores_reach_the_sheet(tmp_path: Path) -> None:
    # preconditions: the scores differ from the caps and between self and verified
    assert SHANXI_SELF.criteria["5.1.1"] == SHANXI.criterion("5.1.1").points  # 1 activity: 2 分
    assert SHANXI_SELF.total != SHANXI_VERIFIED.total
    ws = export(tmp_path, SHANXI, "shanxi", SHANXI_SELF, SHANXI_VERIFIED)
    row = {c.code: r for r, _, _, c in rows(SHANXI)}
    for code in ("2.1.2", "2.2.2", "3.1.4", "5.1.1", "4.1.1", "5.2.2"):
        assert number(ws[f"E{row[code]}"].value) == SHANXI_SELF.criteria[code]
        assert number(ws[f"G{row[code]}"].value) == SHANXI_VERIFIED.criteria[code]
    assert number(ws[f"E{row['2.1.2']}"].value) != number(ws[f"G{row['2.1.2']}"].value)


def test_half_points_survive_and_whole_numbers_are_ints(tmp_path: Path) -> None:
    halves = [c for c in HUNAN.criteria() if c.cap != c.cap.to_integral_value()]
    assert {c.cap for c in halves} == {Decimal("1.5"), Decimal("2.5"), Decimal("3.5")}
    assert HUNAN_VERIFIED.total == Decimal("79.5")
    ws = export(tmp_path, HUNAN, "hunan", HUNAN_SELF, HUNAN_VERIFIED)
    row = {c.code: r for r, _, _, c in rows(HUNAN)}
    for c in halves:
        assert ws[f"G{row[c.code]}"].value == HUNAN_SELF.criteria[c.code]  # exact: Decimal == float
    total = FIRST + len(HUNAN.criteria())
    assert ws[f"I{total}"].value == 79.5
    assert number(ws[f"G{total}"].value) == HUNAN_SELF.total
    whole = [c for c in HUNAN.criteria() if HUNAN_VERIFIED.criteria[c.code] == int(HUNAN_VERIFIED.criteria[c.code])]
    assert whole and all(type(ws[f"I{row[c.code]}"].value) is int for c in whole)


def test_recheck_columns_only_when_given(tmp_path: Path) -> None:
    ws = export(tmp_path, SHANXI, "shanxi", SHANXI_SELF, SHANXI_VERIFIED, SHANXI_RECHECK)
    check_sheet(ws, SHANXI_LAYOUT, SHANXI, [SHANXI_SELF, SHANXI_VERIFIED, SHANXI_RECHECK],
                ("自评得分", "核查得分", "复核得分"))
    ws = export(tmp_path, HUNAN, "hunan", HUNAN_SELF, None, HUNAN_VERIFIED)
    check_sheet(ws, HUNAN_LAYOUT, HUNAN, [HUNAN_SELF, None, HUNAN_VERIFIED], ("自评得分", "核查得分", "复核得分"))
    ws = export(tmp_path, HUNAN, "hunan", HUNAN_SELF, HUNAN_VERIFIED)
    assert "复核得分" not in {cell.value for row in ws.iter_rows() for cell in row}


def test_none_scores_leave_cells_empty(tmp_path: Path) -> None:
    ws = export(tmp_path, SHANXI, "shanxi", None, SHANXI_VERIFIED)
    check_sheet(ws, SHANXI_LAYOUT, SHANXI, [None, SHANXI_VERIFIED], ("自评得分", "核查得分"))
    total = FIRST + len(SHANXI.criteria())
    assert all(ws.cell(r, c).value is None for r in range(FIRST, total + 1) for c in (5, 6))
    ws = export(tmp_path, HUNAN, "hunan", None, None)
    check_sheet(ws, HUNAN_LAYOUT, HUNAN, [None, None], ("自评得分", "核查得分"))
    hunan_total = FIRST + len(HUNAN.criteria())
    assert all(ws.cell(r, c).value is None for r in range(FIRST, hunan_total + 1) for c in range(7, 11))


def test_unentered_criteria_of_an_incomplete_sheet_are_blank(tmp_path: Path) -> None:
    partial = score_sheet(SHANXI, {"2.1.1": 1, "2.1.3": 1}, complete=False)
    ws = export(tmp_path, SHANXI, "shanxi", partial, None)
    for row, _, item, c in rows(SHANXI):
        want = None if c.code in partial.missing else partial.criteria[c.code]
        assert number(ws[f"E{row}"].value) == want
        if c is item.criteria[0]:
            assert number(ws[f"F{row}"].value) == partial.items[item.code]


def test_title_override_and_formatting(tmp_path: Path) -> None:
    ws = export(tmp_path, SHANXI, "shanxi", SHANXI_SELF, SHANXI_VERIFIED, title="山西省节约型机关创建自评表")
    assert ws["A1"].value == "山西省节约型机关创建自评表"
    assert ws.freeze_panes == f"A{FIRST}"
    assert ws.print_title_rows == "$3:$4"
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
    header = [cell for row in ws.iter_rows(min_row=3, max_row=4) for cell in row if not isinstance(cell, MergedCell)]
    assert len(header) == 4 + 2 + 4 + 1  # 序号..评价标准, 自评得分, 核查得分, four 分项/项目得分, 编号
    assert all(cell.font.bold and cell.alignment.horizontal == "center" for cell in header)
    assert ws["D6"].alignment.wrap_text
    assert ws.column_dimensions["D"].width > 2 * ws.column_dimensions["C"].width
    # every edge of every table cell (of a merged range: its outline) is drawn
    total = FIRST + len(SHANXI.criteria())
    for r in range(3, total + 1):
        for n in range(1, 9):
            merged = [m for m in ws.merged_cells.ranges if ws.cell(r, n).coordinate in m]
            rng = merged[0] if merged else None
            border = ws.cell(r, n).border
            edges = {
                "left": rng is None or n == rng.min_col, "right": rng is None or n == rng.max_col,
                "top": rng is None or r == rng.min_row, "bottom": rng is None or r == rng.max_row,
            }
            assert all(getattr(border, side).style == "thin" for side, outer in edges.items() if outer), (r, n)


# ---------------------------------------------------------------- refusals
def test_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="beijing") as info:
        export_score_sheet(SHANXI, unit_name=UNIT, layout="beijing", self_score=None, verified_score=None,
                           out=tmp_path / "x.xlsx")
    assert "shanxi" in str(info.value) and "hunan" in str(info.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("slot", ["self_score", "verified_score", "recheck_score"])
def test_sheet_from_another_rubric(tmp_path: Path, slot: str) -> None:
    kwargs: dict[str, SheetScore | None] = {"self_score": SHANXI_SELF, "verified_score": SHANXI_VERIFIED}
    kwargs[slot] = HUNAN_SELF
    with pytest.raises(ValueError) as info:
        export_score_sheet(SHANXI, unit_name=UNIT, layout="shanxi", out=tmp_path / "x.xlsx", **kwargs)  # type: ignore[arg-type]
    assert SHANXI.id in str(info.value) and HUNAN.id in str(info.value)
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(self: Workbook, filename: Any) -> None:
        Path(filename).write_bytes(b"PK half")  # something half-written, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(Workbook, "save", broken_save)
    out = tmp_path / "sheet.xlsx"
    with pytest.raises(OSError, match="disk full"):
        export_score_sheet(SHANXI, unit_name=UNIT, layout="shanxi", self_score=SHANXI_SELF, verified_score=None, out=out)
    assert not out.exists()
    assert not list(tmp_path.iterdir())

    out.write_bytes(b"the previous sheet")
    with pytest.raises(OSError):
        export_score_sheet(SHANXI, unit_name=UNIT, layout="shanxi", self_score=SHANXI_SELF, verified_score=None, out=out)
    assert out.read_bytes() == b"the previous sheet"
    assert list(tmp_path.iterdir()) == [out]


def test_layout_for() -> None:
    assert layout_for(SHANXI) == "shanxi"
    assert layout_for(HUNAN) == "hunan"
    with pytest.raises(ValueError, match="beijing"):
        layout_for(dataclasses.replace(SHANXI, province="beijing"))
