"""Reading rosters: .csv as Excel writes it (UTF-8 with or without BOM, or GBK) and .xlsx.

Headers may be English or the Chinese of the printed forms. Every row keeps its line
number so that errors can name it.

Every roster is bounded before it is read (:class:`SheetLimits`): a file past its bytes, a
sheet past its rows, columns, cells or merged ranges, or an .xlsx whose parts unpack past
their bound is refused at once, naming what and where, so that no file can make the server
hold more than a bounded amount of memory. An .xlsx is first read as a stream of XML events,
part by part, keeping nothing but counts and the merged ranges; only then does openpyxl read
its first worksheet, in read-only mode, row by row. An .xlsx holds at most as much text (its
shared strings, and the rows kept) as the largest CSV roster: ``max_bytes`` characters.
"""
from __future__ import annotations

import csv
import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from xml.parsers import expat

from ..domain.errors import InvalidInput, Problem, ProblemList

if TYPE_CHECKING:
    from ..config import Settings

UNIT_COLUMNS = {
    "name": ("name", "单位名称", "单位"),
    "jurisdiction": ("jurisdiction", "所属地区", "地区", "行政区划"),
    "level": ("level", "层级", "级别"),
    "category": ("category", "类别", "单位类别", "单位性质"),
    "contact_name": ("contact_name", "联系人", "姓名"),
    "contact_position": ("contact_position", "职务"),
    "contact_phone": ("contact_phone", "联系方式", "联系电话", "电话"),
    "contact_email": ("contact_email", "电子邮箱", "邮箱", "email"),
    "certified_year": ("certified_year", "已建成年份", "建成年份"),
    "certified_note": ("certified_note", "建成依据", "认定依据"),
    "_ignored": ("no", "序号"),
}
JURISDICTION_COLUMNS = {
    "id": ("id", "code", "代码", "编码"),
    "name": ("name", "名称"),
    "level": ("level", "层级", "级别"),
    "parent": ("parent", "上级"),
    "_ignored": ("no", "序号"),
}


@dataclass(frozen=True, slots=True)
class SheetLimits:
    """How large a roster may be; the defaults are the settings' (``roster_max_bytes`` and
    ``sheet_max_*``), and :meth:`from_settings` takes a deployment's."""

    max_bytes: int = 20 * 1024 * 1024  # the file
    max_rows: int = 200_000
    max_columns: int = 64
    max_cells: int = 4_000_000  # rows x columns
    max_merged: int = 10_000  # merged ranges
    max_uncompressed_bytes: int = 256 * 1024 * 1024  # an .xlsx's parts, unpacked, together

    @classmethod
    def from_settings(cls, settings: Settings) -> SheetLimits:
        return cls(max_bytes=settings.roster_max_bytes, max_rows=settings.sheet_max_rows,
                   max_columns=settings.sheet_max_columns, max_cells=settings.sheet_max_cells,
                   max_merged=settings.sheet_max_merged,
                   max_uncompressed_bytes=settings.sheet_max_uncompressed_bytes)


DEFAULT_LIMITS = SheetLimits()


# Bounds that follow from the file format rather than from a deployment's choice.
EXCEL_CELL_CHARS = 32_767  # the most characters Excel puts in a cell
MAX_DIRECTORY_BYTES = 1024 * 1024  # an .xlsx's table of contents (a few dozen parts take a few KB)
MAX_PART_BYTES = 16 * 1024 * 1024  # a part openpyxl parses whole (styles, workbook, relationships ...)
MAX_PART_ELEMENTS = 200_000  # XML elements of such a part, or outside the rows of a worksheet
MAX_CELL_ELEMENTS = 256  # XML elements inside one cell or one shared string (rich text runs)
MAX_SHARED_STRINGS = 1_000_000  # distinct strings of a workbook (and never more than its cells)
MAX_TOKEN_BYTES = 1024 * 1024  # an XML tag (or comment ...) in bytes, or a text in characters
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: dict[str, str]


