"""A real SMTP server for the deadline tests: aiosmtpd on 127.0.0.1, plus mail and .ics parsing.

``smtp_server`` (fixture) is a running server on a free port. ``SmtpServer(port)`` can
also be created stopped and started later on the same port, to play an outage: while it
is stopped nothing listens and a client's connection is refused.

The handler stores every envelope it accepts, in order, and refuses the recipients listed
in ``refuse`` with the reply given there (``"550 5.1.1 ..."`` permanent, ``"451 ..."``
temporary).
"""
from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from notifications import SmtpTransport

from ..notifications.helpers import free_port, unescape


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return parse_mail(self.data)


@dataclass
class RecordingHandler:
    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Envelope] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self.refuse.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.received.append(Envelope(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1:``port``; ``start()``/``stop()`` as often as needed."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        assert self._controller is None, "already running"
        self._controller = Controller(self.handler, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def transport(self) -> SmtpTransport:
        return SmtpTransport(self.host, self.port, starttls=False, timeout=10.0, sender_hostname="tests.local")

    @property
    def received(self) -> list[Envelope]:
        return list(self.handler.received)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages delivered to ``address``, in order."""
        return [e.message for e in self.handler.received if address.lower() in (r.lower() for r in e.rcpt_tos)]

    def message_id_counts(self) -> Counter[str]:
        return Counter(str(e.message["Message-ID"]) for e in self.handler.received)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- parsing
def parse_mail(data: bytes) -> EmailMessage:
    """Raw bytes → message, the way a mail client reads them."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None, "no text/plain part"
    return part.get_content().replace("\r\n", "\n")


def html_body(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None, "no text/html part"
    return part.get_content()


def ics_attachments(msg: EmailMessage) -> list[bytes]:
    return [a.get_payload(decode=True) for a in msg.iter_attachments() if a.get_content_type() == "text/calendar"]


@dataclass(frozen=True)
class IcsEvent:
    uid: str
    dtstart: date
    dtend: date
    summary: str
    properties: dict[str, str]


def parse_ics(data: bytes) -> list[IcsEvent]:
    """A strict reading of RFC 5545: CRLF lines of at most 75 octets, folding, balanced
    BEGIN/END, NAME[;PARAMS]:VALUE content lines, and the VEVENTs with their dates."""
    assert data.endswith(b"\r\n"), "an iCalendar stream ends with CRLF"
    for physical in data.split(b"\r\n")[:-1]:
        assert len(physical) <= 75, f"line longer than 75 octets: {physical!r}"
    text = data.decode("utf-8")
    lines = text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")[:-1]
    stack: list[str] = []
    events: list[IcsEvent] = []
    current: dict[str, str] = {}
    for line in lines:
        name_params, sep, value = line.partition(":")
        assert sep, f"not a content line: {line!r}"
        name = name_params.split(";", 1)[0].upper()
        assert name and all(ch.isalnum() or ch == "-" for ch in name), f"bad property name in {line!r}"
        if name == "BEGIN":
            stack.append(value)
            if value == "VEVENT":
                current = {}
        elif name == "END":
            assert stack and stack.pop() == value, f"END:{value} does not close {stack}"
            if value == "VEVENT":
                events.append(IcsEvent(
                    uid=current["UID"], dtstart=_ics_date(current["DTSTART;VALUE=DATE"]),
                    dtend=_ics_date(current["DTEND;VALUE=DATE"]), summary=unescape(current["SUMMARY"]),
                    properties=dict(current)))
        elif stack and stack[-1] == "VEVENT":
            current[name_params.upper()] = value
    assert stack == [], f"unclosed components {stack}"
    assert text.startswith("BEGIN:VCALENDAR\r\n")
    return events


def _ics_date(value: str) -> date:
    assert len(value) == 8 and value.isdigit(), value
    return date(int(value[:4]), int(value[4:6]), int(value[6:]))


