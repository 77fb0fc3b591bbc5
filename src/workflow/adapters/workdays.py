"""Chinese working days: public holidays and the weekend days worked in lieu.

Backed by the ``chinesecalendar`` package (the State Council's yearly holiday notice);
a calendar file may add dates (``extra_holidays``, ``extra_workdays``), which win. For a
year the package does not know yet, weekends are the only days off, and a warning says so
once per year, so a missing holiday notice is visible rather than silently assumed.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import chinese_calendar
import structlog

log = structlog.get_logger(__name__)
_warned: set[int] = set()


@lru_cache(maxsize=4096)
def _package_workday(day: date) -> bool | None:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


def has_holiday_data(year: int) -> bool:
    """Whether the installed ``chinesecalendar`` knows the State Council's holidays of ``year``."""
    return _package_workday(date(year, 1, 1)) is not None


def holiday_data_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chinesecalendar")
    except PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "unknown"


class WorkdayCalendar:
    def __init__(self, extra_holidays: Iterable[date] = (), extra_workdays: Iterable[date] = ()) -> None:
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)

    def warnings(self, years: Iterable[int]) -> list[str]:
        """A line for each year whose official holidays are unknown: there only weekends and
        the calendar file's ``extra_holidays`` are days off, which must be said out loud."""
        out = []
        for year in sorted(set(years)):
            if has_holiday_data(year):
                continue
            listed = sum(1 for d in self.extra_holidays if d.year == year)
            out.append(f"no official holiday data for {year} (chinesecalendar {holiday_data_version()}): reminders "
                       f"in {year} treat only weekends and the calendar's {listed} extra_holidays of {year} as days "
                       f"off; add the State Council's {year} holidays to the calendar file (extra_holidays, "
                       "extra_workdays) or upgrade chinesecalendar")
        return out

    def __call__(self, day: date) -> bool:
        if day in self.extra_holidays:
            return False
        if day in self.extra_workdays:
            return True
        known = _package_workday(day)
        if known is None:
            if day.year not in _warned:
                _warned.add(day.year)
                log.warning("no holiday data for this year: only weekends are days off", year=day.year)
            return day.weekday() < 5
        return known
