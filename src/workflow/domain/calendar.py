"""Round calendars: the province and year a calendar serves, its policy, its milestones and
duties, the documents a submission needs, and the target schedule.

Calendars are data files (``calendars/*.yaml``), validated on load. A milestone is due at
the end of its day in Asia/Shanghai. Reminder tiers count days before the due date; a
reminder that would fall on a non-working day moves to the previous working day (the
published due date never moves).

Who owes a milestone (``owed_by``):

- ``unit`` (the default): each unit's case, while it is in one of ``owes.states`` or has not
  given the round's contact form (``owes: {contact_form: true}``); a miss is recorded on the
  case.
- ``bureau``: each jurisdiction for its own units' cases in ``owes.states`` (the November
  evaluation: the bureau verifies and decides); a miss is recorded on the jurisdiction's
  duty stream, never on the cases, which show that they wait on the bureau.
- a jurisdiction level (``province``, ``city``, ``county``): every jurisdiction of that level
  in the round's province owes it once (a city's yearly report, a filing with the province
  or the national bureau) until it is recorded done, with what ``needs`` names.

A calendar may ``extend`` a recurring one for one year (a year's notice overriding the dates
of a province's standing plan); :func:`merge_calendar_data` applies it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import InvalidInput, ProblemList
from .lifecycle import OPEN_STATES, STATES, Owing
from .policy import Policy, policy_from_dict

_KNOWN = {"id", "title", "province", "source", "year", "recurring", "extends", "policy", "milestones",
          "rectification", "extra_holidays", "extra_workdays", "contact", "documents", "targets"}
_MILESTONE_KNOWN = {"id", "name", "due", "next_year", "owed_by", "owes", "needs", "remind", "escalate", "tiers",
                    "what_to_do"}
_RECT_KNOWN = {"name", "remind", "escalate", "tiers", "what_to_do"}
RECIPIENTS = ("unit", "coordinators")
DUTY_RECIPIENTS = ("coordinators", "parent")
LEVELS = ("province", "city", "county")
OWED_BY = ("unit", "bureau", *LEVELS)
NEEDS = ("nothing", "attachment", "filing_batches", "spot_checks")
IsWorkday = Callable[[date], bool]
# What a bureau calls each party that owes a milestone.
OWED_BY_NAMES = {"unit": "创建单位", "province": "省级", "city": "市级", "county": "县级",
                 "bureau": "各级机关事务管理部门"}


@dataclass(frozen=True, slots=True)
class RequiredDocument:
    """A document the submission needs besides the evidence per criterion (自评报告,
    自评打分表, 创建工作方案), attached to the case as a whole."""

    id: str
    name: str
    note: str = ""

    def to_data(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "note": self.note}


@dataclass(frozen=True, slots=True)
class Target:
    """A share of the agencies in scope to be certified by the end of ``year``; for one
    agency level (provincial, city, county) or one jurisdiction's subtree when given."""

    year: int
    share: Decimal
    level: str | None = None
    jurisdiction: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {"year": self.year, "share": format(self.share, "f"), "level": self.level,
                "jurisdiction": self.jurisdiction}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Target:
        return cls(int(data["year"]), Decimal(str(data["share"])), data.get("level"), data.get("jurisdiction"))


@dataclass(frozen=True, slots=True)
class Milestone:
    """A dated obligation of the round (see the module's text for ``owed_by``).
    ``owes_states`` — cases in these states still owe it; ``owes_contact_form`` — cases whose
    unit has not given this round's contact form owe it; none of these and owed by units —
    informational (shown on the timeline, nobody reminded)."""

    id: str
    name: str
    month: int
    day: int
    next_year: bool
    owes_states: frozenset[str]
    owes_contact_form: bool
    remind: tuple[str, ...]
    escalate: tuple[str, ...]
    tiers: tuple[int, ...]  # days before the due date, largest first
    what_to_do: str
    owed_by: str = "unit"
    needs: str = "nothing"

    def due_on(self, round_year: int) -> date:
        return date(round_year + (1 if self.next_year else 0), self.month, self.day)

    @property
    def informational(self) -> bool:
        return self.owed_by == "unit" and not self.owes_states and not self.owes_contact_form

    @property
    def owing(self) -> Owing:
        """Which cases owe it (or, for a bureau's duty, wait for it)."""
        if self.owes_contact_form:
            return Owing(OPEN_STATES, contact_form_missing=True)
        return Owing(tuple(sorted(self.owes_states)))

    @property
    def by_bureau(self) -> bool:
        """Owed by each jurisdiction for its own units' cases (the evaluation)."""
        return self.owed_by == "bureau"

    @property
    def by_level(self) -> bool:
        """Owed once by every jurisdiction of a level (a report, a filing)."""
        return self.owed_by in LEVELS


