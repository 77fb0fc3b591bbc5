"""The sweep: reminders once per (case, milestone, tier), misses, digests, downtime, rectification.

Runs on SQLite and on PostgreSQL (``db``); the two-sweeps-at-once test needs PostgreSQL.
Every ``now`` is explicit and in Asia/Shanghai; nothing reads the wall clock.
"""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import Outbox
from workflow.domain.case import CaseState
from workflow.domain.errors import ActionRefused
from workflow.domain.events import Event
from workflow.files import import_units
from workflow.service.audit import verify
from workflow.service.cases import perform_action
from workflow.service.deadlines import SweepReport, sweep
from workflow.service.directory import add_coordinator, give_contact_form
from workflow.service.queries import list_cases
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

CST = ZoneInfo("Asia/Shanghai")
SELF_ASSESSMENT_DUE = date(2021, 10, 20)


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ---------------------------------------------------------------- a small world

@dataclass
class World:
    round_id: str
    case: dict[str, int]  # unit name → case id
    unit: dict[str, int]  # unit name → unit id
    rubric: Any


def build(db: Database, tmp_path: Path, units: list[tuple[str, str, str]], *, province: str = "shanxi",
          opened: datetime = at(date(2021, 5, 26), 8)) -> World:
    """Jurisdictions, ``units`` as (name, jurisdiction, email or "") and the province's 2021 round."""
    seed_jurisdictions(db)
    csv = tmp_path / "units.csv"
    lines = ["name,jurisdiction,category,contact_name,contact_email"]
    lines += [f"{name},{jur},行政机关,{'张联络' if email else ''},{email}" for name, jur, email in units]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_units(db, csv, opened, actor=OPERATOR)
    rubric_id, calendar_id = ("shanxi-2020", "shanxi-2021") if province == "shanxi" else ("hunan-2020", "hunan")
    opened_round = open_round(db, RUBRICS, CALENDARS, province_id=province, year=2021, rubric_id=rubric_id,
                              calendar_id=calendar_id, target_share="0.5", actor=ADMIN, now=opened)
    rows = list_cases(db, round_id=opened_round.round_id, limit=1000)
    with_contact = {name for name, _, email in units if email}
    for r in rows:  # the units with a contact on file confirm it as this round's contact form (附件2)
        if r.unit_name in with_contact:
            give_contact_form(db, r.unit_id, None, unit_actor(r.unit_id), opened)
    return World(opened_round.round_id, {r.unit_name: r.id for r in rows}, {r.unit_name: r.unit_id for r in rows},
                 RUBRICS.get(rubric_id))


def three_units(jurisdiction: str = "shanxi") -> list[tuple[str, str, str]]:
    return [(f"单位{c}", jurisdiction, f"{c.lower()}@units.example.cn") for c in "ABC"]


def submit(db: Database, world: World, name: str, now: datetime) -> None:
    ready_to_submit(db, world.case[name], world.unit[name], "85", now, world.rubric)
    attach_documents(db, world.case[name], unit_actor(world.unit[name]), now)
    perform_action(db, world.case[name], "submit", {}, unit_actor(world.unit[name]), now)


def fail_verification(db: Database, world: World, name: str, now: datetime, *, rectify: bool = True) -> None:
    perform_action(db, world.case[name], "verify", {"entries": sheet_for(world.rubric, "70")}, COORDINATOR, now)
    if rectify:
        perform_action(db, world.case[name], "order_rectification", {}, COORDINATOR, now)


def case_state(db: Database, case_id: int) -> CaseState:
    with db.unit_of_work() as uow:
        return uow.get(case_id)


def events(db: Database, case_id: int, type_: str | None = None) -> list[Event]:
    with db.unit_of_work() as uow:
        found = uow.events(case_id)
    return [e for e in found if type_ is None or e.type == type_]


def outbox(db: Database, **where: Any) -> list[Any]:
    q = select(Outbox.__table__).order_by(Outbox.id)
    for column, value in where.items():
        q = q.where(getattr(Outbox, column) == value)
    with db.engine.connect() as conn:
        return conn.execute(q).all()


def listed(row: Any) -> list[int]:
    return [r["case_id"] for r in json.loads(row.context)["rows"]]


# ---------------------------------------------------------------- reminders

