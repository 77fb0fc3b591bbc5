"""The one place that wires real (or test) dependencies together."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from .adapters.calendar_files import CalendarCatalog
from .adapters.db.engine import make_engine
from .adapters.db.migrate import current_revision, head_revision
from .adapters.db.store import Database
from .clock import Clock, SystemClock
from .config import Settings
from .domain.errors import DomainError


class NotMigrated(DomainError):
    code = "not_migrated"


@dataclass
class App:
    settings: Settings
    engine: Engine
    db: Database
    clock: Clock
    calendars: CalendarCatalog
    _rubrics: Any = field(default=None, repr=False)

    @property
    def rubrics(self) -> Any:
        if self._rubrics is None:
            from .adapters.rubric_files import RubricCatalog

            self._rubrics = RubricCatalog(self.settings.rubrics_dir)
        return self._rubrics

    def require_schema(self) -> None:
        current, head = current_revision(self.engine), head_revision(self.engine)
        if current != head:
            raise NotMigrated(
                f"the database at {self.engine.url.render_as_string(hide_password=True)} is at schema "
                f"{current or 'none'}, the code needs {head}: run `workflow db upgrade`")

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None, clock: Clock | None = None) -> App:
    settings = settings or Settings()
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    return App(settings=settings, engine=engine, db=Database(engine), clock=clock or SystemClock(),
               calendars=CalendarCatalog(settings.calendars_dir))
