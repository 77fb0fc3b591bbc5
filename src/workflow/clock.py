"""The one place that reads the system time.

Everything that depends on time takes a :class:`Clock` (or an explicit ``now``).
Times are timezone-aware; the business time zone is Asia/Shanghai.
"""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def require_aware(moment: datetime, what: str = "time") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment


def business_date(moment: datetime) -> date:
    """The calendar day in Asia/Shanghai of an aware moment."""
    return require_aware(moment).astimezone(BUSINESS_TZ).date()


def end_of_business_day(day: date) -> datetime:
    """The last instant of ``day`` in Asia/Shanghai ("due means by the end of that day")."""
    return datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ) + timedelta(days=1) - timedelta(microseconds=1)


class SystemClock:
    """Reads the real system time (in UTC, aware)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = require_aware(moment)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now = self._now + delta
            return self._now
