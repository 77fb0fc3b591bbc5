"""Outgoing messages as plain values, and their conversion to ``email.message.EmailMessage``.

An :class:`OutgoingMessage` is what a caller hands to a transport. It is validated when it
is built (addresses, Message-ID shape, no CR/LF in any header value), so a bad value fails
where it was made, not inside a transport. :func:`to_email` turns it into a MIME message
with the ``email`` package's default policy: non-ASCII display names and subjects are
RFC 2047-encoded, bodies are UTF-8, and it checks the same rules again.

The package never reads the clock: the ``Date`` header comes from the ``date`` argument.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import encoders, policy
from email.header import Header
from email.headerregistry import Address as _HeaderAddress
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import cast

from .addresses import check_address

__all__ = ["Address", "Attachment", "OutgoingMessage", "to_email"]

_MESSAGE_ID = re.compile(r"<[^<>@\s\x00-\x1f\x7f]+@[^<>@\s\x00-\x1f\x7f]+>")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322: printable ASCII except ':'
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 2045 token (MIME type parts)
# Headers the package sets itself; an extra header may not add or override them.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "sender",
    }
)


def _no_line_breaks(what: str, value: str) -> None:
    """Raise ValueError if ``value`` could break out of its header line."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"{what} must not contain CR, LF or NUL: {value!r}")


