"""`workflow serve` and the schema, with a real serve subprocess: a new SQLite file gets its
schema on the first start (the embedded default needs no step first); an SQLite database at an
older schema and a PostgreSQL database are refused, saying to run `workflow db upgrade`, and
left as they were."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import current_revision, head_revision, upgrade

from ..conftest import PG_SKIP_REASON, PG_URL, pg_schema_url
from ..serving import WORKFLOW, free_port, start_serve, stop


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=url, WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), COLUMNS="200")
    return env


def _refused(env: dict[str, str]) -> str:
    """serve run to its end: it must stop at once, exit 2 and say why on stderr."""
    done = subprocess.run([WORKFLOW, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error (not_migrated): "), done.stderr
    assert "run `workflow db upgrade`" in done.stderr
    return done.stderr


def test_serve_creates_the_schema_of_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "workflow.db"  # neither the file nor its folder exists yet
    proc, base = start_serve(_env(tmp_path, f"sqlite:///{path}"), tmp_path / "serve.log", "--name", "fresh")
    try:
        assert httpx.get(f"{base}/readyz").json()["database"] == "ok"
        assert httpx.get(f"{base}/api/v1/cases").status_code == 401  # the API answers on the new schema
    finally:
        stop(proc)
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()


def test_serve_refuses_an_sqlite_database_at_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine, "0007")  # a release before the newest migration
    older, head = current_revision(engine), head_revision(engine)
    engine.dispose()
    assert older is not None and older != head
    message = _refused(_env(tmp_path, f"sqlite:///{path}"))
    assert f"is at schema {older}" in message
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert current_revision(engine) == older  # not migrated behind the operator's back
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_serve_refuses_an_empty_postgresql_database(tmp_path: Path) -> None:
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"wf_serve_{os.getpid()}_{uuid.uuid4().hex[:6]}"  # a private, empty schema
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        message = _refused(_env(tmp_path, pg_schema_url(schema)))
        assert "has no schema yet" in message and "postgresql" in message
        engine = make_engine(pg_schema_url(schema))
        try:
            assert inspect(engine).get_table_names() == []  # nothing was created
        finally:
            engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
