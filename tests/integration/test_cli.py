"""The installed ``workflow`` command, run as a user runs it: in a subprocess, on a SQLite file.

Each run costs about a second (interpreter start and imports), so the Shanxi demo
database is built once per module and copied, and preparatory actions that are not
themselves under test are taken in-process through the services.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.clock import BUSINESS_TZ
from workflow.domain.case import Actor
from workflow.service.cases import perform_action
from workflow.service.directory import import_units

from ..support import open_shanxi

WORKFLOW = Path(sys.executable).parent / "workflow"
COORDINATOR = "coordinator:wang"


# ---------------------------------------------------------------- helpers
def run(db_file: Path, *args: str, columns: int | None = None, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``workflow ARGS`` against the SQLite file ``db_file``, in a clean environment.

    ``columns``: the terminal width the command is told about (None: not told, as
    in a pipe or a cron job, where Rich assumes 80).
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k not in ("COLUMNS", "LINES")}
    clean["WORKFLOW_DATABASE_URL"] = f"sqlite:///{db_file}"
    if columns is not None:
        clean["COLUMNS"] = str(columns)
    clean.update(env or {})
    return subprocess.run([str(WORKFLOW), *args], capture_output=True, text=True, env=clean,
                          cwd=cwd or db_file.parent, timeout=120)


def flat(s: str) -> str:
    """Text with all whitespace removed (Rich wraps long lines at the terminal width)."""
    return re.sub(r"\s+", "", s)


def assert_clean_refusal(p: subprocess.CompletedProcess[str], code: str, *words: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert p.stderr.startswith(f"error ({code}): "), p.stderr
    for word in words:
        assert flat(word) in flat(p.stderr), f"{word!r} not in {p.stderr!r}"


def show(db_file: Path, case_id: int) -> dict[str, Any]:
    p = run(db_file, "cases", "show", str(case_id), "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def checkpoint(db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def sql(db_file: Path, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_file)
    try:
        with conn:
            rows = conn.execute(statement, params).fetchall()
        return rows
    finally:
        conn.close()


def act_in_process(db_file: Path, case_id: int, *steps: tuple[str, dict[str, Any], str]) -> None:
    """Take actions through the service (setup for tests that are about something else)."""
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        for action, data, actor in steps:
            perform_action(Database(engine), case_id, action, data, Actor.parse(actor), datetime.now(timezone.utc))
    finally:
        engine.dispose()
    checkpoint(db_file)


def unit_of(db_file: Path, case_id: int) -> str:
    (unit_id,), = sql(db_file, "SELECT unit_id FROM cases WHERE id = ?", case_id)
    return f"unit:{unit_id}"


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``workflow demo`` run once into a fresh file: (the file, the run)."""
    assert WORKFLOW.exists(), f"the console script is not installed at {WORKFLOW}"
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    p = run(path, "demo")
    assert p.returncode == 0, p.stderr
    checkpoint(path)
    return path, p


@pytest.fixture
def shanxi(demo: tuple[Path, Any], tmp_path: Path) -> Path:
    """A private copy of the demo database: 27 jurisdictions, 35 units, round shanxi-2021 with 35 cases."""
    path = tmp_path / "workflow.db"
    shutil.copy(demo[0], path)
    return path


# ---------------------------------------------------------------- schema
def test_unmigrated_database_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    p = run(path, "cases", "list")
    assert_clean_refusal(p, "not_migrated", "schema none", "run `workflow db upgrade`")
    p = run(path, "db", "upgrade")
    assert p.returncode == 0, p.stderr
    assert "0001" in p.stdout
    p = run(path, "audit", "verify")  # exit 0 on an empty, migrated database; exit 1 is kept for findings
    assert p.returncode == 0, p.stderr
    assert "auditok:0cases,0events" in flat(p.stdout)


def test_unexpected_error_exits_70_without_a_traceback(tmp_path: Path) -> None:
    p = run(tmp_path / "x.db", "cases", "list", env={"WORKFLOW_DATABASE_URL": "notadialect://nowhere"})
    assert p.returncode == 70, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("internal error: ")
    assert "WORKFLOW_DEBUG" in p.stderr


