"""Every roster is bounded before it is read: a hostile .xlsx or CSV is refused at once, the
limit it breaks named with where it breaks it, and nothing is imported, through the service
and through the API's roster upload (on SQLite and PostgreSQL).

The hostile workbooks are written here by hand, as a zip of XML parts, because openpyxl will
not write most of them: a 1.5 KB file whose merged range covers A2:XFD1048576, one cell at
XFD1048576, a sheet declaring itself A1:XFD1048576, a zip bomb, a part that unpacks to more
than it declares, and so on. The memory a server spends on them is measured in
test_spreadsheet_memory.py.
"""
from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.utils.cell import get_column_letter
from sqlalchemy import func, select
from sqlmodel import Session

from workflow.adapters.db.tables import Unit
from workflow.adapters.rosters import DEFAULT_LIMITS, SheetLimits, read_units
from workflow.config import Settings
from workflow.domain.errors import MAX_PROBLEMS, InvalidInput
from workflow.files import import_units, import_units_data

from ..support import OPERATOR

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
BOOK_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
HEADER = ("单位名称", "所属地区", "类别")
GOOD = ("山西防线测试局", "shanxi", "行政机关")


# ---------------------------------------------------------------- workbooks written by hand
def package(sheet: bytes | Iterable[bytes], parts: dict[str, bytes] | None = None,
            declared: dict[str, int] | None = None) -> bytes:
    """A minimal .xlsx: content types, relationships, a workbook and its one sheet (given as
    bytes, or as chunks written as they come), and ``parts`` (xl/sharedStrings.xml is tied in).
    ``declared``: parts whose size in the zip's table of contents is a lie."""
    parts = dict(parts or {})
    strings = "xl/sharedStrings.xml" in parts
    overrides = (f'<Override PartName="/xl/workbook.xml" ContentType="{BOOK_TYPE}"/>'
                 f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{SHEET_TYPE}"/>'
                 + (f'<Override PartName="/xl/sharedStrings.xml" ContentType="{STRINGS_TYPE}"/>' if strings else ""))
    links = (f'<Relationship Id="rId1" Type="{DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
             + (f'<Relationship Id="rId2" Type="{DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/>'
                if strings else ""))
    members: dict[str, bytes | Iterable[bytes]] = {
        "[Content_Types].xml": (f'<Types xmlns="{TYPES}"><Default Extension="rels" ContentType="application/'
                                f'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
                                f'ContentType="application/xml"/>{overrides}</Types>').encode(),
        "_rels/.rels": (f'<Relationships xmlns="{PACKAGE_RELS}"><Relationship Id="rId1" '
                        f'Type="{DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>').encode(),
        "xl/workbook.xml": (f'<workbook xmlns="{MAIN}" xmlns:r="{DOC_RELS}"><sheets><sheet name="名单" sheetId="1" '
                            f'r:id="rId1"/></sheets></workbook>').encode(),
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{PACKAGE_RELS}">{links}</Relationships>'.encode(),
        "xl/worksheets/sheet1.xml": sheet, **parts}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            if isinstance(content, bytes):
                z.writestr(name, content)
                continue
            with z.open(name, "w") as stream:
                for chunk in content:
                    stream.write(chunk)
    data = out.getvalue()
    for name, size in (declared or {}).items():
        data = declare(data, name, size)
    return data


def declare(data: bytes, name: str, size: int) -> bytes:
    """The zip, ``name``'s unpacked size in its table of contents set to ``size``."""
    out = bytearray(data)
    end = out.rfind(b"PK\x05\x06")
    at = int.from_bytes(out[end + 16:end + 20], "little")  # the table of contents
    while out[at:at + 4] == b"PK\x01\x02":
        lengths = [int.from_bytes(out[at + i:at + i + 2], "little") for i in (28, 30, 32)]
        if out[at + 46:at + 46 + lengths[0]] == name.encode():
            out[at + 24:at + 28] = size.to_bytes(4, "little")
            return bytes(out)
        at += 46 + sum(lengths)
    raise AssertionError(f"{name} is not in the zip")


