"""Notifications through robot channels beside the mail (``service/channels.py``, the dispatcher),
on SQLite and PostgreSQL, against the fake WeCom, DingTalk and webhook servers: a unit with no
email is reached through its jurisdiction's group, a unit's own webhook gets its notices, the
coordinators' group gets their reminder once (not once per coordinator), each delivery once per
reason and channel, a rate limit waits as the platform says, a disabled channel gets nothing."""
from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from notifications.robots import RobotTransport
from notifications.testing import InMemoryTransport
from workflow.adapters.db.store import Database
from workflow.domain.access import Principal
from workflow.domain.errors import Forbidden, InvalidInput, NotFound
from workflow.service.channels import add_channel, disable_channel, list_channels, masked
from workflow.service.deadlines import sweep
from workflow.service.directory import add_coordinator
from workflow.service.dispatch import DispatchReport, dispatch

from ..robot_servers import RobotServers
from ..support import CALENDARS, OPERATOR
from .test_dispatch import SETTINGS, at, build, outbox

ADMIN = Principal(0, "ops", "admin")
DAY = date(2021, 9, 30)  # the first reminders of the self-assessment (due October 20)


@pytest.fixture(scope="module")
def robots():
    with RobotServers() as servers:
        yield servers


def run(db: Database, now: Any, transport: InMemoryTransport) -> DispatchReport:
    """Dispatch until nothing more is claimed at ``now`` (the mails, then their channels' rows)."""
    total = DispatchReport()
    for _ in range(20):
        report = asyncio.run(dispatch(db, CALENDARS, transport, now, SETTINGS, RobotTransport(timeout=1.0)))
        if report.claimed == 0:
            return total
        for name in ("claimed", "sent", "retrying", "failed", "cancelled"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
    raise AssertionError("dispatch keeps claiming rows")


def world(db: Database, tmp_path: Path, robots: RobotServers) -> dict[str, Any]:
    """省甲厅 with an email and its own webhook, 省乙厅 with a phone only; two coordinators of the
    province; the province's units group on WeCom and its coordinators' group on DingTalk."""
    w = build(db, tmp_path, [("省甲厅", "jia@units.example.cn"), ("省乙厅", "")], contact_phone="0351-7654321")
    now = at(date(2021, 5, 26), 8)
    for name, email in (("王科长", "wang@jgswj.example.cn"), ("李科员", "li@jgswj.example.cn")):
        add_coordinator(db, "shanxi", name, email, actor=OPERATOR, now=now)
    wecom, dingtalk, hook = robots.robot("wecom"), robots.robot("dingtalk"), robots.robot("webhook")
    groups = {
        "units": add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="wecom", url=wecom.url,
                             audience="units", name="山西省创建单位群", any_host=True),
        "coordinators": add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="dingtalk", url=dingtalk.url,
                                    secret=dingtalk.secret, audience="coordinators", name="省局协调人员群",
                                    any_host=True),
        "own": add_channel(db, ADMIN, now, jurisdiction_id=None, kind="webhook", url=hook.url, secret=hook.secret,
                           audience="unit", unit_id=w.unit["省甲厅"], name="省甲厅办公系统", any_host=True),
    }
    return {"world": w, "channels": groups}


def channel_rows(db: Database) -> list[Any]:
    return [r for r in outbox(db) if r.channel_id is not None]


