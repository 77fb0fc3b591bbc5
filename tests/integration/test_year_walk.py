"""A year of the Shanxi 2021 round, day by day, against a real SMTP server.

From 2021-05-26 (the notice) to 2022-03-31 (national filing) the service sweeps at 09:00
Asia/Shanghai and dispatches right after; people act at 10:00. The mails each unit and
coordinator should get are worked out here on their own, from the notice's due dates, the
tiers and the working-day rule (``chinese_calendar`` for the holidays), and compared with
what the server received: the same mails on the same days, nobody else, no Message-ID
twice, Chinese subjects intact, every .ics readable. A second run has the service down
from 10-15 to 10-25 and checks the catch-up.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

from notifications import Address
from workflow.adapters.db.store import Database
from workflow.domain.events import Event
from workflow.files import import_units
from workflow.service.audit import verify
from workflow.service.cases import perform_action
from workflow.service.deadlines import sweep
from workflow.service.directory import add_coordinator, give_contact_form
from workflow.service.dispatch import DispatchSettings, dispatch
from workflow.service.queries import list_cases, list_notifications
from workflow.service.rounds import open_round

from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    OPERATOR,
    OPERATOR_NOW,
    RUBRICS,
    attach_documents,
    ready_to_submit,
    seed_jurisdictions,
    sheet_for,
    unit_actor,
)
from .smtp_server import SmtpServer, html_body, ics_attachments, parse_ics, parse_mail, smtp_server, text_body  # noqa: F401

CST = ZoneInfo("Asia/Shanghai")
FIRST_DAY, LAST_DAY = date(2021, 5, 26), date(2022, 3, 31)
SETTINGS = DispatchSettings(sender=Address("noreply@jgswj.example.cn", "山西省机关事务管理局"),
                            message_domain="jgswj.example.cn")
RUBRIC = RUBRICS.get("shanxi-2020")

# ---------------------------------------------------------------- the notice (晋直管发〔2021〕39号)
ROUND_TITLE = "山西省2021年节约型机关创建工作"
PROVINCE_NAME = "山西省"
CONTACT_FORM = ("创建工作联系人信息表报送", date(2021, 6, 5), (7, 3, 1))
SELF_ASSESSMENT = ("自评报告、自评打分表和佐证材料报送", date(2021, 10, 20), (14, 7, 3, 1))
# the bureaus' own duties (owed by a jurisdiction, not by the units' cases)
EVALUATION = ("评价验收", date(2021, 11, 30), (7, 3))              # each bureau, its own units' cases
CITY_REPORT = ("年度创建总体情况报省机关事务管理局", date(2021, 11, 30), (14, 7, 3))  # every city
SPOT_CHECKS = ("对各地区创建工作进行实地抽查", date(2021, 12, 31), (14, 7))         # the province
NATIONAL_FILING = ("全省创建情况报国管局备案", date(2022, 3, 31), (14, 7))          # the province
RECTIFICATION = ("整改并接受复核验收", 20, (7, 3, 1))  # days after the order
CITIES = ["shanxi-changzhi", "shanxi-datong", "shanxi-jincheng", "shanxi-jinzhong", "shanxi-linfen", "shanxi-lvliang",
          "shanxi-shuozhou", "shanxi-taiyuan", "shanxi-xinzhou", "shanxi-yangquan", "shanxi-yuncheng"]
NAMES = {"shanxi": PROVINCE_NAME, "shanxi-taiyuan": "太原市", "shanxi-datong": "大同市"}
PARENT = {"shanxi": None, **dict.fromkeys(CITIES, "shanxi")}


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


def cn(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


# ---------------------------------------------------------------- the units and what they do

@dataclass(frozen=True)
class Unit:
    key: str
    name: str
    jurisdiction: str
    email: str | None
    contact_from: date | None  # the day its contact (附件2) is on file; None: never


UNITS = [
    Unit("early", "省财政厅", "shanxi", "caizheng@units.example.cn", FIRST_DAY),
    Unit("on_time", "省教育厅", "shanxi", "jiaoyu@units.example.cn", FIRST_DAY),
    Unit("never", "省商务厅", "shanxi", "shangwu@units.example.cn", date(2021, 6, 3)),
    Unit("expires", "省水利厅", "shanxi", "shuili@units.example.cn", FIRST_DAY),
    Unit("rechecks", "省卫生健康委员会", "shanxi", "weijian@units.example.cn", FIRST_DAY),
    Unit("filed", "省统计局", "shanxi", "tongji@units.example.cn", FIRST_DAY),
    Unit("no_contact", "省档案局", "shanxi", None, None),
    Unit("city", "太原市财政局", "shanxi-taiyuan", "caizheng@taiyuan.example.cn", FIRST_DAY),
]
BY_KEY = {u.key: u for u in UNITS}


@dataclass(frozen=True)
class Coordinator:
    name: str
    jurisdiction: str
    jurisdiction_name: str
    email: str


COORDINATORS = [Coordinator("王协调", "shanxi", PROVINCE_NAME, "wang@jgswj.example.cn"),
                Coordinator("钱协调", "shanxi-datong", "大同市", "qian@datong.example.cn")]

# (day, unit, state after the action) — each at 10:00, after that day's sweep.
STEPS = [
    (date(2021, 9, 20), "early", "submitted"),
    (date(2021, 9, 28), "rechecks", "submitted"),
    (date(2021, 9, 28), "filed", "submitted"),
    (date(2021, 10, 12), "on_time", "submitted"),
    (date(2021, 10, 14), "expires", "submitted"),
    (date(2021, 11, 10), "expires", "rectification"),   # verified 70: fails, rectification ordered
    (date(2021, 11, 10), "rechecks", "rectification"),
    (date(2021, 11, 10), "filed", "certified"),          # verified 90, certified
    (date(2021, 11, 24), "on_time", "certified"),
    (date(2021, 11, 24), "rechecks", "recheck"),         # asks for the recheck
    (date(2021, 11, 26), "rechecks", "certified"),       # the recheck passes
    (date(2022, 3, 21), "filed", "filed"),
]


def state_on(unit: Unit, day: date) -> str:
    """The unit's state at the 09:00 sweep of ``day`` (steps of earlier days only)."""
    state = "registered"
    for when, key, after in STEPS:
        if key == unit.key and when < day:
            state = after
    return state