@dataclass(frozen=True, slots=True)
class RectificationRule:
    """Reminders and escalation of the per-case rectification deadline (ordered + N days)."""

    name: str
    remind: tuple[str, ...]
    escalate: tuple[str, ...]
    tiers: tuple[int, ...]
    what_to_do: str


@dataclass(frozen=True, slots=True)
class Calendar:
    id: str
    title: str
    province: str
    year: int | None  # the one round year it serves, or None when recurring
    recurring: bool
    policy: Policy
    source: str | None = None
    milestones: tuple[Milestone, ...] = ()
    rectification: RectificationRule | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    contact: str = ""  # the bureau's contact line printed in mails
    documents: tuple[RequiredDocument, ...] = ()
    targets: tuple[Target, ...] = ()
    extends: str | None = None

    def serves(self, year: int) -> bool:
        return self.recurring or self.year == year

    def milestone(self, milestone_id: str) -> Milestone:
        for m in self.milestones:
            if m.id == milestone_id:
                return m
        raise KeyError(f"calendar {self.id} has no milestone {milestone_id!r}")

    def title_for(self, year: int) -> str:
        """The round's name in mails: the title with ``{year}`` filled in."""
        return self.title.replace("{year}", str(year))

    def targets_for(self, year: int) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.year == year)

    def overall_target(self, year: int) -> Decimal | None:
        """The schedule's share for the whole province in ``year`` (no level, no jurisdiction)."""
        for t in self.targets_for(year):
            if t.level is None and t.jurisdiction is None:
                return t.share
        return None

    def duties(self) -> tuple[Milestone, ...]:
        return tuple(m for m in self.milestones if m.by_bureau or m.by_level)


# ---------------------------------------------------------------- deadline arithmetic

def reminder_date(due: date, days_before: int, is_workday: IsWorkday) -> date:
    """The day a reminder ``days_before`` the due date goes out: moved back to a working day."""
    day = due - timedelta(days=days_before)
    for _ in range(60):
        if is_workday(day):
            return day
        day -= timedelta(days=1)
    raise ValueError(f"no working day in the 60 days before {due - timedelta(days=days_before)}")


def tier_due(due: date, tiers: tuple[int, ...], today: date, is_workday: IsWorkday) -> int | None:
    """The reminder tier to send on ``today``: the latest tier whose day has come, while the
    deadline has not passed. After downtime only this one is sent, never the ones missed."""
    if today > due:
        return None
    come = [t for t in tiers if reminder_date(due, t, is_workday) <= today]
    return min(come) if come else None


# ---------------------------------------------------------------- loading

def _strings(value: Any, where: str, allowed: tuple[str, ...], problems: ProblemList) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or any(v not in allowed for v in value):
        problems.add(where, f"must be a list of {', '.join(allowed)}; got {value!r}",
                     f"须为由 {'、'.join(allowed)} 组成的列表；填写的是 {value!r}")
        return ()
    return tuple(value)


def _tiers(value: Any, where: str, problems: ProblemList) -> tuple[int, ...]:
    if value is None:
        return ()
    if (not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 90
                                           for v in value) or len(set(value)) != len(value)):
        problems.add(where, f"must be a list of distinct whole days from 0 to 90; got {value!r}",
                     f"须为0至90之间互不相同的整数天数列表；填写的是 {value!r}")
        return ()
    return tuple(sorted(value, reverse=True))


def _dates(value: Any, where: str, problems: ProblemList) -> frozenset[date]:
    if value is None:
        return frozenset()
    out = set()
    for i, v in enumerate(value if isinstance(value, list) else [value]):
        try:
            out.add(v if isinstance(v, date) else date.fromisoformat(str(v)))
        except ValueError:
            problems.add(f"{where}[{i}]", f"not a date YYYY-MM-DD: {v!r}", f"不是“年-月-日”格式的日期：{v!r}")
    return frozenset(out)


