"""The ``workflow`` command on a SQLite file, as a user runs it: its arguments, a clean
environment (only what the test sets), its working folder, its terminal width, its output,
error output and exit code.

A process costs ~1.5 s to start (the interpreter and the imports), and this file runs ~150
commands, so each is run in this process through the command's own entry point
(``workflow.cli.main``) with the environment, the folder, ``sys.argv`` and the output streams
swapped for the call; ``test_the_installed_command_runs_as_a_process`` (and every command, with
``WORKFLOW_TEST_CLI=process``) runs the installed script in a subprocess. The Shanxi demo
database (the 2021 example round and the demo's admin, then the accounts who act: two
coordinators and some units' people, made through ``workflow accounts create``) is built once
per module and copied, and preparatory actions that are not themselves under test (e.g. attaching evidence
before a submission) are taken in-process through the services.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.clock import BUSINESS_TZ
from workflow.demo import ADMIN_LOGIN
from workflow.domain.case import Actor
from workflow.domain.rubric import Rubric, diff_rubrics
from workflow.files import import_units
from workflow.service.cases import perform_action

from ..serving import run_cli
from ..support import EXAMPLES, OPERATOR, RUBRICS, fake_sha, open_shanxi, ready_to_submit, sheet_for

WORKFLOW = Path(sys.executable).parent / "workflow"
COORDINATOR = "coordinator:wang"  # ROLE:LOGIN of the coordinator account made by the fixture
ADMIN = ADMIN_LOGIN  # the demo's admin account (the installation's first)
UNIT_ACCOUNTS = (3, 4, 6, 9, 10)  # the units whose people act through the CLI here: account unit-<id>
SX = RUBRICS.get("shanxi-2020")
HN = RUBRICS.get("hunan-2020")


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
    if os.environ.get("WORKFLOW_TEST_CLI") == "process":
        return run_process(list(args), clean, cwd or db_file.parent)
    return run_cli(list(args), clean, cwd or db_file.parent)


def run_process(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WORKFLOW), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


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
            perform_action(Database(engine), case_id, action, data, Actor.parse(actor), datetime.now(UTC))
    finally:
        engine.dispose()
    checkpoint(db_file)


def unit_of(db_file: Path, case_id: int) -> str:
    """The case's unit as an in-process actor (``unit:N``)."""
    (unit_id,), = sql(db_file, "SELECT unit_id FROM cases WHERE id = ?", case_id)
    return f"unit:{unit_id}"


def unit_login(db_file: Path, case_id: int) -> str:
    """The login of the account of the case's unit, for ``--actor``."""
    (unit_id,), = sql(db_file, "SELECT unit_id FROM cases WHERE id = ?", case_id)
    assert unit_id in UNIT_ACCOUNTS, f"no account was made for unit {unit_id}"
    return f"unit-{unit_id}"


def recorded_actor(db_file: Path, login: str) -> str:
    """What an event records for an action the account ``login`` took through the CLI."""
    (account_id, role, name, unit_id), = sql(db_file, "SELECT id, role, name, unit_id FROM accounts WHERE login = ?",
                                             login)
    return f"{role}:{unit_id if role == 'unit' else login};account={account_id};name={name};via=cli"


def plain(value: str) -> str:
    """``"9.0"`` → ``"9"``: the text a person would type."""
    d = Decimal(value)
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def sheet(rubric: Rubric, total: str) -> dict[str, str]:
    """A complete sheet scoring exactly ``total`` (``sheet_for``, values written plainly)."""
    return {code: plain(value) for code, value in sheet_for(rubric, total).items()}


def scored(entries: dict[str, str]) -> list[str]:
    return [code for code, value in entries.items() if Decimal(value) > 0]


def write_json_sheet(path: Path, entries: dict[str, str]) -> Path:
    """A JSON object with the values as JSON numbers, written as they are (8.5 stays 8.5)."""
    path.write_text("{" + ", ".join(f'"{code}": {value}' for code, value in entries.items()) + "}\n",
                    encoding="utf-8")
    return path


def write_csv_sheet(path: Path, entries: dict[str, str], header: bool = True, encoding: str = "utf-8") -> Path:
    lines = (["code,value"] if header else []) + [f"{code},{value}" for code, value in entries.items()]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def attach_in_process(db_file: Path, case_id: int, codes: list[str]) -> None:
    """The unit attaches one (pretend) evidence file to each criterion (no ``evidence`` command used)."""
    unit = unit_of(db_file, case_id)
    act_in_process(db_file, case_id, *[
        ("attach_evidence", {"criterion": code, "sha256": fake_sha(f"{case_id}-{code}"), "filename": f"{code}.pdf",
                             "size": 1000, "type": "pdf"}, unit) for code in codes])


def ready_in_process(db_file: Path, case_id: int, total: str) -> None:
    """Self-assess a complete sheet of ``total`` and attach evidence to its scored lines (services)."""
    (unit_id,), = sql(db_file, "SELECT unit_id FROM cases WHERE id = ?", case_id)
    engine = make_engine(f"sqlite:///{db_file}")
    try:
        ready_to_submit(Database(engine), case_id, unit_id, total, datetime.now(UTC), SX)
    finally:
        engine.dispose()
    checkpoint(db_file)