def has_contact(unit: Unit, day: date) -> bool:
    """Whether the unit's contact is on file at the 09:00 sweep of ``day`` (given at 08:00 on
    the first day with the roster, or at 10:00 on a later day)."""
    if unit.contact_from is None:
        return False
    return unit.contact_from == FIRST_DAY or unit.contact_from < day


def rectification_ordered(unit: Unit) -> date | None:
    return next((when for when, key, after in STEPS if key == unit.key and after == "rectification"), None)


# ---------------------------------------------------------------- the expected mails, worked out on their own

@dataclass(frozen=True, order=True)
class Mail:
    day: date
    to: str
    subject: str
    listed: tuple[str, ...] = ()  # the units a coordinator's mail lists, sorted
    ics_due: date | None = None           # the deadline of a reminder's .ics


def working_day_on_or_before(day: date) -> date:
    while not chinese_calendar.is_workday(day):
        day -= timedelta(days=1)
    return day


def tier_days(due: date, tiers: tuple[int, ...], running: list[date]) -> list[date]:
    """The days a reminder goes out: each tier on the first day the service runs from its
    reminder day (moved back to a working day) until the next tier's; a tier whose whole
    window the service missed is not sent late (only the latest tier due is sent)."""
    starts = [working_day_on_or_before(due - timedelta(days=t)) for t in sorted(tiers, reverse=True)]
    ends = starts[1:] + [due + timedelta(days=1)]
    sent = []
    for start, end in zip(starts, ends):
        first = next((d for d in running if start <= d < end), None)
        if first is not None:
            sent.append(first)
    return sent


def first_run_after(due: date, running: list[date]) -> date:
    return next(d for d in running if d > due)


def looked_after_by(jurisdiction: str) -> str:
    """The jurisdiction whose coordinators look after a unit: its own, or the nearest one above
    it that has a coordinator (太原 has none here, so the province's does)."""
    with_coordinator = {c.jurisdiction for c in COORDINATORS}
    return jurisdiction if jurisdiction in with_coordinator else "shanxi"


def coordinator_mails(day: date, units: Iterable[Unit], subject: Callable[[Coordinator, int], str]) -> list[Mail]:
    """One mail to each coordinator, listing the units they look after."""
    mails = []
    for c in COORDINATORS:
        mine = tuple(sorted(u.name for u in units if looked_after_by(u.jurisdiction) == c.jurisdiction))
        if mine:
            mails.append(Mail(day, c.email, subject(c, len(mine)), mine))
    return mails


