"""The dispatcher against a real SMTP server (aiosmtpd on 127.0.0.1).

Rows are written by the sweep (as in production), then delivered: once, in Chinese, with
an .ics for reminders, a Message-ID derived from the dedupe key; retried with exponential
backoff through an outage; failed on a permanent refusal or after ``max_attempts``;
cancelled when the case moved on. Every ``now`` is explicit.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from notifications import Address
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import Outbox
from workflow.files import import_units
from workflow.service.cases import perform_action
from workflow.service.deadlines import sweep
from workflow.service.directory import add_coordinator, give_contact_form
from workflow.service.dispatch import DispatchReport, DispatchSettings, backoff, dispatch, message_id_for
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
from .smtp_server import SmtpServer, html_body, ics_attachments, parse_ics, smtp_server, text_body  # noqa: F401

CST = ZoneInfo("Asia/Shanghai")
DOMAIN = "jgswj.example.cn"
SETTINGS = DispatchSettings(sender=Address("noreply@jgswj.example.cn", "山西省机关事务管理局"), message_domain=DOMAIN)
SELF_ASSESSMENT = "自评报告、自评打分表和佐证材料报送"
ROUND_TITLE = "山西省2021年节约型机关创建工作"


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST)


# ---------------------------------------------------------------- a small world

@dataclass
class World:
    case: dict[str, int]
    unit: dict[str, int]


UNITS = [("省甲厅", "jia@units.example.cn"), ("省乙厅", "yi@units.example.cn")]


def build(db: Database, tmp_path: Path, units: list[tuple[str, str]] = UNITS, *, contact_phone: str = "") -> World:
    """Shanxi 2021 with ``units`` as (name, email); a unit with no email gets a phone-only contact
    when ``contact_phone`` is given (it has a contact person, so it does not owe the form)."""
    seed_jurisdictions(db)
    csv = tmp_path / "units.csv"
    lines = ["name,jurisdiction,category,contact_name,contact_phone,contact_email"]
    for name, email in units:
        person = "张联络" if email or contact_phone else ""
        lines.append(f"{name},shanxi,行政机关,{person},{'' if email else contact_phone},{email}")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_units(db, csv, at(date(2021, 5, 26), 8), actor=OPERATOR)
    opened = open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                        calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=at(date(2021, 5, 26), 8))
    rows = list_cases(db, round_id=opened.round_id, limit=1000)
    for r in rows:  # a contact person on file, confirmed as this round's contact form (附件2)
        if dict(units).get(r.unit_name) or contact_phone:
            give_contact_form(db, r.unit_id, None, unit_actor(r.unit_id), at(date(2021, 5, 26), 8))
    return World({r.unit_name: r.id for r in rows}, {r.unit_name: r.unit_id for r in rows})


def run(db: Database, transport: Any, now: datetime, settings: DispatchSettings = SETTINGS) -> DispatchReport:
    """Dispatch until nothing more is claimed at ``now``; the reports added up."""
    total = DispatchReport()
    for _ in range(100):
        report = asyncio.run(dispatch(db, CALENDARS, transport, now, settings))
        if report.claimed == 0:
            return total
        for name in ("claimed", "sent", "retrying", "failed", "cancelled"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
    raise AssertionError("dispatch keeps claiming rows")


def outbox(db: Database, **where: Any) -> list[Any]:
    q = select(Outbox.__table__).order_by(Outbox.id)
    for column, value in where.items():
        q = q.where(getattr(Outbox, column) == value)
    with db.engine.connect() as conn:
        return conn.execute(q).all()


# ---------------------------------------------------------------- delivered once, in Chinese

def test_pending_reminders_are_delivered_once_in_chinese_with_the_deadline_ics(
        db: Database, tmp_path: Path, smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    sweep(db, CALENDARS, at(date(2021, 9, 30)))
    rows = {r.case_id: r for r in outbox(db, kind="reminder")}

    report = run(db, smtp_server.transport(), at(date(2021, 9, 30), 9, 1))

    assert report.sent == 2 and report.failed == report.cancelled == report.retrying == 0
    assert len(smtp_server.received) == 2
    for name, email in UNITS:
        row = rows[world.case[name]]
        [msg] = smtp_server.to(email)
        assert msg["Subject"] == f"【提醒】{SELF_ASSESSMENT}截止日期：2021年10月20日（还有20天）"
        assert msg["From"].addresses[0].display_name == "山西省机关事务管理局"
        assert msg["To"].addresses[0].addr_spec == email
        assert msg["Message-ID"] == message_id_for(row.dedupe_key, DOMAIN)
        assert msg.get_content_type() == "multipart/mixed"
        text, html = text_body(msg), html_body(msg)
        assert text.startswith(f"{name}：") and "于10月20日前将自评报告" in text and "2021年10月20日" in text
        assert name in html and "2021年10月20日" in html
        [ics] = ics_attachments(msg)
        [deadline] = parse_ics(ics)
        assert (deadline.dtstart, deadline.dtend) == (date(2021, 10, 20), date(2021, 10, 21))
        assert SELF_ASSESSMENT in deadline.summary
        # one calendar event per deadline: every tier's invitation updates the same one
        assert deadline.uid == f"deadline.{row.case_id}.self_assessment@{DOMAIN}"
    for row in outbox(db, kind="reminder"):
        assert row.status == "sent" and row.attempts == 1 and row.sent_at == at(date(2021, 9, 30), 9, 1)
        assert row.message_id == message_id_for(row.dedupe_key, DOMAIN)
        assert json.loads(row.recipients) == [dict(UNITS)[n] for n, c in world.case.items() if c == row.case_id]

    again = run(db, smtp_server.transport(), at(date(2021, 9, 30), 9, 2))
    sweep(db, CALENDARS, at(date(2021, 10, 1)))
    next_day = run(db, smtp_server.transport(), at(date(2021, 10, 1), 9, 1))

    assert again.claimed == next_day.claimed == 0
    assert len(smtp_server.received) == 2


def test_the_message_id_is_the_dedupe_key_made_safe_and_stable() -> None:
    key = "reminder:17:self_assessment:14"

    assert message_id_for(key, DOMAIN) == message_id_for(key, DOMAIN) == "<reminder.17.self_assessment.14@jgswj.example.cn>"
    assert message_id_for("reminder:17:self_assessment:7", DOMAIN) != message_id_for(key, DOMAIN)


def test_misses_and_the_digest_are_delivered_in_chinese(db: Database, tmp_path: Path,
                                                        smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    add_coordinator(db, "shanxi-datong", "钱协调", "qian@datong.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    sweep(db, CALENDARS, at(date(2021, 10, 21)))

    report = run(db, smtp_server.transport(), at(date(2021, 10, 21), 9, 1))

    assert report.sent == 3
    for _name, email in UNITS:
        [msg] = smtp_server.to(email)
        assert msg["Subject"] == f"【逾期】{SELF_ASSESSMENT}已逾期（截止日期：2021年10月20日）"
        assert "截至2021年10月21日" in text_body(msg) and ics_attachments(msg) == []
    [digest] = smtp_server.to("wang@jgswj.example.cn")
    assert digest["Subject"] == f"【汇总】{ROUND_TITLE}：山西省逾期事项2项（截至2021年10月21日）"
    body = text_body(digest)
    for name in world.case:
        assert f"{name}：{SELF_ASSESSMENT}，截止日期2021年10月20日，已逾期1天" in body
        assert name in html_body(digest)
    assert smtp_server.to("qian@datong.example.cn") == []


def test_the_digest_of_an_expired_rectification_gives_the_case_due_date(
        db: Database, tmp_path: Path, smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    for name in world.case:
        case_id, unit_id = world.case[name], world.unit[name]
        ready_to_submit(db, case_id, unit_id, "85", at(date(2021, 10, 12)))
        attach_documents(db, case_id, unit_actor(unit_id), at(date(2021, 10, 12)))
        perform_action(db, case_id, "submit", {}, unit_actor(unit_id), at(date(2021, 10, 12)))
    case_id = world.case["省甲厅"]
    perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "70")}, COORDINATOR,
                   at(date(2021, 11, 10)))
    perform_action(db, case_id, "order_rectification", {}, COORDINATOR, at(date(2021, 11, 10)))
    sweep(db, CALENDARS, at(date(2021, 11, 30)))  # the evaluation reminder of 省乙厅 goes out first
    run(db, smtp_server.transport(), at(date(2021, 11, 30), 9, 1))
    smtp_server.handler.received.clear()

    sweep(db, CALENDARS, at(date(2021, 12, 1)))
    run(db, smtp_server.transport(), at(date(2021, 12, 1), 9, 1))

    [unit_notice] = smtp_server.to("jia@units.example.cn")
    assert unit_notice["Subject"] == "【逾期】整改并接受复核验收已逾期（截止日期：2021年11月30日）"
    digests = [m for m in smtp_server.to("wang@jgswj.example.cn") if "整改" in text_body(m)]
    [digest] = digests
    assert "省甲厅：整改并接受复核验收，截止日期2021年11月30日，已逾期1天" in text_body(digest)


# ---------------------------------------------------------------- outage, backoff

def _through_an_outage(db: Database, tmp_path: Path, settings: DispatchSettings) -> tuple[SmtpServer, list, datetime]:
    """Rows due at 09:00 on 09-30; nothing listens until 09:00 on 10-01; the dispatcher runs
    every 30 s (the ticks where nothing is due are skipped: they claim nothing) until 10-02."""
    build(db, tmp_path)
    sweep(db, CALENDARS, at(date(2021, 9, 30)))
    server = SmtpServer()  # its port is picked; nothing listens there yet
    up_at, end = at(date(2021, 10, 1)), at(date(2021, 10, 2))
    attempts: list[tuple[datetime, list[Any]]] = []
    now = at(date(2021, 9, 30))
    try:
        while now < end:
            if now >= up_at and server._controller is None:
                server.start()
            run(db, server.transport(), now, settings)
            attempts.append((now, outbox(db, kind="reminder")))
            pending = [r.next_attempt_at for r in outbox(db) if r.status == "pending"]
            if not pending:
                break
            target = max(min(pending), now + timedelta(seconds=30))
            if now < up_at <= target:
                target = up_at
            ticks = -(-(target - at(date(2021, 9, 30))) // timedelta(seconds=30))  # round up to the 30 s grid
            now = at(date(2021, 9, 30)) + ticks * timedelta(seconds=30)
    finally:
        server.stop()
    return server, attempts, up_at


def test_smtp_down_for_a_day_then_up_retries_with_backoff_and_delivers_once(db: Database, tmp_path: Path) -> None:
    settings = DispatchSettings(sender=SETTINGS.sender, message_domain=DOMAIN, max_attempts=20)
    server, history, up_at = _through_an_outage(db, tmp_path, settings)

    # While down: attempts 1, 2, 3, ... each waiting twice as long as the one before, up to 6 h.
    down = [(now, rows[0]) for now, rows in history if now < up_at]
    assert [row.attempts for _, row in down] == list(range(1, len(down) + 1))
    waits = [row.next_attempt_at - now for now, row in down]
    assert waits == [min(timedelta(minutes=2 ** i), timedelta(hours=6)) for i in range(len(down))]
    assert waits[:4] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)]
    assert all(row.status == "pending" and "Connect" in (row.last_error or "") for _, row in down)
    # Back up: every row delivered exactly once, with the Message-ID of its dedupe key.
    rows = outbox(db)
    assert {r.status for r in rows} == {"sent"}
    assert server.message_id_counts() == {message_id_for(r.dedupe_key, DOMAIN): 1 for r in rows}
    assert all(r.sent_at >= up_at for r in rows)
    assert all(r.attempts == len(down) + 1 for r in rows)


def test_smtp_down_for_a_day_with_the_default_settings_still_delivers_everything(
        db: Database, tmp_path: Path) -> None:
    server, _, _ = _through_an_outage(db, tmp_path, SETTINGS)

    rows = outbox(db)
    assert {r.status for r in rows} == {"sent"}, [(r.status, r.attempts, r.last_error) for r in rows]
    assert server.message_id_counts() == {message_id_for(r.dedupe_key, DOMAIN): 1 for r in rows}


def test_backoff_doubles_from_the_base_up_to_the_maximum() -> None:
    assert [backoff(n, SETTINGS) for n in (1, 2, 3, 9, 10, 30)] == [
        timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=256),
        timedelta(hours=6), timedelta(hours=6)]


# ---------------------------------------------------------------- refusals

def test_a_permanently_refused_address_ends_failed_with_the_server_answer(
        db: Database, tmp_path: Path, smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    smtp_server.handler.refuse["yi@units.example.cn"] = "550 5.1.1 <yi@units.example.cn>: mailbox unavailable"
    sweep(db, CALENDARS, at(date(2021, 9, 30)))

    report = run(db, smtp_server.transport(), at(date(2021, 9, 30), 9, 1))
    later = run(db, smtp_server.transport(), at(date(2021, 10, 9), 9, 1))

    assert (report.sent, report.failed, later.claimed) == (1, 1, 0)
    [refused] = outbox(db, case_id=world.case["省乙厅"])
    assert refused.status == "failed" and refused.attempts == 1
    assert "550" in refused.last_error and "mailbox unavailable" in refused.last_error
    [listed] = list_notifications(db, status="failed")  # what `workflow notifications list --failed` shows
    assert (listed.id, listed.last_error) == (refused.id, refused.last_error)
    assert [r.case_id for r in list_notifications(db, status="sent")] == [world.case["省甲厅"]]
    assert [e.rcpt_tos for e in smtp_server.received] == [("jia@units.example.cn",)]


def test_temporary_refusals_fail_the_row_after_max_attempts(db: Database, tmp_path: Path,
                                                            smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    smtp_server.handler.refuse["yi@units.example.cn"] = "451 4.3.0 mailbox busy, try later"
    settings = DispatchSettings(sender=SETTINGS.sender, message_domain=DOMAIN, max_attempts=3)
    sweep(db, CALENDARS, at(date(2021, 9, 30)))
    case_id = world.case["省乙厅"]

    seen = []
    now = at(date(2021, 9, 30))
    for _ in range(10):
        run(db, smtp_server.transport(), now, settings)
        [row] = outbox(db, case_id=case_id)
        seen.append((row.status, row.attempts))
        if row.status != "pending":
            break
        now = row.next_attempt_at

    assert seen == [("pending", 1), ("pending", 2), ("failed", 3)]
    assert "451" in row.last_error and "try later" in row.last_error and "3 attempts" in row.last_error
    assert [r.id for r in list_notifications(db, status="failed")] == [row.id]
    assert all("yi@units.example.cn" not in e.rcpt_tos for e in smtp_server.received)


def test_a_unit_without_a_contact_email_fails_with_that_reason(db: Database, tmp_path: Path,
                                                               smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path, [("省甲厅", "jia@units.example.cn"), ("省丙厅", "")], contact_phone="0351-2859734")
    sweep(db, CALENDARS, at(date(2021, 9, 30)))

    report = run(db, smtp_server.transport(), at(date(2021, 9, 30), 9, 1))

    assert (report.sent, report.failed) == (1, 1)
    [row] = outbox(db, case_id=world.case["省丙厅"])
    assert row.status == "failed" and "no contact email" in row.last_error
    assert [e.rcpt_tos for e in smtp_server.received] == [("jia@units.example.cn",)]


# ---------------------------------------------------------------- cancelled

def test_a_reminder_whose_case_moved_on_before_dispatch_is_cancelled(db: Database, tmp_path: Path,
                                                                     smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    sweep(db, CALENDARS, at(date(2021, 9, 30)))
    case_id, unit_id = world.case["省乙厅"], world.unit["省乙厅"]
    ready_to_submit(db, case_id, unit_id, "85", at(date(2021, 9, 30), 9, 1))
    attach_documents(db, case_id, unit_actor(unit_id), at(date(2021, 9, 30), 9, 1))
    perform_action(db, case_id, "submit", {}, unit_actor(unit_id), at(date(2021, 9, 30), 9, 1))

    report = run(db, smtp_server.transport(), at(date(2021, 9, 30), 9, 2))

    assert (report.sent, report.cancelled) == (1, 1)
    [row] = outbox(db, case_id=case_id)
    assert row.status == "cancelled" and "submitted" in row.last_error and row.sent_at is None
    assert smtp_server.to("yi@units.example.cn") == []


def test_a_reminder_not_sent_before_its_deadline_is_cancelled(db: Database, tmp_path: Path,
                                                              smtp_server: SmtpServer) -> None:
    build(db, tmp_path)
    sweep(db, CALENDARS, at(date(2021, 10, 19)))

    report = run(db, smtp_server.transport(), at(date(2021, 10, 21)))

    assert (report.sent, report.cancelled) == (0, 2)
    assert smtp_server.received == []


def test_a_rectification_reminder_made_stale_by_an_extension_is_cancelled(
        db: Database, tmp_path: Path, smtp_server: SmtpServer) -> None:
    world = build(db, tmp_path)
    case_id, unit_id = world.case["省甲厅"], world.unit["省甲厅"]
    ready_to_submit(db, case_id, unit_id, "85", at(date(2021, 10, 12)))
    attach_documents(db, case_id, unit_actor(unit_id), at(date(2021, 10, 12)))
    perform_action(db, case_id, "submit", {}, unit_actor(unit_id), at(date(2021, 10, 12)))
    perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "70")}, COORDINATOR,
                   at(date(2021, 11, 10)))
    perform_action(db, case_id, "order_rectification", {}, COORDINATOR, at(date(2021, 11, 10)))
    sweep(db, CALENDARS, at(date(2021, 11, 23)))
    perform_action(db, case_id, "extend_rectification", {"days": 5, "reason": "材料补充"}, COORDINATOR,
                   at(date(2021, 11, 23), 9, 1))

    run(db, smtp_server.transport(), at(date(2021, 11, 23), 9, 2))
    sweep(db, CALENDARS, at(date(2021, 11, 26)))
    run(db, smtp_server.transport(), at(date(2021, 11, 26), 9, 1))

    rect = outbox(db, kind="rectification")
    assert [(r.due_on, r.tier, r.status) for r in rect] == [
        (date(2021, 11, 30), 7, "cancelled"), (date(2021, 12, 5), 7, "sent")]
    # the 整改通知 of the order (due 11-30) went stale with the extension; the extension's own went out
    notices = outbox(db, kind="rectification_notice")
    assert [(r.due_on, r.status) for r in notices] == [(date(2021, 11, 30), "cancelled"), (date(2021, 12, 5), "sent")]
    notice, msg = smtp_server.to("jia@units.example.cn")
    assert notice["Subject"] == f"【整改通知】{ROUND_TITLE}：评价验收得分70分，请于2021年12月5日前完成整改"
    assert "经评价验收" in text_body(notice) and "复核验收申请" in text_body(notice)
    assert msg["Subject"] == f"【整改提醒】{ROUND_TITLE}整改材料报送截止日期：2021年12月5日（还有9天）"
    assert "核定得分为70" in text_body(msg)
    [deadline] = parse_ics(ics_attachments(msg)[0])
    assert deadline.dtstart == date(2021, 12, 5)


# ---------------------------------------------------------------- two dispatchers (PostgreSQL)

def _two_dispatchers(url: str, server: SmtpServer, now: datetime, settings: DispatchSettings) -> list[Any]:
    barrier = threading.Barrier(2)
    reports: list[Any] = [None, None]

    def dispatcher(i: int) -> None:
        engine = make_engine(url)
        mine = Database(engine)
        try:
            with engine.connect():
                pass
            barrier.wait(timeout=30)
            reports[i] = run(mine, server.transport(), now, settings)
        except Exception as exc:  # kept for the assertion
            reports[i] = exc
        finally:
            engine.dispose()

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(r, DispatchReport) for r in reports), reports
    return reports


@pytest.mark.postgres
def test_two_dispatchers_at_once_send_each_row_exactly_once(pg_url: str, tmp_path: Path,
                                                            smtp_server: SmtpServer) -> None:
    db = Database(make_engine(pg_url))
    build(db, tmp_path, [(f"单位{i:02d}", f"u{i}@units.example.cn") for i in range(60)])
    add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    settings = DispatchSettings(sender=SETTINGS.sender, message_domain=DOMAIN, batch=7)

    sweep(db, CALENDARS, at(date(2021, 10, 19)))
    reminders = _two_dispatchers(pg_url, smtp_server, at(date(2021, 10, 19), 9, 1), settings)
    sweep(db, CALENDARS, at(date(2021, 10, 21)))
    misses = _two_dispatchers(pg_url, smtp_server, at(date(2021, 10, 21), 9, 1), settings)

    assert all(r.claimed > 0 for r in reminders + misses), "both dispatchers took part each time"
    assert [sum(r.sent for r in reports) for reports in (reminders, misses)] == [60, 61]
    rows = outbox(db)
    assert len(rows) == 60 + 60 + 1 and {r.status for r in rows} == {"sent"}  # reminders, misses, one digest
    assert smtp_server.message_id_counts() == {message_id_for(r.dedupe_key, DOMAIN): 1 for r in rows}
    assert Counter(e.rcpt_tos for e in smtp_server.received)[("wang@jgswj.example.cn",)] == 1
    db.engine.dispose()