def test_each_channel_gets_what_it_is_for_once(db: Database, tmp_path: Path, robots: RobotServers) -> None:
    made = world(db, tmp_path, robots)
    units, coordinators, own = (made["channels"][k].id for k in ("units", "coordinators", "own"))
    before = {k: len(robots.received[k]) for k in ("wecom", "dingtalk", "webhook")}
    sweep(db, CALENDARS, at(DAY))
    mail = InMemoryTransport()
    run(db, at(DAY), mail)
    got = {k: robots.received[k][before[k]:] for k in before}
    # the unit with no email: its reminder through the units' group, and the mail failed as before
    assert len(got["wecom"]) == 1 and "省乙厅" in got["wecom"][0]["markdown"]["content"]
    assert "自评" in got["wecom"][0]["markdown"]["content"]
    # the unit with an email: the mail, and its own webhook; not the group
    assert [m["title"] for m in got["webhook"]] and "省甲厅" in got["webhook"][0]["text"]
    assert mail.to("jia@units.example.cn")
    assert got["dingtalk"] == []  # nothing for the coordinators yet
    # October 21: both missed the self-assessment; the coordinators' digest: two mails, one group message
    missed = date(2021, 10, 21)
    sweep(db, CALENDARS, at(missed))
    run(db, at(missed), mail)
    got = {k: robots.received[k][before[k]:] for k in before}
    digests = [r for r in outbox(db) if r.kind == "digest"]
    assert len([r for r in digests if r.channel_id is None]) == 2
    assert len([r for r in digests if r.channel_id == coordinators]) == 1
    assert len(got["dingtalk"]) == 1 and "省甲厅" in got["dingtalk"][0]["markdown"]["text"]
    group_text = got["dingtalk"][0]["markdown"]["text"]
    assert "各位协调人员：" in group_text and "王科长" not in group_text and "李科员" not in group_text
    assert "此消息由系统自动发送" in group_text and "此邮件" not in group_text
    assert len(got["wecom"]) == 2 and len(got["webhook"]) == 2  # each unit's miss notice, where it is reached
    rows = channel_rows(db)
    assert {r.channel_id for r in rows} == {units, coordinators, own}
    assert all(r.status == "sent" and r.message_id for r in rows), [(r.dedupe_key, r.status, r.last_error)
                                                                     for r in rows]
    assert json.loads(next(r.recipients for r in rows if r.channel_id == units)) == ["wecom:山西省创建单位群"]
    # again the same day: nothing more anywhere
    sweep(db, CALENDARS, at(missed, 10))
    assert run(db, at(missed, 10), mail).claimed == 0
    assert {k: len(robots.received[k]) for k in before} == {k: before[k] + len(got[k]) for k in before}


def test_a_rate_limit_waits_as_the_platform_says_then_delivers(db: Database, tmp_path: Path,
                                                               robots: RobotServers) -> None:
    made = world(db, tmp_path, robots)
    units = made["channels"]["units"].id
    sweep(db, CALENDARS, at(DAY))
    robots.fail("wecom", "429long")  # Retry-After: 600 seconds, longer than the first backoff
    before = len(robots.received["wecom"])
    run(db, at(DAY), InMemoryTransport())
    [row] = [r for r in channel_rows(db) if r.channel_id == units]
    assert row.status == "pending" and "429" in row.last_error
    assert row.attempts == 0  # a platform's rate limit is not one of the message's tries
    assert row.next_attempt_at >= at(DAY) + timedelta(minutes=10)  # as the platform said
    run(db, at(DAY) + timedelta(minutes=5), InMemoryTransport())
    assert [r.status for r in channel_rows(db) if r.channel_id == units] == ["pending"]
    run(db, at(DAY) + timedelta(minutes=11), InMemoryTransport())
    [row] = [r for r in channel_rows(db) if r.channel_id == units]
    assert row.status == "sent" and len(robots.received["wecom"]) == before + 1


def test_a_refused_signature_fails_for_good_and_is_recorded_on_the_case(db: Database, tmp_path: Path,
                                                                        robots: RobotServers) -> None:
    w = build(db, tmp_path, [("省乙厅", "")], contact_phone="0351-7654321")
    now = at(date(2021, 5, 26), 8)
    wrong = robots.robot("dingtalk", secret="SECnot-the-robots")
    add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="dingtalk", url=wrong.url, secret=wrong.secret,
                audience="units", name="签名配错的群", any_host=True)
    sweep(db, CALENDARS, at(DAY))
    run(db, at(DAY), InMemoryTransport())
    [row] = channel_rows(db)
    assert row.status == "failed" and "310000" in row.last_error and "sign not match" in row.last_error
    from workflow.service.cases import read_case

    failures = [e for e in read_case(db, w.case["省乙厅"], events=True).events if e.type == "NotificationFailed"]
    assert any(e.payload["notification"] == row.dedupe_key for e in failures)


def test_a_disabled_channel_gets_nothing_more(db: Database, tmp_path: Path, robots: RobotServers) -> None:
    made = world(db, tmp_path, robots)
    for channel in made["channels"].values():
        disable_channel(db, ADMIN, channel.id, at(DAY, 8))
    before = {k: len(robots.received[k]) for k in ("wecom", "dingtalk", "webhook")}
    sweep(db, CALENDARS, at(DAY))
    run(db, at(DAY), InMemoryTransport())
    assert channel_rows(db) == [] and {k: len(robots.received[k]) for k in before} == before