def cells(r: int, values: Iterable[str], first: int = 1) -> str:
    return "".join(f'<c r="{get_column_letter(c)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
                   for c, v in enumerate(values, first))


def row(r: int, values: Iterable[str]) -> str:
    return f'<row r="{r}">{cells(r, values)}</row>'


def sheet(*rows: str, before: str = "", after: str = "") -> bytes:
    return f'<worksheet xmlns="{MAIN}">{before}<sheetData>{"".join(rows)}</sheetData>{after}</worksheet>'.encode()


def good_sheet(before: str = "", after: str = "") -> bytes:
    return sheet(row(1, HEADER), row(2, GOOD), before=before, after=after)


def padded(head: bytes, size: int, tail: bytes) -> Iterator[bytes]:
    """A sheet of ``size`` bytes, blank between its elements: it packs a thousand to one."""
    yield head
    blank = b" " * (1024 * 1024)
    for _ in range(size // len(blank) + 1):
        yield blank
    yield tail


def rows_xml(first: int, last: int) -> Iterator[bytes]:
    for start in range(first, last + 1, 10_000):
        yield "".join(row(r, (f"u{r}", "shanxi", "行政机关")) for r in range(start, min(start + 10_000, last + 1))
                      ).encode()


# ---------------------------------------------------------------- the hostile files
def merged_to_the_end() -> bytes:
    return package(good_sheet(after='<mergeCells count="1"><mergeCell ref="A2:XFD1048576"/></mergeCells>'))


def last_cell() -> bytes:
    return package(sheet(row(1, HEADER), row(2, GOOD),
                         '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'))


def last_cell_in_row_one() -> bytes:
    return package(sheet(f'<row r="1">{cells(1, HEADER)}<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>',
                         row(2, GOOD)))


def whole_sheet_dimension() -> bytes:
    return package(good_sheet(before='<dimension ref="A1:XFD1048576"/>'))


@functools.cache
def zip_bomb() -> bytes:
    """A sheet unpacking to more than the limit on an .xlsx's unpacked parts (a few hundred KB packed)."""
    head, tail = good_sheet().split(b"</sheetData>")
    return package(padded(head, DEFAULT_LIMITS.max_uncompressed_bytes, b"</sheetData>" + tail))


@functools.cache
def lying_part() -> bytes:
    """A sheet that unpacks to 64 MiB while the zip declares 4 KiB."""
    head, tail = good_sheet().split(b"</sheetData>")
    return package(padded(head, 64 * 1024 * 1024, b"</sheetData>" + tail), declared={"xl/worksheets/sheet1.xml": 4096})


def many_merges() -> bytes:
    merges = "".join(f'<mergeCell ref="D{r}:E{r}"/>' for r in range(1, DEFAULT_LIMITS.max_merged + 2))
    return package(good_sheet(after=f"<mergeCells>{merges}</mergeCells>"))


def too_many_columns() -> bytes:
    wide = HEADER + ("序号",) * (DEFAULT_LIMITS.max_columns + 1 - len(HEADER))
    return package(sheet(row(1, wide), row(2, GOOD)))


@functools.cache
def million_rows_xlsx() -> bytes:
    return package(iter([f'<worksheet xmlns="{MAIN}"><sheetData>{row(1, HEADER)}'.encode(),
                         *rows_xml(2, 1_000_000), b"</sheetData></worksheet>"]))


def many_styles() -> bytes:
    """A style sheet (which openpyxl parses whole, ~600 bytes an entry) of 200,001 entries in ~6 KB."""
    xfs = "<xf/>" * 200_001
    return package(good_sheet(), {"xl/styles.xml": f'<styleSheet xmlns="{MAIN}"><cellXfs>{xfs}</cellXfs>'
                                                   f'</styleSheet>'.encode()})


def many_strings() -> bytes:
    strings = "<si><t/></si>" * 1_000_001
    return package(good_sheet(), {"xl/sharedStrings.xml": f'<sst xmlns="{MAIN}">{strings}</sst>'.encode()})


def entities() -> bytes:
    laughs = '<!DOCTYPE worksheet [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    return package(laughs.encode() + sheet(row(1, HEADER), row(2, ("&b;", "shanxi", "行政机关"))))


def long_tag() -> bytes:
    return package(good_sheet(before=f'<sheetPr codeName="{"x" * 2 * 1024 * 1024}"/>'))


def long_text() -> bytes:
    """A cell of two million characters ('>' may stand in a text unescaped)."""
    return package(sheet(row(1, HEADER), row(2, ("a>" * 1024 * 1024, "shanxi", "行政机关"))))


def many_parts() -> bytes:
    return package(good_sheet(), {f"xl/media/{i}.bin": b"" for i in range(30_000)})


@functools.cache
def shared_text() -> bytes:
    """1,000 shared strings of 200,000 characters each (200 MB unpacked, ~200 KB packed): openpyxl holds
    every one of them (twice the bytes: one Chinese character makes a string two bytes a character)."""
    strings = (f"<si><t>中{'a' * 200_000}{i}</t></si>".encode() for i in range(1_000))
    return package(good_sheet(), {"xl/sharedStrings.xml": b"".join(
        [f'<sst xmlns="{MAIN}">'.encode(), *strings, b"</sst>"])})


LONG_NAME = 100_000


def long_names_row() -> int:
    """The row where the text of the rows kept passes ``max_bytes`` characters."""
    text, r = 0, 1
    while text <= DEFAULT_LIMITS.max_bytes:
        r += 1
        text += len(f"中{'a' * LONG_NAME}{r}") + len("shanxi") + len("行政机关")
    return r


@functools.cache
def long_names() -> bytes:
    """2,000 rows whose names have 100,000 characters (200 MB unpacked): every row is kept."""
    rows = (row(r, (f"中{'a' * LONG_NAME}{r}", "shanxi", "行政机关")).encode() for r in range(2, 2_002))
    return package(iter([f'<worksheet xmlns="{MAIN}"><sheetData>{row(1, HEADER)}'.encode(), *rows,
                         b"</sheetData></worksheet>"]))


@functools.cache
def million_rows_csv() -> bytes:
    return ("name,jurisdiction,category\n" + "".join(f"u{i},sx,x\n" for i in range(1_000_000))).encode()


def too_many_columns_csv() -> bytes:
    wide = HEADER + ("序号",) * (DEFAULT_LIMITS.max_columns + 1 - len(HEADER))
    return (",".join(wide) + "\n" + ",".join(GOOD) + "\n").encode()


def long_record_csv() -> bytes:
    return ("name,jurisdiction,category\n" + "," * 3_000_000 + "\n").encode()


HOSTILE: list[Any] = [  # (file, name, where after the name, what the problem says)
    pytest.param(merged_to_the_end, "名单.xlsx", ":2", "merged range A2:XFD1048576 reaches beyond the limits of "
                                                       "200000 rows x 64 columns", id="merged A2:XFD1048576"),
    pytest.param(last_cell, "名单.xlsx", ":1048576", "row 1048576 is beyond the limits", id="one cell at XFD1048576"),
    pytest.param(last_cell_in_row_one, "名单.xlsx", ":1", "cell XFD1048576 is beyond the limits",
                 id="XFD1048576 in row 1"),
    pytest.param(whole_sheet_dimension, "名单.xlsx", "", "declares its size as A1:XFD1048576",
                 id="dimension A1:XFD1048576"),
    pytest.param(zip_bomb, "名单.xlsx", "", f"the limit is {DEFAULT_LIMITS.max_uncompressed_bytes}", id="zip bomb"),
    pytest.param(lying_part, "名单.xlsx", " [xl/worksheets/sheet1.xml]",
                 "part xl/worksheets/sheet1.xml does not unpack to its declared 4096 bytes", id="part past its size"),
    pytest.param(many_merges, "名单.xlsx", "", "more than 10000 merged ranges", id="10001 merged ranges"),
    pytest.param(too_many_columns, "名单.xlsx", ":1", "cell BM1 is beyond the limits", id="65 columns"),
    pytest.param(million_rows_xlsx, "名单.xlsx", ":200001", "row 200001 is beyond the limits", id="a million rows"),
    pytest.param(many_styles, "名单.xlsx", " [xl/styles.xml]", "more than 200000 XML elements", id="200001 styles"),
    pytest.param(many_strings, "名单.xlsx", " [xl/sharedStrings.xml]", "more than 1000000 shared strings",
                 id="1000001 shared strings"),
    pytest.param(shared_text, "名单.xlsx", " [xl/sharedStrings.xml]",
                 f"holds more than {DEFAULT_LIMITS.max_bytes} characters of text", id="200 MB of shared strings"),
    pytest.param(long_names, "名单.xlsx", f":{long_names_row()}",
                 f"more than {DEFAULT_LIMITS.max_bytes} characters of text in its rows", id="200 MB of names"),
    pytest.param(entities, "名单.xlsx", " [xl/worksheets/sheet1.xml]", "declares a DTD", id="entities"),
    pytest.param(long_tag, "名单.xlsx", " [xl/worksheets/sheet1.xml]", "has a tag longer than 1048576 bytes",
                 id="a 2 MiB tag"),
    pytest.param(long_text, "名单.xlsx", " [xl/worksheets/sheet1.xml]", "has a text longer than 1048576 characters",
                 id="a 2 MiB cell"),
    pytest.param(many_parts, "名单.xlsx", "", "its table of contents is", id="30000 parts"),
    pytest.param(million_rows_csv, "名单.csv", ":200001", "more than 200000 rows", id="a million CSV rows"),
    pytest.param(too_many_columns_csv, "名单.csv", ":1", "65 columns, more than the limit of 64", id="65 CSV columns"),
    pytest.param(long_record_csv, "名单.csv", ":2", "a record longer than 2097088 characters",
                 id="3 million commas"),
]


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: a roster is refused (or read) before the database is touched, and the same
    import on PostgreSQL is tested in tests/integration/test_imports.py."""
    return sqlite_url


# ---------------------------------------------------------------- helpers
def units_in(db: Any) -> int:
    with Session(db.engine) as session:
        return session.exec(select(func.count()).select_from(Unit)).scalar_one()


def upload(client: Any, data: bytes, filename: str, **params: Any) -> Any:
    kind = XLSX_MEDIA if filename.endswith(".xlsx") else "text/csv"
    return client.post("/api/v1/units/import", params={"filename": filename, **params}, content=data,
                       headers={**client.token("admin"), "Content-Type": kind})


def the_problem(problems: list[dict[str, Any]], where: str, what: str) -> dict[str, Any]:
    """The one problem of a refusal, at ``where``, saying ``what`` (and the same in Chinese)."""
    assert len(problems) == 1, problems
    assert problems[0]["where"] == where and what in problems[0]["what"], problems
    assert problems[0].get("zh"), problems
    return problems[0]


# ---------------------------------------------------------------- refused whole, the limit named
@pytest.mark.parametrize("build,filename,where,what", HOSTILE)
def test_a_hostile_roster_is_refused_naming_the_limit_and_nothing_is_imported(
        client: Any, db: Any, build: Callable[[], bytes], filename: str, where: str, what: str) -> None:
    data = build()
    assert len(data) <= Settings().roster_max_bytes  # refused for what it holds, not for its size
    before = units_in(db)
    with pytest.raises(InvalidInput) as refused:
        import_units_data(db, data, filename, NOW, actor=OPERATOR)
    the_problem([p.to_dict() for p in refused.value.problems], f"{filename}{where}", what)
    assert units_in(db) == before
    r = upload(client, data, filename)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]["zh"] and filename in error["message"]["en"]
    the_problem(error["details"]["problems"], f"{filename}{where}", what)
    assert units_in(db) == before


def test_the_merged_range_file_is_as_small_as_the_one_reported() -> None:
    assert len(merged_to_the_end()) < 2048


def test_a_roster_within_the_limits_next_to_a_hostile_one_still_imports(client: Any, db: Any) -> None:
    """The checks refuse what is past a limit, not what looks like it: the hand-written package
    with its one good row imports (through the API too)."""
    before = units_in(db)
    assert import_units_data(db, package(good_sheet(before='<dimension ref="A1:C2"/>')), "名单.xlsx", NOW, actor=OPERATOR).created == 1
    r = upload(client, package(sheet(row(1, HEADER), row(2, ("山西防线测试二局", "shanxi", "行政机关")))), "名单.xlsx")
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    assert units_in(db) == before + 2


# ---------------------------------------------------------------- merged cells still fill every row they cover
def test_a_category_merged_down_a_column_counts_for_every_row(client: Any, db: Any) -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(["序号", "单位名称", "所属地区", "类别"])
    for i, name in enumerate(["合并测试局甲", "合并测试局乙", "合并测试局丙"], start=1):
        ws.append([i, name, "shanxi", "行政机关" if i == 1 else None])
    ws.append([4, "合并测试局丁", "shanxi", "人民团体"])
    ws.merge_cells("D2:D4")
    out = io.BytesIO()
    book.save(out)
    sheet_rows = read_units(out.getvalue(), "合并.xlsx").rows
    assert [(r.line, r.values["category"]) for r in sheet_rows] == [
        (2, "行政机关"), (3, "行政机关"), (4, "行政机关"), (5, "人民团体")]
    r = upload(client, out.getvalue(), "合并.xlsx")
    assert r.status_code == 200 and r.json()["created"] == 4, r.text


def test_merged_ranges_across_columns_and_shared_strings_are_read() -> None:
    """A workbook as Excel writes it (shared strings, a range over two columns, rows and cells
    without numbers): every covered cell takes the top-left value."""
    strings = "".join(f"<si><t>{s}</t></si>" for s in (*HEADER, "联系人", "合并测试局", "shanxi", "行政机关"))
    rows = ('<row><c t="s"><v>0</v></c><c t="s"><v>1</v></c><c t="s"><v>2</v></c><c t="s"><v>3</v></c></row>'
            '<row r="2"><c r="A2" t="s"><v>4</v></c><c r="B2" t="s"><v>5</v></c><c r="C2" t="s"><v>6</v></c>'
            '<c r="D2"><v>7</v></c></row><row><c t="s"><v>4</v></c></row>')
    data = package(f'<worksheet xmlns="{MAIN}"><dimension ref="A1:D3"/><sheetData>{rows}</sheetData>'
                   f'<mergeCells count="2"><mergeCell ref="B2:B3"/><mergeCell ref="C2:D3"/></mergeCells>'
                   f'</worksheet>'.encode(),
                   {"xl/sharedStrings.xml": f'<sst xmlns="{MAIN}">{strings}</sst>'.encode()})
    got = [(r.line, r.values) for r in read_units(data, "excel.xlsx").rows]
    assert got == [(2, {"name": "合并测试局", "jurisdiction": "shanxi", "category": "行政机关", "contact_name": "行政机关"}),
                   (3, {"name": "合并测试局", "jurisdiction": "shanxi", "category": "行政机关", "contact_name": "行政机关"})]


# ---------------------------------------------------------------- each limit, at a small setting
SMALL = SheetLimits(max_bytes=4096, max_rows=5, max_columns=4, max_cells=12, max_merged=1,
                    max_uncompressed_bytes=4096)


@pytest.mark.parametrize("data,filename,where,what", [
    pytest.param(b"name,jurisdiction,category\n" + b"a,b,c\n" * 700, "s.csv", "s.csv", "4227 bytes; the limit is 4096",
                 id="bytes"),
    pytest.param(b"name\n" + b"a\n" * 5, "s.csv", "s.csv:6", "more than 5 rows",
                 id="csv rows"),
    pytest.param(b"name,jurisdiction,category,no\n" + b"a,b,c,1\n" * 3, "s.csv", "s.csv:4",
                 "4 rows x 4 columns = 16 cells, more than the limit of 12", id="csv cells"),
    pytest.param(package(sheet(*(row(r, ("a", "b", "c", "d")) for r in range(1, 5)))), "s.xlsx", "s.xlsx:4",
                 "4 rows x 4 columns: more than the limit of 12 cells", id="xlsx cells"),
    pytest.param(package(sheet(*('<row r="1"><c t="inlineStr"><is><t>x</t></is></c></row>',) * 6)), "s.xlsx",
                 "s.xlsx:1", "more than 5 rows", id="xlsx rows numbered alike"),
    pytest.param(package(good_sheet(after='<mergeCells><mergeCell ref="A1:A2"/><mergeCell ref="B1:B2"/>'
                                          '</mergeCells>')), "s.xlsx", "s.xlsx", "more than 1 merged ranges",
                 id="merged ranges"),
    pytest.param(package(good_sheet(after='<mergeCells><mergeCell ref="A1:E1"/></mergeCells>')), "s.xlsx",
                 "s.xlsx:1", "merged range A1:E1 reaches beyond the limits of 5 rows x 4 columns",
                 id="a merged range past the columns"),
    pytest.param(package(good_sheet(before='<dimension ref="A1:D6"/>')), "s.xlsx", "s.xlsx",
                 "declares its size as A1:D6", id="dimension"),
    pytest.param(package(good_sheet(), {"xl/media/a.bin": b"\0" * 4096}), "s.xlsx", "s.xlsx",
                 "the limit is 4096", id="unpacked size"),
    pytest.param(package(good_sheet(), {"xl/sharedStrings.xml": f'<sst xmlns="{MAIN}">{"<si/>" * 13}</sst>'.encode()}),
                 "s.xlsx", "s.xlsx [xl/sharedStrings.xml]", "more than 12 shared strings", id="shared strings"),
])
def test_each_limit_refuses_just_past_it(data: bytes, filename: str, where: str, what: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_units(data, filename, SMALL)
    the_problem([p.to_dict() for p in refused.value.problems], where, what)


def test_the_text_of_an_xlsx_is_bounded_as_a_csv_roster_is() -> None:
    """Shared strings, and the text of the rows kept, at most ``max_bytes`` characters."""
    text = SheetLimits(max_bytes=4096)
    strings = f'<sst xmlns="{MAIN}"><si><t>{"a" * 4097}</t></si></sst>'.encode()
    with pytest.raises(InvalidInput) as refused:
        read_units(package(good_sheet(), {"xl/sharedStrings.xml": strings}), "t.xlsx", text)
    the_problem([p.to_dict() for p in refused.value.problems], "t.xlsx [xl/sharedStrings.xml]",
                "holds more than 4096 characters of text")
    rows = [row(r, ("x" * 2000, "shanxi", "行政机关")) for r in range(2, 5)]
    with pytest.raises(InvalidInput) as refused:
        read_units(package(sheet(row(1, HEADER), *rows)), "t.xlsx", text)
    the_problem([p.to_dict() for p in refused.value.problems], "t.xlsx:4", "more than 4096 characters of text")
    assert len(read_units(package(sheet(row(1, HEADER), *rows[:2])), "t.xlsx", text).rows) == 2


@pytest.mark.parametrize("markup", ["<!-- {} -->", "<?pi {}?>", "<![CDATA[{}]]>"], ids=["comment", "pi", "cdata"])
def test_a_comment_or_instruction_too_long_to_hold_is_refused(markup: str) -> None:
    data = package(good_sheet(before=markup.format("<" * 2 * 1024 * 1024)))
    with pytest.raises(InvalidInput) as refused:
        read_units(data, "长.xlsx")
    assert refused.value.problems[0].where == "长.xlsx [xl/worksheets/sheet1.xml]"
    assert "longer than 1048576" in refused.value.problems[0].what


def test_one_padded_string_in_many_cells_is_held_once() -> None:
    """Stripping a shared string copies it: the copies are shared, or 200,000 cells of one long
    padded string would be 200,000 strings."""
    padded_category = " 行政机关" + " " * 1000
    strings = f'<sst xmlns="{MAIN}"><si><t xml:space="preserve">{padded_category}</t></si></sst>'.encode()
    cells_ = "".join(f'<row r="{r}">{cells(r, (f"单位{r}", "shanxi"))}<c r="C{r}" t="s"><v>0</v></c></row>'
                     for r in range(2, 1002))
    rows = read_units(package(sheet(row(1, HEADER), cells_), {"xl/sharedStrings.xml": strings}), "p.xlsx").rows
    assert len(rows) == 1000 and rows[0].values["category"] == "行政机关"
    assert len({id(r.values["category"]) for r in rows}) == 1


def test_just_within_the_small_limits_is_read() -> None:
    csv_rows = read_units(b"name,jurisdiction,category\n" + b"a,b,c\n" * 3, "s.csv", SMALL).rows
    xlsx_rows = read_units(package(sheet(row(1, HEADER), *(row(r, ("a", "b", "c")) for r in range(2, 5)))),
                           "s.xlsx", SMALL).rows
    assert len(csv_rows) == len(xlsx_rows) == 3


def test_sheet_limits_default_to_the_settings_and_follow_them() -> None:
    settings = Settings()
    assert SheetLimits.from_settings(settings) == DEFAULT_LIMITS
    chosen = Settings(roster_max_bytes=2048, sheet_max_rows=7, sheet_max_columns=3, sheet_max_cells=9,
                      sheet_max_merged=0, sheet_max_uncompressed_bytes=4096)
    assert SheetLimits.from_settings(chosen) == SheetLimits(2048, 7, 3, 9, 0, 4096)


def test_the_api_reads_the_limits_from_its_settings(client: Any, db: Any) -> None:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from workflow.api.app import create_app

    application = client.app.state.application
    strict = replace(application, settings=application.settings.model_copy(update={"sheet_max_rows": 2,
                                                                                    "roster_max_bytes": 2048}))
    served = TestClient(create_app(strict))
    served.token = client.token  # type: ignore[attr-defined]
    three = ("name,jurisdiction,category\n" + "".join(f"设置测试局{i},shanxi,行政机关\n" for i in range(2))).encode()
    before = units_in(db)
    r = upload(served, three, "three.csv")
    assert r.status_code == 422, r.text
    the_problem(r.json()["error"]["details"]["problems"], "three.csv:3", "more than 2 rows")
    assert upload(served, b"name,jurisdiction,category\n" + b" " * 2048, "big.csv").status_code == 413
    assert units_in(db) == before


def test_the_cli_reads_the_limits_from_its_settings_and_a_huge_file_is_never_read(tmp_path: Path) -> None:
    import os
    import subprocess

    from ..serving import WORKFLOW

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), WORKFLOW_SHEET_MAX_ROWS="2", COLUMNS="200")
    roster = tmp_path / "units.csv"
    roster.write_text("name,jurisdiction,category\n" + "".join(f"命令测试局{i},shanxi,行政机关\n" for i in range(2)),
                      encoding="utf-8")
    subprocess.run([WORKFLOW, "db", "upgrade"], env=env, capture_output=True, check=True, timeout=120)
    subprocess.run([WORKFLOW, "accounts", "create", "--login", "ops", "--name", "运维", "--role", "admin"], env=env,
                   capture_output=True, check=True, timeout=120)
    done = subprocess.run([WORKFLOW, "units", "import", str(roster), "--actor", "ops"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "more than 2 rows" in done.stdout + done.stderr, done
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as f:  # 30 GB as the file system says, nothing on the disk: read, it would take the memory
        f.truncate(30 * 1024**3)
    with pytest.raises(InvalidInput) as refused:
        import_units(None, huge, NOW, actor=OPERATOR)  # type: ignore[arg-type]  # refused before any storage is needed
    assert f"{30 * 1024**3} bytes; the limit is {DEFAULT_LIMITS.max_bytes}" in refused.value.problems[0].what


# ---------------------------------------------------------------- error lists are capped
def test_150000_bad_rows_answer_with_the_first_100_problems_and_the_count(client: Any, db: Any) -> None:
    data = ("name,jurisdiction,category\n" + "".join(f"错误类别测试局{i},shanxi,乱写\n" for i in range(150_000))).encode()
    before = units_in(db)
    with pytest.raises(InvalidInput) as refused:
        import_units_data(db, data, "坏名单.csv", NOW, actor=OPERATOR)
    assert len(refused.value.problems) == MAX_PROBLEMS and refused.value.problem_count == 150_000
    assert refused.value.problems[0].where == "坏名单.csv:2.category"
    r = upload(client, data, "坏名单.csv")
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert len(details["problems"]) == MAX_PROBLEMS
    assert details["problem_count"] == 150_000 and details["problems_listed"] == MAX_PROBLEMS
    assert units_in(db) == before


def test_the_reader_keeps_the_first_100_row_problems_and_counts_the_rest() -> None:
    data = ("name,jurisdiction,category\n" + "a,b,c,d\n" * 150_000).encode()
    read = read_units(data, "宽行.csv")
    assert read.rows == [] and len(read.problems) == MAX_PROBLEMS and read.problem_count == 150_000
    assert read.problems[0].where == "宽行.csv:2" and "4 cells, the header has 3" in read.problems[0].what


# ---------------------------------------------------------------- uploaded file names
@pytest.mark.parametrize("filename", ["名单\u202excsl.csv", "名单\u0007.csv", "名单\u200b.csv", "a/b.csv"],
                         ids=["right-to-left override", "bell", "zero width space", "a folder"])
def test_an_uploaded_roster_named_with_control_or_bidi_characters_is_refused(client: Any, db: Any,
                                                                             filename: str) -> None:
    before = units_in(db)
    r = upload(client, ("name,jurisdiction,category\n" + ",".join(GOOD) + "\n").encode(), filename)
    assert r.status_code == 422, r.text
    problem = the_problem(r.json()["error"]["details"]["problems"], "query.filename", repr(filename))
    assert "\u202e" not in problem["what"]  # shown escaped
    assert units_in(db) == before


# ---------------------------------------------------------------- a large roster within the limits
def _a_large_roster_is_read(n: int) -> None:
    header = ("序号", "单位名称", "所属地区", "类别", "联系人", "联系电话")
    units = [(str(i + 1), f"测试单位{i}", "shanxi", "行政机关", f"张{i}", f"0351-{i:07d}") for i in range(n)]
    chunks = (f'<worksheet xmlns="{MAIN}"><sheetData>{row(1, header)}'.encode(),
              *("".join(row(r, units[r - 2]) for r in range(start, min(start + 10_000, n + 2))).encode()
                for start in range(2, n + 2, 10_000)),
              b"</sheetData></worksheet>")
    xlsx_rows = read_units(package(iter(chunks)), "名单.xlsx").rows
    csv_rows = read_units(("\n".join(",".join(u) for u in [header, *units]) + "\n").encode("gbk"), "名单.csv").rows
    assert len(xlsx_rows) == len(csv_rows) == n
    assert xlsx_rows[-1].line == csv_rows[-1].line == n + 1
    assert xlsx_rows[-1].values == csv_rows[-1].values and xlsx_rows[-1].values["contact_phone"] == f"0351-{n - 1:07d}"


def test_a_roster_of_20000_units_is_read() -> None:
    _a_large_roster_is_read(20_000)


@pytest.mark.slow
def test_a_roster_of_100000_units_within_the_limits_is_read() -> None:
    _a_large_roster_is_read(100_000)


@given(st.text(alphabet="ab,\"\r\n\x0b\u2028", max_size=40))
def test_csv_lines_are_split_as_the_csv_module_reads_them(text: str) -> None:
    from workflow.adapters.rosters import _LINE

    assert [m.group() for m in _LINE.finditer(text)] == list(io.StringIO(text, newline=""))


@pytest.mark.slow
def test_a_roster_of_100000_units_within_the_limits_imports(db: Any) -> None:
    from ..support import seed_jurisdictions

    seed_jurisdictions(db)
    data = ("name,jurisdiction,category\n" + "".join(f"测试单位{i},shanxi,行政机关\n" for i in range(100_000))).encode()
    assert import_units_data(db, data, "十万.csv", NOW, actor=OPERATOR).created == 100_000
    assert units_in(db) == 100_000
