"""Calendars from ``calendars/*.yaml``.

A file that ``extends`` a recurring calendar (a year's notice) is merged with it before it is
validated. :meth:`CalendarCatalog.for_year` chooses the calendar a round of a province and
year takes when none is named (a roll-over): that year's notice, else the recurring one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..domain.calendar import Calendar, calendar_from_dict, merge_calendar_data
from ..domain.errors import InvalidInput, NotFound
from .data_files import KIND_NAMES, Catalog, read_yaml
from .workdays import WorkdayCalendar


class CalendarCatalog(Catalog[Calendar]):
    kind = "calendar"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, calendar_from_dict)

    def _load(self) -> dict[str, Calendar]:
        if self._cache is None:
            raw: dict[str, tuple[Path, Any]] = {}
            for path in sorted(self.directory.glob("*.yaml")):
                data = read_yaml(path)
                ident = data.get("id") if isinstance(data, dict) else None
                key = ident if isinstance(ident, str) else str(path)
                if key in raw:
                    raise InvalidInput(f"{path}: {self.kind} id {ident!r} is used by another file too", [],
                                       f"{path}：{KIND_NAMES.get(self.kind, self.kind)}编号 {ident!r} "
                                       "已被另一个文件使用")
                raw[key] = (path, data)
            found: dict[str, Calendar] = {}
            for key, (path, data) in raw.items():
                extends = data.get("extends") if isinstance(data, dict) else None
                if isinstance(extends, str):
                    if extends not in raw:
                        raise InvalidInput(f"{path}: extends {extends!r}, which no calendar file defines", [],
                                           f"{path}：所扩展的 {extends!r} 不是任何工作日程文件定义的编号")
                    data = merge_calendar_data(raw[extends][1], data, str(path))
                found[key] = self._parse(data, str(path))
            self._cache = found
        return self._cache

    def workdays(self, calendar: Calendar) -> WorkdayCalendar:
        """The working days under ``calendar``: the State Council's, with the file's own extras."""
        return WorkdayCalendar(calendar.extra_holidays, calendar.extra_workdays)

    def for_year(self, province: str, year: int) -> Calendar:
        """The calendar of ``province``'s round of ``year``: the notice for that year if one
        extends the province's recurring calendar, else the recurring calendar itself."""
        calendars = [c for c in self._load().values() if c.province == province and c.serves(year)]
        for calendar in calendars:
            if not calendar.recurring and calendar.extends is not None:
                return calendar
        for calendar in calendars:
            if calendar.recurring:
                return calendar
        if calendars:
            return calendars[0]
        raise NotFound(f"no calendar serves {province}'s round of {year}: add a recurring calendar for "
                       f"{province} or one for {year}",
                       f"没有适用于 {province} {year}年度轮次的工作日程：请为 {province} 添加每年适用的工作日程，"
                       f"或{year}年度的工作日程", province=province, year=year)
