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

from .errors import InvalidInput, NotFound, Problem, ProblemList
from .jsonnum import dumps_json, json_number  # noqa: F401  (dumps_json re-exported)

DEFAULT_STEP = Decimal("0.5")

_RUBRIC_FIELDS = {"id", "title", "province", "total", "pass_mark", "sections"}
_RUBRIC_OPTIONAL = {"source", "step"}
_SECTION_FIELDS = {"code", "name", "max_points", "items"}
_ITEM_FIELDS = {"code", "name", "max_points", "criteria"}
_ITEM_OPTIONAL = {"requirement"}
_CRITERION_FIELDS = {"code", "text", "points", "cap", "per_occurrence"}
_CRITERION_OPTIONAL = {"label", "must_pass", "step", "per"}
_LISTED = 12  # allowed values are listed in full up to this many


@dataclass(frozen=True)
class Count:
    """A sheet entry given as the number of occurrences (活动、标识、次数) of a per-occurrence
    criterion, not as points. Only a form that says so makes one (``{"count": 1}``,
    ``--count``); it is turned into points before anything is scored or stored."""

    n: int


@dataclass(frozen=True)
class Criterion:
    """One scored line (评分标准). ``points`` per occurrence when ``per_occurrence``; ``per``
    names the occurrence (Chinese, English), e.g. ("项活动", "activity")."""

    code: str
    label: str | None
    text: str
    points: Decimal
    cap: Decimal
    per_occurrence: bool
    must_pass: bool
    step: Decimal
    per: tuple[str, str] | None = None

    @property
    def unit(self) -> Decimal:
        """The smallest difference between two possible scores."""
        return self.points if self.per_occurrence else self.step

    def allowed(self) -> tuple[Decimal, ...]:
        """Every score this criterion can take, from 0 to its cap."""
        count = int(self.cap / self.unit)
        return tuple(self.unit * i for i in range(count + 1))

    def allowed_text(self, sep: str = ", ") -> str:
        values = [_fmt(v) for v in self.allowed()]
        if len(values) > _LISTED:
            values = [*values[:3], "…", values[-1]]
        return sep.join(values)

    def possible(self, points: Decimal) -> bool:
        return Decimal(0) <= points <= self.cap and points % self.unit == 0

    def rule_text(self) -> tuple[str, str]:
        """How the criterion scores, (English, Chinese): "2 分 per activity, up to 4"."""
        if self.per_occurrence:
            zh_noun, en_noun = self.per or ("项", "occurrence")
            return (f"{_fmt(self.points)} 分 per {en_noun}, up to {_fmt(self.cap)}",
                    f"每{zh_noun}{_fmt(self.points)}分，最高{_fmt(self.cap)}分")
        if self.step == self.cap:
            return f"{_fmt(self.cap)} 分 or nothing", f"得{_fmt(self.cap)}分或不得分"
        return (f"up to {_fmt(self.cap)} in steps of {_fmt(self.step)}",
                f"最高{_fmt(self.cap)}分，以{_fmt(self.step)}分为单位")


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
            raise NotFound(f"rubric {self.id} has no criterion {code!r}",
                           f"评价标准 {self.id} 中没有编号为 {code!r} 的评分项", rubric=self.id, code=code) from None

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
                                    "allowed": [json_number(v) for v in c.allowed()],
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
                    "step": _num_text(c.step), **({"per": {"zh": c.per[0], "en": c.per[1]}} if c.per else {}),
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
                only = x if x is not None else y
                assert only is not None
                shown = only.name if kind != "criterion" else only.text
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

    def add(self, path: str, what: str, zh: str) -> None:
        self.problems.add(f"{self.source}: {path}" if path else self.source, what, zh)

    def mapping(self, data: Any, path: str, required: set[str], optional: set[str]) -> Mapping[str, Any] | None:
        if not isinstance(data, Mapping):
            self.add(path, f"must be a mapping, got {type(data).__name__}",
                     f"须为“字段: 值”的映射，实际是 {type(data).__name__}")
            return None
        for key in sorted(required - set(data)):
            self.add(_join_path(path, key), "missing field", "缺少此字段")
        for key in sorted(set(map(str, data)) - required - optional):
            self.add(_join_path(path, key), "unknown field", "未知字段")
        return data

    def text(self, data: Mapping[str, Any], key: str, path: str, *, nullable: bool = False) -> str | None:
        value = data.get(key)
        if key not in data or (value is None and nullable):
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(_join_path(path, key), f"must be a non-empty string, got {value!r}",
                     f"须为非空文字，填写的是 {value!r}")
            return None
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, *, positive: bool = False) -> Decimal | None:
        if key not in data:
            return None
        number = _to_decimal(data[key])
        if number is None:
            self.add(_join_path(path, key), f"must be a number, got {data[key]!r}", f"须为数字，填写的是 {data[key]!r}")
            return None
        if number < 0 or (positive and number == 0):
            self.add(_join_path(path, key), f"must be {'> 0' if positive else '>= 0'}, got {_fmt(number)}",
                     f"须{'大于0' if positive else '不小于0'}，填写的是 {_fmt(number)}")
            return None
        return number

    def flag(self, data: Mapping[str, Any], key: str, path: str) -> bool | None:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.add(_join_path(path, key), f"must be true or false, got {value!r}",
                     f"须为 true 或 false，填写的是 {value!r}")
            return None
        return value

    def children(self, data: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = data.get(key)
        if key in data and (not isinstance(value, list) or not value):
            self.add(_join_path(path, key), "must be a non-empty list", "须为非空列表")
        return value if isinstance(value, list) else []

    def code(self, data: Mapping[str, Any], path: str, parent: str | None) -> str | None:
        code = self.text(data, "code", path)
        if code is None:
            return None
        where = _join_path(path, "code")
        if code in self.codes:
            self.add(where, f"duplicate code {code!r} (also at {self.codes[code]})",
                     f"编号 {code!r} 重复（另见 {self.codes[code]}）")
        else:
            self.codes[code] = where
        if parent is not None and not code.startswith(parent + "."):
            self.add(where, f"code {code!r} must start with {parent + '.'!r}",
                     f"编号 {code!r} 须以 {parent + '.'!r} 开头")
        return code

    def sum_check(self, parts: list[Decimal | None], whole: Decimal | None, path: str, what: str, zh: str) -> None:
        """``what`` (and ``zh``, the same in Chinese) is a message template with ``{parts}``
        (their sum) and ``{whole}``."""
        if whole is None or not parts or any(p is None for p in parts):
            return  # already reported; a sum would only mislead
        total = sum((p for p in parts if p is not None), Decimal(0))
        if total != whole:
            self.add(path, what.format(parts=_fmt(total), whole=_fmt(whole)),
                     zh.format(parts=_fmt(total), whole=_fmt(whole)))

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
        per = self.per(crit, path, per_occurrence)
        if label is not None and code is not None and parent is not None and code != f"{parent}.{label}":
            self.add(_join_path(path, "label"), f"label {label!r} does not match code {code!r}",
                     f"标号 {label!r} 与编号 {code!r} 不符")
        if points is not None and cap is not None and per_occurrence is not None:
            self.cap_check(path, points, cap, per_occurrence, step)
        if None in (code, text, points, cap, per_occurrence, must_pass, step) or per is False:
            return None
        assert code and text and points and cap and step
        return Criterion(code, label, text, points, cap, bool(per_occurrence), bool(must_pass), step,
                         per if isinstance(per, tuple) else None)

    def cap_check(self, path: str, points: Decimal, cap: Decimal, per_occurrence: bool, step: Decimal | None) -> None:
        where, c, p = _join_path(path, "cap"), _fmt(cap), _fmt(points)
        if per_occurrence and cap < points:
            self.add(where, f"cap {c} is below points per occurrence {p}", f"上限 {c} 低于每次（项）分值 {p}")
        elif per_occurrence and not _is_multiple(cap, points):
            self.add(where, f"cap {c} is not a multiple of points {p}", f"上限 {c} 不是分值 {p} 的整数倍")
        elif not per_occurrence and points != cap:
            self.add(where, f"cap {c} differs from points {p} (not per_occurrence)",
                     f"上限 {c} 与分值 {p} 不同（非按次计分）")
        elif not per_occurrence and step is not None and not _is_multiple(cap, step):
            self.add(where, f"cap {c} is not a multiple of step {_fmt(step)}",
                     f"上限 {c} 不是步长 {_fmt(step)} 的整数倍")

    def per(self, crit: Mapping[str, Any], path: str, per_occurrence: bool | None) -> tuple[str, str] | bool | None:
        """The occurrence's name ``{zh, en}``; False when malformed (reported)."""
        if "per" not in crit:
            return None
        value, where = crit["per"], _join_path(path, "per")
        if not per_occurrence:
            self.add(where, "only a per_occurrence criterion names its occurrence",
                     "只有按次（项）计分（per_occurrence）的评分项才写 per")
            return False
        if (not isinstance(value, Mapping) or set(value) != {"zh", "en"}
                or not all(isinstance(v, str) and v.strip() for v in value.values())):
            self.add(where, f"must be {{zh: ..., en: ...}} naming one occurrence (项活动 / activity), got {value!r}",
                     f"须为 {{zh: ..., en: ...}}，写明计分的一次（如 项活动 / activity），填写的是 {value!r}")
            return False
        return value["zh"].strip(), value["en"].strip()


# The sums a rubric checks: (English, Chinese) templates with ``{parts}`` (their sum) and ``{whole}``.
_SUMS = {
    "item": ("criteria caps sum to {parts}, item says {whole}", "各评分标准上限合计 {parts}，评价项目写的是 {whole}"),
    "section": ("item max_points sum to {parts}, section says {whole}",
                "各评价项目分值合计 {parts}，评价单元写的是 {whole}"),
    "total": ("section max_points sum to {parts}, total says {whole}",
              "各评价单元分值合计 {parts}，总分写的是 {whole}"),
}


def rubric_from_dict(data: Mapping[str, Any], source: str) -> Rubric:
    """Validate rubric data; raise one ``InvalidInput`` listing every problem found (``source``,
    e.g. the file path, names the document in every problem's ``where``)."""
    read = _Reader(source)
    top = read.mapping(data, "", _RUBRIC_FIELDS, _RUBRIC_OPTIONAL)
    if top is None:
        raise InvalidInput(f"invalid rubric {source}", read.problems.problems, f"评价标准 {source} 有误",
                           source=source)
    rubric_id = read.text(top, "id", "")
    title = read.text(top, "title", "")
    province = read.text(top, "province", "")
    source_text = read.text(top, "source", "", nullable=True)
    step = read.number(top, "step", "", positive=True) if "step" in top else DEFAULT_STEP
    total = read.number(top, "total", "", positive=True)
    pass_mark = read.number(top, "pass_mark", "")
    if pass_mark is not None and total is not None and pass_mark > total:
        read.add("pass_mark", f"must be within 0..{_fmt(total)}, got {_fmt(pass_mark)}",
                 f"须在0至{_fmt(total)}之间，填写的是 {_fmt(pass_mark)}")

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
                           *_SUMS["item"])
            name = read.text(item, "name", ip)
            requirement = read.text(item, "requirement", ip, nullable=True)
            if item_code and name and item_max is not None:
                items.append(Item(item_code, name, item_max, requirement, tuple(c for c in crits if c)))
        read.sum_check(item_maxes, sec_max, f"{sp}.max_points", *_SUMS["section"])
        name = read.text(sec, "name", sp)
        if sec_code and name and sec_max is not None:
            sections.append(Section(sec_code, name, sec_max, tuple(items)))
    read.sum_check(section_maxes, total, "total", *_SUMS["total"])

    read.problems.raise_if_any(f"invalid rubric {source}", f"评价标准 {source} 有误，共{read.problems.count}处",
                               source=source)
    assert rubric_id and title and province and total is not None and pass_mark is not None and step
    return Rubric(rubric_id, title, province, source_text, total, pass_mark, step, tuple(sections))


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class SheetScore:
    """A scored sheet. ``criteria`` holds every criterion's points (0 where nothing was
    entered); ``counts`` the entries that were given as a number of occurrences."""

    rubric_id: str
    criteria: Mapping[str, Decimal]
    items: Mapping[str, Decimal]
    sections: Mapping[str, Decimal]
    total: Decimal
    missing: tuple[str, ...]
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def complete(self) -> bool:
        return not self.missing

    def passed(self, rubric: Rubric) -> bool:
        """Total at or above the pass mark and no must-pass criterion scored 0."""
        if rubric.id != self.rubric_id:
            raise InvalidInput(f"sheet was scored with rubric {self.rubric_id}, not {rubric.id}",
                               message_zh=f"该评分表是按评价标准 {self.rubric_id} 评分的，不是 {rubric.id}")
        if self.total < rubric.pass_mark:
            return False
        return all(self.criteria[c.code] > 0 for c in rubric.criteria() if c.must_pass)

    def entered(self) -> dict[str, Decimal]:
        """The points of the criteria that have an entry, in rubric order."""
        return {code: points for code, points in self.criteria.items() if code not in self.missing}


