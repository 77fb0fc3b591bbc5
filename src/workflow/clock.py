"""The one place that reads the system time.

Everything that depends on time takes a :class:`Clock` (or an explicit ``now``).
Times are timezone-aware; the business time zone is Asia/Shanghai.
"""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

# Business dates are domain rules (they read no clock); re-exported for the layers above.
from .domain.dates import BUSINESS_TZ, business_date, end_of_business_day, require_aware

__all__ = ["BUSINESS_TZ", "Clock", "ManualClock", "SystemClock", "business_date", "end_of_business_day",
           "require_aware"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """Reads the real system time (in UTC, aware)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


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