# ---------------------------------------------------------------- demo and listing
def test_demo_sets_up_35_shanxi_cases(demo: tuple[Path, subprocess.CompletedProcess[str]], shanxi: Path) -> None:
    assert "roundshanxi-2021:35cases" in flat(demo[1].stdout)
    p = run(shanxi, "cases", "list", "--round", "shanxi-2021", "--limit", "100", columns=200)
    assert p.returncode == 0, p.stderr
    rows = re.findall(r"^│ (\d+)\s+│ shanxi-2021 │ (\S+)\s+│ shanxi\s+│ registered │ 1 │", p.stdout, re.M)
    assert [int(i) for i, _ in rows] == list(range(1, 36))
    assert rows[3][1] == "省委组织部"
    assert "more:" not in p.stdout

    last = show(shanxi, 35)
    assert (last["id"], last["round_id"], last["state"], last["version"]) == (35, "shanxi-2021", "registered", 1)
    assert last["unit"]["name"] == "省社会科学界联合会"
    assert [e["type"] for e in last["events"]] == ["CaseRegistered"]
    p = run(shanxi, "cases", "show", "36", "--json")
    assert_clean_refusal(p, "not_found", "case 36")


def test_demo_run_twice_changes_nothing(shanxi: Path) -> None:
    before = sql(shanxi, "SELECT id, state, version, last_hash FROM cases ORDER BY id")
    p = run(shanxi, "demo")
    assert p.returncode == 0, p.stderr
    assert "roundshanxi-2021:35cases" in flat(p.stdout)
    assert sql(shanxi, "SELECT id, state, version, last_hash FROM cases ORDER BY id") == before
    assert sql(shanxi, "SELECT count(*) FROM units") == [(35,)]
    assert sql(shanxi, "SELECT count(*) FROM events") == [(35,)]


# ---------------------------------------------------------------- a full Shanxi path
def test_full_rectification_path_through_the_cli(shanxi: Path) -> None:
    case = 4
    unit = unit_of(shanxi, case)
    steps = [
        (["self_assess", "--total", "86", "--actor", unit], "self_assessed", 2),
        (["submit", "--actor", unit], "submitted", 3),
        (["verify", "--total", "79.5", "--actor", COORDINATOR, "--note", "评审组核查"], "verified", 4),
        (["order_rectification", "--actor", COORDINATOR], "rectification", 5),
        (["request_recheck", "--actor", unit], "recheck", 6),
        (["recheck", "--total", "85", "--actor", COORDINATOR], "certified", 7),
        (["file", "--actor", COORDINATOR, "--batch", "2021-1"], "filed", 8),
    ]
    for args, state, version in steps:
        p = run(shanxi, "cases", "act", str(case), *args)
        assert p.returncode == 0, (args, p.stderr)
        assert "Traceback" not in p.stderr
        assert f"→{state}(version{version})" in flat(p.stdout), p.stdout

    d = show(shanxi, case)
    assert d["state"] == "filed"
    assert d["version"] == 8
    assert d["allowed_actions"] == []
    assert d["unit"]["name"] == "省委组织部"
    assert Decimal(str(d["self_total"])) == Decimal("86")
    assert Decimal(str(d["verified_total"])) == Decimal("79.5")
    assert Decimal(str(d["recheck_total"])) == Decimal("85")
    assert d["passed"] is True
    today = datetime.now(BUSINESS_TZ).date()
    assert d["rectification_due"] in {(today + timedelta(days=20)).isoformat(),
                                      (today + timedelta(days=19)).isoformat()}  # in case the day turned
    events = d["events"]
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "CaseRegistered"), (2, "SelfAssessmentRecorded"), (3, "SelfAssessmentSubmitted"), (4, "CaseVerified"),
        (5, "RectificationOrdered"), (6, "RecheckRequested"), (7, "CaseRechecked"), (8, "CaseFiled")]
    assert [e["actor"] for e in events] == ["admin:demo", unit, unit, COORDINATOR, COORDINATOR, unit, COORDINATOR,
                                            COORDINATOR]
    assert events[1]["payload"] == {"total": "86"}
    assert events[3]["payload"] == {"total": "79.5", "pass_mark": "80", "passed": False, "note": "评审组核查"}
    assert events[4]["payload"] == {"days": 20, "due_on": d["rectification_due"]}
    assert events[6]["payload"] == {"total": "85", "pass_mark": "80", "passed": True}
    assert events[7]["payload"] == {"batch": "2021-1"}
    for before, after in zip(events, events[1:]):
        assert after["prev_hash"] == before["hash"]

    assert sql(shanxi, "SELECT state, version FROM cases WHERE id = ?", case + 1) == [("registered", 1)]

    p = run(shanxi, "audit", "verify")
    assert p.returncode == 0, p.stderr
    assert "auditok:35cases,42events" in flat(p.stdout)


