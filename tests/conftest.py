"""Shared fixtures: a real SQLite file and, when WORKFLOW_TEST_DATABASE_URL is set, PostgreSQL.

PostgreSQL tests run in a schema of their own (dropped at the end), so parallel runs
and other data in the database are left alone.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import upgrade
from workflow.adapters.db.store import Database
from workflow.clock import ManualClock

PG_URL = os.environ.get("WORKFLOW_TEST_DATABASE_URL", "")
PG_SKIP_REASON = "PostgreSQL not configured: set WORKFLOW_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
# Every table a test writes: TRUNCATE … CASCADE also empties the tables that refer to these.
TABLES = ("events, cases, rounds, units, jurisdictions, idempotency_keys, simulation_progress, operator_events, "
          "case_counts, agency_counts, sign_in_failures, audit_runs")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the long scale and soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2021, 6, 1, 1, 0, tzinfo=UTC))


# ---------------------------------------------------------------- SQLite
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "workflow.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    engine = make_engine(sqlite_url)
    yield Database(engine)
    engine.dispose()


# ---------------------------------------------------------------- PostgreSQL
def pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"wf_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(pg_schema_url(schema))
    upgrade(engine)
    engine.dispose()
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    url = pg_schema_url(pg_schema)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE operator_streams SET version = 0, last_hash = :genesis"), {"genesis": "0" * 64})
    engine.dispose()
    return url


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    engine = make_engine(pg_url)
    yield Database(engine)
    engine.dispose()


# ---------------------------------------------------------------- either
@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        return request.getfixturevalue("pg_url")
    return request.getfixturevalue("sqlite_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    engine = make_engine(db_url)
    yield Database(engine)
    engine.dispose()