@dataclass(frozen=True)
class Address:
    """A mailbox: ``email`` is the address (one ``@``, no spaces), ``name`` a display name."""

    email: str
    name: str = ""

    def __post_init__(self) -> None:
        try:  # the same rule as at input (addresses.py)
            check_address(self.email)
        except ValueError as exc:
            raise ValueError(f"invalid email address: {self.email!r} ({exc})") from None
        _no_line_breaks("display name", self.name)

    def header(self) -> _HeaderAddress:
        """This address as an ``email.headerregistry.Address`` for a From/To header."""
        local, _, domain = self.email.partition("@")
        return _HeaderAddress(display_name=self.name, username=local, domain=domain)


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message, e.g. an ``.ics`` with ``text/calendar; method=PUBLISH``."""

    filename: str
    content_type: str
    data: bytes

    def __post_init__(self) -> None:
        _no_line_breaks("attachment filename", self.filename)
        _no_line_breaks("attachment content type", self.content_type)
        _split_content_type(self.content_type)


@dataclass(frozen=True)
class OutgoingMessage:
    """One email to send.

    ``message_id`` is chosen by the caller (derived from its dedupe key, so a re-send has
    the same id) and must look like ``<something@domain>``. ``headers`` are extra header
    fields (e.g. ``("Auto-Submitted", "auto-generated")``); they may not replace the ones
    this package sets (From, To, Subject, Date, Message-ID, MIME and Content headers, Bcc).
    """

    message_id: str
    sender: Address
    to: tuple[Address, ...]
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _validate(self)


def _validate(msg: OutgoingMessage) -> None:
    """Check everything that ends up in a header; raise ValueError naming the culprit."""
    if not _MESSAGE_ID.fullmatch(msg.message_id):
        raise ValueError(f"message_id must look like <something@domain>: {msg.message_id!r}")
    if not msg.to:
        raise ValueError("a message needs at least one recipient")
    for address in (msg.sender, *msg.to):
        if not isinstance(address, Address):
            raise ValueError(f"not an Address: {address!r}")
    _no_line_breaks("subject", msg.subject)
    for name, value in msg.headers:
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"invalid header name: {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the package and cannot be given")
        _no_line_breaks(f"header {name}", value)


def _header(value: str) -> str:
    """A header value: ASCII as it is, anything else a UTF-8 ``Header`` (RFC 2047 encoded words,
    folded as the compat32 policy folds them). The stubs type header values as text; a
    compat32 message takes ``Header`` objects too, which is what the cast says."""
    return value if value.isascii() else cast(str, Header(value, "utf-8"))


def _split_content_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """Split ``"text/calendar; method=PUBLISH; charset=utf-8"`` into its parts."""
    kind, *raw_params = (part.strip() for part in content_type.split(";"))
    maintype, slash, subtype = kind.partition("/")
    if not slash or not _TOKEN.fullmatch(maintype) or not _TOKEN.fullmatch(subtype):
        raise ValueError(f"invalid content type: {content_type!r}")
    params: dict[str, str] = {}
    for raw in raw_params:
        if not raw:
            continue
        key, eq, value = raw.partition("=")
        if not eq or not _TOKEN.fullmatch(key.strip()):
            raise ValueError(f"invalid content type parameter {raw!r} in {content_type!r}")
        params[key.strip().lower()] = value.strip().strip('"')
    return maintype.lower(), subtype.lower(), params


def to_email(msg: OutgoingMessage, *, date: datetime) -> EmailMessage:
    """Build the MIME message for ``msg``, dated ``date`` (a timezone-aware datetime).

    Structure: ``text/plain``; with ``html`` a ``multipart/alternative`` of text and HTML;
    with attachments everything is wrapped in ``multipart/mixed``. Raises ValueError on a
    naive ``date`` or on anything :class:`OutgoingMessage` rejects (header injection).
    """
    _validate(msg)
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    email = EmailMessage()  # default policy
    email["From"] = msg.sender.header()
    email["To"] = tuple(address.header() for address in msg.to)
    email["Subject"] = msg.subject
    email["Date"] = date
    email["Message-ID"] = msg.message_id
    for name, value in msg.headers:
        email[name] = value
    email.set_content(msg.text)
    if msg.html is not None:
        email.add_alternative(msg.html, subtype="html")
    for attachment in msg.attachments:
        maintype, subtype, params = _split_content_type(attachment.content_type)
        email.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            params=params,
        )
    return email


def to_bytes(msg: OutgoingMessage, *, date: datetime) -> bytes:
    """The same message as :func:`to_email`, serialised for the wire.

    Built with the legacy (compat32) MIME classes, which do not parse every header they
    are given: about four times faster than building and flattening an ``EmailMessage``
    with the default policy (measured in bench/dispatch.py), which matters at 10,000 mails.
    Non-ASCII display names and subjects are RFC 2047 encoded, bodies base64 UTF-8, so a
    reader with the default policy gets the same text back. A message with a non-ASCII
    address (SMTPUTF8) goes through :func:`to_email` instead.
    """
    _validate(msg)
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if not all(a.email.isascii() for a in (msg.sender, *msg.to)):
        return to_email(msg, date=date).as_bytes(policy=policy.SMTPUTF8)
    body: Message = MIMEText(msg.text, "plain", "utf-8")
    if msg.html is not None:
        alternative = MIMEMultipart("alternative")
        alternative.attach(body)
        alternative.attach(MIMEText(msg.html, "html", "utf-8"))
        body = alternative
    if msg.attachments:
        mixed = MIMEMultipart("mixed")
        mixed.attach(body)
        for attachment in msg.attachments:
            maintype, subtype, params = _split_content_type(attachment.content_type)
            part = MIMEBase(maintype, subtype)
            for key, value in params.items():
                part.set_param(key, value)
            part.set_payload(attachment.data)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment",
                            filename=attachment.filename if attachment.filename.isascii()
                            else ("utf-8", "", attachment.filename))
            mixed.attach(part)
        body = mixed
    body["From"] = formataddr((msg.sender.name, msg.sender.email), charset="utf-8")
    body["To"] = ", ".join(formataddr((a.name, a.email), charset="utf-8") for a in msg.to)
    body["Subject"] = _header(msg.subject)
    body["Date"] = format_datetime(date)
    body["Message-ID"] = msg.message_id
    for name, value in msg.headers:
        body[name] = _header(value)
    return body.as_bytes()
