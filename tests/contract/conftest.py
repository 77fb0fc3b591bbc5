"""The backends every contract test runs on, each empty: the in-memory store, SQLite, and
PostgreSQL (skipped when WORKFLOW_TEST_DATABASE_URL is not set).

A test takes ``storage`` (a ``Storage``) and runs once per backend.
"""
from __future__ import annotations

import pytest

from workflow.adapters.memory import MemoryDatabase
from workflow.service.ports import Storage

BACKENDS = ("memory", "sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest) -> Storage:
    """An empty storage of the backend under test."""
    if backend == "memory":
        return MemoryDatabase()
    if backend == "sqlite":
        db: Storage = request.getfixturevalue("sqlite_db")
        return db
    pg: Storage = request.getfixturevalue("pg_db")
    return pg
