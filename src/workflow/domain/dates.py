"""Business dates: the time zone users read (Asia/Shanghai) and what "due on a day" means.

Pure: it never reads the system time (only ``workflow.clock`` does); every function takes the
moment it works on.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


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


def date_zh(day: date | str) -> str:
    """A date as a person reads it in Chinese: 2021年10月20日 (an ISO text is read first;
    text that is not a date is shown as it is)."""
    if isinstance(day, str):
        try:
            read = date.fromisoformat(day)
        except ValueError:
            return day
        return date_zh(read)
    return f"{day.year}年{day.month}月{day.day}日"
