"""Several `workflow serve` processes on one PostgreSQL database: one schedules; kill it
with SIGKILL and another takes over within 10 s; every mail is delivered, none twice."""
from __future__ import annotations

import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from workflow.adapters.db.engine import make_engine
from workflow.clock import BUSINESS_TZ

from ..conftest import PG_SKIP_REASON, PG_URL, pg_schema_url

WORKFLOW = str(Path(sys.executable).parent / "workflow")
UNITS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def schema_url():
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"wf_procs_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield pg_schema_url(schema)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _calendar(folder: Path) -> None:
    """A recurring Shanxi drill calendar whose one milestone was due yesterday (so the first
    sweep records a miss for every unit and mails each of them)."""
    yesterday = datetime.now(BUSINESS_TZ).date() - timedelta(days=1)  # the test's own clock, not the product's
    folder.mkdir()
    (folder / "shanxi-drill.yaml").write_text(f"""\
id: shanxi-drill
title: 演练
province: shanxi
recurring: yearly
policy: {{on_fail: rectification, rectification_days: 20, carry_over: false}}
milestones:
  - id: drill
    name: 演练报送
    due: "{yesterday:%m-%d}"
    owes: {{states: [registered]}}
    remind: [unit]
    escalate: [unit]
    tiers: [3]
    what_to_do: 演练。
""", encoding="utf-8")


def test_the_scheduler_fails_over_and_every_mail_goes_once(schema_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_DATABASE_URL=schema_url, WORKFLOW_CALENDARS_DIR=str(tmp_path / "calendars"),
               WORKFLOW_MAILDIR=str(tmp_path / "mail"), WORKFLOW_DISPATCH_INTERVAL_SECONDS="1",
               WORKFLOW_DISPATCH_LEASE_SECONDS="5")
    _calendar(tmp_path / "calendars")
    roster = tmp_path / "units.csv"
    roster.write_text("name,jurisdiction,category,contact_name,contact_email\n" + "".join(
        f"演练单位{i},shanxi,行政机关,联络员{i},unit{i}@drill.example\n" for i in range(1, UNITS + 1)), encoding="utf-8")
    year = datetime.now(BUSINESS_TZ).year
    for args in (["db", "upgrade"], ["accounts", "create", "--login", "drill", "--name", "演练", "--role", "admin"],
                 ["jurisdictions", "import", "examples/jurisdictions.csv", "--actor", "drill"],
                 ["units", "import", str(roster), "--actor", "drill"],
                 ["rounds", "open", "--province", "shanxi", "--year", str(year), "--rubric", "shanxi-2020",
                  "--calendar", "shanxi-drill", "--target", "0.5", "--actor", "drill"]):
        done = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stderr
    procs: dict[str, tuple[subprocess.Popen, str]] = {}
    for name in ("alpha", "bravo", "charlie"):
        port = _free_port()
        procs[name] = (subprocess.Popen([WORKFLOW, "serve", "--name", name, "--port", str(port)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                       f"http://127.0.0.1:{port}")
    try:
        def holder(base: str) -> str | None:
            """The process name of the scheduler's holder, as /readyz reports it."""
            try:
                held = httpx.get(f"{base}/readyz", timeout=2).json().get("scheduler")
            except httpx.HTTPError:
                return None
            return held.removeprefix("workflow-scheduler ") if held else None

        first = None
        for _ in range(300):
            first = next((h for h in (holder(b) for _, b in procs.values()) if h in procs), None)
            if first:
                break
            time.sleep(0.1)  # waiting for an election, not timing anything
        assert first in procs, "no process was elected"
        procs[first][0].send_signal(signal.SIGKILL)
        procs[first][0].wait(timeout=10)
        survivors = [b for n, (_, b) in procs.items() if n != first]
        deadline = time.monotonic() + 10  # the bound for a takeover
        second = None
        while time.monotonic() < deadline:
            second = holder(survivors[0])
            if second in procs and second != first:
                break
            time.sleep(0.2)
        assert second in procs and second != first, f"no takeover within 10 s (holder: {second})"
        engine = make_engine(schema_url)
        expected = None
        for _ in range(600):
            with engine.connect() as conn:
                counts = dict(conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
            if counts and set(counts) == {"sent"}:
                expected = counts["sent"]
                break
            time.sleep(0.1)  # waiting for the dispatcher, not timing anything
        assert expected is not None, f"outbox never drained: {counts}"
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(text("SELECT message_id FROM outbox ORDER BY id"))]
            misses = conn.execute(text("SELECT count(*) FROM events WHERE type = 'DeadlineMissed'")).scalar()
        engine.dispose()
        assert misses == UNITS and expected >= UNITS
        delivered = [m["Message-ID"] for m in mailbox.Maildir(tmp_path / "mail", create=False)]
        assert sorted(delivered) == sorted(ids) and len(set(delivered)) == len(delivered)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
