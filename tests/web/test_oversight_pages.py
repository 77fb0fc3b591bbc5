"""日程与通知 (GET /calendar) and sending a failed mail again (POST /outbox/{id}/resend), on
the demo world over SQLite, signed in through the console's own sign-in."""
from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from notifications.testing import InMemoryTransport
from workflow.bootstrap import App
from workflow.clock import BUSINESS_TZ
from workflow.service.dispatch import dispatch
from workflow.service.outbox_admin import RESEND_MARK
from workflow.web.common import zh_date

from .worlds import CHECKPOINTS, DemoTemplate, csrf_of, demo_app, demo_template, signed_in

NOW = datetime(2026, 11, 3, 10, 30, tzinfo=BUSINESS_TZ)


@pytest.fixture(scope="module")
def demo_world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoTemplate:
    """The demo loaded once per module (a database file and its calendars), copied per test."""
    return demo_template(tmp_path_factory, sqlite_template, NOW, name="oversight-demo", **CHECKPOINTS)


@pytest.fixture
def world(demo_world: DemoTemplate, tmp_path: Path) -> Iterator[App]:
    with demo_app(demo_world, tmp_path) as application:
        yield application


def outbox(application: App) -> list[Any]:
    return application.db.outbox.rows(limit=10_000)


def failed_mail(application: App) -> int:
    """Run the dispatcher against a server that refuses the unit's address for good (550):
    case 23's 整改通知 fails; the other pending notice is stale and cancelled. The failed row's id."""
    rows = {r.case_id: r for r in outbox(application) if r.status == "pending"}
    row = next(r for r in rows.values() if r.kind == "rectification_notice" and r.case_id is not None
               and application.db.read.case_states([r.case_id])[r.case_id].state == "rectification")
    transport = InMemoryTransport()
    for contact in application.db.read.case_states([row.case_id])[row.case_id].contacts:
        transport.fail(contact["email"], permanent=True, code=550, detail="mailbox unavailable")
    asyncio.run(dispatch(application.db, application.calendars, transport, application.clock.now(),
                         application.dispatch_settings()))
    failed = [r for r in outbox(application) if r.status == "failed"]
    assert [r.id for r in failed] == [row.id]
    return row.id


# ---------------------------------------------------------------- the page

@pytest.mark.parametrize("login", ["coord-shanxi", "audit-shanxi", "demo-admin"])
def test_the_calendar_lists_the_rounds_milestones_with_chinese_dates(world: App, login: str,
                                                                      demo_world: DemoTemplate) -> None:
    result = demo_world.result
    client = signed_in(world, login)
    page = client.get(f"/calendar?round={result.round_id}")
    assert page.status_code == 200, page.text
    html = page.text
    for due, name in result.schedule:
        assert name in html
        assert zh_date(due) in html  # e.g. 2026年11月13日
    assert "各市级地区" in html and "10 个地区尚未完成，1 个已完成（共 11 个）" in html  # 太原 reported its year
    assert "13 个案件尚未完成" in html  # the evaluation: submitted and verified cases in the province
    assert "未来 30 天将发出的提醒" in html and "#23" in html  # the rectification reminders of case 23
    assert "本轮本辖区没有发送失败的邮件" in html
    assert 'action="/outbox/' not in html


def test_the_calendar_defaults_to_the_latest_round_and_shows_a_citys_own_duties(world: App) -> None:
    client = signed_in(world, "coord-taiyuan")
    html = client.get("/calendar").text
    assert "太原市" in html and "已完成" in html and "张主任" in html  # its report, recorded by its coordinator
    assert "长治市" not in html  # another city's duty is not in its subtree


def test_a_unit_is_refused_the_calendar_with_403(world: App) -> None:
    client = signed_in(world, "unit01")
    answer = client.get("/calendar")
    assert answer.status_code == 403
    assert "无权" in answer.text


def test_another_jurisdiction_or_round_is_404(world: App) -> None:
    client = signed_in(world, "coord-taiyuan")
    assert client.get("/calendar?jurisdiction=shanxi-datong").status_code == 404
    assert client.get("/calendar?jurisdiction=shanxi").status_code == 404  # its parent is outside it too
    assert client.get("/calendar?round=nowhere-2026").status_code == 404


# ---------------------------------------------------------------- sending a failed mail again

