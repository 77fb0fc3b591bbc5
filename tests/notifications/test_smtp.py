"""SmtpTransport against a real aiosmtpd server on 127.0.0.1."""
from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import date

from notifications import Address, DeliveryResult, SmtpTransport, Transport, deadline_event
from tests.notifications.helpers import (
    NOW,
    PASSWORD,
    SENDER,
    UNIT,
    USERNAME,
    SmtpServer,
    free_port,
    message,
    parse,
    unfold,
    with_ics,
)


def transport(server: SmtpServer) -> SmtpTransport:
    return SmtpTransport(server.host, server.port, starttls=False, timeout=10.0, sender_hostname="tests.local")


def send(t: SmtpTransport, batch: list) -> list[DeliveryResult]:
    return asyncio.run(t.send_many(batch))


def test_is_a_transport(smtp_server: SmtpServer) -> None:
    assert isinstance(transport(smtp_server), Transport)


def test_chinese_message_round_trips(smtp_server: SmtpServer) -> None:
    ics = deadline_event("case-7/self-assessment@jgswj.example.cn", "自评报告报送截止", "请按时报送，谢谢；", date(2021, 10, 20), stamp=NOW)
    msg = with_ics(message(7), ics)

    [result] = send(transport(smtp_server), [(msg, NOW)])

    assert result == DeliveryResult(msg.message_id, ok=True, detail=result.detail)
    [received] = smtp_server.handler.received
    assert received.mail_from == SENDER.email
    assert received.rcpt_tos == (UNIT.email,)
    parsed = parse(received.data)
    assert parsed["Subject"] == msg.subject
    assert parsed["Message-ID"] == msg.message_id
    assert parsed["From"].addresses[0].display_name == "省机关事务管理局"
    assert parsed["From"].addresses[0].addr_spec == SENDER.email
    assert parsed["To"].addresses[0].display_name == "某某市财政局（机关）"
    assert parsed["Date"].datetime == NOW
    assert parsed.get_content_type() == "multipart/mixed"
    body = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == msg.text  # CRLF on the wire
    assert html is not None and html.get_content().strip() == msg.html
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "PUBLISH"
    assert attachment.get_filename() == "截止日期.ics"
    calendar = attachment.get_payload(decode=True)
    assert calendar == ics
    assert "DTSTART;VALUE=DATE:20211020" in unfold(calendar)


def test_hundred_messages_use_one_connection(smtp_server: SmtpServer) -> None:
    batch = [(message(n), NOW) for n in range(100)]

    results = send(transport(smtp_server), batch)

    assert [r.ok for r in results] == [True] * 100
    assert [r.message_id for r in results] == [m.message_id for m, _ in batch]
    assert len(smtp_server.handler.sessions) == 1
    assert len(smtp_server.handler.received) == 100
    ids = [parse(r.data)["Message-ID"] for r in smtp_server.handler.received]
    assert ids == [m.message_id for m, _ in batch]


