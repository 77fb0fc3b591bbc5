"""Rubrics (评价标准) as data, their validation, and Decimal scoring of a score sheet.

Pure: standard library and ``workflow.domain.errors`` only. Every number is a ``Decimal``;
floats are refused wherever a score is entered (rubric data may hold YAML numbers, which are
converted through ``str()`` so ``1.5`` stays exactly ``1.5``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from .errors import InvalidInput, NotFound, ProblemList
from .jsonnum import dumps_json, json_number  # noqa: F401  (dumps_json re-exported)

DEFAULT_STEP = Decimal("0.5")

_RUBRIC_FIELDS = {"id", "title", "province", "total", "pass_mark", "sections"}
_RUBRIC_OPTIONAL = {"source", "step"}
_SECTION_FIELDS = {"code", "name", "max_points", "items"}
_ITEM_FIELDS = {"code", "name", "max_points", "criteria"}
_ITEM_OPTIONAL = {"requirement"}
_CRITERION_FIELDS = {"code", "text", "points", "cap", "per_occurrence"}
_CRITERION_OPTIONAL = {"label", "must_pass", "step"}


@dataclass(frozen=True)
class Criterion:
    """One scored line (评分标准). ``points`` per occurrence when ``per_occurrence``."""

    code: str
    label: str | None
    text: str
    points: Decimal
    cap: Decimal
    per_occurrence: bool
    must_pass: bool
    step: Decimal


@dataclass(frozen=True)
class Item:
    """An evaluation item (评价项目) and its criteria."""

    code: str
    name: str
    max_points: Decimal
    requirement: str | None
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Section:
    """An evaluation unit (评价单元 / 单元)."""

    code: str
    name: str
    max_points: Decimal
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Rubric:
    id: str
    title: str
    province: str
    source: str | None
    total: Decimal
    pass_mark: Decimal
    step: Decimal
    sections: tuple[Section, ...]
    _by_code: dict[str, Criterion] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {c.code: c for c in self.criteria()})

    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    def criteria(self) -> tuple[Criterion, ...]:
        """Every criterion, in rubric order."""
        return tuple(c for item in self.items() for c in item.criteria)

    def criterion(self, code: str) -> Criterion:
        try:
            return self._by_code[code]
        except KeyError:
            raise NotFound(f"rubric {self.id} has no criterion {code!r}", rubric=self.id, code=code) from None

    def to_json_dict(self) -> dict[str, Any]:
        """The rubric as JSON-ready data; numbers are ``int`` when whole, else ``Decimal``."""
        return {
            "id": self.id,
            "title": self.title,
            "total": json_number(self.total),
            "pass_mark": json_number(self.pass_mark),
            "sections": [
                {
                    "code": s.code,
                    "name": s.name,
                    "max_points": json_number(s.max_points),
                    "items": [
                        {
                            "code": i.code,
                            "name": i.name,
                            "max_points": json_number(i.max_points),
                            "criteria": [
                                {
                                    "code": c.code,
                                    "text": c.text,
                                    "points": json_number(c.points),
                                    "cap": json_number(c.cap),
                                    "per_occurrence": c.per_occurrence,
                                    "must_pass": c.must_pass,
                                }
                                for c in i.criteria
                            ],
                        }
                        for i in s.items
                    ],
                }
                for s in self.sections
            ],
        }


def _num_text(value: Decimal) -> str:
    return format(value, "f")


def rubric_to_data(rubric: Rubric) -> dict[str, Any]:
    """The rubric as plain data that ``rubric_from_dict`` reads back unchanged (numbers as
    exact text). A round keeps this snapshot, so a later edit of the file never changes
    the rules of a round already open."""
    return {
        "id": rubric.id, "title": rubric.title, "province": rubric.province, "source": rubric.source,
        "total": _num_text(rubric.total), "pass_mark": _num_text(rubric.pass_mark), "step": _num_text(rubric.step),
        "sections": [{
            "code": s.code, "name": s.name, "max_points": _num_text(s.max_points),
            "items": [{
                "code": i.code, "name": i.name, "max_points": _num_text(i.max_points), "requirement": i.requirement,
                "criteria": [{
                    "code": c.code, "label": c.label, "text": c.text, "points": _num_text(c.points),
                    "cap": _num_text(c.cap), "per_occurrence": c.per_occurrence, "must_pass": c.must_pass,
                    "step": _num_text(c.step),
                } for c in i.criteria],
            } for i in s.items],
        } for s in rubric.sections],
    }


@dataclass(frozen=True)
class Difference:
    """One line of a rubric diff: ``what`` changed at ``code`` (a section, item or criterion)."""

    code: str
    kind: str  # "section", "item", "criterion"
    what: str  # "only in A", "only in B", "points", "cap", "text", "name", "max_points", ...
    a: str | None
    b: str | None


def diff_rubrics(a: Rubric, b: Rubric) -> list[Difference]:
    """Sections, items and criteria that differ in points or text, matched by code."""
    out: list[Difference] = []

    def compare(kind: str, left: dict[str, Any], right: dict[str, Any], fields: tuple[str, ...]) -> None:
        for code in sorted(set(left) | set(right), key=_code_key):
            x, y = left.get(code), right.get(code)
            if x is None or y is None:
                shown = (x or y).name if kind != "criterion" else (x or y).text
                out.append(Difference(code, kind, "only in A" if y is None else "only in B",
                                      shown if y is None else None, shown if x is None else None))
                continue
            for name in fields:
                vx, vy = getattr(x, name), getattr(y, name)
                if vx != vy:
                    out.append(Difference(code, kind, name, _shown(vx), _shown(vy)))

    compare("section", {s.code: s for s in a.sections}, {s.code: s for s in b.sections}, ("name", "max_points"))
    compare("item", {i.code: i for i in a.items()}, {i.code: i for i in b.items()},
            ("name", "max_points", "requirement"))
    compare("criterion", {c.code: c for c in a.criteria()}, {c.code: c for c in b.criteria()},
            ("text", "points", "cap", "per_occurrence", "must_pass"))
    return out


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    return _num_text(value) if isinstance(value, Decimal) else str(value)


def _code_key(code: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in code.split("."))


# --------------------------------------------------------------------------- JSON


# --------------------------------------------------------------------------- loading


def _to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from rubric data (int, str, Decimal, or a YAML float via str()), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _fmt(value: Decimal) -> str:
    return str(json_number(value))


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_multiple(value: Decimal, unit: Decimal) -> bool:
    return value % unit == 0


class _Reader:
    """Reads one rubric document, recording problems (``"<source>: <path>"``) instead of raising."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems = ProblemList()
        self.codes: dict[str, str] = {}

    def add(self, path: str, what: str) -> None:
        self.problems.add(f"{self.source}: {path}" if path else self.source, what)

    def mapping(self, data: Any, path: str, required: set[str], optional: set[str]) -> Mapping[str, Any] | None:
        if not isinstance(data, Mapping):
            self.add(path, f"must be a mapping, got {type(data).__name__}")
            return None
        for key in sorted(required - set(data)):
            self.add(_join_path(path, key), "missing field")
        for key in sorted(set(map(str, data)) - required - optional):
            self.add(_join_path(path, key), "unknown field")
        return data

    def text(self, data: Mapping[str, Any], key: str, path: str, *, nullable: bool = False) -> str | None:
        value = data.get(key)
        if key not in data or (value is None and nullable):
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(_join_path(path, key), f"must be a non-empty string, got {value!r}")
            return None
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, *, positive: bool = False) -> Decimal | None:
        if key not in data:
            return None
        number = _to_decimal(data[key])
        if number is None:
            self.add(_join_path(path, key), f"must be a number, got {data[key]!r}")
            return None
        if number < 0 or (positive and number == 0):
            self.add(_join_path(path, key), f"must be {'> 0' if positive else '>= 0'}, got {_fmt(number)}")
            return None
        return number

    def flag(self, data: Mapping[str, Any], key: str, path: str) -> bool | None:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.add(_join_path(path, key), f"must be true or false, got {value!r}")
            return None
        return value

    def children(self, data: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = data.get(key)
        if key in data and (not isinstance(value, list) or not value):
            self.add(_join_path(path, key), "must be a non-empty list")
        return value if isinstance(value, list) else []

    def code(self, data: Mapping[str, Any], path: str, parent: str | None) -> str | None:
        code = self.text(data, "code", path)
        if code is None:
            return None
        where = _join_path(path, "code")
        if code in self.codes:
            self.add(where, f"duplicate code {code!r} (also at {self.codes[code]})")
        else:
            self.codes[code] = where
        if parent is not None and not code.startswith(parent + "."):
            self.add(where, f"code {code!r} must start with {parent + '.'!r}")
        return code

    def sum_check(self, parts: list[Decimal | None], whole: Decimal | None, path: str, what: str) -> None:
        """``what`` is a message template with ``{parts}`` (their sum) and ``{whole}``."""
        if whole is None or not parts or any(p is None for p in parts):
            return  # already reported; a sum would only mislead
        total = sum((p for p in parts if p is not None), Decimal(0))
        if total != whole:
            self.add(path, what.format(parts=_fmt(total), whole=_fmt(whole)))

    def criterion(self, data: Any, path: str, parent: str | None, default_step: Decimal | None) -> Criterion | None:
        crit = self.mapping(data, path, _CRITERION_FIELDS, _CRITERION_OPTIONAL)
        if crit is None:
            return None
        code = self.code(crit, path, parent)
        text = self.text(crit, "text", path)
        label = self.text(crit, "label", path, nullable=True)
        points = self.number(crit, "points", path, positive=True)
        cap = self.number(crit, "cap", path, positive=True)
        per_occurrence = self.flag(crit, "per_occurrence", path) if "per_occurrence" in crit else None
        must_pass = self.flag(crit, "must_pass", path)
        step = self.number(crit, "step", path, positive=True) if "step" in crit else default_step
        if label is not None and code is not None and parent is not None and code != f"{parent}.{label}":
            self.add(_join_path(path, "label"), f"label {label!r} does not match code {code!r}")
        if points is not None and cap is not None and per_occurrence is not None:
            if per_occurrence and cap < points:
                self.add(_join_path(path, "cap"), f"cap {_fmt(cap)} is below points per occurrence {_fmt(points)}")
            elif per_occurrence and not _is_multiple(cap, points):
                self.add(_join_path(path, "cap"), f"cap {_fmt(cap)} is not a multiple of points {_fmt(points)}")
            elif not per_occurrence and points != cap:
                self.add(_join_path(path, "cap"), f"cap {_fmt(cap)} differs from points {_fmt(points)} (not per_occurrence)")
            elif not per_occurrence and step is not None and not _is_multiple(cap, step):
                self.add(_join_path(path, "cap"), f"cap {_fmt(cap)} is not a multiple of step {_fmt(step)}")
        if None in (code, text, points, cap, per_occurrence, must_pass, step):
            return None
        assert code and text and points and cap and step
        return Criterion(code, label, text, points, cap, bool(per_occurrence), bool(must_pass), step)


def rubric_from_dict(data: Mapping[str, Any], source: str) -> Rubric:
    """Validate rubric data; raise one ``InvalidInput`` listing every problem found.

    ``source`` names the document (e.g. the file path) in every problem's ``where``.
    """
    read = _Reader(source)
    top = read.mapping(data, "", _RUBRIC_FIELDS, _RUBRIC_OPTIONAL)
    if top is None:
        raise InvalidInput(f"invalid rubric {source}", read.problems.problems, source=source)
    rubric_id = read.text(top, "id", "")
    title = read.text(top, "title", "")
    province = read.text(top, "province", "")
    source_text = read.text(top, "source", "", nullable=True)
    step = read.number(top, "step", "", positive=True) if "step" in top else DEFAULT_STEP
    total = read.number(top, "total", "", positive=True)
    pass_mark = read.number(top, "pass_mark", "")
    if pass_mark is not None and total is not None and pass_mark > total:
        read.add("pass_mark", f"must be within 0..{_fmt(total)}, got {_fmt(pass_mark)}")

    sections: list[Section] = []
    section_maxes: list[Decimal | None] = []
    for si, sec_data in enumerate(read.children(top, "sections", "")):
        sp = f"sections[{si}]"
        sec = read.mapping(sec_data, sp, _SECTION_FIELDS, set())
        sec_code = read.code(sec, sp, None) if sec is not None else None
        sec_max = read.number(sec, "max_points", sp) if sec is not None else None
        section_maxes.append(sec_max)
        if sec is None:
            continue
        items: list[Item] = []
        item_maxes: list[Decimal | None] = []
        for ii, item_data in enumerate(read.children(sec, "items", sp)):
            ip = f"{sp}.items[{ii}]"
            item = read.mapping(item_data, ip, _ITEM_FIELDS, _ITEM_OPTIONAL)
            item_code = read.code(item, ip, sec_code) if item is not None else None
            item_max = read.number(item, "max_points", ip) if item is not None else None
            item_maxes.append(item_max)
            if item is None:
                continue
            crits = [
                read.criterion(c, f"{ip}.criteria[{ci}]", item_code, step)
                for ci, c in enumerate(read.children(item, "criteria", ip))
            ]
            read.sum_check([c.cap if c else None for c in crits], item_max, f"{ip}.max_points",
                           "criteria caps sum to {parts}, item says {whole}")
            name = read.text(item, "name", ip)
            requirement = read.text(item, "requirement", ip, nullable=True)
            if item_code and name and item_max is not None:
                items.append(Item(item_code, name, item_max, requirement, tuple(c for c in crits if c)))
        read.sum_check(item_maxes, sec_max, f"{sp}.max_points", "item max_points sum to {parts}, section says {whole}")
        name = read.text(sec, "name", sp)
        if sec_code and name and sec_max is not None:
            sections.append(Section(sec_code, name, sec_max, tuple(items)))
    read.sum_check(section_maxes, total, "total", "section max_points sum to {parts}, total says {whole}")

    read.problems.raise_if_any(f"invalid rubric {source}", source=source)
    assert rubric_id and title and province and total is not None and pass_mark is not None and step
    return Rubric(rubric_id, title, province, source_text, total, pass_mark, step, tuple(sections))


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class SheetScore:
    """A scored sheet. ``criteria`` holds every criterion (0 where nothing was entered)."""

    rubric_id: str
    criteria: Mapping[str, Decimal]
    items: Mapping[str, Decimal]
    sections: Mapping[str, Decimal]
    total: Decimal
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    def passed(self, rubric: Rubric) -> bool:
        """Total at or above the pass mark and no must-pass criterion scored 0."""
        if rubric.id != self.rubric_id:
            raise InvalidInput(f"sheet was scored with rubric {self.rubric_id}, not {rubric.id}")
        if self.total < rubric.pass_mark:
            return False
        return all(self.criteria[c.code] > 0 for c in rubric.criteria() if c.must_pass)


def score_sheet(rubric: Rubric, entries: Mapping[str, Decimal | int], *, complete: bool) -> SheetScore:
    """Score a sheet. An entry is the points awarded (ordinary criterion) or the number of
    occurrences (per-occurrence criterion, scored ``min(count * points, cap)``).

    Raises one ``InvalidInput`` listing every bad entry (``where`` is the criterion code);
    with ``complete=True`` every criterion without an entry is a problem too.
    """
    problems = ProblemList()
    scores: dict[str, Decimal] = {}
    for code, value in entries.items():
        criterion = rubric._by_code.get(code) if isinstance(code, str) else None
        if criterion is None:
            problems.add(str(code), f"unknown criterion: rubric {rubric.id} has no criterion {code!r}")
            continue
        score = _entry_score(criterion, value, problems)
        if score is not None:
            scores[code] = score
    missing = tuple(c.code for c in rubric.criteria() if c.code not in entries)
    if complete:
        for code in missing:
            problems.add(code, "missing: a complete sheet needs an entry for every criterion")
    problems.raise_if_any(f"invalid score sheet for rubric {rubric.id}", rubric=rubric.id)

    zero = Decimal(0)
    per_criterion = {c.code: scores.get(c.code, zero) for c in rubric.criteria()}
    per_item = {i.code: sum((per_criterion[c.code] for c in i.criteria), zero) for i in rubric.items()}
    per_section = {s.code: sum((per_item[i.code] for i in s.items), zero) for s in rubric.sections}
    return SheetScore(
        rubric_id=rubric.id,
        criteria=MappingProxyType(per_criterion),
        items=MappingProxyType(per_item),
        sections=MappingProxyType(per_section),
        total=sum(per_section.values(), zero),
        missing=missing,
    )


def _entry_score(criterion: Criterion, value: object, problems: ProblemList) -> Decimal | None:
    code = criterion.code
    if isinstance(value, float):
        problems.add(code, f"float {value!r} refused: enter a Decimal or an int")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        problems.add(code, f"not a number: {type(value).__name__} {value!r}")
        return None
    number = Decimal(value)
    if not number.is_finite():
        problems.add(code, f"not a number: {number}")
    elif number < 0:
        problems.add(code, f"negative: {number}")
    elif criterion.per_occurrence:
        if number != number.to_integral_value():
            problems.add(code, f"occurrence count must be a whole number, got {number}")
        elif number >= criterion.cap / criterion.points:
            return criterion.cap
        else:
            return number * criterion.points
    elif number > criterion.cap:
        problems.add(code, f"{number} is above the cap {_fmt(criterion.cap)}")
    elif number % criterion.step != 0:
        problems.add(code, f"{number} is not a multiple of {_fmt(criterion.step)} (the smallest allowed fraction)")
    else:
        return number
    return None