def test_a_failed_mail_is_listed_and_sent_again_by_the_provinces_coordinator(world: App) -> None:
    row_id = failed_mail(world)
    client = signed_in(world, "coord-shanxi")
    html = client.get("/calendar").text
    listed = html[html.index('id="outbox"'):]
    assert f'data-mail="{row_id}"' in listed and "550 mailbox unavailable" in listed
    assert "@" in listed.split(f'data-mail="{row_id}"', 1)[1].split("</tr>", 1)[0]  # its recipients, as sent
    assert f'action="/outbox/{row_id}/resend"' in listed
    before = len(outbox(world))

    answer = client.post(f"/outbox/{row_id}/resend", data={"csrf": csrf_of(html), "round": "", "jurisdiction": ""},
                         follow_redirects=False)
    assert answer.status_code == 303 and f"resent={row_id}" in answer.headers["location"]
    rows = outbox(world)
    assert len(rows) == before + 1
    new = max(rows, key=lambda r: r.id)
    original = next(r for r in rows if r.id == row_id)
    assert new.status == "pending" and new.dedupe_key == f"{original.dedupe_key}{RESEND_MARK}{row_id}"
    assert (new.kind, new.case_id, new.milestone, new.due_on) == (original.kind, original.case_id,
                                                                 original.milestone, original.due_on)
    assert json.loads(new.context or "{}")["resend_of"]["by"].startswith("coordinator:coord-shanxi")
    assert original.status == "failed"  # the failed row stays as it was: the record of what happened

    page = client.get(answer.headers["location"]).text
    assert "已重新排入发送队列" in page and f"已重新发送为 #{new.id}（待发送）" in page
    assert f'action="/outbox/{row_id}/resend"' not in page

    # a second click (or a second coordinator) writes nothing
    again = client.post(f"/outbox/{row_id}/resend", data={"csrf": csrf_of(html)}, follow_redirects=False)
    assert again.status_code == 303 and "again=1" in again.headers["location"]
    assert len(outbox(world)) == before + 1
    assert "此前已重新发送过" in client.get(again.headers["location"]).text

    # the dispatcher delivers it (the address accepts mail again)
    report = asyncio.run(dispatch(world.db, world.calendars, InMemoryTransport(), world.clock.now(),
                                  world.dispatch_settings()))
    assert report.sent == 1
    assert next(r for r in outbox(world) if r.id == new.id).status == "sent"


def test_resend_without_or_with_a_wrong_csrf_is_403_and_changes_nothing(world: App) -> None:
    row_id = failed_mail(world)
    client = signed_in(world, "coord-shanxi")
    before = outbox(world)
    for data in ({}, {"csrf": "not-the-session-token"}):
        answer = client.post(f"/outbox/{row_id}/resend", data=data, follow_redirects=False)
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert outbox(world) == before


def test_another_citys_coordinator_gets_404_and_an_auditor_403(world: App) -> None:
    row_id = failed_mail(world)
    before = outbox(world)
    taiyuan = signed_in(world, "coord-taiyuan")
    html = taiyuan.get("/calendar").text
    assert f'data-mail="{row_id}"' not in html  # a provincial unit's mail is not in 太原's subtree
    answer = taiyuan.post(f"/outbox/{row_id}/resend", data={"csrf": csrf_of(html)}, follow_redirects=False)
    assert answer.status_code == 404
    assert taiyuan.post("/outbox/999999/resend", data={"csrf": csrf_of(html)}).status_code == 404

    auditor = signed_in(world, "audit-shanxi")
    html = auditor.get("/calendar").text
    assert f'data-mail="{row_id}"' in html and f'action="/outbox/{row_id}/resend"' not in html  # read only
    assert auditor.post(f"/outbox/{row_id}/resend", data={"csrf": csrf_of(html)}).status_code == 403
    assert outbox(world) == before


def test_only_a_failed_mail_is_sent_again(world: App) -> None:
    row_id = failed_mail(world)
    cancelled = next(r for r in outbox(world) if r.status == "cancelled")
    client = signed_in(world, "demo-admin")
    html = client.get("/calendar").text
    before = outbox(world)
    answer = client.post(f"/outbox/{cancelled.id}/resend", data={"csrf": csrf_of(html)})
    assert answer.status_code == 409 and "只有发送失败的邮件可以重新发送" in answer.text
    assert outbox(world) == before
    assert client.post(f"/outbox/{row_id}/resend", data={"csrf": csrf_of(html)}, follow_redirects=False
                       ).status_code == 303


