"""``workflow demo`` on any day of the year: a live Shanxi round in which something is due in the
coming weeks, reminders are planned, and the first sweep (as ``serve`` runs it on its first
tick) sends mail to the Maildir; run twice, it changes nothing.

"Today" is frozen with the application's ManualClock (nothing here reads the wall clock), and
the demo's calendar is written into a private copy of ``calendars/``.
"""
from __future__ import annotations

import asyncio
import mailbox
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.data_files import read_yaml
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.bootstrap import App
from workflow.clock import BUSINESS_TZ, ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.demo import DEMO_PREFIX, demo_calendar_data, demo_sheet, run_demo
from workflow.domain.calendar import calendar_from_dict
from workflow.domain.rubric import score_sheet
from workflow.service.audit import verify
from workflow.service.deadlines import sweep
from workflow.service.dispatch import dispatch
from workflow.service.due import upcoming_reminders
from workflow.service.queries import list_cases
from workflow.service.reports import at_risk, progress

from ..serving import start_serve, stop
from ..support import RUBRICS

WORKFLOW = str(Path(sys.executable).parent / "workflow")
# One day in each month, the first and the last day of the year among them.
DAYS = [date(2026, 1, 1), date(2026, 2, 28), date(2026, 3, 15), date(2026, 4, 30), date(2026, 5, 10),
        date(2026, 6, 20), date(2026, 7, 5), date(2026, 8, 25), date(2026, 9, 12), date(2026, 10, 31),
        date(2026, 11, 3), date(2026, 12, 31)]


def _application(tmp_path: Path, url: str, today: date) -> App:
    calendars = tmp_path / "calendars"
    if not calendars.exists():
        shutil.copytree(REPO_ROOT / "calendars", calendars, ignore=shutil.ignore_patterns(f"{DEMO_PREFIX}*"))
    settings = Settings(database_url=url, maildir=tmp_path / "mail", evidence_dir=tmp_path / "evidence",
                        calendars_dir=calendars)
    engine = make_engine(url)
    return App(settings=settings, engine=engine, db=Database(engine),
               clock=ManualClock(datetime(today.year, today.month, today.day, 10, 30, tzinfo=BUSINESS_TZ)),
               calendars=CalendarCatalog(calendars))


def _first_tick(application: App) -> int:
    """What ``serve`` does when it starts: the sweep, then the dispatcher (to the Maildir)."""
    now = application.clock.now()
    sweep(application.db, application.calendars, now)
    for _ in range(20):
        if asyncio.run(dispatch(application.db, application.calendars, application.transport(), now,
                                application.dispatch_settings())).claimed == 0:
            break
    return len(mailbox.Maildir(application.settings.maildir, create=False))


@pytest.mark.parametrize("today", DAYS, ids=[d.isoformat() for d in DAYS])
def test_the_demo_round_is_live_on_any_day(today: date, tmp_path: Path, sqlite_url: str) -> None:
    application = _application(tmp_path, sqlite_url, today)
    result = run_demo(application)
    assert result.created and result.calendar_id == f"{DEMO_PREFIX}{today:%Y%m%d}"
    # this year's round; in January last year's, whose evaluation month ends now
    assert result.round_id == f"shanxi-{today.year - (today.month == 1)}" == f"shanxi-{result.year}"
    schedule = {name: on for on, name in result.schedule}
    assert schedule["评价验收"] == today + timedelta(days=10)
    assert schedule["自评报告、自评打分表和佐证材料报送"] == today - timedelta(days=31)
    # units ahead and behind, driven there through the services
    assert result.by_state == {"certified": 8, "verified": 3, "submitted": 10, "rectification": 1, "recheck": 1,
                               "self_assessed": 3, "registered": 9}
    db, calendars, round_id = application.db, application.calendars, result.round_id
    # something is due within 30 days: the evaluation of the submitted cases, a rectification
    risky = at_risk(db, calendars, round_id, "/shanxi/", today, 30)
    assert {(a.milestone, a.days_left) for a in risky} == {("evaluation", 10), ("rectification", 5)}
    assert upcoming_reminders(db, calendars, round_id, "/shanxi/", today, 30)  # reminders are planned
    report = progress(db, round_id, "/shanxi/")
    assert report.target_share == Decimal("0.5") and report.rows[0].certified_to_date == 8
    # the first tick: the self-assessment misses, the cities' report, the rectification, mailed
    assert _first_tick(application) > 0
    kinds = Counter(k for (k,) in db.engine.connect().execute(text(
        "SELECT kind FROM outbox WHERE status = 'sent' AND round_id = :r"), {"r": round_id}))
    assert kinds["missed"] == 12 and kinds["digest"] == 1 and kinds["duty_reminder"] == 10, kinds
    assert kinds["rectification"] == 1 and kinds["rectification_notice"] == 1, kinds
    # the 2021 example is a past round: all there, and silent
    example = list_cases(db, round_id="shanxi-2021", limit=100)
    assert len(example) == 35 and {c.state for c in example} == {"not_certified"}
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE round_id = 'shanxi-2021'")).scalar() == 0
    # the demo calendar never becomes the one a round of the year takes by default
    assert calendars.for_year("shanxi", result.year).id == "shanxi"