# ---------------------------------------------------------------- refusals
def test_refusals_change_nothing(shanxi: Path) -> None:
    case = 9
    unit = unit_of(shanxi, case)
    act_in_process(shanxi, case, ("self_assess", {"total": "70"}, unit), ("submit", {}, unit),
                   ("verify", {"total": "79.5"}, COORDINATOR))
    assert sql(shanxi, "SELECT state, version FROM cases WHERE id = ?", case) == [("verified", 4)]

    # (arguments, error code, words the message must contain, lines printed)
    refusals = [
        (["certify", "--actor", COORDINATOR], "action_refused", ["certify refused", "below the pass mark"], 1),
        (["frobnicate", "--actor", COORDINATOR], "action_refused", ["unknown action 'frobnicate'"], 1),
        (["verify", "--total", "90", "--actor", unit], "action_refused", ["a unit may not verify"], 1),
        (["certify", "--actor", "boss"], "invalid_input", ["actor 'boss'", "KIND:ID"], 1),
        (["order_rectification", "--actor", COORDINATOR, "--expected-version", "3"], "conflict",
         ["version 4, not 3"], 1),
    ]
    for args, code, words, lines in refusals:
        p = run(shanxi, "cases", "act", str(case), *args, columns=1000)
        assert_clean_refusal(p, code, *words)
        assert p.stderr.count("\n") == lines, f"{args}: {p.stderr!r}"

    # a bad score on a case where a score is asked for
    case2 = 10
    unit2 = unit_of(shanxi, case2)
    for total, word in (("abc", "decimal number"), ("101", "from 0 to 100")):
        p = run(shanxi, "cases", "act", str(case2), "self_assess", "--total", total, "--actor", unit2, columns=1000)
        assert_clean_refusal(p, "invalid_input", "total", word)

    # missing --actor is a usage error (Click's), still exit 2 and no traceback
    p = run(shanxi, "cases", "act", str(case), "certify")
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert "Missingoption'--actor'" in flat(p.stderr)

    d = show(shanxi, case)
    assert (d["state"], d["version"], len(d["events"])) == ("verified", 4, 4)
    assert d["allowed_actions"] == ["order_rectification", "close", "withdraw"]
    assert sql(shanxi, "SELECT state, version FROM cases WHERE id = ?", case2) == [("registered", 1)]
    assert sql(shanxi, "SELECT count(*) FROM events") == [(35 + 3,)]


def test_refusal_is_one_line_when_stderr_is_not_a_terminal(shanxi: Path) -> None:
    p = run(shanxi, "cases", "act", "1", "certify", "--actor", COORDINATOR)
    assert p.returncode == 2
    assert p.stderr.startswith("error (action_refused): ")
    assert p.stderr.count("\n") == 1, p.stderr


# ---------------------------------------------------------------- units import
def test_units_import_of_a_bad_csv_names_the_lines_and_writes_nothing(shanxi: Path, tmp_path: Path) -> None:
    before = sql(shanxi, "SELECT * FROM units ORDER BY id")
    bad = tmp_path / "bad.csv"
    bad.write_bytes("\n".join([
        "单位名称,所属地区,类别,联系人,电子邮箱",
        "太原市机关事务管理局,shanxi-taiyuan,行政机关,李娜,lina@example.cn",  # 2 good
        "太原市审计局,shanxi-taiyuan,审计机关,,",  # 3 bad category
        "",  # 4
        "大同市民政局,shanxi-nowhere,行政机关,,",  # 5 unknown jurisdiction
        "省委组织部,shanxi,党的机关,,",  # 6 exists already (no --update)
    ]).encode("gbk") + b"\n")
    p = run(shanxi, "units", "import", str(bad))
    assert_clean_refusal(p, "invalid_input", "nothing imported", f"{bad}:3", "审计机关", f"{bad}:5", "shanxi-nowhere",
                         f"{bad}:6", "省委组织部", "already exists", "unit 4")
    assert flat(f"{bad}:2") not in flat(p.stderr) and flat(f"{bad}:4") not in flat(p.stderr)
    assert sql(shanxi, "SELECT * FROM units ORDER BY id") == before


