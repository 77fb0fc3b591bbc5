"""A database made by the previous release (0.1) migrates, verifies and keeps its meaning.

``tests/fixtures/release-0.1/*.db.gz`` were made by release 0.1's own code
(``tests/fixtures/make_release_0_1.py``): the two example rounds simulated, sheets recorded as
that release read them — a per-occurrence criterion's entry was the NUMBER of occurrences
("5.1.1": "2" is two activities, 4 分) — and one partial self-assessment given as counts. On
PostgreSQL the same rows are loaded into a schema at revision 0005 first.

Stored events keep their meaning: their version-1 payloads replay to the same cases, ``audit
verify`` passes, the sheets score as they did, and new (points) sheets merge with old ones.
"""
from __future__ import annotations

import gzip
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, DateTime, MetaData, create_engine, select, text
from sqlalchemy.types import JSON

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import current_revision, head_revision, upgrade
from workflow.adapters.db.store import Database
from workflow.domain.rubric import entries_as_points
from workflow.service.audit import verify
from workflow.service.cases import perform_action
from workflow.service.reports import progress
from workflow.service.sheets import case_sheets

from ..conftest import PG_SKIP_REASON, PG_URL, pg_schema_url
from ..support import CALENDARS, RUBRICS, unit_actor

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "release-0.1"
TABLES = ("jurisdictions", "units", "rounds", "cases", "events", "coordinators", "outbox", "sweep_marks",
          "api_tokens", "spot_checks", "filing_batches", "idempotency_keys", "simulation_progress")