def score_sheet(rubric: Rubric, entries: Mapping[str, Decimal | int | Count], *, complete: bool) -> SheetScore:
    """Score a sheet. An entry is the points awarded, as printed on the form (分项得分): a
    possible score of its criterion (a multiple of the points per occurrence, or of the
    rubric's step, at most the cap), else it is refused — never capped. A :class:`Count`
    is a number of occurrences, turned into points (``count × points``, the document's
    cumulative maximum applied: "累计最高得4分").

    Raises one ``InvalidInput`` listing every bad entry (``where`` is the criterion code);
    with ``complete=True`` every criterion without an entry is a problem too.
    """
    problems = ProblemList()
    scores: dict[str, Decimal] = {}
    counts: dict[str, int] = {}
    for code, value in entries.items():
        criterion = rubric._by_code.get(code) if isinstance(code, str) else None
        if criterion is None:
            problems.add(str(code), f"unknown criterion: rubric {rubric.id} has no criterion {code!r}",
                         f"评价标准 {rubric.id} 中没有编号为 {code} 的评分项")
            continue
        score = _entry_score(criterion, value, problems)
        if score is not None:
            scores[code] = score
            if isinstance(value, Count):
                counts[code] = value.n
    missing = tuple(c.code for c in rubric.criteria() if c.code not in entries)
    if complete:
        for code in missing:
            problems.add(code, "missing: a complete sheet needs an entry for every criterion (0 is allowed)",
                         "未填写：完整的评分表每一项都要填写（可填0）")
    problems.raise_if_any(f"invalid score sheet for rubric {rubric.id}", f"评分表有误（评价标准 {rubric.id}）",
                          rubric=rubric.id)

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
        counts=MappingProxyType(counts),
    )


