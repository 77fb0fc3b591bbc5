"""Reports for coordinators: a round's progress per jurisdiction, and deadlines at risk.

Progress counts come from one grouped query over the case projection (no event scan):
cases by state, the certified share against the round's target, overdue cases, and the
misses recorded per milestone. Each jurisdiction's row covers its whole subtree.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..domain.calendar import Target
from ..domain.errors import NotFound
from ..domain.lifecycle import STATES
from ..domain.units import UNIT_LEVEL_NAMES
from .ports import RoundRecord, Storage

CERTIFIED_STATES = ("certified", "filed")
UNIT_LEVELS = ("provincial", "city", "county")
SHARE_RULE = {
    "en": "share = agencies certified to date (certified or filed in this round or an earlier round of the "
          "province, or recorded as certified before the system was used; not withdrawn since) ÷ every agency in "
          "scope (every unit of the jurisdiction, taking part this year or not); compared with the target that "
          "applies there (per jurisdiction, per level, else the round's)",
    "zh": "达标占比 = 截至本年度已建成节约型机关的单位数（本轮或以前各轮认定或已备案，"
          "以及启用系统前已建成并登记的单位；其后撤回的不计）÷ 范围内全部单位数"
          "（该地区所有县级及以上党政机关，无论本年度是否参加）；"
          "与适用的目标（按地区、按层级，否则为本轮目标）比较",
}
ROUND_RATE_RULE = {"en": "round pass rate = certified or filed cases of this round ÷ cases taking part (not withdrawn)",
                   "zh": "本轮通过率 = 本轮认定或已备案的案件数 ÷ 本轮参加的案件数（不含撤回）"}


def _share(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def _met(part: int, whole: int, target: Decimal | None) -> bool | None:
    """Exactly (the share shown is rounded): part ≥ target × whole."""
    return None if not whole or target is None else Decimal(part) >= target * whole


@dataclass
class LevelShare:
    """One agency level within a jurisdiction's subtree: agencies in scope, certified to date."""

    level: str
    agencies: int = 0
    certified: int = 0
    target: Decimal | None = None

    @property
    def share(self) -> Decimal | None:
        return _share(self.certified, self.agencies)

    @property
    def target_met(self) -> bool | None:
        return _met(self.certified, self.agencies, self.target)


@dataclass
class ProgressRow:
    jurisdiction_id: str
    name: str
    level: str
    depth: int
    cases: int = 0
    by_state: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    overdue: int = 0
    missed: dict[str, int] = field(default_factory=dict)
    agencies: int = 0  # every unit in scope, taking part this year or not
    certified_to_date: int = 0
    target: Decimal | None = None
    by_level: dict[str, LevelShare] = field(default_factory=lambda: {lv: LevelShare(lv) for lv in UNIT_LEVELS})

    @property
    def certified(self) -> int:
        """This round's certified or filed cases."""
        return sum(self.by_state[s] for s in CERTIFIED_STATES)

    @property
    def taking_part(self) -> int:
        """Cases that count for the round's pass rate: withdrawn cases left the round."""
        return self.cases - self.by_state["withdrawn"]

    @property
    def certified_share(self) -> Decimal | None:
        """The share of all agencies in scope certified to date (what the targets are about)."""
        return _share(self.certified_to_date, self.agencies)

    def target_met(self, target: Decimal | None = None) -> bool | None:
        """Exactly (the share shown is rounded): certified to date ≥ target × agencies."""
        return _met(self.certified_to_date, self.agencies, self.target if target is None else target)

    @property
    def round_pass_rate(self) -> Decimal | None:
        return _share(self.certified, self.taking_part)


@dataclass
class Progress:
    round_id: str
    year: int
    target_share: Decimal
    rows: list[ProgressRow]  # the root first, then its subtree in path order

    def to_dict(self) -> dict[str, Any]:
        def share(v: Decimal | None) -> str | None:
            return None if v is None else format(v, "f")

        return {"round_id": self.round_id, "year": self.year, "target_share": format(self.target_share, "f"),
                "rule": SHARE_RULE, "round_pass_rate_rule": ROUND_RATE_RULE, "jurisdictions": [
            {"id": r.jurisdiction_id, "name": r.name, "level": r.level, "depth": r.depth,
             "agencies": r.agencies, "certified_to_date": r.certified_to_date,
             "certified_share": share(r.certified_share), "target": share(r.target), "target_met": r.target_met(),
             "by_level": {lv: {"agencies": ls.agencies, "certified_to_date": ls.certified, "share": share(ls.share),
                               "target": share(ls.target), "target_met": ls.target_met}
                          for lv, ls in r.by_level.items() if ls.agencies},
             "cases": r.cases, "by_state": r.by_state, "certified": r.certified,
             "round_pass_rate": share(r.round_pass_rate),
             "overdue": r.overdue, "missed": dict(sorted(r.missed.items()))} for r in self.rows]}