def digest(day: date, overdue: Iterable[Unit]) -> list[Mail]:
    return coordinator_mails(day, overdue,
                             lambda c, n: f"【汇总】{ROUND_TITLE}：{c.jurisdiction_name}逾期事项{n}项（截至{cn(day)}）")


def duty_mails(running: list[date], milestone: tuple, owners: list[str], waiting: Callable[[str, date], list[Unit]]
               | None = None) -> list[Mail]:
    """A duty's reminders to each owner's own coordinators, then after its date one mail to each
    coordinator who hears of the misses (the owner's, and the one above it), listing them."""
    name, due, tiers = milestone
    mails = []
    with_coordinator = {c.jurisdiction: c for c in COORDINATORS}
    for day in tier_days(due, tiers, running):
        for owner in owners:
            c = with_coordinator.get(owner if waiting is None else looked_after_by(owner))
            if waiting is None and c is not None:
                mails.append(Mail(day, c.email, f"【提醒】{NAMES.get(owner, owner)}“{name}”截止日期：{cn(due)}"
                                                f"（还有{(due - day).days}天）"))
    noticed = next((d for d in running if d > due), None)
    if noticed is None:  # past the walk (the national filing is due on its last day)
        return mails
    heard: dict[str, list[str]] = {}
    for owner in owners:
        if waiting is not None and not waiting(owner, noticed):
            continue
        recipients = {looked_after_by(owner) if waiting is not None else owner}
        if PARENT.get(owner):
            recipients.add(PARENT[owner])
        for r in recipients:
            if r in with_coordinator:
                heard.setdefault(r, []).append(owner)
    for r, items in heard.items():
        who = f"{NAMES[items[0]]}" if len(items) == 1 else f"{len(items)}个地区"
        listed = tuple(sorted(u.name for owner in items for u in (waiting(owner, noticed) if waiting else [])))
        mails.append(Mail(noticed, with_coordinator[r].email, f"【逾期】{who}“{name}”已逾期（截止日期：{cn(due)}）",
                          listed))
    return mails


def expected_mails(running: list[date]) -> list[Mail]:
    mails: list[Mail] = []

    def coordinator_reminders(milestone: tuple, owes: Callable[[Unit, date], bool]) -> None:
        name, due, tiers = milestone
        for day in tier_days(due, tiers, running):
            mails.extend(coordinator_mails(day, [u for u in UNITS if owes(u, day)],
                                           lambda c, n: f"【提醒】{c.jurisdiction_name}{name}待办{n}项，截止日期：{cn(due)}"))

    def unit_deadline(name: str, due: date, tiers: tuple[int, ...], owes: Callable[[Unit, date], bool],
                      reminder: Callable[[date], str]) -> list[Unit]:
        """Reminders before ``due`` to each unit still owing, the miss after: the units that missed it."""
        for day in tier_days(due, tiers, running):
            mails.extend(Mail(day, u.email, reminder(day), ics_due=due) for u in UNITS if owes(u, day) and u.email)
        noticed = first_run_after(due, running)
        missed = [u for u in UNITS if owes(u, noticed)]
        mails.extend(Mail(noticed, u.email, f"【逾期】{name}已逾期（截止日期：{cn(due)}）") for u in missed if u.email)
        mails.extend(digest(noticed, missed))
        return missed

    # 附件2: the bureau chases the units whose contact person is not on file.
    coordinator_reminders(CONTACT_FORM, lambda u, day: not has_contact(u, day))
    noticed = first_run_after(CONTACT_FORM[1], running)
    mails.extend(digest(noticed, [u for u in UNITS if not has_contact(u, noticed)]))

    name, due, tiers = SELF_ASSESSMENT
    unit_deadline(name, due, tiers, lambda u, day: state_on(u, day) in ("registered", "self_assessed"),
                  lambda day: f"【提醒】{name}截止日期：{cn(due)}（还有{(due - day).days}天）")

    # the evaluation: the bureau reminded of the cases waiting for it; past its date the miss is
    # the bureau's (its duty stream), listed to its coordinators, never a unit's miss
    waiting_for_evaluation = lambda u, day: state_on(u, day) in ("submitted", "verified")  # noqa: E731
    coordinator_reminders(EVALUATION, waiting_for_evaluation)
    mails.extend(duty_mails(running, EVALUATION, sorted({u.jurisdiction for u in UNITS}),
                            lambda owner, day: [u for u in UNITS if u.jurisdiction == owner
                                                and waiting_for_evaluation(u, day)]))
    mails.extend(duty_mails(running, CITY_REPORT, CITIES))
    mails.extend(duty_mails(running, SPOT_CHECKS, ["shanxi"]))
    mails.extend(duty_mails(running, NATIONAL_FILING, ["shanxi"]))

    rect_name, rect_days, rect_tiers = RECTIFICATION
    for unit in UNITS:
        ordered = rectification_ordered(unit)
        if ordered is None:
            continue
        rect_due = ordered + timedelta(days=rect_days)
        # the 整改通知 at once (written with the order at 10:00, sent by the next morning's dispatch)
        mails.append(Mail(first_run_after(ordered, running), unit.email,
                          f"【整改通知】{ROUND_TITLE}：评价验收得分70分，请于{cn(rect_due)}前完成整改", ics_due=rect_due))
        unit_deadline(rect_name, rect_due, rect_tiers,
                      lambda u, day, unit=unit: u is unit and state_on(u, day) == "rectification",
                      lambda day, due=rect_due: f"【整改提醒】{ROUND_TITLE}整改材料报送截止日期：{cn(due)}"
                                                f"（还有{(due - day).days}天）")
    return sorted(mails)