def test_adding_a_channel_checks_everything_at_once_and_who_may(db: Database, tmp_path: Path) -> None:
    build(db, tmp_path, [("省甲厅", "jia@units.example.cn")])
    now = at(date(2021, 5, 26), 8)
    with pytest.raises(InvalidInput) as refused:
        add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="feishu", url="ftp://x", audience="all", name="")
    assert {p.where for p in refused.value.problems} == {"kind", "url", "audience", "name"}
    assert all(p.zh for p in refused.value.problems)
    with pytest.raises(InvalidInput) as refused:
        add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="webhook", url="https://hook.example.cn/x",
                    audience="unit", name="无密钥")
    assert {p.where for p in refused.value.problems} == {"secret", "unit"}
    city = Principal(0, "zhang", "coordinator", jurisdiction_path="/shanxi/shanxi-taiyuan/")
    with pytest.raises(NotFound):  # the province is outside a city's scope
        add_channel(db, city, now, jurisdiction_id="shanxi", kind="wecom", url="https://qyapi.weixin.qq.com/x?key=k",
                    audience="units", name="省群")
    auditor = Principal(0, "a", "auditor", jurisdiction_path="/shanxi/")
    with pytest.raises(Forbidden):
        add_channel(db, auditor, now, jurisdiction_id="shanxi", kind="wecom",
                    url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef123456", audience="units",
                    name="省群")
    made = add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="wecom",
                       url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abcdef123456", audience="units",
                       name="省群")
    assert masked(made.url) == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?…3456"
    assert [c.id for c in list_channels(db, auditor)] == [made.id]
    assert list_channels(db, city) == []
    [logged] = db.operator.events("channels")
    assert logged.type == "ChannelAdded" and "abcdef" not in json.dumps(logged.payload, ensure_ascii=False)


@pytest.mark.parametrize("url", ["https://qyapi.weixin.qq.com:abc/cgi-bin/webhook/send?key=k",
                                 "https://qyapi.weixin.qq.com\u200b/cgi-bin/webhook/send?key=k",
                                 "https://user:pw@qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                                 "http://[::1/x", "https://evil.example/cgi-bin/webhook/send?key=k",
                                 "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"])
def test_an_address_that_cannot_be_called_or_is_not_the_platforms_is_refused(db: Database, tmp_path: Path,
                                                                              url: str) -> None:
    build(db, tmp_path, [("省甲厅", "jia@units.example.cn")])
    with pytest.raises(InvalidInput) as refused:
        add_channel(db, ADMIN, at(DAY), jurisdiction_id="shanxi", kind="wecom", url=url, audience="units",
                    name="省群")
    assert [p.where for p in refused.value.problems] == ["url"] and refused.value.problems[0].zh
    assert db.channels.channels() == []