def test_a_long_list_of_failed_mails_is_paged_and_says_so(world: App) -> None:
    row_id = failed_mail(world)
    original = next(r for r in outbox(world) if r.id == row_id)
    # 60 more failed mails of the same case (as a long outage would leave them)
    from workflow.adapters.db.tables import outbox as outbox_table

    with world.engine.begin() as conn:
        conn.execute(insert(outbox_table), [
            {"dedupe_key": f"test-failed-{n}", "kind": original.kind, "round_id": original.round_id,
             "case_id": original.case_id, "milestone": original.milestone, "due_on": original.due_on,
             "status": "failed", "attempts": 3, "next_attempt_at": world.clock.now(),
             "created_at": world.clock.now(), "last_error": "gave up"} for n in range(60)])
    client = signed_in(world, "coord-shanxi")
    first = client.get("/calendar").text
    assert "每页最多显示 50 封" in first and "共 61 封，显示第 1–50 封" in first and "第 1 / 2 页" in first
    assert first.count("data-mail=") == 50
    second = client.get("/calendar?mail_page=2").text
    assert "显示第 51–61 封" in second and second.count("data-mail=") == 11
    assert f'data-mail="{row_id}"' in second  # the oldest last


def test_resend_is_idempotent_in_the_service_and_refuses_an_auditor(world: App) -> None:
    from workflow.domain.access import Principal
    from workflow.domain.errors import Forbidden, NotFound
    from workflow.service.outbox_admin import failed_mails, resend

    row_id = failed_mail(world)
    admin = Principal(0, "ops", "admin")
    elsewhere = Principal(0, "x", "coordinator", jurisdiction_path="/shanxi/shanxi-datong/")
    auditor = Principal(0, "a", "auditor", jurisdiction_path="/shanxi/")
    with pytest.raises(NotFound):
        resend(world.db, row_id, elsewhere, world.clock.now())
    with pytest.raises(Forbidden):
        resend(world.db, row_id, auditor, world.clock.now())
    assert world.db.operator.events("mail") == []  # refusals record nothing
    assert resend(world.db, row_id, admin, world.clock.now()).created
    assert not resend(world.db, row_id, admin, world.clock.now()).created
    # who sent which mail again is on the operator log, once (the second press added nothing)
    [logged] = world.db.operator.events("mail")
    assert logged.type == "MailResent" and logged.actor.startswith("admin:ops")
    assert logged.payload["row"] == row_id and logged.payload["key"].endswith(f":resend:{row_id}")
    listed = failed_mails(world.db, admin)
    assert [m.row.id for m in listed.mails] == [row_id] and listed.mails[0].resent_as is not None
    assert failed_mails(world.db, elsewhere).mails == []
    assert dataclasses.asdict(listed)["truncated"] is False


def test_the_calendar_lists_the_subtrees_robot_channels_with_their_keys_hidden(world: App) -> None:
    from workflow.domain.access import Principal
    from workflow.service.channels import add_channel

    assert 'data-testid="no-channels"' in signed_in(world, "coord-shanxi").get("/calendar").text
    admin = Principal(0, "ops", "admin")
    key = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    add_channel(world.db, admin, world.clock.now(), jurisdiction_id="shanxi-taiyuan", kind="wecom",
                url=f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}", audience="units",
                name="太原市创建工作群")
    add_channel(world.db, admin, world.clock.now(), jurisdiction_id="shanxi-datong", kind="dingtalk",
                url="https://oapi.dingtalk.com/robot/send?access_token=datong-token", secret="SECdatong",
                audience="coordinators", name="大同市协调群")
    province = signed_in(world, "coord-shanxi").get("/calendar").text
    assert "太原市创建工作群" in province and "大同市协调群" in province and "企业微信群机器人" in province
    assert key not in province and "datong-token" not in province and "SECdatong" not in province
    assert "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?…5aaa" in province
    taiyuan = signed_in(world, "coord-taiyuan").get("/calendar").text
    assert "太原市创建工作群" in taiyuan and "大同市协调群" not in taiyuan


# ---------------------------------------------------------------- spot checks' outcomes