def _owes(data: Mapping[str, Any], where: str, owed_by: str, problems: ProblemList) -> tuple[frozenset[str], bool]:
    owes = data.get("owes")
    if owes is None:
        if owed_by == "bureau":
            problems.add(f"{where}.owes", "a bureau's duty names the states of the cases it is owed for",
                         "机关事务管理部门承担的工作须写明所针对案件的状态（owes.states）")
        return frozenset(), False
    if owed_by in LEVELS:
        problems.add(f"{where}.owes", f"a duty owed by each {owed_by} is done when recorded: it owes no case states",
                     f"由各{OWED_BY_NAMES.get(owed_by, owed_by)}地区（{owed_by}）承担的工作以登记完成为准，"
                     "不写案件状态")
        return frozenset(), False
    if not isinstance(owes, Mapping) or set(owes) - {"states", "contact_form"}:
        problems.add(f"{where}.owes", "must be {states: [...]} or {contact_form: true}",
                     "须为 {states: [...]} 或 {contact_form: true}")
        return frozenset(), False
    raw = owes.get("states", [])
    listed = isinstance(raw, list)
    if not listed:
        problems.add(f"{where}.owes.states", f"must be a list of states; got {raw!r}",
                     f"须为状态列表；填写的是 {raw!r}")
        raw = []
    bad = [s for s in raw if s not in STATES]
    if bad:
        problems.add(f"{where}.owes.states", f"unknown states {bad}; states: {', '.join(STATES)}",
                     f"未知状态 {bad}；可用的状态：{'、'.join(STATES)}")
    states = frozenset(s for s in raw if s in STATES)
    flag = owes.get("contact_form", False)
    if not isinstance(flag, bool):
        problems.add(f"{where}.owes.contact_form", f"must be true or false; got {flag!r}",
                     f"须为 true 或 false；填写的是 {flag!r}")
    contact_form = flag is True
    if contact_form and owed_by != "unit":
        problems.add(f"{where}.owes.contact_form", "the contact form is owed by units", "联络员信息表由创建单位报送")
    if listed and not raw and not contact_form:
        problems.add(f"{where}.owes", "names nobody: give states, or contact_form: true "
                                      "(leave owes out for an informational milestone)",
                     "没有指明由谁承担：请写 states 或 contact_form: true（仅作提示的时间节点不写 owes）")
    return states, contact_form


def _milestone(data: Any, where: str, problems: ProblemList) -> Milestone | None:
    before = problems.count
    if not isinstance(data, Mapping):
        problems.add(where, "must be a mapping", "须为“字段: 值”的映射")
        return None
    for key in sorted(set(data) - _MILESTONE_KNOWN):
        problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(_MILESTONE_KNOWN))})",
                     f"未知字段（可用字段：{'、'.join(sorted(_MILESTONE_KNOWN))}）")
    mid, name = data.get("id"), data.get("name")
    if not isinstance(mid, str) or not mid.replace("_", "").isalnum():
        problems.add(f"{where}.id", f"must be a short id like self_assessment; got {mid!r}",
                     f"须为简短编号（如 self_assessment）；填写的是 {mid!r}")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{where}.name", "required text", "须填写文字")
    month = day = 0
    due = str(data.get("due", ""))
    try:
        month, day = (int(p) for p in due.split("-"))
        date(2024, month, day)  # a leap year: 02-29 is allowed to be named
    except ValueError:
        problems.add(f"{where}.due", f"must be MM-DD (the day in the round's year); got {data.get('due')!r}",
                     f"须为“月-日”（MM-DD，本轮年度中的日期）；填写的是 {data.get('due')!r}")
    owed_by = data.get("owed_by", "unit")
    if owed_by not in OWED_BY:
        problems.add(f"{where}.owed_by", f"must be one of {', '.join(OWED_BY)}; got {owed_by!r}",
                     f"须为 {'、'.join(OWED_BY)} 之一；填写的是 {owed_by!r}")
        owed_by = "unit"
    states, contact_form = _owes(data, where, owed_by, problems)
    needs = data.get("needs", "nothing")
    if needs not in NEEDS:
        problems.add(f"{where}.needs", f"must be one of {', '.join(NEEDS)}; got {needs!r}",
                     f"须为 {'、'.join(NEEDS)} 之一；填写的是 {needs!r}")
    elif "needs" in data and owed_by not in LEVELS:
        problems.add(f"{where}.needs", "only a duty owed by a level (province, city, county) is recorded done",
                     "只有由省、市、县各级承担的工作才登记完成（needs）")
    allowed = RECIPIENTS if owed_by == "unit" else DUTY_RECIPIENTS
    remind = _strings(data.get("remind"), f"{where}.remind", allowed, problems)
    escalate = _strings(data.get("escalate"), f"{where}.escalate", allowed, problems)
    tiers = _tiers(data.get("tiers"), f"{where}.tiers", problems)
    informational = owed_by == "unit" and data.get("owes") is None
    if informational and (remind or escalate or tiers):
        problems.add(where, "an informational milestone (no owes) has no reminders or escalation",
                     "仅作提示的时间节点（没有 owes）不设提醒或上报")
    if not informational and tiers and not remind:
        problems.add(f"{where}.remind", "tiers are given but nobody is reminded",
                     "写了提醒天数（tiers），但没有提醒对象")
    if problems.count > before:
        return None
    assert isinstance(mid, str) and isinstance(name, str)  # checked above (a problem was added otherwise)
    return Milestone(mid, name.strip(), month, day, data.get("next_year") is True, states, contact_form, remind,
                     escalate, tiers, str(data.get("what_to_do") or "").strip(), owed_by, needs)