def _entry_score(criterion: Criterion, value: object, problems: ProblemList) -> Decimal | None:
    code = criterion.code
    if isinstance(value, Count):
        if not criterion.per_occurrence:
            rule_en, rule_zh = criterion.rule_text()
            problems.add(code, f"a count is only for a criterion scored per occurrence; {code} is {rule_en}: "
                               "enter its points",
                         f"只有按次（项）计分的评分项可以填写次数；{code} {rule_zh}，请填写分数")
            return None
        if isinstance(value.n, bool) or not isinstance(value.n, int) or value.n < 0:
            problems.add(code, f"a count must be a whole number of occurrences, got {value.n!r}",
                         f"次数必须是非负整数，填写的是 {value.n!r}")
            return None
        return min(criterion.points * value.n, criterion.cap)
    if isinstance(value, float):
        problems.add(code, f"float {value!r} refused: enter a Decimal or an int", f"不接受浮点数 {value!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        problems.add(code, f"not a number: {type(value).__name__} {value!r}", f"不是数字：{value!r}")
        return None
    number = Decimal(value)
    if not number.is_finite():
        problems.add(code, f"not a number: {number}", f"不是数字：{number}")
        return None
    if criterion.possible(number):
        return number
    rule_en, rule_zh = criterion.rule_text()
    shown = _fmt(number)
    problems.add(code, f"{shown} 分 is not possible: {rule_en} ({criterion.allowed_text()})",
                 f"不能得{shown}分：{rule_zh}（可填 {criterion.allowed_text('、')}）")
    return None


def entries_as_points(payload: Mapping[str, Any], rubric: Rubric) -> dict[str, Decimal]:
    """The entries of a recorded sheet (self-assessment, verification, recheck) in points.

    Version 2 payloads (``"v": 2``) hold points. Version 1 payloads, written before sheets
    were points, hold the number of occurrences for a per-occurrence criterion; they are
    read as they were written: ``min(count × points, cap)``, as they were scored then.
    """
    entries = {code: Decimal(value) for code, value in payload["entries"].items()}
    if payload.get("v", 1) >= 2:
        return entries
    for code, value in entries.items():
        criterion = rubric._by_code.get(code)
        if criterion is not None and criterion.per_occurrence:
            entries[code] = min(value * criterion.points, criterion.cap)
    return entries


def complete_sheet(rubric: Rubric, total: Decimal) -> dict[str, str]:
    """A complete sheet (every criterion answered, in points) scoring exactly ``total``:
    per-occurrence criteria first (whole occurrences), then ordinary criteria up to their caps
    in rubric order."""
    left = Decimal(total)
    entries: dict[str, str] = {}
    for c in rubric.criteria():
        if c.per_occurrence:
            count = min(c.cap, left) // c.points
            entries[c.code] = format(count * c.points, "f")
            left -= count * c.points
    for c in rubric.criteria():
        if not c.per_occurrence:
            give = min(c.cap, left)
            give -= give % c.step
            entries[c.code] = format(give, "f")
            left -= give
    if left != 0:
        raise InvalidInput(f"no complete sheet of rubric {rubric.id} scores {total}",
                           [Problem("total", f"cannot be reached with rubric {rubric.id} (max {rubric.total})",
                                    f"按评价标准 {rubric.id} 无法得到（满分 {rubric.total}）")],
                           f"按评价标准 {rubric.id} 没有总分为 {total} 的完整评分表")
    return {c.code: entries[c.code] for c in rubric.criteria()}