def decode(data: bytes, source: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(f"{source}: neither UTF-8 nor GBK text",
                       [Problem(source, "neither UTF-8 nor GBK text", "既不是 UTF-8 也不是 GBK 编码的文本")],
                       f"{source}：既不是 UTF-8 也不是 GBK 编码的文本")


@dataclass(frozen=True, slots=True)
class Sheet:
    """The rows of a roster and the problems of rows that could not be read as rows (the
    first :data:`~workflow.domain.errors.MAX_PROBLEMS` of them; ``problem_count`` in all)."""

    rows: list[Row]
    problems: list[Problem]
    problem_count: int = 0


def refuse(where: str, what: str, zh: str, source: str) -> NoReturn:
    """A roster past a limit (or unreadable as what it claims to be): refused whole, at once."""
    raise InvalidInput(f"{source}: refused, {what}", [Problem(where, what, zh)], f"{source}：{zh}，文件未读取")


def check_size(data: bytes, source: str, limits: SheetLimits) -> None:
    if len(data) > limits.max_bytes:
        refuse(source, f"{len(data)} bytes; the limit is {limits.max_bytes}",
               f"文件 {len(data)} 字节，超过上限 {limits.max_bytes} 字节", source)


# ---------------------------------------------------------------- CSV
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # a line and its ending, as Excel may end it


def _csv_records(text: str, source: str, limits: SheetLimits) -> Iterator[tuple[int, list[str]]]:
    """Numbered records; a record longer than ``max_columns`` of Excel's largest cells is refused
    before the csv module has built it (a line of a million commas is a million cells)."""
    longest = limits.max_columns * EXCEL_CELL_CHARS
    fed = 0
    line = 1

    def lines() -> Iterator[str]:
        nonlocal fed
        for match in _LINE.finditer(text):  # as io.StringIO(text, newline="") would, without its copy of the text
            text_line = match.group()
            fed += len(text_line)
            if fed > longest:
                refuse(f"{source}:{line}", f"a record longer than {longest} characters",
                       f"第 {line} 行过长（超过 {longest} 个字符）", source)
            yield text_line

    reader = csv.reader(lines())
    while True:
        start, fed = line, 0
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _Unreadable(f"{source}:{reader.line_num}", f"unreadable CSV: {exc}",
                              f"无法读取的 CSV：{exc}") from None
        line = reader.line_num + 1
        yield start, record


def _measure_csv(text: str, source: str, limits: SheetLimits) -> None:
    """Rows, columns and cells of a CSV roster, counted before any row is kept."""
    rows = wide = 0
    try:
        for start, record in _csv_records(text, source, limits):
            rows += 1
            wide = max(wide, len(record))
            check_extent(source, f"{source}:{start}", rows, wide, limits)
    except _Unreadable:
        return  # reported with the rows, where it is


def check_extent(source: str, where: str, rows: int, columns: int, limits: SheetLimits) -> None:
    """``rows`` x ``columns`` within the limits, or refused naming ``where``."""
    if rows > limits.max_rows:
        refuse(where, f"more than {limits.max_rows} rows", f"超过行数上限 {limits.max_rows} 行", source)
    if columns > limits.max_columns:
        refuse(where, f"{columns} columns, more than the limit of {limits.max_columns}",
               f"{columns} 列，超过列数上限 {limits.max_columns} 列", source)
    if rows * columns > limits.max_cells:
        refuse(where, f"{rows} rows x {columns} columns = {rows * columns} cells, more than the limit of "
                      f"{limits.max_cells}",
               f"{rows} 行 × {columns} 列 = {rows * columns} 个单元格，超过上限 {limits.max_cells}", source)


def _csv_opened(data: bytes, source: str, limits: SheetLimits) -> Iterator[tuple[int, list[str]]]:
    """A CSV roster's numbered records, once it is within its limits."""
    check_size(data, source, limits)
    text = decode(data, source)
    _measure_csv(text, source, limits)
    return _csv_records(text, source, limits)


def read_csv(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
             limits: SheetLimits = DEFAULT_LIMITS) -> Sheet:
    """Read a CSV roster (see :func:`read_records`); each row is numbered by the line it starts on."""
    return read_records(_csv_opened(data, source, limits), source, columns, required, limits.max_bytes)


# ---------------------------------------------------------------- .xlsx: the package, read once as a stream
SHEET_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
SHARED_STRINGS = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_WORKBOOK_TYPES = frozenset({"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
                             "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
                             "application/vnd.ms-excel.template.macroEnabled.main+xml"})
_ROW, _STRING = f"{SHEET_MAIN_NS} row", f"{SHEET_MAIN_NS} si"
_DIMENSION, _MERGE = f"{SHEET_MAIN_NS} dimension", f"{SHEET_MAIN_NS} mergeCell"
_CONTENT_TYPES = "[Content_Types].xml"
# parts openpyxl finds by their names and parses whole, whatever the package says of them
_WHOLE_PARTS = frozenset({_CONTENT_TYPES, "xl/workbook.xml", "xl/styles.xml", "docProps/core.xml",
                          "docProps/custom.xml", "xl/theme/theme1.xml"})
_PLAIN, _ROW_KIND, _CELL, _INSIDE = range(4)  # what an open element is

Merge = tuple[int, int, int, int]  # min_col, min_row, max_col, max_row


def _unreadable(source: str, exc: BaseException) -> NoReturn:
    raise InvalidInput(f"{source}: not a readable .xlsx workbook",
                       [Problem(source, f"not a readable .xlsx workbook ({type(exc).__name__})",
                                "不是可读取的 .xlsx 工作簿")], f"{source}：不是可读取的 .xlsx 工作簿") from None


def _check_directory(data: bytes, source: str) -> None:
    """The zip's table of contents (which zipfile reads whole, one object per entry) is small."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or len(data) < end + 22:
        return  # not a zip: zipfile says so
    sizes = [int.from_bytes(data[end + 12:end + 16], "little")]
    locator = end - 20
    if locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":  # ZIP64: where the real size is
        for at in (locator - 56, int.from_bytes(data[locator + 8:locator + 16], "little")):
            if at >= 0 and data[at:at + 4] == b"PK\x06\x06":
                sizes.append(int.from_bytes(data[at + 40:at + 48], "little"))
    if max(sizes) > MAX_DIRECTORY_BYTES:
        refuse(source, f"its table of contents is {max(sizes)} bytes, more than a workbook's "
                       f"({MAX_DIRECTORY_BYTES}): too many parts",
               f"文件目录 {max(sizes)} 字节，超过上限 {MAX_DIRECTORY_BYTES} 字节（部件过多）", source)


def _unpacked(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, source: str) -> Iterator[bytes]:
    """A part's bytes as they unpack, counted: never more than it declares (zipfile stops there
    too, and its checksum then fails); a part that does not unpack as declared is refused."""
    count = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(CHUNK):
                count += len(chunk)
                if count > info.file_size:
                    raise zipfile.BadZipFile("more bytes than declared")
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError) as exc:
        refuse(where, f"part {info.filename} does not unpack to its declared {info.file_size} bytes "
                      f"({exc.__class__.__name__}: damaged, or a zip bomb)",
               f"部件 {info.filename} 解压后与声明的 {info.file_size} 字节不符（文件损坏或为压缩炸弹）", source)


class _Package:
    """What the scans of an .xlsx's parts found: each part's merged ranges (the workbook's
    at most ``max_merged``), and the relationships and content types that say which parts
    openpyxl streams (the worksheets and the shared strings) and which it parses whole."""

    def __init__(self, source: str, limits: SheetLimits) -> None:
        self.source, self.limits = source, limits
        self.merged: dict[str, list[Merge]] = {}
        self.merges = 0
        self.links: list[tuple[str, str]] = []  # (relationship type, part it points to)
        self.types: list[tuple[str, str]] = []  # (part, content type)

    def streamed(self) -> frozenset[str]:
        """The parts openpyxl reads only as worksheets or as the shared strings, never whole."""
        sheets = {target for kind, target in self.links if kind.endswith("/worksheet")}
        strings = {part for part, kind in self.types if kind == SHARED_STRINGS}
        others = {target for kind, target in self.links if not kind.endswith(("/worksheet", "/sharedStrings"))}
        books = {part for part, kind in self.types if kind in _WORKBOOK_TYPES}
        return frozenset((sheets | strings) - others - books - _WHOLE_PARTS)

    def noted(self, where: str) -> None:
        if len(self.links) + len(self.types) > MAX_PART_ELEMENTS:
            refuse(where, f"more than {MAX_PART_ELEMENTS} relationships between parts",
                   f"部件之间的关系超过 {MAX_PART_ELEMENTS} 个", self.source)

    def link(self, rels: str, attrs: dict[str, str], where: str) -> None:
        """A relationship, its target resolved as openpyxl resolves it."""
        if attrs.get("TargetMode") == "External":
            return
        target = attrs.get("Target", "")
        if target.startswith("/"):
            target = target[1:]
        else:
            target = posixpath.normpath(posixpath.join(posixpath.split(posixpath.dirname(rels))[0], target))
        self.links.append((attrs.get("Type", ""), target))
        self.noted(where)

    def scan(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, whole: bool) -> None:
        """Read one part once, as XML events, refused at the first thing past a bound. A part
        that is not XML (an image) is left as it is: openpyxl never parses it."""
        where = f"{self.source} [{info.filename}]"
        part = _PartScan(self, info.filename, where, whole, info.file_size)
        part.shared = any(name == info.filename and kind == SHARED_STRINGS for name, kind in self.types)
        parser = part.parser()
        quiet = 0  # bytes read since the parser last reported something: a tag it is still holding
        try:
            for chunk in _unpacked(archive, info, where, self.source):
                events = part.events
                parser.Parse(chunk, False)
                part.begun(chunk)
                quiet = quiet + len(chunk) if part.events == events else 0
                if quiet > MAX_TOKEN_BYTES:
                    refuse(where, f"part {info.filename} has a tag longer than {MAX_TOKEN_BYTES} bytes",
                           f"部件 {info.filename} 含有超过 {MAX_TOKEN_BYTES} 字节的标记", self.source)
            parser.Parse(b"", True)
        except expat.ExpatError:
            pass  # not XML, or broken where openpyxl will say so if it reads it; what came before was checked
        if part.merged:
            self.merged[info.filename] = part.merged


class _PartScan:
    """The XML events of one part. Rows, cells, shared strings and merged ranges are counted
    and checked wherever they are (openpyxl reads a row wherever it finds one), and so are the
    elements: all of a part parsed whole, those outside rows and strings of a streamed one."""

    def __init__(self, package: _Package, name: str, where: str, whole: bool, size: int) -> None:
        from openpyxl.utils.cell import coordinate_to_tuple

        self.package, self.name, self.where, self.whole, self.size = package, name, where, whole, size
        self.source, self.limits = package.source, package.limits
        self.coordinate = coordinate_to_tuple
        self.kinds: list[int] = []
        self.elements = self.inner = self.strings = self.text = self.run = self.events = 0
        self.shared = False  # the shared strings (openpyxl holds their text)
        self.rows = self.row = self.col = self.row_cells = self.cells = self.wide = self.high = 0
        self.merged: list[Merge] = []
        self.first = True

    def parser(self) -> Any:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.characters
        parser.StartDoctypeDeclHandler = self.doctype
        parser.XmlDeclHandler = self.declaration
        return parser

    def fail(self, what: str, zh: str, where: str | None = None) -> NoReturn:
        refuse(where or self.where, what, zh, self.source)

    def doctype(self, *_: Any) -> None:
        self.fail(f"part {self.name} declares a DTD (entities), which a workbook never has",
                  f"部件 {self.name} 含有 DTD（实体声明），工作簿不应含有")

    def declaration(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            self.fail(f"part {self.name} is in {encoding[:20]}, not UTF-8", f"部件 {self.name} 不是 UTF-8 编码")

    def begun(self, chunk: bytes) -> None:
        """Once the part's first bytes read as XML: UTF-8 (not UTF-16, which expat tells by those
        bytes), and no larger than a part parsed whole may be (an image may be larger: it is not parsed)."""
        if self.first:
            self.first = False
            if chunk[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in chunk[:4]:
                self.fail(f"part {self.name} is not UTF-8", f"部件 {self.name} 不是 UTF-8 编码")
            if self.whole and self.size > MAX_PART_BYTES:
                self.fail(f"part {self.name} unpacks to {self.size} bytes; such a part may have at most "
                          f"{MAX_PART_BYTES}",
                          f"部件 {self.name} 解压后 {self.size} 字节，超过上限 {MAX_PART_BYTES} 字节")

    def characters(self, data: str) -> None:
        """A text: at most MAX_TOKEN_BYTES characters between two tags; the shared strings'
        text at most as much as the largest CSV roster (``max_bytes`` characters)."""
        self.events += 1
        self.run += len(data)
        if self.run > MAX_TOKEN_BYTES:
            self.fail(f"part {self.name} has a text longer than {MAX_TOKEN_BYTES} characters",
                      f"部件 {self.name} 含有超过 {MAX_TOKEN_BYTES} 个字符的文字")
        if self.shared:
            self.text += len(data)
            if self.text > self.limits.max_bytes:
                self.fail(f"part {self.name} holds more than {self.limits.max_bytes} characters of text",
                          f"部件 {self.name} 的文字超过 {self.limits.max_bytes} 个字符")

    def counted(self) -> None:
        self.elements += 1
        if self.elements > MAX_PART_ELEMENTS:
            self.fail(f"part {self.name} has more than {MAX_PART_ELEMENTS} XML elements",
                      f"部件 {self.name} 的 XML 元素超过 {MAX_PART_ELEMENTS} 个")

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.events += 1
        self.run = 0
        parent = self.kinds[-1] if self.kinds else _PLAIN
        if self.whole:
            self.counted()
        if parent != _PLAIN:
            if name in (_ROW, _STRING):
                self.fail(f"part {self.name}: a row or a string inside another",
                          f"部件 {self.name} 的结构有误（行或字符串嵌套）")
            if parent == _ROW_KIND:
                self.cell(attrs)
                self.kinds.append(_CELL)
                return
            self.inner += 1
            if self.inner > MAX_CELL_ELEMENTS:
                self.fail(f"part {self.name}: a cell or a string of more than {MAX_CELL_ELEMENTS} XML elements",
                          f"部件 {self.name} 的单元格或字符串含有超过 {MAX_CELL_ELEMENTS} 个 XML 元素")
            self.kinds.append(_INSIDE)
            return
        if name == _ROW:
            self.start_row(attrs.get("r"))
            self.kinds.append(_ROW_KIND)
            return
        if name == _STRING:
            self.string()
            self.kinds.append(_INSIDE)
            return
        if not self.whole:
            self.counted()
        self.plain(name, attrs)
        self.kinds.append(_PLAIN)

    def end(self, _name: str) -> None:
        self.events += 1
        self.run = 0
        self.kinds.pop()

    def plain(self, name: str, attrs: dict[str, str]) -> None:
        if name == _DIMENSION:
            self.dimension(attrs.get("ref", ""))
        elif name == _MERGE:
            self.merge(attrs.get("ref", ""))
        elif name.endswith(" Relationship") and self.name.endswith(".rels"):
            self.package.link(self.name, attrs, self.where)
        elif name.endswith(" Override") and self.name == _CONTENT_TYPES:
            self.package.types.append((attrs.get("PartName", "").lstrip("/"), attrs.get("ContentType", "")))
            self.package.noted(self.where)

    def beyond(self, rows: int | None, columns: int | None) -> bool:
        return rows is None or columns is None or rows > self.limits.max_rows or columns > self.limits.max_columns

    def sizes(self) -> tuple[str, str]:
        limits = self.limits
        return (f"the limits of {limits.max_rows} rows x {limits.max_columns} columns",
                f"超出上限（{limits.max_rows} 行 × {limits.max_columns} 列）")

    def start_row(self, number: str | None) -> None:
        self.row = self.row + 1 if number is None else self.row_number(number)
        self.rows += 1
        self.col = self.row_cells = 0
        if self.row > self.high:
            self.high = self.row
        if self.row > self.limits.max_rows:
            limit, zh = self.sizes()
            self.fail(f"row {self.row} is beyond {limit}", f"第 {self.row} 行{zh}", f"{self.source}:{self.row}")
        if self.rows > self.limits.max_rows:
            self.fail(f"more than {self.limits.max_rows} rows", f"超过行数上限 {self.limits.max_rows} 行",
                      f"{self.source}:{self.row}")
        self.check_cells()

    def row_number(self, number: str) -> int:
        """A row's number as openpyxl reads it (an integer, or a float that is one)."""
        try:
            return int(number)
        except ValueError:
            try:
                value = Decimal(number)
            except InvalidOperation:
                value = Decimal("NaN")
            if not value.is_finite() or value != value.to_integral_value():
                self.fail(f"part {self.name}: row number {number[:20]!r} is not a number",
                          f"部件 {self.name} 的行号 {number[:20]!r} 不是数字")
            return int(value)

    def cell(self, attrs: dict[str, str]) -> None:
        ref = attrs.get("r")
        row, col = self.row, self.col + 1
        if ref:
            try:
                row, col = self.coordinate(ref)
            except (ValueError, KeyError, TypeError):
                self.fail(f"part {self.name}: cell reference {ref[:20]!r} is not a cell",
                          f"部件 {self.name} 的单元格引用 {ref[:20]!r} 有误")
        self.col, self.inner = col, 0
        self.row_cells += 1
        self.cells += 1
        if col > self.wide:
            self.wide = col
        if row > self.high:
            self.high = row
        if self.beyond(row, col):
            label, (limit, zh) = ref[:20] if ref else _label(row, col), self.sizes()
            self.fail(f"cell {label} is beyond {limit}", f"单元格 {label} {zh}", f"{self.source}:{self.row}")
        if self.row_cells > self.limits.max_columns:
            self.fail(f"row {self.row} has more than {self.limits.max_columns} cells",
                      f"第 {self.row} 行超过 {self.limits.max_columns} 个单元格", f"{self.source}:{self.row}")
        self.check_cells()

    def check_cells(self) -> None:
        if self.cells > self.limits.max_cells or self.wide * self.high > self.limits.max_cells:
            self.fail(f"{self.high} rows x {self.wide} columns: more than the limit of {self.limits.max_cells} cells",
                      f"{self.high} 行 × {self.wide} 列，超过单元格上限 {self.limits.max_cells} 个",
                      f"{self.source}:{self.row}")

    def string(self) -> None:
        self.strings += 1
        self.inner = 0
        most = min(self.limits.max_cells, MAX_SHARED_STRINGS)
        if self.strings > most:
            self.fail(f"part {self.name} has more than {most} shared strings",
                      f"部件 {self.name} 的共享字符串超过 {most} 个")

    def dimension(self, ref: str) -> None:
        """The size the sheet declares for itself, refused if past the limits (nothing is read yet)."""
        from openpyxl.utils.cell import range_boundaries

        try:
            _, _, columns, rows = range_boundaries(ref)
        except (ValueError, KeyError, TypeError):
            return  # openpyxl says the sheet is unreadable
        if self.beyond(rows, columns) or (rows or 0) * (columns or 0) > self.limits.max_cells:
            limit, zh = self.sizes()
            self.fail(f"the sheet declares its size as {ref[:40]}, beyond {limit} "
                      f"and {self.limits.max_cells} cells",
                      f"工作表声明的范围 {ref[:40]} {zh}", self.source)

    def merge(self, ref: str) -> None:
        """A merged range: counted, and refused if it reaches past the limits (it is never expanded)."""
        from openpyxl.utils.cell import range_boundaries

        self.package.merges += 1
        if self.package.merges > self.limits.max_merged:
            self.fail(f"more than {self.limits.max_merged} merged ranges",
                      f"合并单元格超过 {self.limits.max_merged} 处", self.source)
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref)
        except (ValueError, KeyError, TypeError):
            self.fail(f"merged range {ref[:40]!r} is not a range of cells", f"合并单元格 {ref[:40]!r} 有误")
        if min_col is None or min_row is None or self.beyond(max_row, max_col):
            limit, zh = self.sizes()
            self.fail(f"merged range {ref[:40]} reaches beyond {limit}", f"合并单元格 {ref[:40]} {zh}",
                      f"{self.source}:{min_row or 1}")
        assert max_row is not None and max_col is not None
        self.merged.append((min(min_col, max_col), min(min_row, max_row), max(min_col, max_col),
                            max(min_row, max_row)))