# ---------------------------------------------------------------- the walk

def _open_round(db: Database, tmp_path: Path) -> dict[str, tuple[int, int]]:
    """The round opened on 05-26 at 08:00; case and unit ids by unit key."""
    seed_jurisdictions(db)
    write_units(tmp_path / "units.csv", list(UNITS), FIRST_DAY)
    import_units(db, tmp_path / "units.csv", at(FIRST_DAY, 8), actor=OPERATOR)
    for c in COORDINATORS:
        add_coordinator(db, c.jurisdiction, c.name, c.email, actor=OPERATOR, now=OPERATOR_NOW)
    opened = open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                        calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=at(FIRST_DAY, 8))
    by_name = {r.unit_name: (r.id, r.unit_id) for r in list_cases(db, round_id=opened.round_id)}
    ids = {u.key: by_name[u.name] for u in UNITS}
    for u in UNITS:  # a contact on file counts for this round once the unit confirms it (附件2)
        if u.contact_from == FIRST_DAY:
            give_contact_form(db, ids[u.key][1], None, unit_actor(ids[u.key][1]), at(FIRST_DAY, 8))
    return ids


def write_units(path: Path, units: list[Unit], day: date) -> None:
    lines = ["name,jurisdiction,category,contact_name,contact_email"]
    for u in units:
        on_file = u.contact_from is not None and u.contact_from <= day
        lines.append(f"{u.name},{u.jurisdiction},行政机关,{'张联络' if on_file else ''},{u.email if on_file else ''}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _act(db: Database, tmp_path: Path, ids: dict[str, tuple[int, int]], day: date) -> None:
    now = at(day, 10)
    for u in UNITS:  # a unit fills in the contact form (附件2) late
        if u.contact_from == day and day != FIRST_DAY:
            give_contact_form(db, ids[u.key][1], [{"name": "张联络", "email": u.email}], unit_actor(ids[u.key][1]), now)
    for when, key, after in STEPS:
        if when != day:
            continue
        case_id, unit_id = ids[key]
        unit = unit_actor(unit_id)
        if after == "submitted":
            ready_to_submit(db, case_id, unit_id, "85", now, RUBRIC)
            attach_documents(db, case_id, unit, now)
            perform_action(db, case_id, "submit", {}, unit, now)
        elif after == "rectification":
            perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRIC, "70")}, COORDINATOR, now)
            perform_action(db, case_id, "order_rectification", {}, COORDINATOR, now)
        elif after == "certified" and key == "rechecks":
            perform_action(db, case_id, "recheck", {"entries": sheet_for(RUBRIC, "86")}, COORDINATOR, now)
        elif after == "certified":
            perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRIC, "90")}, COORDINATOR, now)
            perform_action(db, case_id, "certify", {}, COORDINATOR, now)
        elif after == "recheck":
            perform_action(db, case_id, "request_recheck", {}, unit, now)
        elif after == "filed":
            perform_action(db, case_id, "file", {"batch": "2022-国管局备案"}, COORDINATOR, now)
        else:
            raise AssertionError(f"no step for {after}")