def _round(db: Storage, round_id: str) -> RoundRecord:
    rnd = db.rounds.round(round_id)
    if rnd is None:
        raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
    return rnd


def _targets(rnd: RoundRecord) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """The round's targets by jurisdiction and by agency level (besides its overall share)."""
    entries = [Target.from_data(t) for t in rnd.targets]
    by_jurisdiction = {t.jurisdiction: t.share for t in entries if t.jurisdiction and not t.level}
    by_level = {t.level: t.share for t in entries if t.level and not t.jurisdiction}
    return by_jurisdiction, by_level


def progress(db: Storage, round_id: str, root_path: str) -> Progress:
    """Progress of a round in the subtree at ``root_path`` (e.g. ``/shanxi/``): the share of all
    agencies in scope certified to date against the targets, per jurisdiction and level, and the
    round's own case counts."""
    rnd = _round(db, round_id)
    jurisdictions = db.directory.jurisdictions(root_path)
    base = root_path.count("/")
    rows = {j.id: ProgressRow(j.id, j.name, j.level, j.path.count("/") - base) for j in jurisdictions}
    paths = {j.id: j.path for j in jurisdictions}
    ancestors = {j.id: [a for a in rows if j.path.startswith(paths[a])] for j in jurisdictions}
    for group in db.read.case_groups(round_id, root_path):
        for a in ancestors.get(group.jurisdiction_id, ()):
            row = rows[a]
            row.cases += group.count
            row.by_state[group.state] += group.count
            row.overdue += group.count if group.overdue else 0
            for m in group.missed:
                row.missed[m] = row.missed.get(m, 0) + group.count
    for agencies in db.read.agency_groups(rnd.year, root_path):
        for a in ancestors.get(agencies.jurisdiction_id, ()):
            row = rows[a]
            row.agencies += agencies.count
            row.certified_to_date += agencies.certified
            share = row.by_level.setdefault(agencies.level, LevelShare(agencies.level))
            share.agencies += agencies.count
            share.certified += agencies.certified
    by_jurisdiction, by_level = _targets(rnd)
    for j in jurisdictions:
        row = rows[j.id]
        # the nearest jurisdiction up the path with a target of its own, else the round's
        chain = paths[j.id].strip("/").split("/")[::-1]
        row.target = next((by_jurisdiction[p] for p in chain if p in by_jurisdiction), rnd.target_share)
        for level, share in row.by_level.items():
            share.target = by_level.get(level, row.target)
    return Progress(rnd.id, rnd.year, rnd.target_share, [rows[j.id] for j in jurisdictions])


LEVEL_NAMES = UNIT_LEVEL_NAMES


@dataclass(frozen=True, slots=True)
class AtRisk:
    milestone: str
    name: str
    due_on: date
    days_left: int
    case_id: int
    unit_id: int
    unit_name: str
    jurisdiction_id: str
    state: str


def _rectifications_at_risk(db: Storage, calendar: Any, round_id: str, root_path: str, today: date,
                            within_days: int) -> list[AtRisk]:
    paths = {j.id: j.path for j in db.directory.jurisdictions()}
    name = calendar.rectification.name if calendar.rectification is not None else "整改"
    return [AtRisk("rectification", name, c.rectification_due, (c.rectification_due - today).days, c.case_id,
                   c.unit_id, c.unit_name, c.jurisdiction_id, c.state)
            for c in db.read.rectifications(round_id)
            if c.rectification_due is not None and today <= c.rectification_due <= today + timedelta(days=within_days)
            and paths.get(c.jurisdiction_id, "").startswith(root_path)]


def _due_within(calendar: Any, year: int, today: date, within_days: int) -> list[tuple[Any, date]]:
    """The milestones a case owes (not a jurisdiction's duty, not for information) due from
    ``today`` to ``within_days`` later, with their due dates, in date order."""
    out = []
    for m in calendar.milestones:
        if m.informational or m.by_level:  # a jurisdiction's duty is on the duty board, not a case's
            continue
        due = m.due_on(year)
        if today <= due <= today + timedelta(days=within_days):
            out.append((m, due))
    return sorted(out, key=lambda md: (md[1], md[0].id))


