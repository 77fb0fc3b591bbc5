"""Reading back a filled-in score sheet (附件3): the workbook ``score_sheet_xlsx.py`` wrote for a
case, its 分项得分 filled in with a spreadsheet program, uploaded.

The file is bounded before openpyxl opens it, as a roster is (``rosters.check_size`` and
``rosters.check_package``: bytes, parts, rows, columns, cells, merged ranges, unpacked size,
:class:`~workflow.adapters.rosters.SheetLimits`); openpyxl then streams its first worksheet in
read-only mode. The sheet must be the case's own: its ``单位：…（盖章）`` line names the case's
unit, and where it shows them (a case's sheet does) its 案件编号 and 轮次 are the case's and
round's. Each criterion's row is found by its code in the 编号 column, and its points read from
the 分项得分 cell under 自评得分 (a self-assessment) or 核查得分 (a verification): a number, or
text such as ``9``, ``9.5``, ``９`` or ``9分``; a blank cell is no entry. A formula counts by the
value the spreadsheet program saved with it, and one saved without a value is refused. Whether
the points are possible (not negative, at most the cap, a multiple of the step or of the points
per occurrence) is the rubric's rule (``domain.rubric.score_sheet``), asked here so that each
refusal names its row. Every problem names the row and the criterion, in English and Chinese,
the first 100 of them listed and the rest counted; nothing is returned unless all is right.
"""
from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ..domain.errors import InvalidInput, Problem, ProblemList
from ..domain.rubric import score_sheet
from ..service.sheet_upload import SheetForm
from .rosters import DEFAULT_LIMITS, SheetLimits, check_extent, check_package, check_size, refuse
from .score_sheet_xlsx import CASE_LABEL, CODE_HEADER, GROUP_NAMES, ROUND_LABEL, SCORE_SUBHEADERS

COLUMNS = {"self": GROUP_NAMES["self"], "verify": GROUP_NAMES["verified"]}  # the group a kind fills in
HEADER_ROWS = 20  # the header is looked for in the first rows
_UNIT = re.compile(r"单位[：:]\s*(.*?)\s*[（(]盖章[）)]")
_CASE = re.compile(CASE_LABEL + r"[：:]\s*(\S+)")
_ROUND = re.compile(ROUND_LABEL + r"[：:]\s*(\S+)")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_CODE = re.compile(r"^\d+(\.\d+)+$")


class _NotPoints(Exception):
    def __init__(self, what: str, zh: str) -> None:
        super().__init__(what)
        self.what, self.zh = what, zh


@dataclass
class _Sheet:
    """What the stream kept: the rows above the table, the header's place, and per criterion
    row its code and its points cell (value, and whether it holds a formula)."""

    top: list[tuple[int, list[Any]]] = field(default_factory=list)
    header: int | None = None
    column: int | None = None  # 1-based: the 分项得分 cell of the kind's group
    code_column: int | None = None
    rows: list[tuple[int, Any, Any, bool]] = field(default_factory=list)  # row, code, points, formula


def read_score_sheet(data: bytes, source: str, form: SheetForm,
                     limits: SheetLimits = DEFAULT_LIMITS) -> dict[str, Decimal]:
    """The entries of the sheet, ``{criterion code: points}`` in rubric order; or one
    ``InvalidInput`` naming every problem by row and criterion (see the module's docstring)."""
    check_size(data, source, limits)
    check_package(data, source, limits)
    sheet = _scan(data, source, limits, COLUMNS[form.kind])
    _check_identity(sheet, form, source)
    if any(formula for *_, formula in sheet.rows):  # their values, as the spreadsheet program saved them
        saved = {r: value for r, _, value, _ in _scan(data, source, limits, COLUMNS[form.kind], data_only=True).rows}
        sheet.rows = [(r, code, saved.get(r) if formula else value, formula and saved.get(r) is None)
                      for r, code, value, formula in sheet.rows]
    return _entries(sheet, form, source)


def _workbook_rows(data: bytes, source: str, limits: SheetLimits, data_only: bool) -> Iterator[tuple[int, Any]]:
    """The first worksheet's rows as openpyxl streams them (read-only), each row checked
    against the limits as it comes (the package was checked whole before)."""
    from openpyxl import load_workbook
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=data_only, keep_links=False)
    except Exception as exc:  # a damaged or foreign file: openpyxl raises many kinds
        refuse(source, f"not a readable .xlsx workbook ({type(exc).__name__})", "不是可读取的 .xlsx 工作簿", source)
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if not isinstance(sheet, ReadOnlyWorksheet):
            refuse(source, "not a readable .xlsx workbook (no worksheet)", "不是可读取的 .xlsx 工作簿（没有工作表）",
                   source)
        sheet.reset_dimensions()  # its rows as they are, not as the sheet declares them
        wide = r = 0
        try:
            for r, cells in enumerate(sheet.iter_rows(min_row=1, min_col=1), start=1):
                wide = max(wide, len(cells))
                check_extent(source, f"{source}:{r}", r, wide, limits)
                yield r, cells
        except InvalidInput:
            raise
        except Exception as exc:  # XML that openpyxl cannot read
            refuse(f"{source}:{r + 1}", f"unreadable .xlsx ({type(exc).__name__})", "无法读取的 .xlsx 内容", source)
    finally:
        book.close()


