"""Reading rosters: .csv as Excel writes it (UTF-8 with or without BOM, or GBK) and .xlsx.

Headers may be English or the Chinese of the printed forms. Every row keeps its line
number so that errors can name it.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.errors import InvalidInput, Problem

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
class Row:
    line: int
    values: dict[str, str]


def decode(data: bytes, source: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(f"{source}: neither UTF-8 nor GBK text", [Problem(source, "neither UTF-8 nor GBK text")])


@dataclass(frozen=True, slots=True)
class Sheet:
    """The rows of a roster and the problems of rows that could not be read as rows."""

    rows: list[Row]
    problems: list[Problem]


def read_csv(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> Sheet:
    """Read a CSV roster (see :func:`read_records`); each row is numbered by the line it starts on."""
    text = decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""))

    def records() -> Iterator[tuple[int, list[str]]]:
        line = 1
        while True:
            start = line
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _Unreadable(f"{source}:{reader.line_num}", f"unreadable CSV: {exc}") from None
            line = reader.line_num + 1
            yield start, record

    return read_records(records(), source, columns, required)


def read_xlsx(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> Sheet:
    """Read the first worksheet of an .xlsx roster; rows are numbered as Excel shows them.
    A merged cell's value counts for every cell it covers (a category merged down a column)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=False, data_only=True)
    except Exception as exc:  # a damaged or foreign file: openpyxl raises many kinds
        raise InvalidInput(f"{source}: not a readable .xlsx workbook",
                           [Problem(source, f"not a readable .xlsx workbook ({type(exc).__name__})")]) from None
    sheet = book.worksheets[0]
    fill: dict[tuple[int, int], Any] = {}
    for merged in sheet.merged_cells.ranges:
        value = sheet.cell(merged.min_row, merged.min_col).value
        for r in range(merged.min_row, merged.max_row + 1):
            for c in range(merged.min_col, merged.max_col + 1):
                fill[(r, c)] = value

    def text_of(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def records() -> Iterator[tuple[int, list[str]]]:
        for r, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield r, [text_of(fill.get((r, c), v)) for c, v in enumerate(row, start=1)]

    return read_records(records(), source, columns, required)


def read_roster(data: bytes, source: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> Sheet:
    """A roster as .xlsx (known by its content, a ZIP) or as CSV text."""
    if data[:4] == b"PK\x03\x04":
        return read_xlsx(data, source, columns, required)
    return read_csv(data, source, columns, required)


class _Unreadable(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(what)
        self.where, self.what = where, what


def read_records(records: Iterator[tuple[int, list[str]]], source: str, columns: dict[str, tuple[str, ...]],
                 required: tuple[str, ...]) -> Sheet:
    """Rows of a roster from numbered records. A bad header raises at once (no row can be
    read without it); a row that cannot be read is returned as a problem so that the
    importer reports it with every other problem of the file."""
    header: list[str] | None = None
    header_line = 1
    try:
        for number, record in records:
            if any(cell.strip() for cell in record):
                header, header_line = record, number
                break
    except _Unreadable as exc:
        raise InvalidInput(f"{source}: unreadable", [Problem(exc.where, exc.what)]) from None
    if header is None:
        raise InvalidInput(f"{source}: empty file", [Problem(f"{source}:1", "empty file: a header row is needed")])
    alias = {a.lower(): key for key, names in columns.items() for a in names}
    problems: list[Problem] = []
    keys: list[str] = []
    where = f"{source}:{header_line}"
    for i, name in enumerate(header):
        label = name.strip().lower()
        key = alias.get(label)
        if key is None and label:
            problems.append(Problem(where, f"unknown column {name.strip()!r} (column {i + 1})"))
        if key is not None and key != "_ignored" and key in keys:
            problems.append(Problem(where, f"column {name.strip()!r} given twice"))
        keys.append(key or "_ignored")
    for key in required:
        if key not in keys:
            problems.append(Problem(where, f"missing column {key!r} ({' / '.join(columns[key])})"))
    if problems:
        raise InvalidInput(f"{source}: bad header", problems)
    rows: list[Row] = []
    try:
        for start, record in records:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > len(keys) and any(c.strip() for c in record[len(keys):]):
                problems.append(Problem(f"{source}:{start}", f"{len(record)} cells, the header has {len(keys)}"))
                continue
            values = {k: record[i].strip() if i < len(record) else "" for i, k in enumerate(keys) if k != "_ignored"}
            rows.append(Row(start, values))
    except _Unreadable as exc:
        problems.append(Problem(exc.where, exc.what))
    return Sheet(rows, problems)


def read_units(data: bytes, source: str) -> Sheet:
    """A unit roster, .csv or .xlsx."""
    return read_roster(data, source, UNIT_COLUMNS, ("name", "jurisdiction", "category"))


def read_jurisdictions_csv(path: Path) -> Sheet:
    return read_csv(Path(path).read_bytes(), str(path), JURISDICTION_COLUMNS, ("id", "name", "level"))