def _documents(value: Any, where: str, problems: ProblemList) -> tuple[RequiredDocument, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(where, f"must be a list of {{id, name}}; got {value!r}",
                     f"须为 {{id, name}} 的列表；填写的是 {value!r}")
        return ()
    out, seen = [], set()
    for i, d in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(d, Mapping) or set(d) - {"id", "name", "note"} or not {"id", "name"} <= set(d):
            problems.add(at, "a document is {id, name, note?}", "材料须写为 {id, name, note?}")
            continue
        ident, name = d["id"], d["name"]
        if not isinstance(ident, str) or not ident.replace("_", "").isalnum() or len(ident) > 64:
            problems.add(f"{at}.id", f"must be a short id like self_report; got {ident!r}",
                         f"须为简短编号（如 self_report）；填写的是 {ident!r}")
            continue
        if not isinstance(name, str) or not name.strip():
            problems.add(f"{at}.name", "required text", "须填写文字")
            continue
        if ident in seen:
            problems.add(f"{at}.id", f"{ident!r} is used twice", f"{ident!r} 重复使用")
        seen.add(ident)
        out.append(RequiredDocument(ident, name.strip(), str(d.get("note") or "").strip()))
    return tuple(out)


def _share(value: Any) -> Decimal | None:
    if isinstance(value, (bool, float)):
        return None
    try:
        share = Decimal(str(value))
    except InvalidOperation:
        return None
    return share if share.is_finite() and Decimal(0) < share <= Decimal(1) else None


def _targets(value: Any, where: str, problems: ProblemList) -> tuple[Target, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(where, f"must be a list of {{year, share, level?, jurisdiction?}}; got {value!r}",
                     f"须为 {{year, share, level?, jurisdiction?}} 的列表；填写的是 {value!r}")
        return ()
    out: list[Target] = []
    seen: set[tuple[int, str | None, str | None]] = set()
    for i, t in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(t, Mapping) or set(t) - {"year", "share", "level", "jurisdiction"} \
                or not {"year", "share"} <= set(t):
            problems.add(at, "a target is {year, share, level?, jurisdiction?}",
                         "目标须写为 {year, share, level?, jurisdiction?}")
            continue
        year, level, jurisdiction = t["year"], t.get("level"), t.get("jurisdiction")
        share = _share(t["share"])
        ok = _target_fields(at, year, share, t["share"], level, jurisdiction, problems)
        if not ok:
            continue
        key = (year, level, jurisdiction)
        if key in seen:
            problems.add(at, f"a second target for {year}" + (f", level {level}" if level else "")
                         + (f", jurisdiction {jurisdiction}" if jurisdiction else ""),
                         f"{year}年的目标重复" + (f"（级别 {level}）" if level else "")
                         + (f"（地区 {jurisdiction}）" if jurisdiction else ""))
        seen.add(key)
        assert share is not None
        out.append(Target(year, share, level, jurisdiction))
    return tuple(out)


def _target_fields(at: str, year: Any, share: Decimal | None, given: Any, level: Any, jurisdiction: Any,
                   problems: ProblemList) -> bool:
    """Whether a target's fields are each well formed (each one that is not, named)."""
    before = problems.count
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
        problems.add(f"{at}.year", f"must be a year from 2000 to 2100; got {year!r}",
                     f"须为2000至2100之间的年份；填写的是 {year!r}")
    if share is None:
        problems.add(f"{at}.share", f"must be a share in (0, 1] written as text, e.g. \"0.5\"; got {given!r}",
                     f"须为大于0且不超过1的比例，以文字书写（如 \"0.5\"）；填写的是 {given!r}")
    if level is not None and level not in ("provincial", "city", "county"):
        problems.add(f"{at}.level", f"must be provincial, city or county (an agency's level); got {level!r}",
                     f"须为 provincial（省级）、city（市级）或 county（县级）；填写的是 {level!r}")
    if jurisdiction is not None and (not isinstance(jurisdiction, str) or not jurisdiction.strip()):
        problems.add(f"{at}.jurisdiction", f"must be a jurisdiction id; got {jurisdiction!r}",
                     f"须为地区编号；填写的是 {jurisdiction!r}")
    return problems.count == before


def _milestones(raw: Any, source: str, problems: ProblemList) -> list[Milestone]:
    if not isinstance(raw, list):
        problems.add(f"{source}: milestones", f"must be a list of milestones; got {raw!r}",
                     f"须为时间节点列表；填写的是 {raw!r}")
        return []
    milestones: list[Milestone] = []
    seen: set[str] = set()
    for i, m in enumerate(raw):
        milestone = _milestone(m, f"{source}: milestones[{i}]", problems)
        if milestone is None:
            continue
        if milestone.id in seen:
            problems.add(f"{source}: milestones[{i}].id", f"{milestone.id!r} is used twice",
                         f"{milestone.id!r} 重复使用")
        seen.add(milestone.id)
        milestones.append(milestone)
    return milestones


def _rectification(raw: Any, where: str, policy: Policy | None, problems: ProblemList) -> RectificationRule | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - _RECT_KNOWN:
        problems.add(where, f"must be a mapping with {', '.join(sorted(_RECT_KNOWN))}",
                     f"须为含 {'、'.join(sorted(_RECT_KNOWN))} 的映射")
        return None
    rule = RectificationRule(str(raw.get("name") or "整改"),
                             _strings(raw.get("remind"), f"{where}.remind", RECIPIENTS, problems),
                             _strings(raw.get("escalate"), f"{where}.escalate", RECIPIENTS, problems),
                             _tiers(raw.get("tiers"), f"{where}.tiers", problems),
                             str(raw.get("what_to_do") or "").strip())
    if policy is not None and not policy.has_rectification:
        problems.add(where, "the policy has no rectification (on_fail is not 'rectification')",
                     "政策中没有整改环节（on_fail 不是 'rectification'）")
    return rule


def calendar_from_dict(data: Any, source: str) -> Calendar:
    problems = ProblemList()
    if not isinstance(data, Mapping):
        raise InvalidInput(f"invalid calendar {source}: a mapping is needed", [],
                           f"工作日程 {source} 有误：须为“字段: 值”的映射")
    for key in sorted(set(data) - _KNOWN):
        problems.add(f"{source}: {key}", f"unknown field (known: {', '.join(sorted(_KNOWN))})",
                     f"未知字段（可用字段：{'、'.join(sorted(_KNOWN))}）")
    for key in ("id", "title", "province"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.add(f"{source}: {key}", "required text", "须填写文字")
    year, recurring = data.get("year"), data.get("recurring")
    _year_or_recurring(year, recurring, source, problems)
    policy = None
    try:
        policy = policy_from_dict(data.get("policy"), f"{source}: policy")
    except InvalidInput as exc:
        problems.extend(exc.problems, exc.problem_count)
    milestones = _milestones(data.get("milestones") or [], source, problems)
    rect = _rectification(data.get("rectification"), f"{source}: rectification", policy, problems)
    holidays = _dates(data.get("extra_holidays"), f"{source}: extra_holidays", problems)
    workdays = _dates(data.get("extra_workdays"), f"{source}: extra_workdays", problems)
    documents = _documents(data.get("documents"), f"{source}: documents", problems)
    targets = _targets(data.get("targets"), f"{source}: targets", problems)
    if year is not None and isinstance(year, int):
        for t in targets:
            if t.year != year:
                problems.add(f"{source}: targets", f"a calendar of {year} sets a target for {t.year}",
                             f"{year}年的工作日程设置了{t.year}年的目标")
    extends = data.get("extends")
    if extends is not None and (not isinstance(extends, str) or not extends.strip()):
        problems.add(f"{source}: extends", f"must be the id of a recurring calendar; got {extends!r}",
                     f"须为每年适用的工作日程的编号；填写的是 {extends!r}")
    problems.raise_if_any(f"invalid calendar {source}", f"工作日程 {source} 有误，共{problems.count}处")
    assert policy is not None
    return Calendar(id=data["id"], title=data["title"], province=data["province"], year=year,
                    recurring=recurring is not None, policy=policy, source=data.get("source"),
                    milestones=tuple(milestones), rectification=rect, extra_holidays=holidays,
                    extra_workdays=workdays, contact=str(data.get("contact") or "").strip(),
                    documents=documents, targets=targets, extends=extends)


def _year_or_recurring(year: Any, recurring: Any, source: str, problems: ProblemList) -> None:
    if recurring not in (None, "yearly"):
        problems.add(f"{source}: recurring", f"must be 'yearly' when given, got {recurring!r}",
                     f"如填写，须为 'yearly'（每年适用），填写的是 {recurring!r}")
    if (year is None) == (recurring is None):
        problems.add(f"{source}: year", "give exactly one of year (one round year) or recurring: yearly",
                     "year（适用的年度）与 recurring: yearly（每年适用）须填且只填一项")
    elif year is not None and (not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100):
        problems.add(f"{source}: year", f"must be a year from 2000 to 2100, got {year!r}",
                     f"须为2000至2100之间的年份，填写的是 {year!r}")


def merge_calendar_data(base: Mapping[str, Any], override: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A year's calendar made of a recurring one and a year's notice that ``extends`` it: the
    notice's fields win; its milestones replace the base's fields by id (new ids are added);
    its targets replace the base's for the same year, level and jurisdiction; holidays add up.
    Both are plain data (before validation), so every problem is reported on the result."""
    if base.get("recurring") != "yearly":
        raise InvalidInput(f"{source}: extends {base.get('id')!r}, which is not a recurring calendar", [],
                           f"{source}：所扩展的 {base.get('id')!r} 不是每年适用的工作日程")
    if "recurring" in override or not isinstance(override.get("year"), int):
        raise InvalidInput(f"{source}: a calendar that extends another serves one year: give year, not recurring",
                           [], f"{source}：扩展其他日程的工作日程只适用于一个年度：请写 year，不写 recurring")
    merged: dict[str, Any] = {k: v for k, v in base.items() if k not in ("recurring",)}
    merged.update({k: v for k, v in override.items() if k not in ("milestones", "targets", "extra_holidays",
                                                                  "extra_workdays")})
    milestones = [dict(m) for m in base.get("milestones") or [] if isinstance(m, Mapping)]
    by_id = {m.get("id"): m for m in milestones}
    for m in override.get("milestones") or []:
        if isinstance(m, Mapping) and m.get("id") in by_id:
            by_id[m["id"]].update(m)
        else:
            milestones.append(dict(m) if isinstance(m, Mapping) else m)
    merged["milestones"] = milestones
    year = override["year"]
    replaced = {(t.get("year"), t.get("level"), t.get("jurisdiction"))
                for t in override.get("targets") or [] if isinstance(t, Mapping)}
    merged["targets"] = [t for t in base.get("targets") or [] if isinstance(t, Mapping) and t.get("year") == year
                         and (t.get("year"), t.get("level"), t.get("jurisdiction")) not in replaced] \
        + list(override.get("targets") or [])
    for key in ("extra_holidays", "extra_workdays"):
        merged[key] = list(base.get(key) or []) + list(override.get(key) or [])
    return merged