def unpacked(name: str, folder: Path) -> Path:
    path = folder / f"{name}.db"
    with gzip.open(FIXTURES / f"{name}.db.gz", "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _value(value: Any, column: Any) -> Any:
    """A SQLite value as PostgreSQL's column takes it (the release wrote both through SQLAlchemy)."""
    if value is None:
        return None
    if isinstance(column.type, Boolean):
        return bool(value)
    if isinstance(column.type, DateTime) and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(column.type, JSON) and isinstance(value, str):
        return json.loads(value)
    return value


def load_into_postgres(sqlite_file: Path, url: str) -> None:
    """The release's rows, table by table, into a PostgreSQL schema at the release's revision."""
    target = make_engine(url)
    upgrade(target, "0005")
    source = create_engine(f"sqlite:///{sqlite_file}")
    meta = MetaData()
    meta.reflect(bind=target, only=list(TABLES))
    with source.connect() as src, target.begin() as dst:
        dst.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))  # inserts only; re-enabled below
        for name in TABLES:
            table = meta.tables[name]
            rows = [dict(r) for r in src.execute(text(f"SELECT * FROM {name}")).mappings()]
            if rows:
                dst.execute(table.insert(), [{k: _value(v, table.c[k]) for k, v in row.items()} for row in rows])
            for column in table.primary_key.columns:
                if column.autoincrement is True or (column.type.python_type is int and len(table.primary_key) == 1
                                                   and name not in ("sweep_marks",)):
                    seq = dst.execute(text(f"SELECT pg_get_serial_sequence('{name}', '{column.name}')")).scalar()
                    if seq:
                        dst.execute(text(f"SELECT setval('{seq}', (SELECT COALESCE(MAX({column.name}), 0) + 1 "
                                         f"FROM {name}), false)"))
        dst.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
    source.dispose()
    target.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def release_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Open a release-0.1 database: ``release_db(name)`` → its URL, at revision 0005."""
    schemas: list[str] = []

    def open_(name: str) -> str:
        sqlite_file = unpacked(name, tmp_path)
        if request.param == "sqlite":
            return f"sqlite:///{sqlite_file}"
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        schema = f"wf_rel_{uuid.uuid4().hex[:8]}"
        with make_engine(PG_URL).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        load_into_postgres(sqlite_file, pg_schema_url(schema))
        return pg_schema_url(schema)

    yield open_
    if schemas:
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def migrated(url: str) -> Database:
    engine = make_engine(url)
    assert current_revision(engine) == "0005"
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    return Database(engine)


def case_of(db: Database, unit_name: str, round_id: str) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT c.id FROM cases c JOIN units u ON u.id = c.unit_id "
                                 "WHERE u.name = :name AND c.round_id = :round"),
                            {"name": unit_name, "round": round_id}).scalar_one()


def test_the_shanxi_round_of_release_0_1_migrates_and_verifies(release_db: Any) -> None:
    db = migrated(release_db("shanxi-2021"))
    report = verify(db)
    assert report.ok, report.findings[:5]
    assert report.cases == 35 and report.events > 1000

    # 省贸促会 recorded "5.1.1": "1" (one activity) and "2.2.2": "3" (three rules) as counts: 2 + 3 分
    partial = case_of(db, "省贸促会", "shanxi-2021")
    with db.unit_of_work() as uow:
        case = uow.get(partial)
        [last] = [e for e in uow.events(partial) if e.type == "SelfAssessmentRecorded"]
    assert last.payload == {"complete": False, "entries": {"2.2.2": "3", "5.1.1": "1"}, "total": "5"}  # as written
    assert case.self_entries == {"2.2.2": "3", "5.1.1": "2"} and case.self_total == Decimal(5)   # read as points

    # every sheet scores as it did: the recorded totals are the totals of the sheets read in points
    rubric = RUBRICS.get("shanxi-2020")
    with db.engine.connect() as conn:
        ids = conn.execute(select(text("id")).select_from(text("cases"))).scalars().all()
    for case_id in ids:
        with db.unit_of_work() as uow:
            events = uow.events(case_id)
        sheets = case_sheets(db, case_id)
        for event in events:
            if event.type in ("SelfAssessmentRecorded", "CaseVerified", "CaseRechecked"):
                assert sum(entries_as_points(event.payload, rubric).values()) == Decimal(event.payload["total"])
        recorded = {e.type: Decimal(e.payload["total"]) for e in events
                    if e.type in ("SelfAssessmentRecorded", "CaseVerified", "CaseRechecked")}
        if sheets.self is not None:
            assert sheets.self.total == recorded["SelfAssessmentRecorded"]
        if sheets.verified is not None:
            assert sheets.verified.total == recorded["CaseVerified"]

    # a new sheet, in points, merges with the old one: 3 + 2 + 4 (5.2.2, two trainings)
    after = perform_action(db, partial, "self_assess", {"entries": {"5.2.2": "4"}}, unit_actor(case.unit_id),
                           datetime.fromisoformat("2022-04-01T10:00:00+08:00"))
    assert after.event.payload["v"] == 2
    assert after.event.payload["entries"] == {"2.2.2": "3", "5.1.1": "2", "5.2.2": "4"}
    assert after.case.self_total == Decimal(9)
    assert verify(db).ok

    # the contact form of a round is a ContactFormGiven event, which no 0.1 case has: not given
    with db.engine.connect() as conn:
        given = conn.execute(text("SELECT count(*) FROM cases WHERE contact_form")).scalar()
    assert given == 0

    # the report reads the migrated rounds: every Shanxi agency of the round, certified to date
    top = progress(db, "shanxi-2021", "/shanxi/").rows[0]
    assert (top.agencies, top.certified_to_date, top.certified_share) == (35, 34, Decimal("0.9714"))
    db.engine.dispose()


def test_a_release_0_1_round_past_the_schedule_needs_a_target(release_db: Any) -> None:
    from workflow.domain.case import Actor
    from workflow.domain.errors import InvalidInput
    from workflow.service.rounds import roll_over

    db = migrated(release_db("hunan-2021"))
    assert verify(db).ok
    now = datetime.fromisoformat("2023-05-20T10:00:00+08:00")
    with pytest.raises(InvalidInput) as err:
        roll_over(db, RUBRICS, CALENDARS, "hunan-2022", actor=Actor("admin", "test"), now=now)
    assert [p.where for p in err.value.problems] == ["target_share"]
    opened = roll_over(db, RUBRICS, CALENDARS, "hunan-2022", target_share="0.8", actor=Actor("admin", "test"),
                       now=now)
    assert (opened.round_id, opened.calendar_id, opened.target_share) == ("hunan-2023", "hunan", Decimal("0.8"))
    assert verify(db).ok
    db.engine.dispose()