def at_risk(db: Storage, calendars: Any, round_id: str, root_path: str, today: date,
            within_days: int = 3, limit: int | None = None) -> list[AtRisk]:
    """Cases that still owe a milestone due within ``within_days`` from ``today`` (inclusive),
    and cases whose rectification deadline falls in the same days, by due date; the first
    ``limit`` when given (``at_risk_count`` tells how many cases there are in all)."""
    rnd = _round(db, round_id)
    calendar = calendars.get(rnd.calendar_id)
    out: list[AtRisk] = _rectifications_at_risk(db, calendar, round_id, root_path, today, within_days)
    for m, due in _due_within(calendar, rnd.year, today, within_days):
        # each source in (due, case id) order: its first ``limit`` are all the merged list can take from it
        for c in db.read.owing_cases(round_id, m.owing, root_path, limit=limit):
            out.append(AtRisk(m.id, m.name, due, (due - today).days, c.case_id, c.unit_id, c.unit_name,
                              c.jurisdiction_id, c.state))
    out.sort(key=lambda a: (a.due_on, a.milestone, a.case_id))
    return out if limit is None else out[:limit]


def at_risk_count(db: Storage, calendars: Any, round_id: str, root_path: str, today: date,
                  within_days: int = 3) -> int:
    """How many cases ``at_risk`` lists (each case once, however many deadlines it owes)."""
    rnd = _round(db, round_id)
    calendar = calendars.get(rnd.calendar_id)
    owings = [m.owing for m, _ in _due_within(calendar, rnd.year, today, within_days)]
    counted = db.read.owing_count(round_id, owings, root_path)
    rectifying = {a.case_id for a in _rectifications_at_risk(db, calendar, round_id, root_path, today, within_days)}
    if rectifying and owings:  # a case in rectification may also owe a milestone: count it once
        also = {c.case_id for o in owings if "rectification" in o.states
                for c in db.read.owing_cases(round_id, o, root_path) if c.case_id in rectifying}
        rectifying -= also
    return counted + len(rectifying)


@dataclass(frozen=True, slots=True)
class Owed:
    """A deadline ahead and how many cases of the subtree still owe it."""

    milestone: str  # a milestone's id, or "rectification" (the cases' own deadlines of that day)
    name: str
    due_on: date
    days_left: int
    cases: int


def owed_ahead(db: Storage, calendars: Any, round_id: str, root_path: str, today: date,
               within_days: int) -> list[Owed]:
    """The deadlines due within ``within_days`` from ``today`` that cases of the subtree still
    owe, in date order, with how many (counted, not listed: a province has 100,000 cases)."""
    rnd = _round(db, round_id)
    calendar = calendars.get(rnd.calendar_id)
    out = []
    for m, due in _due_within(calendar, rnd.year, today, within_days):
        n = db.read.owing_count(round_id, [m.owing], root_path)
        if n:
            out.append(Owed(m.id, m.name, due, (due - today).days, n))
    by_day = Counter(a.due_on for a in _rectifications_at_risk(db, calendar, round_id, root_path, today, within_days))
    name = calendar.rectification.name if calendar.rectification is not None else "整改"
    out += [Owed("rectification", name, due, (due - today).days, n) for due, n in by_day.items()]
    return sorted(out, key=lambda o: (o.due_on, o.milestone))


@dataclass(frozen=True, slots=True)
class Lagging:
    """A case of the subtree behind: a deadline it missed and still owes (overdue)."""

    case_id: int
    unit_name: str
    jurisdiction_id: str
    category: str
    state: str
    missed: tuple[tuple[str, date | None], ...]  # (what a bureau calls the milestone, its due date)


def milestone_names(db: Storage, calendars: Any, round_id: str) -> dict[str, str]:
    """The round's milestones by id → their names in its calendar (and the rectification's)."""
    calendar = calendars.get(_round(db, round_id).calendar_id)
    names = {m.id: m.name for m in calendar.milestones}
    if calendar.rectification is not None:
        names["rectification"] = calendar.rectification.name
    return names


def lagging_units(db: Storage, calendars: Any, round_id: str, root_path: str) -> list[Lagging]:
    """The round's overdue cases in the subtree (a missed deadline still owed), with what they
    missed and when it was due: the progress workbook's 滞后单位 sheet."""
    from .cases import read_case
    from .ports import CaseFilter

    rnd = _round(db, round_id)
    calendar = calendars.get(rnd.calendar_id)
    named = {m.id: (m.name, m.due_on(rnd.year)) for m in calendar.milestones}
    rect = calendar.rectification.name if calendar.rectification is not None else "整改"
    out: list[Lagging] = []
    after = 0
    while rows := db.read.case_rows(CaseFilter(round_id=round_id, within_path=root_path, overdue=True,
                                               after_id=after, limit=1000)):
        for r in rows:
            case = read_case(db, r.id).case
            missed = tuple((rect, case.rectification_due) if m == "rectification" else named.get(m, (m, None))
                           for m, _ in case.missed)
            out.append(Lagging(r.id, r.unit_name, r.jurisdiction_id, r.category, r.state, missed))
        after = rows[-1].id
    return out