def version_of(db_file: Path, case_id: int) -> int:
    (version,), = sql(db_file, "SELECT version FROM cases WHERE id = ?", case_id)
    return version


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``workflow demo --example-only`` run once into a fresh file, and the accounts who act made
    through the CLI by the demo's admin: (the file, the demo's run)."""
    assert WORKFLOW.exists(), f"the console script is not installed at {WORKFLOW}"
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    p = run(path, "demo", "--example-only")
    assert p.returncode == 0, p.stderr
    accounts = [["--login", "wang", "--name", "王科长", "--role", "coordinator", "--jurisdiction", "shanxi"],
                ["--login", "zhang", "--name", "张主任", "--role", "coordinator", "--jurisdiction", "shanxi-taiyuan"],
                *[["--login", f"unit-{u}", "--name", f"联络员{u}", "--role", "unit", "--unit", str(u)]
                  for u in UNIT_ACCOUNTS]]
    for args in accounts:
        made = run(path, "accounts", "create", *args, "--actor", ADMIN, columns=200)
        assert made.returncode == 0 and f": {args[1]} ({args[3]}, {args[5]}) made by admin:{ADMIN};" in made.stdout, \
            (made.stdout, made.stderr)
    checkpoint(path)
    return path, p


@pytest.fixture
def shanxi(demo: tuple[Path, Any], tmp_path: Path) -> Path:
    """A private copy of the demo database: 27 jurisdictions, 35 units, round shanxi-2021 with 35 cases,
    the accounts of ``demo``."""
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
    upgraded = re.search(r"is at schema (\S+)$", p.stdout.strip())
    assert upgraded, p.stdout
    p = run(path, "db", "current")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"current: {upgraded[1]}; code needs: {upgraded[1]}"
    p = run(path, "audit", "verify")  # exit 0 on an empty, migrated database; exit 1 is kept for findings
    assert p.returncode == 0, p.stderr
    assert "auditok:0cases,0events" in flat(p.stdout)


def test_unexpected_error_exits_70_without_a_traceback(tmp_path: Path) -> None:
    p = run(tmp_path / "x.db", "cases", "list", env={"WORKFLOW_DATABASE_URL": "notadialect://nowhere"})
    assert p.returncode == 70, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("internal error: ")
    assert "WORKFLOW_DEBUG" in p.stderr


# ---------------------------------------------------------------- accounts
def test_the_first_account_is_an_admin_made_without_actor_and_then_actor_is_an_account(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    assert run(path, "db", "upgrade").returncode == 0
    p = run(path, "accounts", "create", "--login", "ops", "--name", "运维", "--role", "admin", columns=200)
    assert p.returncode == 0 and "account 1: ops (运维, admin) made by system:setup" in p.stdout, p.stderr
    p = run(path, "accounts", "create", "--login", "ops2", "--name", "运维二", "--role", "admin", columns=1000)
    assert_clean_refusal(p, "forbidden", "only the first account, an admin, may be made without one")
    p = run(path, "jurisdictions", "import", str(EXAMPLES / "jurisdictions.csv"), "--actor", "admin:test",
            columns=1000)  # free text is no actor any more
    assert_clean_refusal(p, "invalid_input", "--actor 'admin:test' names no account")
    p = run(path, "jurisdictions", "import", str(EXAMPLES / "jurisdictions.csv"), "--actor", "ops", columns=200)
    assert p.returncode == 0 and "27 created" in p.stdout, p.stderr
    p = run(path, "accounts", "create", "--login", "Wang Li", "--name", "王科长", "--role", "coordinator",
            "--jurisdiction", "shanxi", "--actor", "ops", columns=1000)
    assert_clean_refusal(p, "invalid_input", "login", "2-48 of a-z 0-9 . _ -")
    p = run(path, "accounts", "create", "--login", "wang.li", "--name", "王科长", "--role", "coordinator",
            "--jurisdiction", "shanxi", "--email", "wang@example.cn", "--actor", "ops", columns=200)
    assert p.returncode == 0 and "account 2: wang.li (王科长, coordinator) made by admin:ops;account=1;name=运维;" \
        "via=cli" in p.stdout, p.stdout
    p = run(path, "accounts", "create", "--login", "wang.li2", "--name", "王科长", "--role", "coordinator",
            "--jurisdiction", "shanxi", "--actor", "ops", columns=1000)
    assert_clean_refusal(p, "invalid_input", "'王科长' already names an account in shanxi")
    p = run(path, "jurisdictions", "import", str(EXAMPLES / "jurisdictions.csv"), "--actor", "coordinator:wang.li",
            columns=1000)
    assert_clean_refusal(p, "forbidden", "coordinator account", "admin account")
    p = run(path, "tokens", "create", "--account", "wang.li", "--actor", "ops", columns=200)
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1].startswith("wf_"), p.stderr
    p = run(path, "tokens", "list", columns=300)
    assert p.returncode == 0 and re.search(r"│ 1\s+│ wang\.li\s+│ 王科长\s+│ coordinator │ shanxi\s+│", p.stdout), p.stdout
    p = run(path, "accounts", "list", "--actor", "ops", columns=300)
    assert p.returncode == 0 and "wang@example.cn" in p.stdout and "ops" in p.stdout, p.stderr
    p = run(path, "audit", "operator-events", "--stream", "accounts", "--format", "csv", columns=300)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout.lstrip("\ufeff"))))  # the refusals wrote nothing
    assert [(r["type"], r["actor"].split(";")[0]) for r in rows] == [("AccountCreated", "system:setup"),
                                                                      ("AccountCreated", "admin:ops")]
    assert rows[1]["actor"] == "admin:ops;account=1;name=运维;via=cli" and json.loads(rows[1]["payload"])["login"] == \
        "wang.li"


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
    p = run(shanxi, "demo", "--example-only")
    assert p.returncode == 0, p.stderr
    assert "roundshanxi-2021:35cases" in flat(p.stdout)
    assert sql(shanxi, "SELECT id, state, version, last_hash FROM cases ORDER BY id") == before
    assert sql(shanxi, "SELECT count(*) FROM units") == [(35,)]
    assert sql(shanxi, "SELECT count(*) FROM events") == [(35,)]


# ---------------------------------------------------------------- a full Shanxi path
def test_full_rectification_path_through_the_cli(shanxi: Path, tmp_path: Path) -> None:
    case = 4
    unit = unit_login(shanxi, case)
    self_sheet = sheet(SX, "86")
    verify_sheet = sheet(SX, "79.5")
    recheck_sheet = sheet(SX, "85")
    assert any("." in v for v in verify_sheet.values())   # fractions travel through the files exactly
    self_json = write_json_sheet(tmp_path / "self.json", self_sheet)
    verify_csv = write_csv_sheet(tmp_path / "verify.csv", verify_sheet)
    # the recheck sheet: a GBK CSV without a header whose 1.1.1 line is corrected by --entry
    recheck_csv = write_csv_sheet(tmp_path / "recheck.csv", {**recheck_sheet, "1.1.1": "0"}, header=False,
                                  encoding="gbk")
    evidence = scored(self_sheet)

    def act(args: list[str], state: str, version: int) -> None:
        p = run(shanxi, "cases", "act", str(case), *args)
        assert p.returncode == 0, (args, p.stderr)
        assert "Traceback" not in p.stderr
        assert f"→{state}(version{version})" in flat(p.stdout), p.stdout

    act(["self_assess", "--sheet", str(self_json), "--actor", unit], "self_assessed", 2)
    p = run(shanxi, "cases", "act", str(case), "submit", "--actor", unit, columns=1000)
    assert_clean_refusal(p, "incomplete", "cannot be submitted", *evidence[:3])
    attach_in_process(shanxi, case, evidence)
    # the two documents the notice asks for besides the evidence (自评报告, 自评打分表), through the CLI
    p = run(shanxi, "cases", "act", str(case), "submit", "--actor", unit, columns=1000)
    assert_clean_refusal(p, "incomplete", "documents.self_report", "自评报告 not attached / 未上传自评报告",
                         "documents.score_sheet")
    for document, name in (("self_report", "自评报告.pdf"), ("score_sheet", "自评打分表.pdf")):
        (tmp_path / name).write_bytes(b"%PDF-1.4\n% " + name.encode() + b"\n%%EOF\n")
        p = run(shanxi, "documents", "attach", str(case), document, str(tmp_path / name), "--actor", unit)
        assert p.returncode == 0 and f"{document}: {name} attached (pdf" in p.stdout, p.stderr
    p = run(shanxi, "documents", "list", str(case), columns=200)
    assert p.returncode == 0 and "自评报告.pdf" in p.stdout and "自评打分表.pdf" in p.stdout
    n = len(evidence) + 2
    act(["submit", "--actor", unit], "submitted", 3 + n)
    act(["verify", "--sheet", str(verify_csv), "--actor", COORDINATOR, "--note", "评审组核查"], "verified", 4 + n)
    act(["order_rectification", "--actor", COORDINATOR], "rectification", 5 + n)
    act(["request_recheck", "--actor", unit], "recheck", 6 + n)
    act(["recheck", "--sheet", str(recheck_csv), "--entry", f"1.1.1={recheck_sheet['1.1.1']}",
         "--actor", COORDINATOR], "certified", 7 + n)
    # filing is not an action taken by name: only a filing batch files a case (docs/security.md)
    p = run(shanxi, "cases", "act", str(case), "file", "--actor", COORDINATOR, columns=1000)
    assert_clean_refusal(p, "forbidden", "filing batch", "workflow filings create")
    p = run(shanxi, "filings", "create", "shanxi-2021", "--jurisdiction", "shanxi", "--note", "2021年度",
            "--actor", COORDINATOR, columns=200)
    assert p.returncode == 0 and f"filing batch shanxi-2021-filing-1: 1 cases filed: {case}" in p.stdout, p.stderr
    batch_id = "shanxi-2021-filing-1"

    p = run(shanxi, "cases", "show", str(case), "--json")
    assert p.returncode == 0, p.stderr
    # scores are JSON numbers, exactly (read back as Decimals, never through float)
    assert re.search(r'"verified_total": 79\.5,', p.stdout) and re.search(r'"pass_mark": 80,', p.stdout)
    d = json.loads(p.stdout, parse_float=Decimal)
    assert d["state"] == "filed"
    assert d["version"] == 8 + n
    assert d["allowed_actions"] == ["revoke"]  # a filed title can still be taken back (回头看)
    assert d["unit"]["name"] == "省委组织部"
    assert (d["self_total"], d["verified_total"], d["recheck_total"], d["pass_mark"]) == (
        86, Decimal("79.5"), 85, 80)
    assert d["passed"] is True
    today = datetime.now(BUSINESS_TZ).date()
    assert d["rectification_due"] in {(today + timedelta(days=20)).isoformat(),
                                      (today + timedelta(days=19)).isoformat()}  # in case the day turned
    events = d["events"]
    assert [(e["seq"], e["type"]) for e in events] == [
        (1, "CaseRegistered"), (2, "SelfAssessmentRecorded"), *[(3 + i, "EvidenceAttached") for i in range(n - 2)],
        (1 + n, "DocumentAttached"), (2 + n, "DocumentAttached"),
        (3 + n, "SelfAssessmentSubmitted"), (4 + n, "CaseVerified"), (5 + n, "RectificationOrdered"),
        (6 + n, "RecheckRequested"), (7 + n, "CaseRechecked"), (8 + n, "CaseFiled")]
    # who acted: the account, its display name and the channel (the evidence was attached in-process)
    by_unit, by_wang = recorded_actor(shanxi, unit), recorded_actor(shanxi, "wang")
    assert by_unit.startswith("unit:4;account=") and by_wang.startswith("coordinator:wang;account=")
    assert [e["actor"] for e in events] == [recorded_actor(shanxi, ADMIN), by_unit, *[unit_of(shanxi, case)] * (n - 2),
                                            by_unit, by_unit, by_unit, by_wang, by_wang, by_unit, by_wang, by_wang]
    recorded, verified, ordered, rechecked, filed = (events[1], events[3 + n], events[4 + n], events[6 + n],
                                                     events[7 + n])
    assert recorded["payload"] == {"v": 2, "entries": self_sheet, "total": "86", "complete": True}
    assert [e["payload"]["criterion"] for e in events[2:n]] == evidence
    assert verified["payload"] == {"v": 2, "entries": verify_sheet, "total": verified["payload"]["total"],
                                   "pass_mark": "80", "passed": False, "must_pass_failed": [], "note": "评审组核查"}
    assert Decimal(verified["payload"]["total"]) == Decimal("79.5")
    assert ordered["payload"] == {"days": 20, "due_on": d["rectification_due"]}
    assert rechecked["payload"] == {"v": 2, "entries": recheck_sheet, "total": "85", "pass_mark": "80",
                                    "passed": True, "must_pass_failed": []}
    assert filed["payload"] == {"batch": batch_id, "note": "2021年度"}
    for before, after in zip(events, events[1:]):
        assert after["prev_hash"] == before["hash"]

    assert sql(shanxi, "SELECT state, version FROM cases WHERE id = ?", case + 1) == [("registered", 1)]

    p = run(shanxi, "audit", "verify")
    assert p.returncode == 0, p.stderr
    assert f"auditok:35cases,{35 + 7 + n}events" in flat(p.stdout)


# ---------------------------------------------------------------- refusals
def test_refusals_change_nothing(shanxi: Path, tmp_path: Path) -> None:
    case = 9
    unit = unit_of(shanxi, case)
    ready_in_process(shanxi, case, "70")
    act_in_process(shanxi, case, ("submit", {}, unit), ("verify", {"entries": sheet(SX, "79.5")}, COORDINATOR))
    unit = unit_login(shanxi, case)
    version = version_of(shanxi, case)
    assert sql(shanxi, "SELECT state FROM cases WHERE id = ?", case) == [("verified",)]
    (events_before,), = sql(shanxi, "SELECT count(*) FROM events")

    # (arguments, error code, words the message must contain, lines printed)
    refusals = [
        (["certify", "--actor", COORDINATOR], "action_refused", ["certify refused", "below the pass mark"], 1),
        (["frobnicate", "--actor", COORDINATOR], "action_refused", ["unknown action 'frobnicate'"], 1),
        (["verify", "--entry", "1.1.1=9", "--actor", unit], "action_refused", ["a unit may not verify"], 1),
        (["certify", "--actor", "boss"], "invalid_input", ["--actor 'boss' names no account", f"accounts: {ADMIN}"], 1),
        (["certify", "--actor", "admin:test"], "invalid_input", ["--actor 'admin:test' names no account"], 1),
        (["certify", "--actor", f"coordinator:{unit}"], "invalid_input",
         [f"account '{unit}' is a unit account, not coordinator"], 1),
        (["order_rectification", "--actor", COORDINATOR, "--expected-version", str(version - 1)], "conflict",
         [f"version {version}, not {version - 1}"], 1),
    ]
    for args, code, words, lines in refusals:
        p = run(shanxi, "cases", "act", str(case), *args, columns=1000)
        assert_clean_refusal(p, code, *words)
        assert p.stderr.count("\n") == lines, f"{args}: {p.stderr!r}"

    # bad sheet entries on a case where a sheet is asked for: named, and nothing is written
    case2 = 10
    unit2 = unit_login(shanxi, case2)
    unknown_csv = write_csv_sheet(tmp_path / "unknown.csv", {"1.1.1": "9", "9.9.9": "1", "2.1.1": "1"})
    unknown_json = write_json_sheet(tmp_path / "unknown.json", {"1.1.1": "8.5", "8.8": "1"})
    short_row = tmp_path / "short.csv"
    short_row.write_text("code,value\n1.1.1,9\n2.1.1\n", encoding="utf-8")
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"1.1.1": 9,', encoding="utf-8")
    bad_entries = [
        (["--entry", "abc"], ["--entry abc", "expected CODE=POINTS"]),
        (["--entry", "1.1.1=9", "--entry", "2.1.1="], ["--entry 2.1.1=", "expected CODE=POINTS"]),
        (["--entry", "1.1.1=abc"], ["1.1.1", "decimal number"]),
        (["--entry", "1.1.1=10"], ["1.1.1", "10 分 is not possible: up to 9"]),
        (["--entry", "1.1.1=10", "--entry", "2.1.2=0.3", "--entry", "7.7=1"],
         ["1.1.1", "10 分 is not possible: up to 9", "2.1.2", "0.3 分 is not possible", "7.7", "unknown criterion"]),
        (["--sheet", str(unknown_csv)], ["9.9.9", "unknown criterion"]),
        (["--sheet", str(unknown_json)], ["8.8", "unknown criterion"]),
        (["--sheet", str(short_row)], [f"{short_row}:3", "expected two cells"]),
        (["--sheet", str(not_json)], [f"{not_json}", "not JSON"]),
    ]
    for args, words in bad_entries:
        p = run(shanxi, "cases", "act", str(case2), "self_assess", *args, "--actor", unit2, columns=1000)
        assert_clean_refusal(p, "invalid_input", *words)
    p = run(shanxi, "cases", "act", str(case2), "self_assess", "--actor", unit2, columns=1000)
    assert_clean_refusal(p, "invalid_input", "entries", "required for self_assess")
    # another unit's account may not act on the case
    p = run(shanxi, "cases", "act", str(case2), "self_assess", "--entry", "1.1.1=9", "--actor", unit, columns=1000)
    assert_clean_refusal(p, "action_refused", "may act only on its own unit's cases")

    # missing --actor is a usage error (Click's), still exit 2 and no traceback
    p = run(shanxi, "cases", "act", str(case), "certify")
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert "Missingoption'--actor'" in flat(p.stderr)

    d = show(shanxi, case)
    assert (d["state"], d["version"], len(d["events"])) == ("verified", version, version)
    assert d["allowed_actions"] == ["order_rectification", "close", "withdraw"]
    assert sql(shanxi, "SELECT state, version FROM cases WHERE id = ?", case2) == [("registered", 1)]
    assert sql(shanxi, "SELECT count(*) FROM events") == [(events_before,)]


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
    p = run(shanxi, "units", "import", str(bad), "--actor", ADMIN)
    assert_clean_refusal(p, "invalid_input", "nothing imported", f"{bad}:3", "审计机关", f"{bad}:5", "shanxi-nowhere",
                         f"{bad}:6", "省委组织部", "already exists", "unit 4")
    assert flat(f"{bad}:2") not in flat(p.stderr) and flat(f"{bad}:4") not in flat(p.stderr)
    assert sql(shanxi, "SELECT * FROM units ORDER BY id") == before


def test_markup_like_input_in_an_error_is_printed_verbatim(shanxi: Path, tmp_path: Path) -> None:
    bad = tmp_path / "markup.csv"
    bad.write_text("name,jurisdiction,category,[/b]\n省民政厅,shanxi,行政机关,\n", encoding="utf-8")
    p = run(shanxi, "units", "import", str(bad), "--actor", ADMIN, columns=1000)
    assert_clean_refusal(p, "invalid_input", "unknown column '[/b]'")


def test_units_list_shows_a_name_with_brackets(shanxi: Path, tmp_path: Path) -> None:
    roster = tmp_path / "odd.csv"
    roster.write_text("name,jurisdiction,category\n省委[/x]办公室,shanxi,党的机关\n", encoding="utf-8")
    engine = make_engine(f"sqlite:///{shanxi}")
    try:
        assert import_units(Database(engine), roster, datetime.now(UTC), actor=OPERATOR).created == 1
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
    ready_in_process(shanxi, case, "86")
    act_in_process(shanxi, case, ("submit", {}, unit))
    act_in_process(shanxi, 5, ("self_assess", {"entries": {"1.1.1": "9"}}, unit_of(shanxi, 5)))
    (events,), = sql(shanxi, "SELECT count(*) FROM events")
    assert events == 35 + version_of(shanxi, case) - 1 + 1
    (payload,), = sql(shanxi, "SELECT payload FROM events WHERE case_id = ? AND seq = 2", case)
    assert '"total":"86' in payload
    sql(shanxi, "DROP TRIGGER events_no_update")
    sql(shanxi, "UPDATE events SET payload = replace(payload, '\"total\":\"86', '\"total\":\"96') "
                "WHERE case_id = ? AND seq = 2", case)
    assert sql(shanxi, "SELECT payload FROM events WHERE case_id = ? AND seq = 2", case) == [
        (payload.replace('"total":"86', '"total":"96'),)]
    p = run(shanxi, "audit", "verify", columns=1000)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert f"audit FAILED: 1 problem(s) in 35 cases, {events} events" in p.stderr
    assert f"case {case} event #2: SelfAssessmentRecorded: stored hash does not match its content" in p.stderr
    assert "case 5" not in p.stderr


def test_audit_finds_an_altered_case_row(shanxi: Path) -> None:
    sql(shanxi, "UPDATE cases SET state = 'certified' WHERE id = 12")
    p = run(shanxi, "audit", "verify", columns=1000)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert "first: case 12: case row differs from the replay of its events: state is 'certified', replay gives " \
           "'registered'" in p.stderr
    # the progress counts were moved by no transition: a recount finds the certified case they miss
    assert "progress counts #1: round shanxi-2021" in p.stderr and "certified: kept 0, recounted 1" in p.stderr
    assert "unit 12: certified since never kept, 2021 recounted" in p.stderr


def test_audit_finds_a_deleted_last_event(shanxi: Path) -> None:
    case = 7
    unit = unit_of(shanxi, case)
    ready_in_process(shanxi, case, "86")
    act_in_process(shanxi, case, ("submit", {}, unit))
    last = version_of(shanxi, case)
    sql(shanxi, "DROP TRIGGER events_no_delete")
    sql(shanxi, "DELETE FROM events WHERE case_id = ? AND seq = ?", case, last)
    p = run(shanxi, "audit", "verify", columns=1000)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert "1 problem(s)" in p.stderr
    finding = [line for line in p.stderr.splitlines() if line.startswith("  - ")]
    assert len(finding) == 1
    assert finding[0].startswith(f"  - case {case}: case row differs from the replay")
    assert f"version is {last}, replay gives {last - 1}" in finding[0]


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
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 35
        assert conn.execute(text("SELECT actor FROM events WHERE case_id = 1")).scalar() == "admin:test"


# ---------------------------------------------------------------- rubrics
RUBRIC_KEYS = ["id", "title", "total", "pass_mark", "sections"]
SECTION_KEYS = ["code", "name", "max_points", "items"]
ITEM_KEYS = ["code", "name", "max_points", "criteria"]
CRITERION_KEYS = ["code", "text", "points", "cap", "per_occurrence", "must_pass", "allowed"]


def rubric_json(db_file: Path, rubric_id: str) -> tuple[str, dict[str, Any]]:
    p = run(db_file, "rubrics", "show", rubric_id, "--json")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    return p.stdout, json.loads(p.stdout, parse_float=Decimal)


def is_number(value: Any) -> bool:
    """A JSON number as read with parse_float=Decimal (never a string, never a bool)."""
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def test_rubrics_list(tmp_path: Path) -> None:
    p = run(tmp_path / "unused.db", "rubrics", "list", columns=300)
    assert p.returncode == 0, p.stderr
    rows = {m[0]: m for m in re.findall(r"^│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (\d+)\s+│$",
                                         p.stdout, re.M)}
    assert set(rows) == {"shanxi-2020", "hunan-2020"}
    assert rows["shanxi-2020"][1:] == (SX.title, "shanxi", "100", "80", "42")
    assert rows["hunan-2020"][1:] == (HN.title, "hunan", "100", "80", str(len(HN.criteria())))


def test_rubrics_show_json_has_the_documented_shape_and_exact_numbers(tmp_path: Path) -> None:
    text, data = rubric_json(tmp_path / "unused.db", "shanxi-2020")
    assert list(data) == RUBRIC_KEYS
    assert (data["id"], data["title"], data["total"], data["pass_mark"]) == ("shanxi-2020", SX.title, 100, 80)
    numbers = [data["total"], data["pass_mark"]]
    for section in data["sections"]:
        assert list(section) == SECTION_KEYS
        numbers.append(section["max_points"])
        for item in section["items"]:
            assert list(item) == ITEM_KEYS
            numbers.append(item["max_points"])
            for criterion in item["criteria"]:
                assert list(criterion) == CRITERION_KEYS
                assert isinstance(criterion["per_occurrence"], bool) and isinstance(criterion["must_pass"], bool)
                assert isinstance(criterion["code"], str) and isinstance(criterion["text"], str)
                numbers += [criterion["points"], criterion["cap"]]
    assert all(is_number(n) for n in numbers), numbers
    assert [(s["code"], s["max_points"]) for s in data["sections"]] == [
        ("1", 9), ("2", 27), ("3", 25), ("4", 22), ("5", 17)]
    criteria = {c["code"]: c for s in data["sections"] for i in s["items"] for c in i["criteria"]}
    assert list(criteria) == [c.code for c in SX.criteria()]
    assert {k: criteria["2.2.2"][k] for k in ("points", "cap", "per_occurrence", "must_pass")} == {
        "points": 1, "cap": 5, "per_occurrence": True, "must_pass": False}
    assert criteria["1.1.1"]["text"].startswith("完成上级主管部门下达的")
    assert data == SX.to_json_dict()
    assert '"total": 100,' in text and '"points": 1,' in text   # numbers, not strings


def test_rubrics_show_json_writes_half_points_as_json_numbers(tmp_path: Path) -> None:
    text, data = rubric_json(tmp_path / "unused.db", "hunan-2020")
    criteria = {c["code"]: c for s in data["sections"] for i in s["items"] for c in i["criteria"]}
    assert (criteria["3.1.3"]["points"], criteria["3.3.1"]["cap"], criteria["4.1.2"]["points"]) == (
        Decimal("1.5"), Decimal("2.5"), Decimal("3.5"))
    for value in ("1.5", "2.5", "3.5"):
        assert f'"points": {value},' in text and f'"cap": {value},' in text
        assert f'"{value}"' not in text
    assert [s["max_points"] for s in data["sections"]] == [10, 28, 21, 24, 17]
    assert data == HN.to_json_dict()


def test_rubrics_show_as_a_table_and_an_unknown_rubric(tmp_path: Path) -> None:
    p = run(tmp_path / "unused.db", "rubrics", "show", "hunan-2020", columns=400)
    assert p.returncode == 0, p.stderr
    assert f"{HN.title}(hunan-2020)·total100·passmark80" in flat(p.stdout)
    assert re.search(r"^│ 2\.2\.5\s+│.*│ 1\s+│ 4\s+│ per occurrence\s+│$", p.stdout, re.M), p.stdout
    assert re.search(r"^│ 3\.1\.3\s+│.*│ 1\.5\s+│ 1\.5\s+│\s+│$", p.stdout, re.M)
    p = run(tmp_path / "unused.db", "rubrics", "show", "nowhere-2020")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith("error (") and "nowhere-2020" in p.stderr


def test_rubrics_diff_names_what_differs(tmp_path: Path) -> None:
    p = run(tmp_path / "unused.db", "rubrics", "diff", "shanxi-2020", "hunan-2020", columns=1000)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    rows = re.findall(r"^│ (\S+)\s+│ (\w+)\s+│ ([\w ]+?)\s+│ (.*?)\s+│ (.*?)\s+│$", p.stdout, re.M)
    assert ("1", "section", "max_points", "9", "10") in rows
    assert ("2", "section", "max_points", "27", "28") in rows
    only_a = next(r for r in rows if r[0] == "2.2.5.1")   # Shanxi's 2.2.5 has sub-lines, Hunan's does not
    assert (only_a[1], only_a[2], only_a[4]) == ("criterion", "only in A", "—")
    assert only_a[3] == SX.criterion("2.2.5.1").text
    expected = diff_rubrics(SX, HN)
    assert len(rows) == len(expected)
    assert f"{len(expected)}differences" in flat(p.stdout)

    p = run(tmp_path / "unused.db", "rubrics", "diff", "shanxi-2020", "shanxi-2020")
    assert p.returncode == 0, p.stderr
    assert "shanxi-2020 and shanxi-2020 are the same" in p.stdout


def test_a_sheet_is_points_a_count_says_so_and_a_refusal_lists_every_problem(shanxi: Path) -> None:
    """附件3 records points: "5.1.1 开展1项活动得2分，累计最高得4分" — 3 分 is refused with the values
    allowed, a count is given with --count, and every problem of a refused sheet is printed."""
    case = 6
    unit = unit_login(shanxi, case)
    before = sql(shanxi, "SELECT count(*) FROM events")
    p = run(shanxi, "cases", "act", str(case), "self_assess", "--entry", "5.1.1=3", "--entry", "2.2.2=7",
            "--count", "3.1.1=1", "--entry", "1.1.1=9", "--actor", unit, columns=1000)
    assert_clean_refusal(p, "invalid_input", "5.1.1: 3 分 is not possible: 2 分 per activity, up to 4 (0, 2, 4)",
                         "不能得3分", "2.2.2: 7 分 is not possible", "(0, 1, 2, 3, 4, 5)",
                         "3.1.1: a count is only for a criterion scored per occurrence")
    assert sql(shanxi, "SELECT count(*) FROM events") == before
    p = run(shanxi, "cases", "act", str(case), "self_assess", "--count", "5.1.1=1", "--count", "5.1.2=9",
            "--entry", "2.2.2=5", "--actor", unit, columns=1000)
    assert p.returncode == 0, p.stderr
    assert "5.1.1: 1 occurrence(s) → 2 分" in p.stdout and "5.1.2: 9 occurrence(s) → 4 分" in p.stdout
    assert "total 11 分" in p.stdout
    recorded = show(shanxi, case)["events"][-1]["payload"]
    assert recorded["entries"] == {"2.2.2": "5", "5.1.1": "2", "5.1.2": "4"}
    assert recorded["counts"] == {"5.1.1": 1, "5.1.2": 9} and recorded["v"] == 2
    p = run(shanxi, "cases", "act", str(case), "self_assess", "--count", "5.1.1=x", "--actor", unit)
    assert_clean_refusal(p, "invalid_input", "--count 5.1.1=x", "expected CODE=N")


# ---------------------------------------------------------------- rounds, targets, duties, calendars, contacts
def test_rounds_list_progress_and_rollover_through_the_cli(shanxi: Path, tmp_path: Path) -> None:
    """Progress against the target as a share of all agencies; a roll-over takes the calendar that
    serves next year and refuses without a target where no document sets one."""
    p = run(shanxi, "rounds", "list", columns=300)
    assert p.returncode == 0 and "shanxi-2021" in p.stdout and "rectification" in p.stdout, p.stderr
    p = run(shanxi, "rounds", "progress", "shanxi-2021", columns=300)
    assert p.returncode == 0, p.stderr
    assert re.search(r"山西省\s+│ 35\s+│ 0\s+│ 0\.00%\s+│ 50\.00%\s+│ no", p.stdout), p.stdout
    assert flat("every agency in scope") in flat(p.stdout)
    data = json.loads(run(shanxi, "rounds", "progress", "shanxi-2021", "--json").stdout)
    assert data["jurisdictions"][0]["agencies"] == 35 and data["rule"]["zh"].startswith("达标占比")
    out = tmp_path / "progress.xlsx"
    assert run(shanxi, "rounds", "progress", "shanxi-2021", "--xlsx", str(out)).returncode == 0 and out.stat().st_size
    p = run(shanxi, "rounds", "rollover", "shanxi-2021", "--actor", f"admin:{ADMIN}")  # ROLE:LOGIN
    assert_clean_refusal(p, "invalid_input", "target_share", "calendar shanxi sets no target for 2022")
    p = run(shanxi, "rounds", "rollover", "shanxi-2021", "--target", "0.6", "--actor", f"admin:{ADMIN}")
    assert p.returncode == 0, p.stderr
    assert flat("round shanxi-2022 open (calendar shanxi, target 0.6): 35 cases registered") in flat(p.stdout)


def test_duties_through_the_cli(shanxi: Path, tmp_path: Path) -> None:
    p = run(shanxi, "duties", "list", "--round", "shanxi-2021", columns=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("city_report") == 11 and "national_filing" in p.stdout
    report = tmp_path / "太原市年度创建总体情况.pdf"
    report.write_bytes(b"%PDF-1.4\n% taiyuan\n%%EOF\n")
    p = run(shanxi, "duties", "done", "shanxi-2021", "city_report", "--jurisdiction", "shanxi-taiyuan",
            "--actor", "coordinator:zhang")
    assert_clean_refusal(p, "invalid_input", "attachment", "需要附件")
    p = run(shanxi, "duties", "done", "shanxi-2021", "city_report", "--jurisdiction", "shanxi-taiyuan",
            "--file", str(report), "--note", "已报", "--actor", "coordinator:zhang")
    assert p.returncode == 0 and "shanxi-taiyuan city_report: recorded done" in p.stdout, p.stderr
    p = run(shanxi, "duties", "done", "shanxi-2021", "city_report", "--jurisdiction", "shanxi-taiyuan",
            "--file", str(report), "--actor", "coordinator:zhang")
    assert_clean_refusal(p, "action_refused", "already recorded done")
    p = run(shanxi, "duties", "history", "shanxi-2021", "shanxi-taiyuan", columns=300)
    assert p.returncode == 0 and "DutyDone" in p.stdout and "coordinator:zhang" in p.stdout
    assert flat(recorded_actor(shanxi, "zhang")) in flat(p.stdout)  # the account, its name, the channel
    p = run(shanxi, "audit", "verify")
    assert p.returncode == 0 and "1 duty streams, 1 duty events" in p.stdout, p.stdout


def test_calendars_show_dates_duties_documents_targets_and_missing_holidays(shanxi: Path) -> None:
    p = run(shanxi, "calendars", "list", columns=300)
    assert p.returncode == 0 and {"shanxi", "shanxi-2021", "hunan"} <= set(re.findall(r"│ ([a-z0-9-]+)\s", p.stdout))
    p = run(shanxi, "calendars", "show", "hunan", "--year", "2022", columns=300)
    assert p.returncode == 0, p.stderr
    assert "2023-03-10" in p.stdout and "city_filing" in p.stdout and "needs attachment" in p.stdout
    assert flat("target 2022: 70%") in flat(p.stdout)
    assert "自评表" in p.stdout and "创建工作方案" in p.stdout
    p = run(shanxi, "calendars", "show", "hunan", "--year", "2030", columns=300)
    assert "WARNING: no official holiday data for 2030" in p.stderr and "2031" in p.stderr
    assert "no target for 2030" in p.stdout


def test_contact_form_and_a_unit_certified_before_through_the_cli(shanxi: Path) -> None:
    p = run(shanxi, "units", "confirm-contact", "3", "--actor", "unit:unit-3")
    assert_clean_refusal(p, "invalid_input", "no contact on file", "请填写联系人信息表")
    p = run(shanxi, "units", "contact-form", "3", "--name", "张三", "--phone", "0351-1234567", "--email",
            "zhang@sx.example.cn", "--actor", "unit-3")
    assert p.returncode == 0 and "recorded on cases 3" in p.stdout, p.stderr
    assert show(shanxi, 3)["contact_form"] is True
    p = run(shanxi, "units", "certified-before", "4", "--year", "2020", "--note", "2020年省级示范单位",
            "--actor", "unit-4")  # a unit does not record its own certification
    assert_clean_refusal(p, "forbidden", "unit account")
    p = run(shanxi, "units", "certified-before", "4", "--year", "2020", "--note", "2020年省级示范单位",
            "--actor", ADMIN)
    assert p.returncode == 0 and "certified in 2020" in p.stdout, p.stderr
    p = run(shanxi, "units", "certified-before", "4", "--year", "1999", "--actor", ADMIN)
    assert_clean_refusal(p, "invalid_input", "unit.certified_year")


def test_spot_checks_and_filing_batches_through_the_cli(shanxi: Path, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{shanxi}")
    db = Database(engine)
    for case_id in (1, 2, 3):
        ready_to_submit(db, case_id, case_id, "90", datetime.now(UTC))
        for step, data, actor in (("submit", {}, Actor("unit", str(case_id))),
                                  ("verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "90")}, Actor.parse(COORDINATOR)),
                                  ("certify", {}, Actor.parse(COORDINATOR))):
            if step == "submit":
                from ..support import attach_documents

                attach_documents(db, case_id, Actor("unit", str(case_id)), datetime.now(UTC))
            perform_action(db, case_id, step, data, actor, datetime.now(UTC))
    engine.dispose()
    p = run(shanxi, "spot-checks", "draw", "shanxi-2021", "--jurisdiction", "shanxi", "--share", "0.5", "--seed", "7",
            "--actor", COORDINATOR, columns=200)
    assert p.returncode == 0 and "drew 2 of 3 certified cases" in p.stdout, p.stderr
    p = run(shanxi, "spot-checks", "list", "shanxi-2021", columns=200)
    assert (p.returncode == 0 and "shanxi-2021-spot-1" in flat(p.stdout)) or "spot" in p.stdout, p.stdout
    p = run(shanxi, "cases", "act", "1", "record_spot_check", "--actor", COORDINATOR, columns=1000)
    assert_clean_refusal(p, "forbidden", "workflow spot-checks draw")
    p = run(shanxi, "filings", "create", "shanxi-2021", "--jurisdiction", "shanxi", "--actor", COORDINATOR, columns=200)
    assert p.returncode == 0 and "3 cases filed: 1, 2, 3" in p.stdout, p.stderr
    p = run(shanxi, "filings", "list", "shanxi-2021", columns=200)
    assert p.returncode == 0 and "shanxi-2021-filing-1" in p.stdout, p.stdout
    out = tmp_path / "备案.csv"
    p = run(shanxi, "filings", "export", "shanxi-2021-filing-1", str(out), columns=200)
    assert p.returncode == 0, p.stderr
    rows = out.read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("batch,round,case_id") and len(rows) == 4
    p = run(shanxi, "filings", "create", "shanxi-2021", "--jurisdiction", "shanxi", "--actor", COORDINATOR,
            columns=1000)
    assert p.returncode == 2 and "Traceback" not in p.stderr  # nothing certified is left to file
    # what the spot check found: problems hold a drawn (filed) case's title for rectification
    drawn = db_case_ids_drawn(shanxi)
    p = run(shanxi, "spot-checks", "outcome", "shanxi-2021", "shanxi-2021-spot-1", str(drawn[0]),
            "--outcome", "problems", "--actor", COORDINATOR, columns=1000)
    assert_clean_refusal(p, "invalid_input", "outcomes[0].findings")
    p = run(shanxi, "spot-checks", "outcome", "shanxi-2021", "shanxi-2021-spot-1", str(drawn[0]),
            "--outcome", "problems", "--findings", "能耗台账缺失", "--evidence", "晋直管函〔2022〕5号",
            "--actor", COORDINATOR, columns=300)
    assert p.returncode == 0 and "rectification" in p.stdout and "能耗台账缺失" in p.stdout, p.stderr
    # the national bureau's result for another case of the batch
    other = next(c for c in (1, 2, 3) if c != drawn[0])
    p = run(shanxi, "filings", "national-result", "shanxi-2021-filing-1", str(other), "--outcome", "problems",
            "--findings", "实地抽查不合格", "--document", "国管节能〔2022〕21号", "--actor", COORDINATOR, columns=300)
    assert p.returncode == 0 and "revoked" in p.stdout and "national" in p.stdout, p.stderr
    p = run(shanxi, "spot-checks", "outcomes", "shanxi-2021", columns=300)
    assert p.returncode == 0 and "shanxi-2021-filing-1" in p.stdout and "shanxi-2021-spot-1" in p.stdout, p.stdout


def db_case_ids_drawn(path: Path) -> list[int]:
    engine = make_engine(f"sqlite:///{path}")
    try:
        return Database(engine).oversight.spot_checks("shanxi-2021")[0].drawn
    finally:
        engine.dispose()


def test_the_installed_command_runs_as_a_process(shanxi: Path) -> None:
    """The console script itself (the other tests call its entry point in this process): an
    answer, a refusal (exit 2, no traceback) and a listing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k not in ("COLUMNS", "LINES")}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{shanxi}", COLUMNS="200")
    p = run_process(["rounds", "list"], env, shanxi.parent)
    assert p.returncode == 0 and "shanxi-2021" in p.stdout, p.stderr
    p = run_process(["cases", "act", "1", "certify", "--actor", COORDINATOR], env, shanxi.parent)
    assert_clean_refusal(p, "action_refused", "certify refused")
    p = run_process(["--help"], env, shanxi.parent)
    assert p.returncode == 0 and "Usage" in p.stdout