def test_markup_like_input_in_an_error_is_printed_verbatim(shanxi: Path, tmp_path: Path) -> None:
    bad = tmp_path / "markup.csv"
    bad.write_text("name,jurisdiction,category,[/b]\n省民政厅,shanxi,行政机关,\n", encoding="utf-8")
    p = run(shanxi, "units", "import", str(bad), columns=1000)
    assert_clean_refusal(p, "invalid_input", "unknown column '[/b]'")


def test_units_list_shows_a_name_with_brackets(shanxi: Path, tmp_path: Path) -> None:
    roster = tmp_path / "odd.csv"
    roster.write_text("name,jurisdiction,category\n省委[/x]办公室,shanxi,党的机关\n", encoding="utf-8")
    engine = make_engine(f"sqlite:///{shanxi}")
    try:
        assert import_units(Database(engine), roster, datetime.now(timezone.utc)).created == 1
    finally:
        engine.dispose()
    checkpoint(shanxi)
    p = run(shanxi, "units", "list", columns=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "省委[/x]办公室" in p.stdout


# ---------------------------------------------------------------- tampering
def test_audit_finds_an_altered_event_payload(shanxi: Path) -> None:
    case = 3
    unit = unit_of(shanxi, case)
    act_in_process(shanxi, case, ("self_assess", {"total": "86"}, unit), ("submit", {}, unit))
    act_in_process(shanxi, 5, ("self_assess", {"total": "90"}, unit_of(shanxi, 5)))
    sql(shanxi, "DROP TRIGGER events_no_update")
    sql(shanxi, "UPDATE events SET payload = ? WHERE case_id = ? AND seq = 2", '{"total":"96"}', case)
    assert sql(shanxi, "SELECT payload FROM events WHERE case_id = ? AND seq = 2", case) == [('{"total":"96"}',)]
    p = run(shanxi, "audit", "verify", columns=1000)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert "audit FAILED: 1 problem(s) in 35 cases, 38 events" in p.stderr
    assert f"case {case} event #2: SelfAssessmentRecorded: stored hash does not match its content" in p.stderr
    assert "case 5" not in p.stderr


def test_audit_finds_an_altered_case_row(shanxi: Path) -> None:
    sql(shanxi, "UPDATE cases SET state = 'certified' WHERE id = 12")
    p = run(shanxi, "audit", "verify", columns=1000)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert "1 problem(s)" in p.stderr
    assert "case 12: case row differs from the replay of its events: state is 'certified', replay gives " \
           "'registered'" in p.stderr


def test_audit_finds_a_deleted_last_event(shanxi: Path) -> None:
    case = 7
    unit = unit_of(shanxi, case)
    act_in_process(shanxi, case, ("self_assess", {"total": "86"}, unit), ("submit", {}, unit))
    sql(shanxi, "DROP TRIGGER events_no_delete")
    sql(shanxi, "DELETE FROM events WHERE case_id = ? AND seq = 3", case)
    p = run(shanxi, "audit", "verify", columns=1000)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert "1 problem(s)" in p.stderr
    finding = [line for line in p.stderr.splitlines() if line.startswith("  - ")]
    assert len(finding) == 1
    assert finding[0].startswith(f"  - case {case}: case row differs from the replay")
    assert "version is 3, replay gives 2" in finding[0]


def test_events_are_append_only_in_sqlite(shanxi: Path) -> None:
    before = sql(shanxi, "SELECT * FROM events ORDER BY position")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: UPDATE refused"):
        sql(shanxi, "UPDATE events SET payload = '{}' WHERE case_id = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: DELETE refused"):
        sql(shanxi, "DELETE FROM events WHERE case_id = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: DELETE refused"):
        sql(shanxi, "DELETE FROM events")
    assert sql(shanxi, "SELECT * FROM events ORDER BY position") == before


def test_events_are_append_only_in_the_database(db: Database, clock) -> None:
    """The same guarantee on both databases (SQLite triggers, a PostgreSQL trigger function)."""
    open_shanxi(db, clock.now())
    for statement in ("UPDATE events SET actor = 'admin:someone-else' WHERE case_id = 1",
                      "DELETE FROM events WHERE case_id = 1"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 35
        assert conn.execute(text("SELECT actor FROM events WHERE case_id = 1")).scalar() == "admin:test"
