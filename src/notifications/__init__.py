"""Notifications: rendering (templates) and transports (SMTP, maildir, in-memory).

Stands alone: it never imports ``workflow``. The caller supplies everything that depends
on time or identity (``now``, Message-IDs derived from its dedupe keys)::

    rendered = render("reminder", context)
    ics = deadline_event(uid, summary, description, due, stamp=now)
    msg = OutgoingMessage(message_id, sender, (to,), rendered.subject, rendered.text,
                          rendered.html, (Attachment("deadline.ics", ICS_CONTENT_TYPE, ics),))
    results = await SmtpTransport(host, port).send_many([(msg, now)])

Test double: :class:`notifications.testing.InMemoryTransport`.
"""
from .ics import CONTENT_TYPE as ICS_CONTENT_TYPE
from .ics import deadline_event
from .message import Address, Attachment, OutgoingMessage, to_bytes, to_email
from .render import KINDS, Rendered, cn_date, render
from .transport import DeliveryResult, MaildirTransport, SmtpTransport, Transport

__all__ = [
    "ICS_CONTENT_TYPE",
    "KINDS",
    "Address",
    "Attachment",
    "DeliveryResult",
    "MaildirTransport",
    "OutgoingMessage",
    "Rendered",
    "SmtpTransport",
    "Transport",
    "cn_date",
    "deadline_event",
    "render",
    "to_bytes",
    "to_email",
]
