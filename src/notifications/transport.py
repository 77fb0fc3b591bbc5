"""Transports: deliver :class:`OutgoingMessage` batches and report one result per message.

Every transport has the same async method, ``send_many([(message, when), ...])``, which
returns one :class:`DeliveryResult` per message, in order, and never raises for a delivery
problem: a failure of one message does not stop the others. ``when`` is the ``Date``
header (the caller's ``now``; the package never reads the clock).

Result rules: a refusal with a 5xx code (including every recipient refused with 5xx) is
``permanent=True`` with the server's code and text; a 4xx code, a lost connection, a
timeout, or a failure to connect or log in is ``permanent=False`` (retry later). A
message that cannot be built (see :func:`to_email`) is permanent. When only some
recipients of a message are refused it was delivered: ``ok=True`` and ``detail`` lists
the refused ones.
"""
from __future__ import annotations

import hashlib
import logging
import mailbox
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import aiosmtplib

from .message import OutgoingMessage, to_bytes

__all__ = ["DeliveryResult", "MaildirTransport", "SmtpTransport", "Transport"]

log = logging.getLogger(__name__)

# The connection is gone (or the server said it is closing it): reconnect and retry.
_DROPPED = 421


class PlaintextLoginRefused(aiosmtplib.SMTPException):
    """The server offered no TLS, and credentials are not sent in clear."""


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one message: ``ok``, or why not (``permanent`` = do not retry)."""

    message_id: str
    ok: bool
    permanent: bool = False
    code: int | None = None
    detail: str = ""


@runtime_checkable
class Transport(Protocol):
    """Anything that can deliver a batch of messages."""

    async def send_many(
        self, messages: Sequence[tuple[OutgoingMessage, datetime]]
    ) -> list[DeliveryResult]:
        """Deliver each ``(message, date)``; one result per message, in order."""
        ...


def build(msg: OutgoingMessage, when: datetime) -> bytes | DeliveryResult:
    """The message as sent, or a permanent failure result if it cannot be built."""
    try:
        return to_bytes(msg, date=when)
    except ValueError as exc:
        return DeliveryResult(msg.message_id, ok=False, permanent=True, detail=f"invalid message: {exc}")


def _refusal(message_id: str, exc: aiosmtplib.SMTPRecipientsRefused) -> DeliveryResult:
    """Every recipient was refused: permanent only if every refusal is 5xx."""
    refusals = exc.recipients
    temporary = [r for r in refusals if r.code < 500]
    first = temporary[0] if temporary else refusals[0]
    detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refusals)
    return DeliveryResult(message_id, ok=False, permanent=not temporary, code=first.code, detail=detail)


def _connection_failure(message_id: str, exc: BaseException) -> DeliveryResult:
    code = exc.code if isinstance(exc, aiosmtplib.SMTPResponseException) else None
    return DeliveryResult(message_id, ok=False, permanent=False, code=code, detail=f"{type(exc).__name__}: {exc}")


class _Connection:
    """One SMTP connection for a batch, with a budget of one reconnect."""

    def __init__(self, transport: SmtpTransport) -> None:
        self._transport = transport
        self._client: aiosmtplib.SMTP | None = None
        self._reconnects_left = 1
        self._failure: BaseException | None = None  # set when we gave up connecting

    async def _ensure_connected(self) -> BaseException | None:
        """Connect if needed; return the error that prevents sending, if any."""
        if self._client is not None and self._client.is_connected:
            return None
        if self._failure is not None:
            return self._failure
        if self._client is not None:  # it was connected and has been dropped
            if self._reconnects_left == 0:
                self._failure = aiosmtplib.SMTPServerDisconnected("connection lost again; no more reconnects")
                return self._failure
            self._reconnects_left -= 1
            log.info("smtp connection to %s:%s lost; reconnecting", self._transport.host, self._transport.port)
        self._client = self._transport.new_client()
        try:
            await self._client.connect()
            await self._transport.login_if_configured(self._client)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("smtp connect to %s:%s failed: %s", self._transport.host, self._transport.port, exc)
            if self._client.is_connected:  # connected, but the login failed or was refused
                self._client.close()
            self._failure = exc
            return exc
        return None

    async def deliver(self, msg: OutgoingMessage, email: bytes) -> DeliveryResult:
        """Send one message, reconnecting (once per batch) if the connection was dropped."""
        while True:
            error = await self._ensure_connected()
            if error is not None:
                return _connection_failure(msg.message_id, error)
            assert self._client is not None
            try:
                return await self._send(msg, email, self._client)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPResponseException) as exc:
                dropped: BaseException = exc  # only a drop or a 421 gets here (see _send)
            if self._reconnects_left == 0:
                return _connection_failure(msg.message_id, dropped)
            self._client.close()

    @staticmethod
    async def _send(msg: OutgoingMessage, email: bytes, client: aiosmtplib.SMTP) -> DeliveryResult:
        """Send on ``client``; a drop or a 421 is raised for :meth:`deliver` to handle."""
        message_id = msg.message_id
        recipients = [address.email for address in msg.to]
        try:
            utf8 = not all(a.isascii() for a in (msg.sender.email, *recipients))
            refused, reply = await client.sendmail(msg.sender.email, recipients, email,
                                                   mail_options=["SMTPUTF8"] if utf8 else None)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _refusal(message_id, exc)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == _DROPPED:
                raise
            return DeliveryResult(message_id, ok=False, permanent=exc.code >= 500, code=exc.code, detail=exc.message)
        except aiosmtplib.SMTPServerDisconnected:
            raise
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError, OSError) as exc:
            return _connection_failure(message_id, exc)
        except (aiosmtplib.SMTPNotSupported, ValueError) as exc:
            # e.g. a non-ASCII address and a server without SMTPUTF8: retrying will not help.
            return DeliveryResult(message_id, ok=False, permanent=True, detail=f"{type(exc).__name__}: {exc}")
        if refused:
            detail = "partly refused: " + "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in refused.items())
            return DeliveryResult(message_id, ok=True, detail=detail)
        return DeliveryResult(message_id, ok=True, detail=reply)

    async def close(self) -> None:
        """Say QUIT politely; drop the socket if the server does not answer."""
        if self._client is None or not self._client.is_connected:
            return
        try:
            await self._client.quit()
        except (aiosmtplib.SMTPException, OSError):
            self._client.close()


class SmtpTransport:
    """Deliver over SMTP, reusing ONE connection for each ``send_many`` batch.

    ``starttls=None`` upgrades with STARTTLS when the server offers it (aiosmtplib's
    default), ``False`` never does (a plain local server), ``True`` requires it.
    ``use_tls`` connects over TLS from the start (port 465). With ``username`` set the
    transport logs in after connecting, and only over TLS: on a connection that is not
    encrypted (no STARTTLS offered) it refuses to send the password and fails the batch
    (temporarily, with the reason), unless ``allow_plaintext_login`` says the server is on a
    trusted host. ``cert_bundle`` names CA certificates to trust besides the system's
    (a bureau's own mail server). If the server drops the connection mid-batch the
    transport reconnects once and retries the message it was sending; after that, the
    remaining messages are temporary failures.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool | None = None,
        use_tls: bool = False,
        timeout: float = 30.0,
        sender_hostname: str | None = None,
        allow_plaintext_login: bool = False,
        cert_bundle: str | None = None,
    ) -> None:
        if use_tls and starttls:
            raise ValueError("use_tls and starttls are mutually exclusive")
        if username is not None and starttls is False and not use_tls and not allow_plaintext_login:
            raise ValueError("SMTP credentials are only sent over TLS: with starttls=False and no use_tls, "
                             "allow_plaintext_login must be set explicitly")
        self.allow_plaintext_login = allow_plaintext_login
        self.cert_bundle = cert_bundle
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.use_tls = use_tls
        self.timeout = timeout
        self.sender_hostname = sender_hostname

    def __repr__(self) -> str:
        return f"SmtpTransport({self.host!r}, {self.port!r}, username={self.username!r})"

    def new_client(self) -> aiosmtplib.SMTP:
        """A not yet connected aiosmtplib client with this transport's settings."""
        # No credentials here: the login happens after the connection is known to be
        # encrypted (see login_if_configured).
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            start_tls=False if self.use_tls else self.starttls,
            use_tls=self.use_tls,
            timeout=self.timeout,
            local_hostname=self.sender_hostname,
            cert_bundle=self.cert_bundle,
        )

    async def login_if_configured(self, client: aiosmtplib.SMTP) -> None:
        """Log in on a connected client, if a username is set: only over TLS unless allowed."""
        if self.username is None:
            return
        encrypted = client.get_transport_info("sslcontext") is not None
        if not encrypted and not self.allow_plaintext_login:
            raise PlaintextLoginRefused(
                f"{self.host}:{self.port} offered no TLS; the SMTP password is not sent unencrypted "
                "(WORKFLOW_SMTP_ALLOW_PLAINTEXT_LOGIN allows it for a server on a trusted host)")
        await client.login(self.username, self._password or "")

    async def send_many(
        self, messages: Sequence[tuple[OutgoingMessage, datetime]]
    ) -> list[DeliveryResult]:
        """Deliver the batch over one connection; one result per message, in order."""
        results: list[DeliveryResult] = []
        connection = _Connection(self)
        try:
            for msg, when in messages:
                built = build(msg, when)
                if isinstance(built, DeliveryResult):
                    results.append(built)
                else:
                    results.append(await connection.deliver(msg, built))
        finally:
            await connection.close()
        return results


