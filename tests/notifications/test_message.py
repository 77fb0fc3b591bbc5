"""OutgoingMessage validation and to_email structure."""
from __future__ import annotations

from datetime import datetime

import pytest

from notifications import Address, Attachment, to_email
from tests.notifications.helpers import NOW, SENDER, UNIT, message, parse


@pytest.mark.parametrize(
    "bad",
    ["", "no-at-sign", "two@@example.cn", "a@b@example.cn", "@example.cn", "unit@", "with space@example.cn",
     "unit@example.cn\r\nBcc: x@evil.cn", "unit@example.cn\n", "<unit@example.cn>", "a,b@example.cn"],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid email address"):
        Address(bad)


def test_display_name_with_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="display name"):
        Address("unit@example.cn", "某局\r\nBcc: x@evil.cn")


@pytest.mark.parametrize("bad", ["no-brackets@example.cn", "<no-domain>", "<a b@example.cn>", "<x@y>\r\n", ""])
def test_message_id_must_look_like_an_id(bad: str) -> None:
    with pytest.raises(ValueError, match="message_id"):
        message(message_id=bad)


@pytest.mark.parametrize("subject", ["截止\r\nBcc: x@evil.cn", "line\nbreak", "cr\ronly"])
def test_header_injection_in_subject_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        message(subject=subject)


@pytest.mark.parametrize(
    "headers",
    [(("X-Case-Id", "42\r\nBcc: x@evil.cn"),), (("X Bad", "v"),), (("X-A:B", "v"),), (("Bcc", "x@evil.cn"),), (("subject", "x"),)],
)
def test_bad_extra_headers_are_refused(headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError, match="header"):
        message(headers=headers)


def test_to_email_checks_again_when_validation_was_bypassed() -> None:
    msg = message()
    object.__setattr__(msg, "subject", "x\r\nBcc: x@evil.cn")
    with pytest.raises(ValueError, match="subject"):
        to_email(msg, date=NOW)


def test_needs_a_recipient_and_an_aware_date() -> None:
    with pytest.raises(ValueError, match="recipient"):
        message(to=())
    with pytest.raises(ValueError, match="timezone"):
        to_email(message(), date=datetime(2021, 10, 13, 9, 30))


def test_text_only_message_is_plain_text() -> None:
    email = to_email(message(html=None), date=NOW)
    assert email.get_content_type() == "text/plain"
    assert email.get_content() == message().text


def test_text_and_html_is_multipart_alternative() -> None:
    parsed = parse(to_email(message(), date=NOW).as_bytes())
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_headers_and_chinese_names_round_trip() -> None:
    msg = message(
        to=(UNIT, Address("second@example.cn", "第二单位, 办公室")),
        headers=(("Auto-Submitted", "auto-generated"), ("X-Case-Id", "案件-42"), ("Reply-To", "office@example.cn")),
    )
    raw = to_email(msg, date=NOW).as_bytes()
    raw.split(b"\n\n", 1)[0].decode("ascii")  # the top-level headers are all RFC 2047-encoded
    parsed = parse(raw)
    assert parsed["Subject"] == msg.subject
    assert parsed["Message-ID"] == msg.message_id
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        ("某某市财政局（机关）", "unit@example.cn"),
        ("第二单位, 办公室", "second@example.cn"),
    ]
    assert parsed["From"].addresses[0].display_name == SENDER.name
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Case-Id"] == "案件-42"
    assert parsed["Reply-To"] == "office@example.cn"


def test_attachment_content_type_parameters_are_kept() -> None:
    attachment = Attachment("通知.ics", "text/calendar; method=PUBLISH; charset=utf-8", b"BEGIN:VCALENDAR\r\n")
    parsed = parse(to_email(message(attachments=(attachment,)), date=NOW).as_bytes())
    assert parsed.get_content_type() == "multipart/mixed"
    first, second = parsed.iter_parts()
    assert first.get_content_type() == "multipart/alternative"
    assert second.get_content_type() == "text/calendar"
    assert (second.get_param("method"), second.get_param("charset")) == ("PUBLISH", "utf-8")
    assert second.get_filename() == "通知.ics"
    assert second.get_payload(decode=True) == b"BEGIN:VCALENDAR\r\n"


@pytest.mark.parametrize("content_type", ["calendar", "text/calendar\r\nBcc: x", "text/calendar; =x", "te xt/plain"])
def test_bad_attachment_content_type_is_refused(content_type: str) -> None:
    with pytest.raises(ValueError):
        Attachment("a.ics", content_type, b"")