def test_the_demo_twice_changes_nothing_and_audits_clean(tmp_path: Path, db_url: str) -> None:
    """On SQLite and PostgreSQL."""
    application = _application(tmp_path, db_url, date(2026, 7, 15))
    first = run_demo(application)

    def snapshot() -> list[object]:
        with application.engine.connect() as conn:
            counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()
                      for t in inspect(conn).get_table_names()}  # every table: nothing added anywhere
            return [counts, *(conn.execute(text(q)).all() for q in (
                "SELECT id, state, version, last_hash FROM cases ORDER BY id",
                "SELECT id, contacts, updated_at FROM units ORDER BY id", "SELECT id FROM rounds ORDER BY id"))]

    before = snapshot()
    (tmp_path / "calendars" / f"{first.calendar_id}.yaml").unlink()  # even with its calendar deleted,
    again = run_demo(_application(tmp_path, db_url, date(2026, 8, 24)))  # and on another day
    assert not again.created and (again.round_id, again.calendar_id) == (first.round_id, first.calendar_id)
    assert snapshot() == before
    assert (tmp_path / "calendars" / f"{first.calendar_id}.yaml").exists()
    report = verify(application.db)
    assert report.ok, report.findings[:3]
    assert report.operator_events > 0 and report.operator_streams >= 5  # who set up the directory and people
    # the demo's history names its people: each unit's clerk, the province's coordinator, via the CLI
    by_type = {e.type: e.actor for e in application.db.all_events() if e.case_id <= 35}
    assert by_type["CaseCertified"].startswith("coordinator:coord-shanxi;account=")
    assert by_type["CaseCertified"].endswith(";name=王科长;via=cli")
    assert ";account=" in by_type["SelfAssessmentSubmitted"] and by_type["SelfAssessmentSubmitted"].startswith("unit:")


def test_the_demo_calendar_moves_every_date_by_the_same_days() -> None:
    recurring = CalendarCatalog(REPO_ROOT / "calendars").get("shanxi")
    raw = read_yaml(REPO_ROOT / "calendars" / "shanxi.yaml")
    for today in (date(2026, 1, 1), date(2026, 12, 31), date(2028, 2, 19)):  # 2028: the evaluation on 29 February
        data = demo_calendar_data(raw, today)
        moved = calendar_from_dict(data, "demo")  # a valid calendar of one year
        assert moved.year == data["year"] and not moved.recurring and moved.extends is None
        shifts = {(moved.milestone(m.id).due_on(moved.year) - m.due_on(today.year)).days for m in recurring.milestones}
        assert len(shifts) == 1
        assert moved.milestone("evaluation").due_on(moved.year) == today + timedelta(days=10)
        assert min(m.due_on(moved.year) for m in moved.milestones).year == moved.year
        assert moved.overall_target(moved.year) == Decimal("0.5")


def test_demo_sheets_score_what_they_are_asked_and_spread_the_loss() -> None:
    rubric = RUBRICS.get("shanxi-2020")
    for seed, total in ((1, "95"), (2, "88"), (7, "84"), (9, "76.5"), (3, "75")):
        entries = demo_sheet(rubric, Decimal(total), seed)
        assert score_sheet(rubric, {k: Decimal(v) for k, v in entries.items()}, complete=True).total == Decimal(total)
        assert sum(1 for c in rubric.criteria() if Decimal(entries[c.code]) < c.cap) >= 3  # not all on one line
        marked = demo_sheet(rubric, Decimal(total) - 3, seed, entries)  # the evaluation team's, from the unit's
        assert all(Decimal(marked[k]) <= Decimal(v) for k, v in entries.items())


def test_the_demo_command(tmp_path: Path) -> None:
    """As a newcomer runs it: output naming the live round, its dates and what to do next."""
    calendars = tmp_path / "calendars"
    shutil.copytree(REPO_ROOT / "calendars", calendars, ignore=shutil.ignore_patterns(f"{DEMO_PREFIX}*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), WORKFLOW_CALENDARS_DIR=str(calendars), COLUMNS="200")
    done = subprocess.run([WORKFLOW, "demo"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "35 cases (certified 8," in done.stdout and "评价验收  (in 10 days)" in done.stdout
    assert "round shanxi-2021: 35 cases" in done.stdout and "workflow serve" in done.stdout
    # its people: an account for each role, the one to make a token with named
    assert "demo-admin (admin)" in done.stdout and "coord-shanxi (王科长, coordinator)" in done.stdout
    assert "audit-shanxi (省局审计员, auditor)" in done.stdout and "unit01 … unit35" in done.stdout
    assert "tokens create --account coord-shanxi --actor demo-admin" in done.stdout
    again = subprocess.run([WORKFLOW, "demo"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "loaded before, nothing changed" in again.stdout, again.stderr
    # `workflow serve`: its first sweep, then its dispatcher (every 2 s here, 30 s by default)
    proc, _ = start_serve({**env, "WORKFLOW_DISPATCH_INTERVAL_SECONDS": "2"}, tmp_path / "serve.log", "--name", "demo")
    try:
        for _ in range(600):  # waiting for the subprocess's first tick, not timing anything
            if (tmp_path / "mail" / "new").is_dir() and len(mailbox.Maildir(tmp_path / "mail", create=False)) >= 20:
                break
            time.sleep(0.1)
    finally:
        stop(proc)
    subjects = [m["Subject"] for m in mailbox.Maildir(tmp_path / "mail", create=False)]
    assert len(subjects) >= 20, (tmp_path / "serve.log").read_text()[-3000:]
    blank = tmp_path / "blank.db"
    env["WORKFLOW_DATABASE_URL"] = f"sqlite:///{blank}"
    done = subprocess.run([WORKFLOW, "demo", "--example-only"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "round shanxi-2021: 35 cases" in done.stdout, done.stderr
    engine = make_engine(f"sqlite:///{blank}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state, count(*) FROM cases GROUP BY state")).all() == [("registered", 35)]
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 35
    engine.dispose()