@dataclass
class Walk:
    ids: dict[str, tuple[int, int]]
    running: list[date]
    received: list[tuple[date, bytes, tuple[str, ...]]]  # (day, raw message, envelope recipients)


def walk(db: Database, tmp_path: Path, server: SmtpServer, down: set[date] = frozenset()) -> Walk:
    ids = _open_round(db, tmp_path)
    running: list[date] = []
    received: list[tuple[date, bytes, tuple[str, ...]]] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        if day not in down:
            running.append(day)
            now = at(day, 9)
            sweep(db, CALENDARS, now)
            for _ in range(50):
                if asyncio.run(dispatch(db, CALENDARS, server.transport(), now, SETTINGS)).claimed == 0:
                    break
            new = server.handler.received[len(received):]
            received.extend((day, e.data, e.rcpt_tos) for e in new)
        _act(db, tmp_path, ids, day)
        day += timedelta(days=1)
    return Walk(ids, running, received)


def _as_mail(day: date, raw: bytes, rcpt_tos: tuple[str, ...]) -> Mail:
    msg = parse_mail(raw)
    [to] = rcpt_tos
    assert msg["To"].addresses[0].addr_spec == to
    text, html = text_body(msg), html_body(msg)
    listed: tuple[str, ...] = ()
    if to in {c.email for c in COORDINATORS}:
        listed = tuple(sorted(u.name for u in UNITS if u.name in text))
        assert listed == tuple(sorted(u.name for u in UNITS if u.name in html))
    else:
        unit = next(u for u in UNITS if u.email == to)
        assert text.startswith(f"{unit.name}：") and unit.name in html
    calendars = ics_attachments(msg)
    ics_due = None
    if calendars:
        [ics] = calendars
        [event] = parse_ics(ics)
        assert event.dtend == event.dtstart + timedelta(days=1)
        ics_due = event.dtstart
    return Mail(day, to, str(msg["Subject"]), listed, ics_due)


def _misses(db: Database, ids: dict[str, tuple[int, int]]) -> set[tuple[str, str, str]]:
    found = set()
    with db.unit_of_work() as uow:
        for key, (case_id, _) in ids.items():
            events: list[Event] = uow.events(case_id)
            found |= {(key, e.payload["milestone"], e.payload["noticed_on"]) for e in events if e.type == "DeadlineMissed"}
    return found


def _check_the_walk(db: Database, result: Walk) -> list[Mail]:
    actual = sorted(_as_mail(day, raw, rcpt) for day, raw, rcpt in result.received)
    expected = expected_mails(result.running)
    assert actual == expected

    ids = Counter(str(parse_mail(raw)["Message-ID"]) for _, raw, _ in result.received)
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]

    states = {}
    with db.unit_of_work() as uow:
        for key, (case_id, _) in result.ids.items():
            states[key] = uow.get(case_id)
    assert {k: s.state for k, s in states.items()} == {
        "early": "submitted", "on_time": "certified", "never": "registered", "expires": "not_certified",
        "rechecks": "certified", "filed": "filed", "no_contact": "registered", "city": "registered"}
    # "early" waits for the bureau's evaluation past its date: the bureau's miss, not the unit's
    assert {k for k, s in states.items() if s.overdue} == {"never", "no_contact", "city"}

    rows = list_notifications(db, limit=10_000)
    assert Counter(r.status for r in rows)["sent"] == len(result.received)
    failed = [r for r in rows if r.status != "sent"]
    assert {r.status for r in failed} == {"failed"}
    assert {r.case_id for r in failed} == {result.ids["no_contact"][0]}
    assert all("no contact email" in r.last_error for r in failed)
    report = verify(db)
    assert report.ok, report.findings
    return actual