class MaildirTransport:
    """Write each message into a Maildir (``tmp/`` then ``new/``) at ``path``.

    For development and demos: open the folder with any mail client (mutt -f PATH,
    Thunderbird, Evolution) to read what would have been sent. Creates the Maildir (and
    its parent folders) if missing. A write error is a temporary failure.

    Delivery is idempotent by Message-ID: the file is named after it, so a message handed
    over again (a dispatcher that died after delivering but before recording it) is not
    stored twice.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"MaildirTransport({str(self.path)!r})"

    def _delivered(self, key: str) -> bool:
        if (self.path / "new" / key).exists():
            return True
        cur = self.path / "cur"
        return (cur.is_dir() and any(cur.glob(f"{key}:*"))) or (cur / key).exists()

    async def send_many(
        self, messages: Sequence[tuple[OutgoingMessage, datetime]]
    ) -> list[DeliveryResult]:
        """Store each message; ``detail`` is the Maildir key of the stored file."""
        results: list[DeliveryResult] = []
        ready = False
        for msg, when in messages:
            built = build(msg, when)
            if isinstance(built, DeliveryResult):
                results.append(built)
                continue
            key = f"{hashlib.sha256(msg.message_id.encode()).hexdigest()[:40]}.workflow"
            try:
                if not ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    mailbox.Maildir(self.path, factory=None, create=True)  # tmp/ new/ cur/
                    ready = True
                if not self._delivered(key):
                    temp = self.path / "tmp" / key
                    with open(temp, "wb") as out:
                        out.write(built)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(temp, self.path / "new" / key)
            except OSError as exc:
                results.append(_connection_failure(msg.message_id, exc))
            else:
                results.append(DeliveryResult(msg.message_id, ok=True, detail=key))
        return results
