"""An RFC 5545 calendar file for one deadline, to attach to a reminder.

The event is all-day on the due date (``DTSTART;VALUE=DATE`` to the next day), with a
display alarm one day before. Text values are escaped (``\\``, ``;``, ``,``, newlines),
lines end in CRLF and are folded at 75 octets without splitting a UTF-8 character.
Attach the result as ``text/calendar; method=PUBLISH; charset=utf-8`` (see
:data:`CONTENT_TYPE`).
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

__all__ = ["CONTENT_TYPE", "PRODID", "deadline_event", "escape_text", "fold_line"]

CONTENT_TYPE = "text/calendar; method=PUBLISH; charset=utf-8"
PRODID = "-//jieyue-jiguan//notifications//ZH-CN"
_MAX_OCTETS = 75
_TZID = re.compile(r"[A-Za-z0-9_+\-/]+")


def escape_text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 §3.3.11): backslash, ``;``, ``,`` and line breaks."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def fold_line(line: str) -> bytes:
    """Encode one content line as UTF-8 and fold it (RFC 5545 §3.1), CRLF-terminated.

    No physical line exceeds 75 octets (the leading space of a continuation counts), and
    a multi-byte character is never split.
    """
    chunks: list[bytes] = []
    current = b""
    limit = _MAX_OCTETS
    for char in line:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > limit:
            chunks.append(current)
            current = b""
            limit = _MAX_OCTETS - 1  # continuation lines start with a space
        current += encoded
    chunks.append(current)
    return b"\r\n ".join(chunks) + b"\r\n"


def _utc_stamp(stamp: datetime) -> str:
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ValueError("stamp must be timezone-aware")
    return stamp.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def deadline_event(
    uid: str,
    summary: str,
    description: str,
    due: date,
    tz: str = "Asia/Shanghai",
    *,
    stamp: datetime,
) -> bytes:
    """Return a VCALENDAR (METHOD:PUBLISH) with one all-day VEVENT on ``due``.

    ``uid`` should be stable for the same deadline (so a re-sent reminder updates the
    calendar entry rather than adding one); ``stamp`` (timezone-aware, usually the
    caller's ``now``) becomes DTSTAMP in UTC. ``tz`` names the calendar's time zone
    (``X-WR-TIMEZONE``); an all-day date itself carries no zone.
    """
    if isinstance(due, datetime):
        raise ValueError("due must be a date, not a datetime")
    if not _TZID.fullmatch(tz):
        raise ValueError(f"invalid time zone name: {tz!r}")
    if not uid or any(ch in uid for ch in "\r\n"):
        raise ValueError(f"invalid uid: {uid!r}")
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-TIMEZONE:{tz}",
        "BEGIN:VEVENT",
        f"UID:{escape_text(uid)}",
        f"DTSTAMP:{_utc_stamp(stamp)}",
        f"DTSTART;VALUE=DATE:{due:%Y%m%d}",
        f"DTEND;VALUE=DATE:{due + timedelta(days=1):%Y%m%d}",
        f"SUMMARY:{escape_text(summary)}",
        f"DESCRIPTION:{escape_text(description)}",
        "TRANSP:TRANSPARENT",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        f"DESCRIPTION:{escape_text(summary)}",
        "TRIGGER:-P1D",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return b"".join(fold_line(line) for line in lines)