def test_a_coordinator_records_what_the_spot_check_found_and_the_title_is_held(world: App,
                                                                               demo_world: DemoTemplate) -> None:
    from workflow.domain.case import Actor
    from workflow.service.cases import read_case
    from workflow.service.oversight import spot_check

    round_id = demo_world.result.round_id
    check = spot_check(world.db, round_id, "shanxi", share="1", seed=5, actor=Actor("coordinator", "t"),
                       now=world.clock.now())
    first, second = check.drawn[:2]
    client = signed_in(world, "coord-shanxi")
    html = client.get(f"/calendar?round={round_id}").text
    assert f'action="/spot-checks/{check.id}/outcome"' in html and "限期20天整改" in html
    # problems need the findings: refused, every problem said in Chinese, nothing written
    bad = client.post(f"/spot-checks/{check.id}/outcome", data={
        "csrf": csrf_of(html), "round": round_id, "case_id": first, "outcome": "problems"}, follow_redirects=False)
    assert bad.status_code == 422 and "发现问题时须填写问题情况" in bad.text and "outcomes[0].findings" in bad.text
    assert read_case(world.db, first).case.state == "certified"
    done = client.post(f"/spot-checks/{check.id}/outcome", data={
        "csrf": csrf_of(html), "round": round_id, "case_id": first, "outcome": "problems",
        "findings": "能耗统计台账缺失", "evidence": "实地抽查记录"}, follow_redirects=False)
    assert done.status_code == 303 and f"recorded={first}" in done.headers["location"]
    held = read_case(world.db, first).case
    assert (held.state, held.held_title) == ("rectification", "certified")
    assert "称号（已认定）在整改期间暂停" in client.get(f"/cases/{first}").text
    client.post(f"/spot-checks/{check.id}/outcome", data={
        "csrf": csrf_of(html), "round": round_id, "case_id": second, "outcome": "passed"}, follow_redirects=False)
    page = client.get(done.headers["location"]).text
    assert f"已记录案件 #{first} 的结果" in page
    assert "发现问题 → 限期整改（称号暂停）" in page and "能耗统计台账缺失" in page and "通过 → 称号保留" in page
    # an auditor reads the outcomes and records none
    auditor = signed_in(world, "audit-shanxi")
    seen = auditor.get(f"/calendar?round={round_id}").text
    assert "能耗统计台账缺失" in seen and 'action="/spot-checks/' not in seen
    refused = auditor.post(f"/spot-checks/{check.id}/outcome", data={
        "csrf": csrf_of(seen), "round": round_id, "case_id": check.drawn[-1], "outcome": "passed"},
        follow_redirects=False)
    assert refused.status_code == 403


def test_the_national_bureaus_result_for_a_filed_case_revokes_its_title(world: App, demo_world: DemoTemplate) -> None:
    from workflow.domain.case import Actor
    from workflow.service.cases import read_case
    from workflow.service.oversight import file_round

    round_id = demo_world.result.round_id
    batch = file_round(world.db, round_id, "shanxi", actor=Actor("coordinator", "t"), now=world.clock.now())
    case_id = batch.cases[0]["case_id"]
    client = signed_in(world, "coord-shanxi")
    html = client.get(f"/calendar?round={round_id}").text
    assert f'action="/filings/{batch.id}/national-result"' in html
    no_document = client.post(f"/filings/{batch.id}/national-result", data={
        "csrf": csrf_of(html), "case_id": case_id, "outcome": "problems", "findings": "实地抽查不合格"},
        follow_redirects=False)
    assert no_document.status_code == 422 and "须填写国管局公布结果的文件" in no_document.text
    done = client.post(f"/filings/{batch.id}/national-result", data={
        "csrf": csrf_of(html), "case_id": case_id, "outcome": "problems", "findings": "实地抽查不合格",
        "document": "国管节能〔2027〕3号"}, follow_redirects=False)
    assert done.status_code == 303
    assert read_case(world.db, case_id).case.state == "revoked"
    page = client.get(done.headers["location"]).text
    assert f'data-national="{case_id}"' in page and "发现问题 → 撤销称号" in page and "国管节能〔2027〕3号" in page


def test_a_coordinator_adds_and_stops_a_group_robot_in_the_console(world: App) -> None:
    client = signed_in(world, "coord-shanxi")
    html = client.get("/calendar").text
    assert 'action="/channels"' in html
    bad = client.post("/channels", data={"csrf": csrf_of(html), "name": "", "kind": "fax", "audience": "units",
                                         "url": "http://example.com/"}, follow_redirects=False)
    assert bad.status_code == 422 and "渠道类型须为以下之一" in bad.text and "请填写渠道名称" in bad.text
    assert world.db.channels.channels(None) == []
    done = client.post("/channels", data={
        "csrf": csrf_of(html), "name": "省直创建单位群", "kind": "wecom", "audience": "units", "jurisdiction": "shanxi",
        "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef123456"}, follow_redirects=False)
    assert done.status_code == 303 and "channel=added" in done.headers["location"]
    [made] = world.db.channels.channels(None)
    page = client.get(done.headers["location"]).text
    assert "已添加推送渠道" in page and f'data-channel="{made.id}"' in page and "abcdef123456" not in page
    auditor = signed_in(world, "audit-shanxi")
    seen = auditor.get("/calendar").text
    assert "省直创建单位群" in seen and 'action="/channels"' not in seen
    assert auditor.post(f"/channels/{made.id}/disable", data={"csrf": csrf_of(seen)},
                        follow_redirects=False).status_code == 403
    off = client.post(f"/channels/{made.id}/disable", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert off.status_code == 303 and world.db.channels.get(made.id).disabled_at is not None
