"""Shared test helpers: message factories, a minimal .ics parser, a recording SMTP handler."""
from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from notifications import Address, Attachment, OutgoingMessage

CST = timezone(timedelta(hours=8))
NOW = datetime(2021, 10, 13, 9, 30, tzinfo=CST)
SENDER = Address("noreply@jgswj.example.cn", "省机关事务管理局")
UNIT = Address("unit@example.cn", "某某市财政局（机关）")


def message(n: int = 0, *, to: tuple[Address, ...] = (UNIT,), **overrides: Any) -> OutgoingMessage:
    """A Chinese reminder with text and HTML; ``n`` makes the Message-ID unique."""
    values: dict[str, Any] = dict(
        message_id=f"<reminder.case-{n}.t7@jgswj.example.cn>",
        sender=SENDER,
        to=to,
        subject=f"【提醒】自评报告、自评打分表和佐证材料报送截止日期：2021年10月20日（还有7天）#{n}",
        text="某某市财政局：\n请于2021年10月20日前报送自评报告。\n",
        html="<p>某某市财政局：</p><p>请于<strong>2021年10月20日</strong>前报送自评报告。</p>",
    )
    values.update(overrides)
    return OutgoingMessage(**values)


def with_ics(msg: OutgoingMessage, ics: bytes) -> OutgoingMessage:
    """``msg`` with ``ics`` attached as a calendar invitation."""
    attachment = Attachment("截止日期.ics", "text/calendar; method=PUBLISH; charset=utf-8", ics)
    return OutgoingMessage(
        msg.message_id, msg.sender, msg.to, msg.subject, msg.text, msg.html, (attachment,), msg.headers
    )


def parse(data: bytes) -> EmailMessage:
    """Parse raw message bytes the way a mail client would."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# ------------------------------------------------------------------ .ics
def unfold(ics: bytes) -> list[str]:
    """Physical lines → logical content lines (RFC 5545 §3.1), decoded as UTF-8."""
    assert ics.endswith(b"\r\n")
    text = ics.decode("utf-8")
    return text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n")[:-1]


def unescape(value: str) -> str:
    """Undo RFC 5545 TEXT escaping."""
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars)
            out.append("\n" if nxt in "nN" else nxt)
        else:
            out.append(ch)
    return "".join(out)


def properties(lines: list[str]) -> list[tuple[str, str]]:
    """Split content lines into (name-with-params, value) at the first ':' (no quoted params here)."""
    return [tuple(line.split(":", 1)) for line in lines]  # type: ignore[misc]


# ------------------------------------------------------------------ SMTP server
def free_port() -> int:
    """A port nothing listens on right now (Controller(port=0) does not work)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int
    login: bytes | None  # the user name the connection logged in with


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that stores messages, counts connections and can misbehave.

    ``refuse[address] = "550 5.1.1 ..."`` refuses that recipient with that reply;
    ``drop_after = n`` closes a connection, without a reply, at the MAIL command that
    follows its n-th delivered message.
    """

    refuse: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    received: list[Received] = field(default_factory=list)
    sessions: list[Any] = field(default_factory=list)  # kept alive: identity = connection
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connection(self, session: Any) -> int:
        with self._lock:
            for index, known in enumerate(self.sessions):
                if known is session:
                    return index
            self.sessions.append(session)
            return len(self.sessions) - 1

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        self.connection(session)
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        conn = self.connection(session)
        if self.drop_after is not None and sum(r.connection == conn for r in self.received) >= self.drop_after:
            server.transport.close()
            return "421 4.3.2 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = self.refuse.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                envelope.mail_from,
                tuple(envelope.rcpt_tos),
                envelope.original_content,
                self.connection(session),
                session.auth_data,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


USERNAME, PASSWORD = "bureau", "秘密-secret"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """Accept only USERNAME/PASSWORD (the server does not require a login)."""
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
