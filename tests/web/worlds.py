"""The demo world of the console's tests: ``workflow demo`` loaded once into a SQLite file on a
fixed day (``demo_template``), then copied for a test (``demo_app``) so that nothing is shared;
and signing in through the console's own form (``signed_in``) and the CSRF token of a page
(``csrf_of``).

Plain functions, not fixtures: each test module keeps its own (module-scoped) fixtures, a few
lines over these.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.demo import DEMO_PASSWORD, DEMO_PREFIX, DemoResult, run_demo

# The signed checkpoints' settings (the audit and oversight pages): relative paths, placed under
# the world's folder (see ``settings_for``).
CHECKPOINTS: dict[str, Any] = {"checkpoint_dir": Path("checkpoints"),
                               "checkpoint_key": Path("keys") / "checkpoint-ed25519.pem"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class DemoTemplate:
    """The demo loaded once: its database file (WAL checkpointed, engine disposed), the
    calendars (the repository's and the demo's own), the evidence it stored, and what
    ``run_demo`` answered; ``now`` and ``settings`` (the extra ``Settings`` arguments) for the
    copies."""
    db_file: Path
    calendars: Path
    evidence: Path
    result: DemoResult
    now: datetime
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def round_id(self) -> str:
        return self.result.round_id


def settings_for(folder: Path, db_file: Path, calendars: Path, **extra: Any) -> Settings:
    """The settings of a world in ``folder``: its mail and evidence there; a relative ``Path``
    in ``extra`` is taken under ``folder`` too (``CHECKPOINTS``), any other value as it is."""
    placed = {k: folder / v if isinstance(v, Path) and not v.is_absolute() else v for k, v in extra.items()}
    return Settings(**{"database_url": f"sqlite:///{db_file}", "maildir": folder / "mail",
                       "evidence_dir": folder / "evidence", "calendars_dir": calendars, **placed})


def _app(settings: Settings, calendars: Path, now: datetime) -> App:
    engine = make_engine(settings.database_url)
    return App(settings=settings, engine=engine, db=Database(engine), clock=ManualClock(now),
               calendars=CalendarCatalog(calendars))


def demo_template(where: pytest.TempPathFactory | Path, sqlite_template: Path, now: datetime, *,
                  name: str = "demo", after: Callable[[App], object] | None = None,
                  **settings: Any) -> DemoTemplate:
    """Load the demo at ``now`` into a copy of the migrated ``sqlite_template`` (the session
    fixture of tests/conftest.py), in ``where`` (a folder, or a new one named ``name`` of the
    factory), with the repository's calendars but not the demo's own (``run_demo`` writes its
    calendar there). ``after(application)``: more set-up before the file is closed."""
    folder = where if isinstance(where, Path) else where.mktemp(name)
    calendars = folder / "calendars"
    shutil.copytree(REPO_ROOT / "calendars", calendars, ignore=shutil.ignore_patterns(f"{DEMO_PREFIX}*"))
    db_file = folder / "demo.db"
    shutil.copy(sqlite_template, db_file)
    application = _app(settings_for(folder, db_file, calendars, **settings), calendars, now)
    try:
        result = run_demo(application)
        if after is not None:
            after(application)
        with application.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        application.engine.dispose()
    return DemoTemplate(db_file, calendars, Path(application.settings.evidence_dir), result, now, dict(settings))


@contextmanager
def demo_app(template: DemoTemplate, folder: Path, **settings: Any) -> Iterator[App]:
    """An ``App`` over a copy of ``template`` in ``folder`` (its database file and, when there
    is one, its evidence folder), with the template's settings (``settings``: more, or other,
    ``Settings`` arguments) and a ManualClock at the template's ``now``; its engine disposed after."""
    db_file = folder / "workflow.db"
    shutil.copy(template.db_file, db_file)
    if template.evidence.is_dir():
        shutil.copytree(template.evidence, folder / "evidence")
    application = _app(settings_for(folder, db_file, template.calendars, **{**template.settings, **settings}),
                       template.calendars, template.now)
    try:
        yield application
    finally:
        application.engine.dispose()


def signed_in(application: App, login: str, password: str = DEMO_PASSWORD, *,
              api: FastAPI | None = None) -> TestClient:
    """A client of the console (of ``api``, or a new one over ``application``) signed in as
    ``login`` through the sign-in form; its cookie jar is its own."""
    if api is None:
        from workflow.api.app import create_app

        api = create_app(application)
    client = TestClient(api, base_url="http://127.0.0.1")
    answer = client.post("/signin", data={"login": login, "password": password}, follow_redirects=False)
    assert answer.status_code == 303, (login, answer.status_code, answer.text[:500])
    return client


def csrf_of(html: str) -> str:
    """The CSRF token of the page's (first) form."""
    found = CSRF.search(html)
    assert found, f"the page has no form with a CSRF token: {html[:500]}"
    return found.group(1)