def _scan(data: bytes, source: str, limits: SheetLimits, group: str, *, data_only: bool = False) -> _Sheet:
    """One pass over the sheet: the rows above the header kept whole, then per row below it the
    code and the points cell only."""
    found = _Sheet()
    for r, cells in _workbook_rows(data, source, limits, data_only):
        values = [getattr(c, "value", None) for c in cells]
        if found.header is None:
            if r > HEADER_ROWS:
                break
            found.top.append((r, values))
            _header_at(found, r, values, group)
        elif r > found.header + 1:
            assert found.column is not None and found.code_column is not None
            points = cells[found.column - 1] if len(cells) >= found.column else None
            code = values[found.code_column - 1] if len(values) >= found.code_column else None
            found.rows.append((r, code, getattr(points, "value", None), getattr(points, "data_type", None) == "f"))
    return found


def _header_at(found: _Sheet, r: int, values: list[Any], group: str) -> None:
    """Row ``r - 1`` is the header if it has 编号 and the group, and row ``r`` 分项得分 under the group."""
    if len(found.top) < 2:
        return
    above = [str(v).strip() if v is not None else "" for v in found.top[-2][1]]
    here = [str(v).strip() if v is not None else "" for v in values]
    if CODE_HEADER in above and group in above:
        column = above.index(group) + 1
        if len(here) >= column and here[column - 1] == SCORE_SUBHEADERS[0]:
            found.header, found.column, found.code_column = r - 1, column, above.index(CODE_HEADER) + 1


def _check_identity(sheet: _Sheet, form: SheetForm, source: str) -> None:
    """The sheet is the case's: its header found, its unit the case's, and where it shows them,
    the case's id and round."""
    group = COLUMNS[form.kind]
    if sheet.header is None:
        raise InvalidInput(
            f"{source}: not a score sheet of this system: no header row with {CODE_HEADER} and {group} (分项得分 "
            f"under it) in its first {HEADER_ROWS} rows; download the case's sheet and fill that in",
            [Problem(source, f"no header row with {CODE_HEADER} and {group} / 分项得分",
                     f"前 {HEADER_ROWS} 行中没有含“{CODE_HEADER}”“{group}”（其下为“分项得分”）的表头")],
            f"{source}：不是本系统导出的评分表，请下载本案件的评分表填写后上传")
    problems = ProblemList()
    for r, values in sheet.top[:-2]:
        text = " ".join(str(v) for v in values if isinstance(v, str))
        _identity_row(r, text, form, problems)
    if not any(_UNIT.search(" ".join(str(v) for v in values if isinstance(v, str))) for _, values in sheet.top):
        problems.add("row 2", "no 单位：…（盖章） line: the sheet does not say whose it is",
                     "第2行：没有“单位：…（盖章）”，无法确认是哪个单位的评分表")
    problems.raise_if_any(f"{source}: not the score sheet of case {form.case_id} ({form.unit_name}, {form.round_id}); "
                          "nothing was recorded",
                          f"{source}：不是案件 {form.case_id}（{form.unit_name}，{form.round_id}）的评分表，未登记",
                          case_id=form.case_id)


def _identity_row(r: int, text: str, form: SheetForm, problems: ProblemList) -> None:
    unit, case, rnd = _UNIT.search(text), _CASE.search(text), _ROUND.search(text)
    if unit is not None and unit.group(1) != form.unit_name:
        problems.add(f"row {r}",
                     f"the sheet is of unit {unit.group(1)!r}; case {form.case_id} is of {form.unit_name!r}",
                     f"第{r}行：这是“{unit.group(1)}”的评分表，案件 {form.case_id} 的单位是“{form.unit_name}”")
    if case is not None and case.group(1) != str(form.case_id):
        problems.add(f"row {r}", f"the sheet is case {case.group(1)}'s, not case {form.case_id}'s",
                     f"第{r}行：这是案件 {case.group(1)} 的评分表，不是案件 {form.case_id} 的")
    if rnd is not None and rnd.group(1) != form.round_id:
        problems.add(f"row {r}", f"the sheet is of round {rnd.group(1)}, case {form.case_id} of {form.round_id}",
                     f"第{r}行：这是 {rnd.group(1)} 轮次的评分表，案件 {form.case_id} 属于 {form.round_id}")