def test_550_refusal_is_permanent_and_the_batch_goes_on(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse["gone@example.cn"] = "550 5.1.1 <gone@example.cn>: 用户不存在 no such user"
    gone = Address("gone@example.cn", "已撤销单位")
    batch = [(message(1), NOW), (message(2, to=(gone,)), NOW), (message(3), NOW)]

    first, refused, third = send(transport(smtp_server), batch)

    assert first.ok and third.ok
    assert not refused.ok and refused.permanent
    assert refused.code == 550
    assert "no such user" in refused.detail
    assert [parse(r.data)["Message-ID"] for r in smtp_server.handler.received] == [
        batch[0][0].message_id,
        batch[2][0].message_id,
    ]
    assert len(smtp_server.handler.sessions) == 1


def test_451_refusal_is_temporary(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse["busy@example.cn"] = "451 4.3.0 mailbox busy, try later"

    [result] = send(transport(smtp_server), [(message(1, to=(Address("busy@example.cn"),)), NOW)])

    assert not result.ok and not result.permanent
    assert result.code == 451
    assert "try later" in result.detail
    assert smtp_server.handler.received == []


def test_partly_refused_message_is_delivered_to_the_others(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse["gone@example.cn"] = "550 5.1.1 no such user"
    msg = message(1, to=(UNIT, Address("gone@example.cn")))

    [result] = send(transport(smtp_server), [(msg, NOW)])

    assert result.ok
    assert "gone@example.cn" in result.detail and "550" in result.detail
    [received] = smtp_server.handler.received
    assert received.rcpt_tos == (UNIT.email,)


def test_server_down_gives_temporary_failures_without_raising() -> None:
    t = SmtpTransport("127.0.0.1", free_port(), starttls=False, timeout=10.0, sender_hostname="tests.local")

    results = send(t, [(message(n), NOW) for n in range(3)])

    assert len(results) == 3
    assert all(not r.ok and not r.permanent for r in results)
    assert results[0].detail


def test_reconnects_once_when_the_server_drops_the_connection(smtp_server: SmtpServer) -> None:
    smtp_server.handler.drop_after = 3
    batch = [(message(n), NOW) for n in range(5)]

    results = send(transport(smtp_server), batch)

    assert [r.ok for r in results] == [True] * 5
    assert len(smtp_server.handler.sessions) == 2
    assert [r.connection for r in smtp_server.handler.received] == [0, 0, 0, 1, 1]


def test_reconnects_only_once_per_batch(smtp_server: SmtpServer) -> None:
    smtp_server.handler.drop_after = 1
    batch = [(message(n), NOW) for n in range(4)]

    results = send(transport(smtp_server), batch)

    assert [r.ok for r in results] == [True, True, False, False]
    assert all(not r.permanent for r in results[2:])
    assert len(smtp_server.handler.sessions) == 2


def test_each_batch_opens_its_own_connection(smtp_server: SmtpServer) -> None:
    t = transport(smtp_server)
    send(t, [(message(1), NOW)])
    send(t, [(message(2), NOW)])
    assert send(t, []) == []

    assert len(smtp_server.handler.sessions) == 2


def test_invalid_message_date_is_a_permanent_failure_of_that_message_only(smtp_server: SmtpServer) -> None:
    naive = NOW.replace(tzinfo=None)

    bad, good = send(transport(smtp_server), [(message(1), naive), (message(2), NOW)])

    assert not bad.ok and bad.permanent and "timezone" in bad.detail
    assert good.ok
    assert len(smtp_server.handler.received) == 1


def test_non_ascii_address_uses_smtputf8(smtp_server: SmtpServer) -> None:
    to = Address("单位@例子.中国", "某单位")

    [result] = send(transport(smtp_server), [(message(1, to=(to,)), NOW)])

    assert result.ok
    [received] = smtp_server.handler.received
    assert received.rcpt_tos == ("单位@例子.中国",)
    # SMTPUTF8 headers are raw UTF-8 (the bytes parser would surrogate-escape them).
    parsed = email.message_from_string(received.data.decode("utf-8"), policy=email.policy.default)
    assert parsed["To"].addresses[0].addr_spec == "单位@例子.中国"
    assert parsed["To"].addresses[0].display_name == "某单位"


def test_421_closing_reply_is_temporary_and_the_next_message_reconnects(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse["closing@example.cn"] = "421 4.3.2 service shutting down"

    closing, after = send(transport(smtp_server), [(message(1, to=(Address("closing@example.cn"),)), NOW), (message(2), NOW)])

    assert not closing.ok and not closing.permanent and closing.code == 421
    assert after.ok
    assert [r.connection for r in smtp_server.handler.received] == [1]


def test_logs_in_when_a_username_is_set(smtp_server: SmtpServer) -> None:
    t = SmtpTransport(
        smtp_server.host, smtp_server.port, username=USERNAME, password=PASSWORD, starttls=False, sender_hostname="tests.local",
        allow_plaintext_login=True,
    )

    assert all(r.ok for r in send(t, [(message(1), NOW), (message(2), NOW)]))
    assert all(r.ok for r in send(transport(smtp_server), [(message(3), NOW)]))  # no username: no login

    assert [r.login for r in smtp_server.handler.received] == [USERNAME.encode(), USERNAME.encode(), None]


def test_failed_login_fails_the_batch_temporarily(smtp_server: SmtpServer) -> None:
    t = SmtpTransport(
        smtp_server.host, smtp_server.port, username=USERNAME, password="wrong", starttls=False, sender_hostname="tests.local",
        allow_plaintext_login=True,
    )

    results = send(t, [(message(1), NOW), (message(2), NOW)])

    assert all(not r.ok and not r.permanent and r.code == 535 for r in results)
    assert smtp_server.handler.received == []
