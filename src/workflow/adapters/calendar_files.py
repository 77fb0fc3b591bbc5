"""Calendars from ``calendars/*.yaml``."""
from __future__ import annotations

from pathlib import Path

from ..domain.calendar import Calendar, calendar_from_dict
from .data_files import Catalog


class CalendarCatalog(Catalog[Calendar]):
    kind = "calendar"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, calendar_from_dict)
