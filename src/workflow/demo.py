"""``workflow demo``: a Shanxi round that is live today, and the notice's 2021 example round.

The live round is of this year (Asia/Shanghai) on a *demo calendar*: Shanxi's recurring
calendar (``calendars/shanxi.yaml``) with every date moved by the same number of days, so
that the November evaluation (评价验收, 11-30) ends ``LEAD_DAYS`` days after today. Today is
then "20 November" of the round whatever the real date: the units' self-assessment deadline
(10-20) passed 31 days ago, the evaluation and the cities' yearly reports are due in 10 days,
the province's spot checks in 41 and its filing in 131. The round's year is the year in which
the moved schedule starts (the self-assessment deadline): this year, except in January, when
it is last year's round still being evaluated (docs/decisions.md, 38). The calendar is
written beside the others (``demo-shanxi-YYYYMMDD.yaml``, named after the day it was made) so
that ``serve``, the sweep and every command read it like any calendar; it serves that one year
and never becomes the calendar a round takes by default.

The round's history is made through the same services as production, dated before today
(the round opened 75 days ago, sheets 45, submissions 38, the evaluation 20 to 15 days ago):
some units are ahead (self-assessed, submitted, verified, certified), some behind (nothing
done, or a sheet never submitted: they missed the deadline), two verified below 80 were
ordered to rectify 15 days ago (their 20 days end in 5; one has asked for the recheck), and
太原市 has reported its year. Nothing is swept: the first sweep of ``workflow serve`` records
the misses and sends the reminders due today, and its dispatcher delivers them.

The 2021 example (``shanxi-2021``: the 35 units of 附件1 on the 2021 notice's calendar) is
kept as a past round: opened on the notice's day, closed unworked at its end, its missed
duties noticed then (before anyone could be told), so that it sends nothing today.

Running the demo again changes nothing: each part is made once (the live round is found by
its calendar, whatever day the demo runs again).
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from .adapters.calendar_files import CalendarCatalog
from .adapters.data_files import read_yaml
from .clock import BUSINESS_TZ
from .config import REPO_ROOT
from .domain.errors import AlreadyExists
from .domain.rubric import Rubric, complete_sheet
from .domain.state import Actor
from .files import import_jurisdictions, import_units
from .service.accounts import create_account, hash_password, principal_of
from .service.cases import perform_action, perform_actions, read_case
from .service.deadlines import sweep
from .service.directory import add_coordinator, update_unit
from .service.duties import record_duty
from .service.ports import AccountRecord
from .service.queries import list_cases
from .service.rounds import open_round

PROVINCE, RUBRIC, BASE_CALENDAR = "shanxi", "shanxi-2020", "shanxi"
EXAMPLE_ROUND, EXAMPLE_CALENDAR, EXAMPLE_YEAR = "shanxi-2021", "shanxi-2021", 2021
DEMO_PREFIX = "demo-shanxi-"  # + the day the demo calendar was made, YYYYMMDD
ANCHOR, LEAD_DAYS = "evaluation", 10  # the evaluation ends this many days after today
EXAMPLES = REPO_ROOT / "examples"
# Who acts in the demo: its accounts (made by ``demo_accounts``), by key — "admin", a
# jurisdiction's coordinator by its id, a unit by its id.
_CAST: dict[str | int, Actor] = {}
ADMIN_LOGIN = "demo-admin"
# Every demo account signs in to the console with this password (a demo's, printed by the
# command; a real installation's people set their own through their invitation link).
DEMO_PASSWORD = "jieyue-demo-2021"
COORDINATORS = {  # jurisdiction → (name, mail): the province's office and each city's
    "shanxi": ("王科长", "wang.kezhang@jgswj.shanxi.example"),
    **{f"shanxi-{city}": (name, f"{city}@jgswj.shanxi.example") for city, name in (
        ("taiyuan", "张主任"), ("datong", "李主任"), ("yangquan", "赵主任"), ("changzhi", "刘主任"),
        ("jincheng", "陈主任"), ("shuozhou", "杨主任"), ("jinzhong", "黄主任"), ("yuncheng", "周主任"),
        ("xinzhou", "吴主任"), ("linfen", "徐主任"), ("lvliang", "孙主任"))},
}
_SURNAMES, _GIVEN = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗", "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚"

# What each unit (by its place in the roster) has done by today; the self and verified totals.
CERTIFIED, VERIFIED, SUBMITTED = range(1, 9), range(9, 12), range(12, 22)
RECTIFYING, RECHECK_ASKED, SELF_ASSESSED = 22, 23, range(24, 27)  # the rest: nothing (behind)
# Days before today (each act at 10:00 Beijing time).
OPENED, SHEETS, SUBMITS, VERIFIES, CERTIFIES, ORDERS, ASKS, REPORTS = 75, 45, 38, 20, 17, 15, 6, 3


@dataclass(frozen=True)
class DemoResult:
    round_id: str
    calendar_id: str
    year: int
    today: date
    created: bool  # False: the demo had been run before (nothing was changed)
    by_state: dict[str, int]
    schedule: list[tuple[date, str]]  # the live round's dates and what is due
    example_round: str = EXAMPLE_ROUND
    example_cases: int = 0
    warnings: list[str] = field(default_factory=list)
    accounts: list[tuple[str, str, str]] = field(default_factory=list)  # (login, name, role) of the demo's people


# ---------------------------------------------------------------- the demo calendar

def demo_calendar_data(base: Mapping[str, Any], made_on: date) -> dict[str, Any]:
    """``base`` (a recurring calendar's data) with every date moved by the same number of days,
    so that its ``ANCHOR`` milestone is due ``LEAD_DAYS`` after ``made_on``; a calendar of the
    one round year in which the moved schedule starts (its first due date)."""
    milestones = [dict(m) for m in base["milestones"]]
    anchor = next(m for m in milestones if m["id"] == ANCHOR)
    shift = made_on + timedelta(days=LEAD_DAYS) - _due(anchor, made_on.year)
    moved = {m["id"]: _due(m, made_on.year) + shift for m in milestones}
    year = min(moved.values()).year
    for m in milestones:
        day = moved[m["id"]]
        if day.year - year not in (0, 1):  # a schedule longer than a year cannot be moved this way
            raise ValueError(f"{m['id']} would fall in {day.year}, outside the round of {year} and the next year")
        m.update(due=f"{day.month:02d}-{day.day:02d}", next_year=day.year > year)
    shares = [t["share"] for t in base.get("targets") or [] if not t.get("level") and not t.get("jurisdiction")]
    data = {k: v for k, v in base.items() if k not in ("recurring", "extends", "milestones", "targets")}
    data.update(id=f"{DEMO_PREFIX}{made_on:%Y%m%d}", year=year, milestones=milestones,
                title=f"{base['title']}（演示）",
                source=f"{base.get('source') or base['id']}；workflow demo 于{made_on.isoformat()}将日期整体平移"
                       f"{shift.days}天",
                targets=[{"year": year, "share": str(shares[-1] if shares else "0.5")}])
    return data


def _due(milestone: Mapping[str, Any], year: int) -> date:
    month, day = (int(p) for p in str(milestone["due"]).split("-"))
    return date(year + (1 if milestone.get("next_year") else 0), month, day)


def write_demo_calendar(calendars_dir: Path, made_on: date) -> str:
    """The demo calendar made on ``made_on``, written beside the others unless it is there."""
    data = demo_calendar_data(read_yaml(calendars_dir / f"{BASE_CALENDAR}.yaml"), made_on)
    path = calendars_dir / f"{data['id']}.yaml"
    if not path.exists():  # written whole or not at all: a process reading the folder meanwhile sees no half
        header = (f"# Made by `workflow demo` on {made_on.isoformat()}: calendars/{BASE_CALENDAR}.yaml with every "
                  "date moved by the same\n# number of days (docs/decisions.md, 38). The demo's round uses it; "
                  "delete it with that database.\n")
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        os.replace(part, path)
    return str(data["id"])


# ---------------------------------------------------------------- the demo

def _cast(key: str | int) -> Actor:
    return _CAST[key]


def _admin_account(application: Any, when: datetime) -> None:
    """The demo's admin: the installation's first account (or made by the first admin there is)."""
    db = application.db
    admin = db.accounts.by_login(ADMIN_LOGIN)
    if admin is None:
        first = next((a for a in db.accounts.all() if a.role == "admin" and a.disabled_at is None), None)
        admin = create_account(db, by=None if first is None else principal_of(first, "cli"), login=ADMIN_LOGIN,
                               name="演示管理员", role="admin", password=DEMO_PASSWORD, now=when)
    _CAST["admin"] = principal_of(admin, "cli").actor


def demo_accounts(application: Any, now: datetime) -> list[AccountRecord]:
    """The people of the demo, made once, each acting through the CLI: the province office's
    coordinator and each city's (as ``COORDINATORS``), an auditor of the province, and one clerk
    for every unit of the province (login ``unitNN``, named after its contact person)."""
    db = application.db
    found = db.accounts.by_login(ADMIN_LOGIN)
    assert found is not None, "the demo's admin is made first (_admin_account)"
    admin = principal_of(found, "cli")
    wanted: list[dict[str, Any]] = [
        {"login": f"coord-{jurisdiction.removeprefix('shanxi-') or 'shanxi'}", "name": name, "role": "coordinator",
         "jurisdiction_id": jurisdiction, "email": email, "key": jurisdiction}
        for jurisdiction, (name, email) in COORDINATORS.items()]
    wanted.append({"login": "audit-shanxi", "name": "省局审计员", "role": "auditor", "jurisdiction_id": PROVINCE,
                   "key": "auditor"})
    for i, unit in enumerate(sorted(db.directory.units(f"/{PROVINCE}/"), key=lambda u: u.id)):
        name = unit.contacts[0]["name"] if unit.contacts else _SURNAMES[i % len(_SURNAMES)] + "科员"
        wanted.append({"login": f"unit{unit.id:02d}", "name": f"{name}{unit.id}", "role": "unit", "unit_id": unit.id,
                       "key": unit.id})
    made = []
    hashed = hash_password(DEMO_PASSWORD)  # once: argon2 is slow on purpose
    for spec in wanted:
        key = spec.pop("key")
        account = db.accounts.by_login(spec["login"]) or create_account(db, by=admin, now=now,
                                                                        password_hash=hashed, **spec)
        _CAST[key] = principal_of(account, "cli").actor
        made.append(account)
    return made


def run_demo(application: Any) -> DemoResult:
    """Load the demo into ``application``'s database (migrated); see the module's text."""
    now = application.clock.now()
    today = now.astimezone(BUSINESS_TZ).date()
    before = _at(today, OPENED + 1)
    _admin_account(application, before)
    _directory(application, before)
    accounts = demo_accounts(application, before)
    found = next((r for r in application.db.rounds.rounds() if r.calendar_id.startswith(DEMO_PREFIX)), None)
    made_on = today if found is None else datetime.strptime(found.calendar_id.removeprefix(DEMO_PREFIX),
                                                            "%Y%m%d").date()
    calendar_id = write_demo_calendar(application.settings.calendars_dir, made_on)  # (again, if it was deleted)
    application.calendars = CalendarCatalog(application.settings.calendars_dir)  # with the demo calendar
    round_id = found.id if found is not None else _live_round(application, calendar_id, today)
    warnings = _example_round(application)
    _people(application, before)  # after the example round: its past misses are told to nobody
    calendar = application.calendars.get(calendar_id)
    rnd = application.db.rounds.round(round_id)
    states = Counter(c.state for c in list_cases(application.db, round_id=round_id, limit=10_000))
    schedule = sorted((m.due_on(rnd.year), m.name) for m in calendar.milestones)
    example = len(list_cases(application.db, round_id=EXAMPLE_ROUND, limit=10_000))
    return DemoResult(round_id, calendar_id, rnd.year, today, found is None, dict(sorted(states.items())),
                      schedule, example_cases=example, warnings=warnings,
                      accounts=[(a.login, a.name, a.role) for a in accounts])


def _at(today: date, days_before: int, hour: int = 10) -> datetime:
    return datetime.combine(today - timedelta(days=days_before), time(hour), tzinfo=BUSINESS_TZ)


def _directory(application: Any, when: datetime) -> None:
    """The jurisdictions and the 35 units of 附件1, as the examples give them (the units once:
    read again, the roster's empty contact columns would clear the contacts given since)."""
    import_jurisdictions(application.db, EXAMPLES / "jurisdictions.csv", actor=_cast("admin"), now=when)
    if not any(u.path.startswith(f"/{PROVINCE}/") for u in application.db.directory.units()):
        import_units(application.db, EXAMPLES / "shanxi-2021-units.csv", when, actor=_cast("admin"))


def _people(application: Any, when: datetime) -> None:
    """The coordinators of the province and its cities (they hear of their units and their
    duties), and each unit's contact person (附件2) where it has none: its reminders go there."""
    db = application.db
    for jurisdiction, (name, email) in COORDINATORS.items():
        try:
            add_coordinator(db, jurisdiction, name, email, actor=_cast("admin"), now=when)
        except AlreadyExists:
            pass
    for i, unit in enumerate(sorted(db.directory.units(), key=lambda u: u.id)):
        if unit.contacts or not unit.path.startswith(f"/{PROVINCE}/"):
            continue
        contact = {"name": _SURNAMES[i % len(_SURNAMES)] + _GIVEN[i * 7 % len(_GIVEN)], "position": "办公室主任",
                   "phone": f"0351-{5550100 + i}", "email": f"unit{unit.id:02d}@units.shanxi.example"}
        update_unit(db, unit.id, {"contacts": [contact]}, when, actor=_cast("admin"))


def _example_round(application: Any) -> list[str]:
    """The notice's 2021 round, as a past round: opened on the notice's day (26 May 2021),
    closed unworked at its end, its missed duties noticed the day after (nobody is told: the
    coordinators and contacts are added later), so that it sends nothing now."""
    db = application.db
    if db.rounds.round(EXAMPLE_ROUND) is not None:
        return []
    opened = open_round(db, application.rubrics, application.calendars, province_id=PROVINCE, year=EXAMPLE_YEAR,
                        rubric_id=RUBRIC, calendar_id=EXAMPLE_CALENDAR, target_share=None, actor=_cast("admin"),
                        now=datetime(2021, 5, 26, 10, tzinfo=BUSINESS_TZ))
    ended = datetime(2022, 3, 31, 17, tzinfo=BUSINESS_TZ)
    for case in list_cases(db, round_id=EXAMPLE_ROUND, limit=10_000):
        perform_action(db, case.id, "close", {"reason": "2021年度创建工作已结束，本单位未参加评价验收（演示数据）"},
                       _cast("admin"), ended)
    sweep(db, application.calendars, datetime(2022, 4, 1, 9, tzinfo=BUSINESS_TZ))
    return list(opened.warnings)


# ---------------------------------------------------------------- the live round and its history

def _live_round(application: Any, calendar_id: str, today: date) -> str:
    calendar = application.calendars.get(calendar_id)
    opened = open_round(application.db, application.rubrics, application.calendars, province_id=PROVINCE,
                        year=calendar.year, rubric_id=RUBRIC, calendar_id=calendar_id, target_share=None,
                        actor=_cast("admin"), now=_at(today, OPENED))
    cases = sorted(list_cases(application.db, round_id=opened.round_id, limit=10_000), key=lambda c: c.unit_id)
    _History(application, [c.id for c in cases], today).run()
    return opened.round_id


def demo_sheet(rubric: Rubric, total: Decimal, seed: int, start: Mapping[str, str] | None = None) -> dict[str, str]:
    """A complete sheet scoring ``total`` as a unit fills one in: full marks (or the sheet
    ``start``, marked down: the evaluation team's), less one step at a time on one criterion
    after another from a place ``seed`` chooses; the simulator's sheet if that cannot reach it."""
    criteria = list(rubric.criteria())
    entries = {c.code: Decimal(start[c.code]) if start else c.cap // c.unit * c.unit for c in criteria}
    lose = sum(entries.values()) - Decimal(total)
    turn = seed * 7 % len(criteria)
    order = criteria[turn:] + criteria[:turn]
    while lose > 0:
        took = False
        for c in order:
            if c.unit <= lose and entries[c.code] >= c.unit:
                entries[c.code] -= c.unit
                lose -= c.unit
                took = True
        if not took:
            break
    if lose != 0:
        return complete_sheet(rubric, Decimal(total))
    return {code: format(value, "f") for code, value in entries.items()}


def _pdf(label: str) -> bytes:
    return b"%PDF-1.4\n% " + label.encode() + b"\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


class _History:
    """What the units and the bureau did in the live round before today, by each unit's place
    in the roster (``CERTIFIED`` ...), through the services, each step on its day. A unit's
    sheet and its evidence are one transaction, as are its documents and its submission."""

    def __init__(self, application: Any, case_ids: list[int], today: date) -> None:
        self.app, self.db, self.today = application, application.db, today
        self.cases = [read_case(self.db, case_id).case for case_id in case_ids]
        self.context = read_case(self.db, case_ids[0]).ctx
        self.rubric: Rubric = self.context.rubric
        self.sheets: dict[int, dict[str, str]] = {}

    def run(self) -> None:
        ahead = [*CERTIFIED, *VERIFIED, *SUBMITTED, RECTIFYING, RECHECK_ASKED]
        for i in [*ahead, *SELF_ASSESSED]:
            self.self_assess(i, Decimal(84 + i * 7 % 12) if i in ahead else Decimal(78 + i % 5))
        for i in ahead:
            self.submit(i)
        failed = {RECTIFYING: Decimal("76.5"), RECHECK_ASKED: Decimal(75)}
        for i in [*CERTIFIED, *VERIFIED, RECTIFYING, RECHECK_ASKED]:
            verified = failed.get(i, Decimal(84 + i * 7 % 12 - 2 - i % 3))
            self.act(i, [("verify", {"entries": demo_sheet(self.rubric, verified, i + 1, self.sheets[i])})], VERIFIES)
        for i in CERTIFIED:
            self.act(i, [("certify", {})], CERTIFIES)
        for i in (RECTIFYING, RECHECK_ASKED):
            self.act(i, [("order_rectification", {"note": "垃圾分类、节水器具的佐证材料不足，请于20日内整改"})], ORDERS)
        self.act(RECHECK_ASKED, [("request_recheck", {"note": "已完成整改，申请复核验收"})], ASKS)
        record_duty(self.db, self.app.calendars, self.app.evidence, self.cases[0].round_id, "shanxi-taiyuan",
                    "city_report", actor=_cast("shanxi-taiyuan"),
                    now=_at(self.today, REPORTS), files=[("太原市年度创建总体情况.pdf", _pdf("太原市 city_report"))],
                    note="已报省机关事务管理局")

    def act(self, i: int, steps: list[tuple[str, dict[str, Any]]], days_before: int) -> None:
        case = self.cases[i]
        by_unit = steps[-1][0] in ("self_assess", "submit", "request_recheck")
        actor = _cast(case.unit_id) if by_unit else _cast("shanxi")
        perform_actions(self.db, case.id, steps, actor, _at(self.today, days_before))

    def stored(self, action: str, target: dict[str, str], name: str, label: str) -> tuple[str, dict[str, Any]]:
        """A file put into the evidence storage, and the step that attaches it."""
        blob = self.app.evidence.put(_pdf(label), name)
        return action, {**target, "sha256": blob.sha256, "filename": name, "size": blob.size, "type": blob.type}

    def self_assess(self, i: int, total: Decimal) -> None:
        """The sheet and, for every criterion it scores, the evidence (佐证材料)."""
        self.sheets[i] = demo_sheet(self.rubric, total, i)
        evidence = [self.stored("attach_evidence", {"criterion": code}, f"{code} 佐证材料.pdf", f"{code} 佐证材料")
                    for code, points in self.sheets[i].items() if Decimal(points) > 0]
        self.act(i, [*evidence, ("self_assess", {"entries": self.sheets[i]})], SHEETS)

    def submit(self, i: int) -> None:
        """The documents the round asks for (自评报告, 自评打分表), then the submission."""
        documents = [self.stored("attach_document", {"document": d.id}, f"{d.name}.pdf", d.name)
                     for d in self.context.documents]
        self.act(i, [*documents, ("submit", {})], SUBMITS)


def run_example(application: Any) -> int:
    """Only the 2021 example, as the demo loaded it before there was a live round: the
    jurisdictions, the 35 units of 附件1 and round ``shanxi-2021`` open with every case
    registered and nothing done (no contacts, no coordinators) — a blank round to practise on.
    Returns its number of cases."""
    now = application.clock.now()
    _admin_account(application, now)
    _directory(application, now)
    if application.db.rounds.round(EXAMPLE_ROUND) is None:
        open_round(application.db, application.rubrics, application.calendars, province_id=PROVINCE,
                   year=EXAMPLE_YEAR, rubric_id=RUBRIC, calendar_id=EXAMPLE_CALENDAR, target_share=None,
                   actor=_cast("admin"), now=now)
    return len(list_cases(application.db, round_id=EXAMPLE_ROUND, limit=10_000))