def _label(row: int, column: int) -> str:
    from openpyxl.utils.cell import get_column_letter

    return f"{get_column_letter(column)}{row}" if 1 <= column <= 18278 else f"row {row} column {column}"


def check_package(data: bytes, source: str, limits: SheetLimits) -> dict[str, list[Merge]]:
    """Every part of an .xlsx within its bounds, before openpyxl opens it: the table of contents,
    the parts' declared sizes together, then each part read once as a stream (the package's
    relationships first, to know the parts openpyxl parses whole). Returns each part's merged ranges."""
    _check_directory(data, source)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # a damaged zip: zipfile raises several kinds
        _unreadable(source, exc)
    with archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        if total > limits.max_uncompressed_bytes:
            refuse(source, f"its parts unpack to {total} bytes; the limit is {limits.max_uncompressed_bytes}",
                   f"解压后共 {total} 字节，超过上限 {limits.max_uncompressed_bytes} 字节", source)
        package = _Package(source, limits)
        first = [info for info in infos if info.filename == _CONTENT_TYPES or info.filename.endswith(".rels")]
        for info in first:
            package.scan(archive, info, whole=True)
        streamed = package.streamed()
        for info in infos:
            if not (info.filename == _CONTENT_TYPES or info.filename.endswith(".rels")):
                package.scan(archive, info, whole=info.filename not in streamed)
    return package.merged