def test_a_channel_that_cannot_be_called_never_holds_up_the_mail(db: Database, tmp_path: Path) -> None:
    """A bad address stored before it was checked (an older version, a hand edit): its messages
    retry, and the batch's mails are recorded once — never sent again."""
    from dataclasses import replace

    w = build(db, tmp_path, [("省甲厅", "jia@units.example.cn"), ("省乙厅", "")], contact_phone="0351-7654321")
    good = add_channel(db, ADMIN, at(DAY, 8), jurisdiction_id="shanxi", kind="wecom",
                       url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", audience="units", name="好群")
    with db.unit_of_work(core=True) as uow:  # behind the service's back
        uow.channels.add(replace(good, url="https://qyapi.weixin.qq.com:abc/x?key=k", name="坏群"))
        uow.commit()
    sweep(db, CALENDARS, at(DAY))
    mail = InMemoryTransport()
    for minutes in range(0, 60, 5):
        run(db, at(DAY) + timedelta(minutes=minutes), mail)
    assert len(mail.to("jia@units.example.cn")) == 1  # the reminder, once
    bad = [r for r in channel_rows(db) if r.channel_id != good.id]
    assert bad and all(r.status == "pending" and "cannot" in r.last_error for r in bad)
    assert w.case  # the world was built


def test_a_failed_robot_message_is_sent_again_to_its_channel_not_by_mail(db: Database, tmp_path: Path,
                                                                         robots: RobotServers) -> None:
    from workflow.service.outbox_admin import resend

    made = world(db, tmp_path, robots)
    own = made["channels"]["own"].id
    sweep(db, CALENDARS, at(DAY))
    robots.fail("webhook", "400")
    mail = InMemoryTransport()
    run(db, at(DAY), mail)
    [failed] = [r for r in channel_rows(db) if r.channel_id == own]
    assert failed.status == "failed"
    mails_before = len(mail.sent)
    hooks_before = len(robots.received["webhook"])
    done = resend(db, failed.id, ADMIN, at(DAY, 11))
    assert done.created
    run(db, at(DAY, 11), mail)
    assert len(mail.sent) == mails_before  # no mail
    assert len(robots.received["webhook"]) == hooks_before + 1
    again = [r for r in channel_rows(db) if r.dedupe_key == done.dedupe_key]
    assert [r.status for r in again] == ["sent"] and again[0].channel_id == own


def test_a_group_gets_at_most_ten_messages_a_batch(db: Database, tmp_path: Path, robots: RobotServers) -> None:
    """Robots take 20 messages a minute: 25 units without email reach their group 10 a batch."""
    build(db, tmp_path, [(f"省{i:02d}厅", "") for i in range(25)], contact_phone="0351-7654321")
    wecom = robots.robot("wecom")
    add_channel(db, ADMIN, at(DAY, 8), jurisdiction_id="shanxi", kind="wecom", url=wecom.url, audience="units",
                name="省直单位群", any_host=True)
    sweep(db, CALENDARS, at(DAY))
    before = len(robots.received["wecom"])
    sent = []
    for minute in range(4):
        run(db, at(DAY) + timedelta(minutes=minute), InMemoryTransport())
        sent.append(len(robots.received["wecom"]) - before)
    assert sent == [10, 20, 25, 25]
    assert all(r.status == "sent" and r.attempts == 1 for r in channel_rows(db))


def test_a_channel_disabled_after_its_rows_were_written_sends_nothing(db: Database, tmp_path: Path,
                                                                      robots: RobotServers) -> None:
    made = world(db, tmp_path, robots)
    sweep(db, CALENDARS, at(DAY))
    asyncio.run(dispatch(db, CALENDARS, InMemoryTransport(), at(DAY), SETTINGS, RobotTransport(timeout=1.0)))
    assert channel_rows(db) and all(r.status == "pending" for r in channel_rows(db))  # written, not yet sent
    for channel in made["channels"].values():
        disable_channel(db, ADMIN, channel.id, at(DAY))
    before = {k: len(robots.received[k]) for k in ("wecom", "dingtalk", "webhook")}
    run(db, at(DAY), InMemoryTransport())
    assert {k: len(robots.received[k]) for k in before} == before
    assert {r.status for r in channel_rows(db)} == {"cancelled"}


def test_a_units_contact_with_a_mobile_is_mentioned_in_its_group(db: Database, tmp_path: Path,
                                                                  robots: RobotServers) -> None:
    """附件2's 联系方式 is one field: a mobile number there is @-ed (WeCom: a text message with
    mentioned_mobile_list; DingTalk: at.atMobiles and the @ in the text); a landline is not."""
    build(db, tmp_path, [("省乙厅", "")], contact_phone="139 1234-5678")
    now = at(date(2021, 5, 26), 8)
    wecom, dingtalk = robots.robot("wecom"), robots.robot("dingtalk")
    add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="wecom", url=wecom.url, audience="units",
                name="山西省创建单位群", any_host=True)
    add_channel(db, ADMIN, now, jurisdiction_id="shanxi", kind="dingtalk", url=dingtalk.url, secret=dingtalk.secret,
                audience="units", name="省直单位钉钉群", any_host=True)
    before = {k: len(robots.received[k]) for k in ("wecom", "dingtalk")}
    sweep(db, CALENDARS, at(DAY))
    run(db, at(DAY), InMemoryTransport())
    [w] = robots.received["wecom"][before["wecom"]:]
    assert w["msgtype"] == "text" and w["text"]["mentioned_mobile_list"] == ["13912345678"]
    assert "省乙厅" in w["text"]["content"]
    [d] = robots.received["dingtalk"][before["dingtalk"]:]
    assert d["at"]["atMobiles"] == ["13912345678"] and "@13912345678" in d["markdown"]["text"]
    assert all(r.status == "sent" for r in channel_rows(db))


def test_mobiles_of_contacts() -> None:
    from workflow.service.channels import mobiles_of

    assert mobiles_of([{"phone": "0351-2859734"}, {"phone": "+86 138-0000-1111"}, {"phone": "13800001111"},
                       {"name": "无电话"}, {"phone": "12345678901"}]) == ("13800001111",)
    assert mobiles_of(None) == ()