def test_every_command_answers_help() -> None:
    """Every command of the CLI builds its help (a command whose options cannot be built, or
    whose module cannot be imported at call time, fails here before a user meets it)."""
    import typer.main
    from typer.testing import CliRunner

    from workflow.cli import app

    runner = CliRunner()
    group = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        paths.extend([[name, sub] for sub in subcommands] if subcommands else [[name]])
    assert ["filings", "create"] in paths and ["spot-checks", "draw"] in paths and len(paths) > 40
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path


def test_what_a_case_owes_through_the_cli(shanxi: Path) -> None:
    p = run(shanxi, "cases", "due", "1", columns=200)
    assert p.returncode == 0, p.stderr
    assert "(self_assessment): due 2021-10-20" in p.stdout and "days overdue" in p.stdout
    assert "missing before submission: documents.self_report" in p.stdout and "more missing" in p.stdout


def test_the_case_list_as_a_workbook_through_the_cli(shanxi: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    out = tmp_path / "案件清单.xlsx"
    p = run(shanxi, "cases", "list", "--round", "shanxi-2021", "--xlsx", str(out), columns=200)
    assert p.returncode == 0 and "35 cases" in p.stdout, p.stderr
    rows = list(load_workbook(out).active.iter_rows(min_row=3, values_only=True))
    assert [r[0] for r in rows] == list(range(1, 36)) and {r[5] for r in rows} == {"已登记"}


def test_reminders_and_at_risk_through_the_cli(shanxi: Path) -> None:
    """The commands answer on today's clock (the demo round is of 2021: nothing is due now, the
    tables are empty; what they list is tested through the API on a frozen clock)."""
    p = run(shanxi, "rounds", "reminders", "shanxi-2021", "--days", "10", columns=200)
    assert p.returncode == 0 and "shanxi-2021:remindersfrom" in flat(p.stdout), p.stderr
    p = run(shanxi, "rounds", "at-risk", "shanxi-2021", "--days", "10", "--jurisdiction", "shanxi-taiyuan",
            columns=200)
    assert p.returncode == 0 and "duewithin10days" in flat(p.stdout), p.stderr
    p = run(shanxi, "rounds", "at-risk", "shanxi-2021", "--jurisdiction", "nowhere", columns=200)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_a_round_history_export_through_the_cli(shanxi: Path, tmp_path: Path) -> None:
    out = tmp_path / "全省.jsonl"
    p = run(shanxi, "rounds", "history", "shanxi-2021", str(out), columns=200)
    assert p.returncode == 0 and "35 cases" in p.stdout, p.stderr
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(events) == 35 and {e["type"] for e in events} == {"CaseRegistered"}
    csv_out = tmp_path / "全省.csv"
    assert run(shanxi, "rounds", "history", "shanxi-2021", str(csv_out), columns=200).returncode == 0
    assert csv_out.read_text(encoding="utf-8-sig").splitlines()[1].split(",")[2] == "登记"
    p = run(shanxi, "rounds", "history", "shanxi-2021", str(tmp_path / "x.txt"), columns=200)
    assert p.returncode == 2 and ".jsonl or .csv" in p.stderr


def test_a_sign_in_link_is_made_mailed_and_printed_from_the_command_line(shanxi: Path, tmp_path: Path) -> None:
    """``workflow accounts link``: refused (nothing made) without the console's address; with it,
    the one-time link is printed, mailed to the account's address, and opens the console's form."""
    made = run(shanxi, "accounts", "create", "--login", "li-new", "--name", "李新", "--role", "unit", "--unit", "3",
               "--email", "li.new@example.org", "--actor", ADMIN, columns=200)
    account_id = int(re.search(r"account (\d+):", made.stdout).group(1))
    refused = run(shanxi, "accounts", "link", str(account_id), "--actor", "wang")
    assert_clean_refusal(refused, "config", "WORKFLOW_CONSOLE_URL")
    env = {"WORKFLOW_CONSOLE_URL": "https://jgswj.example.gov.cn/", "WORKFLOW_MAILDIR": str(tmp_path / "mail")}
    p = run(shanxi, "accounts", "link", str(account_id), "--actor", "wang", env=env, columns=300)
    assert p.returncode == 0, p.stderr
    link = re.search(r"https://jgswj\.example\.gov\.cn/link/([A-Za-z0-9_-]{20,})", p.stdout)
    assert link and "mailed to li.new@example.org" in p.stdout
    mails = list((tmp_path / "mail" / "new").iterdir())
    assert len(mails) == 1
    from email import message_from_bytes, policy

    body = message_from_bytes(mails[0].read_bytes(), policy=policy.default).get_body().get_content()
    assert link.group(0) in body and "只能使用一次" in body
    assert_clean_refusal(run(shanxi, "accounts", "link", str(account_id), "--purpose", "other", "--actor", "wang",
                             env=env), "invalid_input", "--purpose")
    assert_clean_refusal(run(shanxi, "accounts", "link", str(account_id), "--actor", "zhang", env=env), "forbidden")


# ---------------------------------------------------------------- channels
def test_channels_are_added_listed_masked_and_disabled_from_the_command_line(shanxi: Path) -> None:
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    added = run(shanxi, "channels", "add", "--kind", "wecom", "--url", url, "--audience", "units",
                "--jurisdiction", "shanxi-taiyuan", "--name", "太原市创建工作群", "--actor", "zhang", columns=200)
    assert added.returncode == 0, added.stderr
    assert "channel 1: 太原市创建工作群 (wecom, units) https://qyapi.weixin.qq.com/cgi-bin/webhook/send?…5aaa" \
        in added.stdout and "693a91f6" not in added.stdout
    signed = run(shanxi, "channels", "add", "--kind", "dingtalk", "--url",
                 "https://oapi.dingtalk.com/robot/send?access_token=abc123", "--audience", "coordinators",
                 "--jurisdiction", "shanxi", "--name", "省局协调群", "--actor", "wang",
                 env={"WORKFLOW_CHANNEL_SECRET": "SECsecret"}, columns=200)
    assert signed.returncode == 0, signed.stderr
    listed = run(shanxi, "channels", "list", "--actor", "wang", columns=250)
    assert listed.returncode == 0 and "太原市创建工作群" in listed.stdout and "省局协调群" in listed.stdout
    assert "693a91f6" not in listed.stdout and "SECsecret" not in listed.stdout and "abc123" not in listed.stdout
    # a city's coordinator sees its own, not the province's; may not add one for the province
    city = run(shanxi, "channels", "list", "--actor", "zhang", columns=250)
    assert "太原市创建工作群" in city.stdout and "省局协调群" not in city.stdout
    refused = run(shanxi, "channels", "add", "--kind", "wecom", "--url", url, "--audience", "units",
                  "--jurisdiction", "shanxi", "--name", "省群", "--actor", "zhang")
    assert_clean_refusal(refused, "not_found", "shanxi")
    bad = run(shanxi, "channels", "add", "--kind", "feishu", "--url", "nope", "--audience", "units",
              "--jurisdiction", "shanxi", "--name", "x", "--actor", "wang")
    assert_clean_refusal(bad, "invalid_input", "kind", "url")
    done = run(shanxi, "channels", "disable", "1", "--actor", "zhang")
    assert done.returncode == 0 and "channel 1 (太原市创建工作群) disabled" in done.stdout
    assert "disabled" in run(shanxi, "channels", "list", "--actor", "zhang", columns=250).stdout
