"""Environment faults: the database unreachable or locked, the disk full while storing
evidence, an SMTP server that never answers. Each gives a clear error in the API's error
shape, nothing half-written, and the service stays up; /readyz says what is wrong."""
from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from notifications import Address, OutgoingMessage, SmtpTransport
from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import Event
from workflow.api.app import create_app
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings

from ..support import token_for

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024) + b"\n%%EOF\n"


def _events(db) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Event)).scalar()


def test_an_unreachable_database_is_a_503_and_readyz_says_so(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    engine = make_engine(url)
    application = App(settings=Settings(database_url=url), engine=engine, db=Database(engine),
                      clock=ManualClock(NOW), calendars=CalendarCatalog(REPO_ROOT / "calendars"))
    client = TestClient(create_app(application), raise_server_exceptions=False)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "database unreachable" in ready.json()["error"]["message"]["en"]
    r = client.get("/api/v1/cases/1", headers={"Authorization": "Bearer wf_anything"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    assert r.headers["retry-after"] == "5"
    assert client.get("/healthz").status_code == 200  # the process itself is up


def test_a_locked_sqlite_database_is_a_503_and_nothing_is_written(client, db, db_url) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's file lock")
    application = client.app.state.application
    application.db.engine.sqlite_busy_timeout_ms = 200  # type: ignore[attr-defined]
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    before = _events(db)
    holder = sqlite3.connect(db.engine.url.database, timeout=0.2)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        r = client.post("/api/v1/cases/3/actions/withdraw", json={"version": 1, "data": {"reason": "机构撤并"}},
                        headers=coordinator)
    finally:
        holder.rollback()
        holder.close()
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable", r.text
    assert "locked" in r.json()["error"]["message"]["en"]
    assert _events(db) == before
    r = client.post("/api/v1/cases/3/actions/withdraw", json={"version": 1, "data": {"reason": "机构撤并"}},
                    headers=coordinator)
    assert r.status_code == 200  # the lock is gone, the service is still up


def test_disk_full_while_storing_evidence_is_a_507_and_nothing_is_attached(tmp_path: Path) -> None:
    """A real file-size limit (RLIMIT_FSIZE) in a child process: writing the 3 MiB upload
    fails with EFBIG as a full disk fails with ENOSPC; the database file stays small."""
    from workflow.adapters.db.migrate import upgrade

    from ..support import open_shanxi

    url = f"sqlite:///{tmp_path}/full.db"
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    open_shanxi(db, NOW)
    secret = token_for(db, name="u1", role="unit", unit_id=1, now=NOW).secret
    engine.dispose()
    evidence = tmp_path / "evidence"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child serves one upload under the limit and reports the answer
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            limit = (tmp_path / "full.db").stat().st_size + 2 * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            child_engine = make_engine(url)
            application = App(settings=Settings(database_url=url, evidence_dir=evidence,
                                                evidence_max_bytes=8 * 1024 * 1024),
                              engine=child_engine, db=Database(child_engine), clock=ManualClock(NOW),
                              calendars=CalendarCatalog(REPO_ROOT / "calendars"))
            r = TestClient(create_app(application), raise_server_exceptions=False).post(
                "/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": "大文件.pdf"}, content=PDF,
                headers={"Authorization": f"Bearer {secret}"})
            os.write(write, f"{r.status_code}\n{r.text}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        status, _, body = pipe.read().decode().partition("\n")
    os.waitpid(pid, 0)
    assert status == "507", body
    assert '"storage_unavailable"' in body and "nothing was attached" in body
    assert not any(p.is_file() for p in evidence.rglob("*")) if evidence.exists() else True  # no blob, no temp file
    with sqlite3.connect(tmp_path / "full.db") as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE case_id = 1").fetchone()[0] == 1


def test_an_smtp_server_that_never_answers_is_a_temporary_failure() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    msg = OutgoingMessage(sender=Address("noreply@workflow.local"), to=(Address("unit1@example.cn"),),
                          subject="提醒", text="正文", message_id="<t.1@workflow.local>")
    results = asyncio.run(SmtpTransport("127.0.0.1", port, timeout=1.0, starttls=False).send_many([(msg, NOW)]))
    listener.close()
    assert len(results) == 1 and not results[0].ok and not results[0].permanent