def test_a_year_of_the_shanxi_2021_round(sqlite_db: Database, tmp_path: Path, smtp_server: SmtpServer) -> None:
    result = walk(sqlite_db, tmp_path, smtp_server)

    mails = _check_the_walk(sqlite_db, result)

    # Spot checks of the worked-out expectation itself (the walk is compared with it above).
    by_day = Counter(m.day for m in mails)
    assert by_day[date(2021, 9, 30)] == 4             # the 14-day tier, before the National Day holiday
    assert by_day[date(2021, 10, 6)] == 0
    assert [m.day for m in mails if m.to == BY_KEY["never"].email] == [
        date(2021, 9, 30), date(2021, 10, 13), date(2021, 10, 15), date(2021, 10, 19), date(2021, 10, 21)]
    assert [m.day for m in mails if m.to == BY_KEY["expires"].email] == [
        date(2021, 9, 30), date(2021, 10, 13), date(2021, 11, 11), date(2021, 11, 23), date(2021, 11, 26),
        date(2021, 11, 29), date(2021, 12, 1)]
    assert [m.day for m in mails if m.to == BY_KEY["rechecks"].email] == [date(2021, 11, 11), date(2021, 11, 23)]
    assert [m.day for m in mails if m.to in (BY_KEY["early"].email, BY_KEY["filed"].email)] == []
    assert [(m.day, list(m.listed)) for m in mails if m.to == "wang@jgswj.example.cn"] == [
        (date(2021, 5, 28), ["省商务厅", "省档案局"]), (date(2021, 6, 2), ["省商务厅", "省档案局"]),
        (date(2021, 6, 4), ["省档案局"]), (date(2021, 6, 6), ["省档案局"]),
        (date(2021, 10, 21), ["太原市财政局", "省商务厅", "省档案局"]),  # 太原 has no coordinator of its own
        (date(2021, 11, 23), ["省教育厅", "省财政厅"]), (date(2021, 11, 26), ["省财政厅"]),
        (date(2021, 12, 1), ["省水利厅"]),      # the rectification that expired
        (date(2021, 12, 1), []),               # 11 cities did not report their year: one mail listing them
        (date(2021, 12, 1), ["省财政厅"]),      # the province's own evaluation, still waiting
        (date(2021, 12, 17), []), (date(2021, 12, 24), []), (date(2022, 1, 1), []),   # the December spot checks
        (date(2022, 3, 17), []), (date(2022, 3, 24), [])]                              # the national filing
    assert [(m.day, m.subject) for m in mails if m.to == "qian@datong.example.cn"] == [
        (day, f"【提醒】大同市“年度创建总体情况报省机关事务管理局”截止日期：2021年11月30日（还有{left}天）")
        for day, left in ((date(2021, 11, 16), 14), (date(2021, 11, 23), 7), (date(2021, 11, 26), 4))] + [
        (date(2021, 12, 1), "【逾期】大同市“年度创建总体情况报省机关事务管理局”已逾期（截止日期：2021年11月30日）")]
    assert _misses(sqlite_db, result.ids) == {
        ("no_contact", "contact_form", "2021-06-06"), ("never", "self_assessment", "2021-10-21"),
        ("no_contact", "self_assessment", "2021-10-21"), ("city", "self_assessment", "2021-10-21")}
    from workflow.service.duties import duty_history

    [evaluation] = duty_history(sqlite_db, "shanxi-2021", "shanxi")[:1]
    assert (evaluation.type, evaluation.payload["duty"], evaluation.payload["cases"]) == (
        "DutyMissed", "evaluation", [result.ids["early"][0]])


DOWN = {date(2021, 10, 15) + timedelta(days=i) for i in range(10)}  # 10-15 … 10-24; back on 10-25


def test_a_year_with_the_service_down_from_october_15_to_25(sqlite_db: Database, tmp_path: Path,
                                                           smtp_server: SmtpServer) -> None:
    result = walk(sqlite_db, tmp_path, smtp_server, down=DOWN)

    mails = _check_the_walk(sqlite_db, result)

    # No burst on 10-25: the 3-day and 1-day tiers were missed and are not sent late; the
    # misses are recorded on the day the service came back.
    assert [(m.day, m.subject[:4]) for m in mails if m.to == BY_KEY["never"].email] == [
        (date(2021, 9, 30), "【提醒】"), (date(2021, 10, 13), "【提醒】"), (date(2021, 10, 25), "【逾期】")]
    assert [m.day for m in mails if m.day in DOWN] == []
    assert Counter(m.to for m in mails if m.day == date(2021, 10, 25)) == {
        BY_KEY["never"].email: 1, BY_KEY["city"].email: 1, "wang@jgswj.example.cn": 1}
    assert {m for m in _misses(sqlite_db, result.ids) if m[1] == "self_assessment"} == {
        ("never", "self_assessment", "2021-10-25"), ("no_contact", "self_assessment", "2021-10-25"),
        ("city", "self_assessment", "2021-10-25")}