# ---------------------------------------------------------------- .xlsx: the first worksheet, streamed
class _MergeFill:
    """A merged range's value (its top-left cell's) for every cell it covers, row by row as the
    rows stream: one range at most per column at a time, nothing expanded."""

    def __init__(self, merges: list[Merge]) -> None:
        self.pending = sorted(merges, key=lambda m: m[1], reverse=True)  # the next to start last
        self.active: dict[int, tuple[int, Any]] = {}  # column -> (last row, value)

    def apply(self, r: int, row: list[Any]) -> list[Any]:
        while self.pending and self.pending[-1][1] <= r:
            min_col, min_row, max_col, max_row = self.pending.pop()
            value = row[min_col - 1] if min_row == r and min_col <= len(row) else None
            for c in range(min_col, max_col + 1):
                self.active[c] = (max_row, value)
        for c in [c for c, (last, _) in self.active.items() if last < r]:
            del self.active[c]
        if self.active:
            row.extend([None] * (max(self.active) - len(row)))
            for c, (_, value) in self.active.items():
                row[c - 1] = value
        return row


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_records(sheet: Any, merges: list[Merge], source: str,
                  limits: SheetLimits) -> Iterator[tuple[int, list[str]]]:
    fill = _MergeFill(merges)
    r = wide = 0
    try:
        for r, values in enumerate(sheet.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
            wide = max(wide, len(values))
            check_extent(source, f"{source}:{r}", r, wide, limits)  # checked as a stream before; and as read
            yield r, [_text(v) for v in fill.apply(r, list(values))]
    except InvalidInput:
        raise
    except Exception as exc:  # XML that openpyxl cannot read (the scan stopped where it broke)
        raise _Unreadable(f"{source}:{r + 1}", f"unreadable .xlsx ({type(exc).__name__})",
                          f"无法读取的 .xlsx（{type(exc).__name__}）") from None


def _xlsx_opened(data: bytes, source: str, limits: SheetLimits
                 ) -> tuple[Iterator[tuple[int, list[str]]], Callable[[], None]]:
    """The first worksheet's numbered records, once the package is within its limits, and how to
    close the workbook they stream from."""
    from openpyxl import load_workbook
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    check_size(data, source, limits)
    merged = check_package(data, source, limits)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # a damaged or foreign file: openpyxl raises many kinds
        _unreadable(source, exc)
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if not isinstance(sheet, ReadOnlyWorksheet):
            _unreadable(source, LookupError("no worksheet"))
        sheet.reset_dimensions()  # its rows as they are, not as the sheet declares them
        merges = merged.get(getattr(sheet, "_worksheet_path", ""), [])
        return _xlsx_records(sheet, merges, source, limits), book.close
    except BaseException:
        book.close()
        raise


def read_xlsx(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
              limits: SheetLimits = DEFAULT_LIMITS) -> Sheet:
    """Read the first worksheet of an .xlsx roster; rows are numbered as Excel shows them.
    A merged cell's value counts for every cell it covers (a category merged down a column).
    The whole package is checked first (:func:`check_package`); openpyxl then streams the sheet."""
    records, close = _xlsx_opened(data, source, limits)
    try:
        # an .xlsx holds at most as much text as the largest CSV roster
        return read_records(records, source, columns, required, limits.max_bytes)
    finally:
        close()


def read_roster(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
                limits: SheetLimits = DEFAULT_LIMITS) -> Sheet:
    """A roster as .xlsx (known by its content, a ZIP) or as CSV text."""
    if data[:4] == b"PK\x03\x04":
        return read_xlsx(data, source, columns, required, limits)
    return read_csv(data, source, columns, required, limits)


class _Unreadable(Exception):
    def __init__(self, where: str, what: str, zh: str) -> None:
        super().__init__(what)
        self.where, self.what, self.zh = where, what, zh


def _header(records: Iterator[tuple[int, list[str]]], source: str) -> tuple[list[str], int]:
    try:
        for number, record in records:
            if any(cell.strip() for cell in record):
                return record, number
    except _Unreadable as exc:
        raise InvalidInput(f"{source}: unreadable", [Problem(exc.where, exc.what, exc.zh)],
                           f"{source}：无法读取（{exc.where}：{exc.zh}）") from None
    raise InvalidInput(f"{source}: empty file", [Problem(f"{source}:1", "empty file: a header row is needed",
                                                         "空文件：须有表头行")], f"{source}：空文件")


def _keys(header: list[str], where: str, source: str, columns: dict[str, tuple[str, ...]],
          required: tuple[str, ...]) -> list[str]:
    """The column key of each header cell ("_ignored" for 序号 and blank ones); a bad header raises."""
    alias = {a.lower(): key for key, names in columns.items() for a in names}
    problems = ProblemList()
    keys: list[str] = []
    for i, name in enumerate(header):
        label = name.strip().lower()
        key = alias.get(label)
        if key is None and label:
            problems.add(where, f"unknown column {name.strip()!r} (column {i + 1})",
                         f"未知的列 {name.strip()!r}（第 {i + 1} 列）")
        if key is not None and key != "_ignored" and key in keys:
            problems.add(where, f"column {name.strip()!r} given twice", f"列 {name.strip()!r} 重复")
        keys.append(key or "_ignored")
    for key in required:
        if key not in keys:
            problems.add(where, f"missing column {key!r} ({' / '.join(columns[key])})",
                         f"缺少列 {key!r}（{' / '.join(columns[key])}）")
    problems.raise_if_any(f"{source}: bad header", f"{source}：表头有误")
    return keys


def _stripped(cell: str, seen: dict[str, str]) -> str:
    """The cell without surrounding spaces; copies made by stripping are shared, so that one
    padded string repeated in a million cells is held once."""
    value = cell.strip()
    if value is cell or not value:
        return value
    return seen.setdefault(value, value)


def read_records(records: Iterator[tuple[int, list[str]]], source: str, columns: dict[str, tuple[str, ...]],
                 required: tuple[str, ...], max_text: int | None = None) -> Sheet:
    """Rows of a roster from numbered records. A bad header raises at once (no row can be
    read without it); a row that cannot be read is returned as a problem so that the
    importer reports it with every other problem of the file (the first of them, and a count).
    The rows kept may hold at most ``max_text`` characters (past it, the roster is refused)."""
    header, header_line = _header(records, source)
    keys = _keys(header, f"{source}:{header_line}", source, columns, required)
    problems = ProblemList()
    rows = list(_rows(records, source, keys, max_text, problems))
    return Sheet(rows, problems.problems, problems.count)


def _rows(records: Iterator[tuple[int, list[str]]], source: str, keys: list[str], max_text: int | None,
          problems: ProblemList) -> Generator[Row, None, None]:
    """The rows after the header, one at a time; a row that cannot be read goes to ``problems``."""
    seen: dict[str, str] = {}
    text = 0
    try:
        for start, record in records:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > len(keys) and any(c.strip() for c in record[len(keys):]):
                problems.add(f"{source}:{start}", f"{len(record)} cells, the header has {len(keys)}",
                             f"{len(record)} 个单元格，表头只有 {len(keys)} 列")
                continue
            values = {k: _stripped(record[i], seen) if i < len(record) else ""
                      for i, k in enumerate(keys) if k != "_ignored"}
            text += sum(map(len, values.values()))
            if max_text is not None and text > max_text:
                refuse(f"{source}:{start}", f"more than {max_text} characters of text in its rows",
                       f"各行文字超过 {max_text} 个字符", source)
            yield Row(start, values)
    except _Unreadable as exc:
        problems.add(exc.where, exc.what, exc.zh)


class RowStream:
    """A roster's rows, read as they are asked for and never all kept (:func:`stream_units`):
    the same rows as :func:`read_roster`'s ``Sheet``, once. ``problems`` and ``problem_count``
    (the rows that could not be read as rows) are whole once ``rows`` is read to its end. Close
    it (``with``) when done: an .xlsx streams from an open workbook."""

    def __init__(self, records: Iterator[tuple[int, list[str]]], source: str, keys: list[str],
                 max_text: int | None, close: Callable[[], None] | None) -> None:
        self._found = ProblemList()
        self._rows = _rows(records, source, keys, max_text, self._found)
        self._close = close

    @property
    def rows(self) -> Iterator[Row]:
        return self._rows

    @property
    def problems(self) -> list[Problem]:
        return self._found.problems

    @property
    def problem_count(self) -> int:
        return self._found.count

    def close(self) -> None:
        self._rows.close()
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def stream_roster(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
                  limits: SheetLimits = DEFAULT_LIMITS) -> RowStream:
    """:func:`read_roster` without keeping the rows: the file is checked against its limits and
    its header read now (refused at once, as there); the rows are read as they are asked for."""
    if data[:4] == b"PK\x03\x04":
        records, close = _xlsx_opened(data, source, limits)
    else:
        records, close = _csv_opened(data, source, limits), None
    try:
        header, header_line = _header(records, source)
        keys = _keys(header, f"{source}:{header_line}", source, columns, required)
    except BaseException:
        if close is not None:
            close()
        raise
    return RowStream(records, source, keys, limits.max_bytes, close)


def read_units(data: bytes, source: str, limits: SheetLimits = DEFAULT_LIMITS) -> Sheet:
    """A unit roster, .csv or .xlsx."""
    return read_roster(data, source, UNIT_COLUMNS, ("name", "jurisdiction", "category"), limits)


def stream_units(data: bytes, source: str, limits: SheetLimits = DEFAULT_LIMITS) -> RowStream:
    """A unit roster, .csv or .xlsx, read row by row as it is imported (:func:`read_units`'s rows)."""
    return stream_roster(data, source, UNIT_COLUMNS, ("name", "jurisdiction", "category"), limits)


def read_file(path: Path, limits: SheetLimits = DEFAULT_LIMITS) -> bytes:
    """A roster file's bytes; a file past ``max_bytes`` is refused before it is read."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        refuse(str(path), f"{size} bytes; the limit is {limits.max_bytes}",
               f"文件 {size} 字节，超过上限 {limits.max_bytes} 字节", str(path))
    with path.open("rb") as stream:
        data = stream.read(limits.max_bytes + 1)  # (a file that grew since)
    check_size(data, str(path), limits)
    return data


def read_jurisdictions_csv(path: Path, limits: SheetLimits = DEFAULT_LIMITS) -> Sheet:
    return read_csv(read_file(path, limits), str(path), JURISDICTION_COLUMNS, ("id", "name", "level"), limits)
