"""The workbooks printed: each written from a realistic round (``world.py``), converted to PDF
by LibreOffice in one run, and read back page by page with poppler.

What a clerk needs of a printout, checked on the PDF: A4 in the orientation the sheet asks for;
one page wide (every column's header on every page); the header rows repeated on every page;
the page number in the footer; Chinese headers; every criterion's full text on the page and no
text drawn over another (a text that runs out of a row too short overlaps the next row's). On
the workbook: every long text wrapped, every row at least as high as its text needs.

Skipped, saying so, where LibreOffice or poppler is not installed (.ci/run installs them).
About 3 s: one world, one LibreOffice run for the three workbooks.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from workflow.adapters.case_list_xlsx import HEADER as CASE_LIST_HEADER
from workflow.adapters.score_sheet_xlsx import criterion_text
from workflow.domain.lifecycle import STATE_NAMES

from .rendering import MISSING, SKIP_REASON, Word, flat, is_a4, overlapping, page_sizes, page_texts, page_words
from .world import ROUND, SHEET_CASE, Workbooks, print_all

pytestmark = pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)

SCORE_HEADERS = ("序号", "评价单元", "评价项目", "评价标准", "自评得分", "核查得分", "分项得分", "项目得分", "编号")
LAGGING_HEADERS = ("案件编号", "单位", "所属地区", "单位类别", "状态", "逾期事项", "截止日期", "地区代码")
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Printed:
    books: Workbooks
    pdf: dict[str, Path]  # "score-sheet", "progress", "case-list"

    def pages(self, name: str) -> list[str]:
        return page_texts(self.pdf[name])


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Printed]:
    books, pdfs = print_all(tmp_path_factory.mktemp("printing"), sqlite_template)
    yield Printed(books, {pdf.stem: pdf for pdf in pdfs})


def sheet(path: Path, title: str | None = None) -> Worksheet:
    book = load_workbook(path)
    ws = book[title] if title else book.active
    assert isinstance(ws, Worksheet)
    return ws


def estimated_lines(text: str, width: float) -> int:
    """This test's own estimate: a 汉字 (or full-width sign) two digits wide, nothing to spare."""
    wide = sum(2 if re.match(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]", ch) else 1 for ch in text)
    return max(1, -(-wide // max(1, int(width) - 1)))


def ghosts(words: list[Word], labels: set[str], body_top: float) -> set[Word]:
    """Where a merged cell (a section's or item's name) runs over a page break, LibreOffice also
    draws its text on the next page, clipped away above the page's first row (under the repeated
    header rows): there in the PDF's text, invisible on paper. Those words, so that they are not
    counted as overlaps."""
    return {w for w in words if w.y1 <= body_top and any(w.text in label for label in labels)}


# ---------------------------------------------------------------- 附件3, the score sheet
def test_the_score_sheet_prints_on_a4_landscape_one_page_wide(printed: Printed) -> None:
    sizes = page_sizes(printed.pdf["score-sheet"])
    assert len(sizes) >= 2 and all(is_a4(s, landscape=True) for s in sizes), sizes
    pages = printed.pages("score-sheet")
    assert len(pages) == len(sizes)
    for n, page in enumerate(pages, start=1):
        # the header rows on every page, with every column's header: nothing went to a page to the right
        assert all(h in flat(page) for h in SCORE_HEADERS), (n, page[:300])
        assert f"第{n}页，共{len(pages)}页" in flat(page)
    first = flat(pages[0])
    assert "山西省节约型机关创建自评表" in first and f"单位：{printed.books.sheets.unit_name}（盖章）" in first
    assert f"案件编号：{SHEET_CASE}" in first and f"轮次：{ROUND}" in first


def test_every_criterion_is_printed_whole_and_nothing_overlaps(printed: Printed) -> None:
    rubric = printed.books.rubric
    text = "".join(flat(p) for p in printed.pages("score-sheet"))
    cut = [c.code for c in rubric.criteria() if flat(criterion_text(c)) not in text]
    assert cut == [], f"criteria not printed whole: {cut}"
    labels = {f"{s.name} ({s.max_points}分)" for s in rubric.sections} | {s.code for s in rubric.sections}
    labels |= {i.name for i in rubric.items()} | {f"({i.max_points}分)" for i in rubric.items()}
    codes = {c.code for c in rubric.criteria()}
    for n, words in enumerate(page_words(printed.pdf["score-sheet"]), start=1):
        body_top = min(w.y0 for w in words if w.text in codes)  # the page's first criterion row
        hidden = ghosts(words, labels, body_top) if n > 1 else set()
        clashes = [(a.text, b.text) for a, b in overlapping(words) if a not in hidden and b not in hidden]
        assert clashes == [], f"page {n}: text drawn over other text: {clashes[:5]}"


def test_every_criterion_cell_wraps_in_a_row_high_enough(printed: Printed) -> None:
    ws = sheet(printed.books.score_sheet)
    column = next(c for c in range(1, ws.max_column + 1) if ws.cell(3, c).value == "评价标准")
    code_column = next(c for c in range(1, ws.max_column + 1) if ws.cell(3, c).value == "编号")
    width = ws.column_dimensions[ws.cell(3, column).column_letter].width
    rows = {ws.cell(r, code_column).value: r for r in range(5, ws.max_row + 1)}
    for criterion in printed.books.rubric.criteria():
        cell = ws.cell(rows[criterion.code], column)
        assert cell.value == criterion_text(criterion) and cell.alignment.wrap_text, criterion.code
        height = ws.row_dimensions[cell.row].height
        assert height is not None and height >= 14 * estimated_lines(criterion_text(criterion), width), \
            (criterion.code, height)
    setup = ws.page_setup
    assert (int(setup.paperSize), setup.orientation, setup.fitToWidth, setup.fitToHeight) == (9, "landscape", 1, 0)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.print_title_rows == "$3:$4"
    assert ws.oddFooter.center.text == "第 &P 页，共 &N 页"


# ---------------------------------------------------------------- the progress workbook
def test_the_progress_workbook_prints_one_page_wide_with_chinese_headers(printed: Printed) -> None:
    book = load_workbook(printed.books.progress)
    assert book.sheetnames == ["进度", "滞后单位"]
    progress, lagging = book["进度"], book["滞后单位"]
    headers = [c.value for c in progress[2]]
    assert all(CJK.search(str(h)) for h in headers), headers  # no milestone id, no English
    names = printed.books.milestone_names
    assert "逾期：创建工作联系人信息表报送" in headers and f"逾期：{names['self_assessment']}" in headers
    assert progress["B3"].value == "省" and progress.cell(3, len(headers)).value == "shanxi"  # the code kept, last
    sizes = page_sizes(printed.pdf["progress"])
    pages = printed.pages("progress")
    overview = [n for n, p in enumerate(pages) if "达标占比" in flat(p) and "逾期事项" not in flat(p)]
    behind = [n for n, p in enumerate(pages) if "逾期事项" in flat(p)]
    assert overview == [0] and behind == list(range(1, len(pages))) and len(behind) >= 2, len(pages)
    assert is_a4(sizes[0], landscape=True) and all(is_a4(sizes[n], landscape=False) for n in behind), sizes
    for header in headers:  # every column of 进度 on its one page
        assert flat(header) in flat(pages[0]), header
    for n in behind:  # 滞后单位: its header row on every page, every column
        assert all(h in flat(pages[n]) for h in LAGGING_HEADERS), (n, pages[n][:300])
    lagging_rows = list(lagging.iter_rows(min_row=3, values_only=True))
    assert {r[2] for r in lagging_rows} == {"山西省"} and {r[7] for r in lagging_rows} == {"shanxi"}
    text = "".join(flat(p) for p in pages[1:])
    assert all(flat(r[1]) in text and flat(r[5]) in text for r in lagging_rows)
    for n, words in enumerate(page_words(printed.pdf["progress"]), start=1):
        assert [(a.text, b.text) for a, b in overlapping(words)] == [], f"page {n}"
        assert f"第{n}页" in flat(pages[n - 1])


# ---------------------------------------------------------------- the case list
def test_the_case_list_prints_one_page_wide_its_header_on_every_page(printed: Printed) -> None:
    sizes = page_sizes(printed.pdf["case-list"])
    pages = printed.pages("case-list")
    assert len(pages) >= 2 and all(is_a4(s, landscape=True) for s in sizes), sizes
    ws = sheet(printed.books.case_list)
    assert [c.value for c in ws[2]] == list(CASE_LIST_HEADER)
    assert all(CJK.search(h) for h in CASE_LIST_HEADER)
    for n, page in enumerate(pages, start=1):
        assert all(flat(h) in flat(page) for h in CASE_LIST_HEADER), (n, page[:300])
        assert f"第{n}页，共{len(pages)}页" in flat(page)
    ids = [r[0] for r in ws.iter_rows(min_row=3, values_only=True)]
    assert len(ids) == printed.books.cases == 35 + 80
    text = "".join(flat(p) for p in pages)
    assert all(flat(r[2]) in text for r in ws.iter_rows(min_row=3, values_only=True))  # every unit's name
    assert STATE_NAMES["rectification"] in text and STATE_NAMES["certified"] in text
    for n, words in enumerate(page_words(printed.pdf["case-list"]), start=1):
        assert [(a.text, b.text) for a, b in overlapping(words)] == [], f"page {n}"