def _entries(sheet: _Sheet, form: SheetForm, source: str) -> dict[str, Decimal]:
    """Every criterion's row by its code, its points read, then the rubric's rule asked."""
    rubric, group = form.rubric, COLUMNS[form.kind]
    codes = {c.code for c in rubric.criteria()}
    problems = ProblemList()
    rows: dict[str, int] = {}
    entries: dict[str, Decimal] = {}
    for r, raw_code, value, no_value in sheet.rows:
        code = str(raw_code).strip() if raw_code is not None else ""
        if not _CODE.match(code):
            continue  # the 总分 row, or anything written below the table
        where = f"row {r} ({code})"
        if code in rows:
            problems.add(where, f"criterion {code} is on row {rows[code]} too",
                         f"第{r}行：评分项 {code} 与第{rows[code]}行重复")
            continue
        rows[code] = r
        if code not in codes:
            problems.add(where, f"rubric {rubric.id} has no criterion {code}",
                         f"第{r}行：评价标准 {rubric.id} 中没有编号为 {code} 的评分项")
            continue
        try:
            points = _points(value, no_value)
        except _NotPoints as exc:
            problems.add(where, exc.what, f"第{r}行（{code}）：{exc.zh}")
            continue
        if points is not None:
            entries[code] = points
    for criterion in rubric.criteria():
        if criterion.code not in rows:
            problems.add(f"criterion {criterion.code}",
                         f"no row has {CODE_HEADER} {criterion.code}: its row was deleted or its code changed",
                         f"评分项 {criterion.code}：表中没有{CODE_HEADER}为 {criterion.code} 的行"
                         "（行被删除或编号被修改）")
    _rubric_rule(form, entries, rows, problems)
    if not problems and not entries:
        problems.add(group, f"no points entered under {group} (分项得分)", f"“{group}”的“分项得分”一栏未填写任何分数")
    problems.raise_if_any(f"{source}: the score sheet has problems; nothing was recorded",
                          f"{source}：评分表有误，未登记", case_id=form.case_id)
    return {c.code: entries[c.code] for c in rubric.criteria() if c.code in entries}


def _rubric_rule(form: SheetForm, entries: dict[str, Decimal], rows: dict[str, int], problems: ProblemList) -> None:
    """The rubric's own check of the entries (possible points; with a verification, every
    criterion answered), each refusal moved to its row."""
    try:
        score_sheet(form.rubric, entries, complete=form.complete)
    except InvalidInput as exc:
        for p in exc.problems:
            row = rows.get(p.where)
            if row is None:  # a criterion without a row is named already
                continue
            problems.add(f"row {row} ({p.where})", p.what, f"第{row}行（{p.where}）：{p.zh or p.what}")
        problems.count += max(0, exc.problem_count - len(exc.problems))


def _points(value: Any, no_value: bool) -> Decimal | None:
    """A cell's points: None for a blank; a number, or text that is one (full-width digits and a
    trailing 分 allowed). Anything else is :class:`_NotPoints`, saying why."""
    if no_value:
        raise _NotPoints("a formula saved without its value: type the points, or save the file in a spreadsheet "
                         "program that computes it", "公式没有计算结果：请直接填写分数，或用电子表格软件重新计算后保存")
    if value is None:
        return None
    if isinstance(value, bool):
        raise _NotPoints(f"not points: {value}", f"不是分数：{'TRUE' if value else 'FALSE'}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return _plain(Decimal(repr(value)))  # the number as the file wrote it, no float arithmetic
    if isinstance(value, (datetime, date, time, timedelta)):
        raise _NotPoints(f"a date or time, not points: {value}", f"填写的是日期或时间，不是分数：{value}")
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if text.endswith("分"):
        text = text[:-1].strip()
    if not text:
        return None
    if not _NUMBER.match(text):
        shown = str(value)[:40]
        raise _NotPoints(f"not a number: {shown!r}", f"不是数字：“{shown}”")
    try:
        return _plain(Decimal(text))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise _NotPoints(f"not a number: {text!r}", f"不是数字：“{text}”") from None


def _plain(number: Decimal) -> Decimal:
    """``9.0`` → ``9``, ``9.50`` → ``9.5``: the points as a person writes them."""
    return Decimal(int(number)) if number == number.to_integral_value() else number.normalize()