def test_reminders_are_written_once_per_case_milestone_and_tier(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())

    sweep(db, CALENDARS, at(date(2021, 9, 30)))
    written = outbox(db)
    again = sweep(db, CALENDARS, at(date(2021, 9, 30)))
    later_that_day = sweep(db, CALENDARS, at(date(2021, 9, 30), 17))
    during_the_holiday = sweep(db, CALENDARS, at(date(2021, 10, 6)))

    assert outbox(db) == written
    assert again.total == later_that_day.total == during_the_holiday.total == 0
    rows = outbox(db, kind="reminder")
    assert len(rows) == len(written) == 3
    assert sorted((r.case_id, r.milestone, r.tier, r.due_on) for r in rows) == sorted(
        (case_id, "self_assessment", 14, SELF_ASSESSMENT_DUE) for case_id in world.case.values())
    assert len({r.dedupe_key for r in rows}) == 3
    assert {r.status for r in rows} == {"pending"}

    sweep(db, CALENDARS, at(date(2021, 10, 13)))
    sweep(db, CALENDARS, at(date(2021, 10, 13), 10))
    assert Counter(r.tier for r in outbox(db, kind="reminder")) == {14: 3, 7: 3}


def test_a_case_that_moved_on_gets_no_reminder_and_no_miss(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    submit(db, world, "单位A", at(date(2021, 9, 20), 10))

    for day in days(date(2021, 9, 29), date(2021, 10, 22)):
        sweep(db, CALENDARS, at(day))

    moved_on = world.case["单位A"]
    assert [r for r in outbox(db) if r.case_id == moved_on] == []
    assert events(db, moved_on, "DeadlineMissed") == []
    assert not case_state(db, moved_on).overdue
    owing = {world.case["单位B"], world.case["单位C"]}
    assert {r.case_id for r in outbox(db, kind="reminder")} == owing


def test_a_case_moving_on_between_two_tiers_gets_no_more_reminders(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    sweep(db, CALENDARS, at(date(2021, 9, 30)))
    submit(db, world, "单位A", at(date(2021, 10, 12), 10))

    sweep(db, CALENDARS, at(date(2021, 10, 13)))

    tiers = {(r.case_id, r.tier) for r in outbox(db, kind="reminder")}
    assert (world.case["单位A"], 14) in tiers and (world.case["单位A"], 7) not in tiers
    assert (world.case["单位B"], 7) in tiers


# ---------------------------------------------------------------- misses

def test_after_the_due_date_each_owing_case_gets_one_miss_and_is_overdue_until_it_moves_on(
        db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    registered, self_assessed, submitted = (world.case[n] for n in ("单位A", "单位B", "单位C"))
    ready_to_submit(db, self_assessed, world.unit["单位B"], "85", at(date(2021, 10, 1)), world.rubric)
    submit(db, world, "单位C", at(date(2021, 10, 1)))

    on_due_day = sweep(db, CALENDARS, at(date(2021, 10, 20), 23))
    day_after = sweep(db, CALENDARS, at(date(2021, 10, 21)))
    again = sweep(db, CALENDARS, at(date(2021, 10, 22)))

    assert on_due_day.missed == 0
    assert day_after.missed == 2 and again.missed == 0
    for case_id in (registered, self_assessed):
        [missed] = events(db, case_id, "DeadlineMissed")
        assert missed.actor == "system:sweep;via=scheduler"
        assert missed.payload["milestone"] == "self_assessment"
        assert missed.payload["due_on"] == "2021-10-20"
        assert missed.payload["noticed_on"] == "2021-10-21"
        assert case_state(db, case_id).overdue
    assert events(db, submitted, "DeadlineMissed") == []
    assert not case_state(db, submitted).overdue

    # Still owing after a step that does not discharge it; cleared by the late submission.
    ready_to_submit(db, registered, world.unit["单位A"], "85", at(date(2021, 10, 22), 10), world.rubric)
    assert case_state(db, registered).state == "self_assessed" and case_state(db, registered).overdue
    attach_documents(db, self_assessed, unit_actor(world.unit["单位B"]), at(date(2021, 10, 22), 10))
    perform_action(db, self_assessed, "submit", {}, unit_actor(world.unit["单位B"]), at(date(2021, 10, 22), 10))
    late = case_state(db, self_assessed)
    assert late.state == "submitted" and not late.overdue
    assert late.missed == (("self_assessment", ("registered", "self_assessed")),)  # the miss stays on record
    sweep(db, CALENDARS, at(date(2021, 10, 23)))
    assert len(events(db, registered, "DeadlineMissed")) == 1
    assert verify(db).ok


def test_due_means_by_the_end_of_the_day_in_shanghai(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    last_instant = datetime(2021, 10, 20, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Shanghai

    assert sweep(db, CALENDARS, last_instant).missed == 0
    assert sweep(db, CALENDARS, last_instant + timedelta(seconds=1)).missed == 3
    [missed] = events(db, world.case["单位A"], "DeadlineMissed")
    assert missed.payload["noticed_on"] == "2021-10-21"


def test_each_unit_still_owing_is_told_of_its_miss_once(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    submit(db, world, "单位C", at(date(2021, 10, 1)))

    sweep(db, CALENDARS, at(date(2021, 10, 21)))
    sweep(db, CALENDARS, at(date(2021, 10, 22)))

    rows = outbox(db, kind="missed")
    assert sorted((r.case_id, r.milestone, r.due_on) for r in rows) == sorted(
        (world.case[n], "self_assessment", SELF_ASSESSMENT_DUE) for n in ("单位A", "单位B"))


def test_one_digest_per_coordinator_of_the_case_jurisdiction(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, [
        ("省甲厅", "shanxi", "jia@units.example.cn"),
        ("省乙厅", "shanxi", "yi@units.example.cn"),
        ("太原丙局", "shanxi-taiyuan", "bing@units.example.cn"),
        ("太原丁局", "shanxi-taiyuan", "ding@units.example.cn"),
    ])
    submit(db, world, "太原丁局", at(date(2021, 10, 1)))
    wang = add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    li = add_coordinator(db, "shanxi", "李协调", "li@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    taiyuan = add_coordinator(db, "shanxi-taiyuan", "赵协调", "zhao@taiyuan.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    datong = add_coordinator(db, "shanxi-datong", "钱协调", "qian@datong.example.cn", actor=OPERATOR, now=OPERATOR_NOW)

    sweep(db, CALENDARS, at(date(2021, 10, 21)))
    sweep(db, CALENDARS, at(date(2021, 10, 22)))

    digests = outbox(db, kind="digest")
    by_coordinator = {r.coordinator_id: r for r in digests}
    assert sorted(by_coordinator) == sorted([wang.id, li.id, taiyuan.id]) and len(digests) == 3
    provincial = sorted([world.case["省甲厅"], world.case["省乙厅"]])
    assert sorted(listed(by_coordinator[wang.id])) == provincial
    assert sorted(listed(by_coordinator[li.id])) == provincial
    assert listed(by_coordinator[taiyuan.id]) == [world.case["太原丙局"]]
    assert datong.id not in by_coordinator
    assert {(r.milestone, r.due_on) for r in digests} == {("self_assessment", SELF_ASSESSMENT_DUE)}


# ---------------------------------------------------------------- downtime

def test_downtime_from_october_15_to_25_catches_up_without_a_burst(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    submit(db, world, "单位C", at(date(2021, 9, 20)))
    owing = sorted(world.case[n] for n in ("单位A", "单位B"))

    for day in days(date(2021, 9, 29), date(2021, 10, 15)):
        sweep(db, CALENDARS, at(day))
    sweep(db, CALENDARS, at(date(2021, 10, 15), 10))  # the hourly sweep before the service went down
    before = {(r.case_id, r.tier) for r in outbox(db, kind="reminder")}

    # Down from 10-15 10:00 until 10-25: no sweep in between.
    restart = sweep(db, CALENDARS, at(date(2021, 10, 25)))

    # Each tier was written once, on its day: 14 on 09-30 (10-06 is in the holiday), 7 on 10-13,
    # 3 on 10-15 (10-17 is a Sunday).
    assert sorted((r.created_at, r.case_id, r.tier) for r in outbox(db, kind="reminder")) == sorted(
        (at(day), c, tier) for c in owing
        for day, tier in ((date(2021, 9, 30), 14), (date(2021, 10, 13), 7), (date(2021, 10, 15), 3)))
    assert before == {(c, t) for c in owing for t in (14, 7, 3)}
    assert restart.reminders == 0 and restart.missed == 2
    assert {(r.case_id, r.tier) for r in outbox(db, kind="reminder")} == before  # no burst of 1-day reminders
    for case_id in owing:
        [missed] = events(db, case_id, "DeadlineMissed")
        assert missed.payload["noticed_on"] == "2021-10-25"
        assert case_state(db, case_id).overdue
    assert events(db, world.case["单位C"], "DeadlineMissed") == []
    per_case = Counter(r.case_id for r in outbox(db) if r.created_at >= at(date(2021, 10, 25)))
    assert per_case == dict.fromkeys(owing, 1)  # the miss notice, and nothing else


def test_after_downtime_only_the_latest_tier_is_sent(db: Database, tmp_path: Path) -> None:
    build(db, tmp_path, three_units())

    sweep(db, CALENDARS, at(date(2021, 9, 29)))
    sweep(db, CALENDARS, at(date(2021, 10, 19)))

    assert Counter(r.tier for r in outbox(db, kind="reminder")) == {1: 3}


# ---------------------------------------------------------------- rectification (Shanxi)

def _rectification_rows_by_day(db: Database, first: date, last: date, after_sweep=None) -> dict[date, set[tuple]]:
    written: dict[date, set[tuple]] = {}
    seen: set[int] = set()
    for day in days(first, last):
        sweep(db, CALENDARS, at(day))
        new = [r for r in outbox(db) if r.id not in seen]
        seen.update(r.id for r in new)
        rect = {(r.kind, r.case_id, r.tier, r.due_on) for r in new if r.milestone == "rectification"}
        if rect:
            written[day] = rect
        if after_sweep is not None:
            after_sweep(day)
    return written


def test_a_rectification_failed_on_november_10_is_reminded_then_expires(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    coordinator = add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    for name in ("单位A", "单位B"):
        submit(db, world, name, at(date(2021, 10, 12), 10))
        fail_verification(db, world, name, at(date(2021, 11, 10), 10))
    expires, rechecks = world.case["单位A"], world.case["单位B"]
    due = date(2021, 11, 30)
    assert case_state(db, expires).rectification_due == due

    def unit_b_asks_for_a_recheck(day: date) -> None:
        if day == date(2021, 11, 24):
            perform_action(db, rechecks, "request_recheck", {}, unit_actor(world.unit["单位B"]), at(day, 10))

    written = _rectification_rows_by_day(db, date(2021, 11, 10), date(2021, 12, 3), unit_b_asks_for_a_recheck)

    assert written == {
        # the 整改通知, at once when rectification is ordered (written with the order, not by the sweep)
        date(2021, 11, 10): {("rectification_notice", expires, None, due), ("rectification_notice", rechecks, None, due)},
        date(2021, 11, 23): {("rectification", expires, 7, due), ("rectification", rechecks, 7, due)},
        date(2021, 11, 26): {("rectification", expires, 3, due)},  # 11-27 is a Saturday
        date(2021, 11, 29): {("rectification", expires, 1, due)},
        # the digest is dated by the deadline that passed (each listed case carries its own)
        date(2021, 12, 1): {("rectification_missed", expires, None, due), ("digest", None, None, due)},
    }
    expired = case_state(db, expires)
    assert expired.state == "not_certified"
    [event_] = events(db, expires, "RectificationExpired")
    assert event_.actor == "system:sweep;via=scheduler" and event_.occurred_at == at(date(2021, 12, 1))
    assert event_.payload["due_on"] == "2021-11-30"
    [digest] = [r for r in outbox(db, kind="digest") if r.milestone == "rectification"]
    assert digest.coordinator_id == coordinator.id and listed(digest) == [expires]
    assert case_state(db, rechecks).state == "recheck"
    assert events(db, rechecks, "RectificationExpired") == []
    assert verify(db).ok


def test_the_rectification_is_still_open_on_its_due_day(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    submit(db, world, "单位A", at(date(2021, 10, 12), 10))
    fail_verification(db, world, "单位A", at(date(2021, 11, 10), 10))

    report = sweep(db, CALENDARS, at(date(2021, 11, 30), 23))

    assert report.expired == 0 and case_state(db, world.case["单位A"]).state == "rectification"
    perform_action(db, world.case["单位A"], "request_recheck", {}, unit_actor(world.unit["单位A"]),
                   at(date(2021, 11, 30), 23))
    assert sweep(db, CALENDARS, at(date(2021, 12, 1))).expired == 0


def test_an_extension_moves_the_reminders_and_the_expiry(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    submit(db, world, "单位A", at(date(2021, 10, 12), 10))
    fail_verification(db, world, "单位A", at(date(2021, 11, 10), 10))
    case_id = world.case["单位A"]
    old, new = date(2021, 11, 30), date(2021, 12, 5)

    def extend(day: date) -> None:
        if day == date(2021, 11, 25):
            perform_action(db, case_id, "extend_rectification", {"days": 5, "reason": "材料补充"}, COORDINATOR,
                           at(day, 10))
            assert case_state(db, case_id).rectification_due == new

    written = _rectification_rows_by_day(db, date(2021, 11, 10), date(2021, 12, 7), extend)

    assert written == {
        date(2021, 11, 10): {("rectification_notice", case_id, None, old)},
        date(2021, 11, 23): {("rectification", case_id, 7, old)},
        # the extension sends a new 整改通知 with the new last day at once
        date(2021, 11, 26): {("rectification", case_id, 7, new), ("rectification_notice", case_id, None, new)},
        date(2021, 12, 2): {("rectification", case_id, 3, new)},
        date(2021, 12, 3): {("rectification", case_id, 1, new)},   # 12-04 is a Saturday
        date(2021, 12, 6): {("rectification_missed", case_id, None, new)},
    }
    keys = [r.dedupe_key for r in outbox(db, kind="rectification")]
    assert len(set(keys)) == 4
    assert any(old.isoformat() in k for k in keys) and any(new.isoformat() in k for k in keys)
    [expired] = events(db, case_id, "RectificationExpired")
    assert expired.occurred_at == at(date(2021, 12, 6))
    assert case_state(db, case_id).state == "not_certified"


def test_the_hunan_round_never_gets_rectification_rows(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, [("湖南甲厅", "hunan", "jia@hunan.example.cn"),
                                 ("湖南乙厅", "hunan", "yi@hunan.example.cn")], province="hunan")
    for name in world.case:
        submit(db, world, name, at(date(2021, 10, 12), 10))
        perform_action(db, world.case[name], "verify", {"entries": sheet_for(world.rubric, "60")}, COORDINATOR,
                       at(date(2021, 11, 10), 10))
    with pytest.raises(ActionRefused):
        perform_action(db, world.case["湖南甲厅"], "order_rectification", {}, COORDINATOR, at(date(2021, 11, 10), 10))
    perform_action(db, world.case["湖南甲厅"], "fail", {}, COORDINATOR, at(date(2021, 11, 10), 10))

    reports = [sweep(db, CALENDARS, at(day)) for day in days(date(2021, 11, 10), date(2022, 1, 10))]

    assert sum(r.expired for r in reports) == 0
    assert [r for r in outbox(db) if r.milestone == "rectification" or r.kind.startswith("rectification")] == []
    assert all(case_state(db, c).rectification_due is None for c in world.case.values())
    # The Hunan round is swept all the same. The verified case waits for the bureau's decision:
    # that is the bureau's miss (on its own duty stream), not the unit's (nothing on the case).
    assert events(db, world.case["湖南乙厅"], "DeadlineMissed") == []
    from workflow.service.duties import duty_history

    missed = [(e.type, e.payload["duty"], e.payload.get("cases")) for e in duty_history(db, world.round_id, "hunan")]
    assert missed == [("DutyMissed", "evaluation", [world.case["湖南乙厅"]]),  # 每年11月…现场验收
                      ("DutyMissed", "results", None)]                        # 每年12月底…通报表彰


# ---------------------------------------------------------------- the report

def _report_counts(db: Database, tmp_path: Path) -> None:
    world = build(db, tmp_path, three_units())
    add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    submit(db, world, "单位A", at(date(2021, 10, 12), 10))
    fail_verification(db, world, "单位A", at(date(2021, 11, 10), 10))

    reports = {day: sweep(db, CALENDARS, at(day))
               for day in (date(2021, 10, 19), date(2021, 10, 21), date(2021, 11, 23), date(2021, 12, 1))}

    kinds = Counter((r.created_at.date(), r.kind) for r in outbox(db))
    assert [(r.reminders, r.missed, r.unit_notices, r.digests, r.expired) for r in reports.values()] == [
        (kinds[(date(2021, 10, 19), "reminder")], 0, 0, 0, 0),
        (0, 2, kinds[(date(2021, 10, 21), "missed")], kinds[(date(2021, 10, 21), "digest")], 0),
        (kinds[(date(2021, 11, 23), "rectification")], 0, 0, 0, 0),
        (0, 0, kinds[(date(2021, 12, 1), "rectification_missed")], kinds[(date(2021, 12, 1), "digest")], 1),
    ]
    assert kinds[(date(2021, 10, 19), "reminder")] == 2 and kinds[(date(2021, 12, 1), "digest")] == 1


def test_the_sweep_report_counts_the_rows_it_wrote_on_sqlite(sqlite_db: Database, tmp_path: Path) -> None:
    _report_counts(sqlite_db, tmp_path)


@pytest.mark.postgres
def test_the_sweep_report_counts_the_rows_it_wrote_on_postgres(pg_db: Database, tmp_path: Path) -> None:
    _report_counts(pg_db, tmp_path)


# ---------------------------------------------------------------- cost

def test_a_sweep_with_nothing_due_reads_no_cases(db: Database, tmp_path: Path) -> None:
    build(db, tmp_path, three_units())
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    def case_reads() -> list[str]:
        return [s for s in statements if re.search(r"\bcases\b", s)]

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        first = sweep(db, CALENDARS, at(date(2021, 10, 21)))
        assert first.missed == 3 and len(case_reads()) >= 2  # the listener sees the sweep's reads
        statements.clear()
        nothing = [sweep(db, CALENDARS, at(date(2021, 10, 21), 15)), sweep(db, CALENDARS, at(date(2021, 10, 28)))]
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert [r.total + r.unit_notices for r in nothing] == [0, 0]
    # What is left is the per-case rectification look-up (cases in rectification only), one per sweep.
    reads = case_reads()
    assert len(reads) == 2 and all("rectification" in s for s in reads), reads


# ---------------------------------------------------------------- two sweeps at once (PostgreSQL)

def _sweep_concurrently(url: str, now: datetime, n: int = 2) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        engine = make_engine(url)
        try:
            db = Database(engine)
            with engine.connect():
                pass
            barrier.wait(timeout=30)
            results[i] = sweep(db, CALENDARS, now)
        except Exception as exc:  # kept for the assertions
            results[i] = exc
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _pg_world(pg_url: str, tmp_path: Path) -> tuple[Database, World, list[int]]:
    db = Database(make_engine(pg_url))
    units = [(f"单位{i:02d}", "shanxi" if i % 3 else "shanxi-taiyuan", f"u{i}@units.example.cn") for i in range(40)]
    world = build(db, tmp_path, units)
    submit(db, world, "单位00", at(date(2021, 9, 20)))
    coordinators = [add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW).id,
                    add_coordinator(db, "shanxi-taiyuan", "赵协调", "zhao@taiyuan.example.cn", actor=OPERATOR, now=OPERATOR_NOW).id]
    return db, world, coordinators


@pytest.mark.postgres
def test_two_sweeps_at_once_write_each_row_and_each_miss_once(pg_url: str, tmp_path: Path) -> None:
    db, world, coordinators = _pg_world(pg_url, tmp_path)
    owing = sorted(c for name, c in world.case.items() if name != "单位00")

    _sweep_concurrently(pg_url, at(date(2021, 10, 19)))
    _sweep_concurrently(pg_url, at(date(2021, 10, 21)))
    _sweep_concurrently(pg_url, at(date(2021, 10, 21)))

    rows = outbox(db)
    assert len({r.dedupe_key for r in rows}) == len(rows)
    assert sorted(r.case_id for r in rows if r.kind == "reminder") == owing
    assert sorted(r.case_id for r in rows if r.kind == "missed") == owing
    assert Counter(r.coordinator_id for r in rows if r.kind == "digest") == dict.fromkeys(coordinators, 1)
    misses = Counter((e.case_id, e.payload["milestone"]) for c in world.case.values()
                     for e in events(db, c, "DeadlineMissed"))
    assert misses == {(c, "self_assessment"): 1 for c in owing}
    assert all(case_state(db, c).overdue for c in owing)
    report = verify(db)
    assert report.ok, report.findings
    db.engine.dispose()


@pytest.mark.postgres
def test_two_sweeps_at_once_both_finish(pg_url: str, tmp_path: Path) -> None:
    db, world, _ = _pg_world(pg_url, tmp_path)

    results = _sweep_concurrently(pg_url, at(date(2021, 10, 21)))

    assert all(isinstance(r, SweepReport) for r in results), results
    assert sum(r.missed for r in results) == len(world.case) - 1
    db.engine.dispose()
