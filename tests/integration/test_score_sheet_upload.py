"""The printed score sheet (附件3) coming back: the case's sheet as the system writes it, filled
in with openpyxl as a unit would in Excel, and uploaded through the service, the HTTP API and
the CLI. A sheet that is right is recorded as the action would record it (the same entries, the
same total); a sheet with problems names each by its row and criterion (English and Chinese)
and records nothing (the case's version and history unchanged)."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from workflow.adapters.db.store import Database
from workflow.adapters.score_sheet_upload import read_score_sheet
from workflow.adapters.score_sheet_xlsx import export_score_sheet, layout_for
from workflow.domain.case import Actor
from workflow.domain.errors import InvalidInput, Problem
from workflow.domain.rubric import score_sheet
from workflow.files import write_score_sheet
from workflow.service.cases import perform_action, read_case
from workflow.service.sheet_upload import record_sheet_upload
from workflow.service.sheets import case_sheets

from ..api.conftest import client as api_client  # noqa: F401  (the API's test client, as a fixture here)
from ..serving import run_cli
from ..support import COORDINATOR, RUBRICS, open_shanxi, ready_to_submit, sheet_for, unit_actor

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
SHANXI = RUBRICS.get("shanxi-2020")
SELF, VERIFIED, CODE = "自评得分", "核查得分", "编号"
WORKFLOW = Path(sys.executable).parent / "workflow"


# ---------------------------------------------------------------- the sheet, as the system writes it and a unit fills it
def blank_sheet(db: Database, case_id: int, out: Path, *, with_case: bool = True) -> Path:
    """The case's score sheet (its scores so far), as the system writes it; ``with_case``: naming
    the case and round at the right of the unit's row."""
    if not with_case:
        write_score_sheet(case_sheets(db, case_id), out)
        return out
    sheets = case_sheets(db, case_id)
    export_score_sheet(sheets.rubric, unit_name=sheets.unit_name, layout=layout_for(sheets.rubric),
                       self_score=sheets.self, verified_score=sheets.verified, recheck_score=sheets.recheck,
                       out=out, case_id=case_id, round_id=read_case(db, case_id).case.round_id)
    return out


def header(ws: Worksheet) -> dict[str, int]:
    return {str(ws.cell(3, c).value): c for c in range(1, ws.max_column + 1) if ws.cell(3, c).value}


def rows_of(ws: Worksheet) -> dict[str, int]:
    """criterion code -> its row, by the 编号 column."""
    code = header(ws)[CODE]
    return {str(ws.cell(r, code).value): r for r in range(5, ws.max_row + 1) if ws.cell(r, code).value}


def fill(sheet: Path, values: Mapping[str, Any], group: str = SELF,
         edit: Callable[[Worksheet], None] | None = None) -> bytes:
    """The sheet with ``values`` typed into the group's 分项得分 cells (by criterion code), then
    ``edit``ed, saved as a spreadsheet program saves it."""
    book = load_workbook(sheet)
    ws = book.active
    assert isinstance(ws, Worksheet)
    column, rows = header(ws)[group], rows_of(ws)
    for code, value in values.items():
        ws.cell(rows[code], column, value)
    if edit is not None:
        edit(ws)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def typed(entries: Mapping[str, str]) -> dict[str, Any]:
    """Points as a person types them into Excel: whole numbers as numbers, halves as numbers too."""
    return {code: int(Decimal(v)) if Decimal(v) == int(Decimal(v)) else Decimal(v) for code, v in entries.items()}


def saved_with_value(data: bytes, coordinate: str, value: str) -> bytes:
    """The workbook as Excel saves a formula: with the value it computed (openpyxl saves none)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            part = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                part, n = re.subn(rf'(<c r="{coordinate}"[^>]*>\s*<f>[^<]*</f>)\s*<v\s*/>'.encode(),
                                  rb"\1<v>" + value.encode() + b"</v>", part)
                assert n == 1, "no formula cell to give a value"
            dst.writestr(item, part)
    return out.getvalue()


def upload(db: Database, case_id: int, data: bytes, actor: Actor, kind: str = "self") -> Any:
    return record_sheet_upload(db, case_id, data, actor, NOW, kind=kind, read=read_score_sheet, source="自评表.xlsx")


def refused(db: Database, case_id: int, data: bytes, actor: Actor, kind: str = "self") -> list[Problem]:
    """The problems of a refused upload; nothing recorded (the same version, the same history)."""
    before = read_case(db, case_id, events=True)
    with pytest.raises(InvalidInput) as info:
        upload(db, case_id, data, actor, kind)
    after = read_case(db, case_id, events=True)
    assert (after.case.version, len(after.events)) == (before.case.version, len(before.events))
    return info.value.problems


@pytest.fixture
def shanxi(db: Database) -> Database:
    open_shanxi(db, NOW)
    return db


# ---------------------------------------------------------------- recorded
def test_a_filled_in_sheet_is_recorded_as_the_self_assessment_with_the_same_total(shanxi: Database,
                                                                                   tmp_path: Path) -> None:
    entries = sheet_for(SHANXI, "85.5")  # halves among them
    values = typed(entries) | {"1.1.1": "９", "2.1.2": "2分", "2.1.1": " 1 "}  # text as people type it
    assert [Decimal(entries[c]) for c in ("1.1.1", "2.1.2", "2.1.1")] == [9, 2, 1]
    data = fill(blank_sheet(shanxi, 1, tmp_path / "sheet.xlsx"), values)
    result = upload(shanxi, 1, data, unit_actor(1))
    assert result.event.type == "SelfAssessmentRecorded" and result.case.state == "self_assessed"
    want = score_sheet(SHANXI, {c: Decimal(v) for c, v in entries.items()}, complete=True)
    assert result.case.self_total == want.total == Decimal("85.5")
    assert {c: Decimal(v) for c, v in result.event.payload["entries"].items()} == dict(want.criteria)
    assert case_sheets(shanxi, 1).self == want  # the sheet the system writes next shows it
    # and the same sheet written again holds it: download, fill, upload, download agree
    again = load_workbook(blank_sheet(shanxi, 1, tmp_path / "again.xlsx")).active
    assert isinstance(again, Worksheet)
    rows = rows_of(again)
    assert all(Decimal(str(again.cell(rows[c], header(again)[SELF]).value)) == v for c, v in want.criteria.items())


def test_a_formula_counts_by_the_value_it_was_saved_with(shanxi: Database, tmp_path: Path) -> None:
    sheet = blank_sheet(shanxi, 1, tmp_path / "sheet.xlsx")
    ws = load_workbook(sheet).active
    assert isinstance(ws, Worksheet)
    cell = ws.cell(rows_of(ws)["1.1.1"], header(ws)[SELF]).coordinate
    data = saved_with_value(fill(sheet, typed(sheet_for(SHANXI, 80)) | {"1.1.1": "=4+5"}), cell, "9")
    result = upload(shanxi, 1, data, unit_actor(1))
    assert Decimal(result.event.payload["entries"]["1.1.1"]) == 9 and result.case.self_total == 80


def test_a_sheet_in_parts_and_the_sheet_as_downloaded_today(shanxi: Database, tmp_path: Path) -> None:
    """A self-assessment may be entered in parts (blank cells are no entry); a sheet written
    without the case's line (``workflow cases sheet --xlsx``) is known by its unit."""
    data = fill(blank_sheet(shanxi, 1, tmp_path / "plain.xlsx", with_case=False), {"1.1.1": 9, "2.1.1": 1})
    result = upload(shanxi, 1, data, unit_actor(1))
    assert {c: Decimal(v) for c, v in result.event.payload["entries"].items()} == {"1.1.1": 9, "2.1.1": 1}
    assert result.case.self_total == 10
    problems = refused(shanxi, 2, data, unit_actor(2))
    # the sheet as downloaded today names its case and round too: both point at case 1, not case 2
    assert {p.where for p in problems} == {"row 2"} and any("省纪委监委机关" in p.what for p in problems)


def test_a_coordinator_records_the_verification_from_the_verified_column(shanxi: Database, tmp_path: Path) -> None:
    ready_to_submit(shanxi, 1, 1, 88, NOW)
    perform_action(shanxi, 1, "submit", None, unit_actor(1), NOW)
    sheet = blank_sheet(shanxi, 1, tmp_path / "sheet.xlsx")  # its 自评得分 filled in by the system
    verified = sheet_for(SHANXI, "78.5")
    problems = refused(shanxi, 1, fill(sheet, dict(list(typed(verified).items())[:-1]), VERIFIED), COORDINATOR,
                       "verify")
    last = SHANXI.criteria()[-1].code
    assert [p.where for p in problems] == [f"row {rows_of(load_workbook(sheet).active)[last]} ({last})"]
    assert problems[0].what.startswith("missing") and "未填写" in (problems[0].zh or "")
    result = upload(shanxi, 1, fill(sheet, typed(verified), VERIFIED), COORDINATOR, "verify")
    assert result.event.type == "CaseVerified" and result.case.verified_total == Decimal("78.5")
    assert result.event.payload["passed"] is False and result.case.self_total == 88


# ---------------------------------------------------------------- refused, named by row and criterion
def _row(sheet: Path, code: str) -> int:
    ws = load_workbook(sheet).active
    assert isinstance(ws, Worksheet)
    return rows_of(ws)[code]


# criterion: (what is typed, how the refusal begins, what its Chinese says)
BAD = {
    "2.1.3": ("两分", "not a number: '两分'", "不是数字"),
    "1.1.1": (10, "10 分 is not possible: up to 9 in steps of 0.5", "不能得10分"),  # over the cap
    "2.1.4": (-1, "-1 分 is not possible", "不能得-1分"),  # negative
    "2.1.2": ("0.3", "0.3 分 is not possible: up to 2 in steps of 0.5", "以0.5分为单位"),  # not a step
    "5.1.1": (3, "3 分 is not possible: 2 分 per activity, up to 4 (0, 2, 4)", "每项活动2分"),
    "2.1.1": ("=1+0", "a formula saved without its value", "公式没有计算结果"),
    "2.2.2": (True, "not points: True", "不是分数"),
    "2.2.3": (datetime(2021, 9, 5), "a date or time, not points", "日期"),
}


def test_every_bad_entry_is_named_by_its_row_and_criterion_at_once(shanxi: Database, tmp_path: Path) -> None:
    sheet = blank_sheet(shanxi, 1, tmp_path / "sheet.xlsx")
    values = typed(sheet_for(SHANXI, 80)) | {code: value for code, (value, _, _) in BAD.items()}
    problems = refused(shanxi, 1, fill(sheet, values), unit_actor(1))
    assert len(problems) == len(BAD)
    found = {p.where: p for p in problems}
    for code, (_, what, zh) in BAD.items():
        row = _row(sheet, code)
        problem = found[f"row {row} ({code})"]
        assert problem.what.startswith(what), problem.what
        assert problem.zh is not None and problem.zh.startswith(f"第{row}行（{code}）：") and zh in problem.zh


def test_a_deleted_row_and_a_changed_code_are_named(shanxi: Database, tmp_path: Path) -> None:
    sheet = blank_sheet(shanxi, 1, tmp_path / "sheet.xlsx")
    row = _row(sheet, "2.1.3")

    def damage(ws: Worksheet) -> None:
        ws.delete_rows(row)  # 2.1.3 gone
        ws.cell(_row(sheet, "3.1.1") - 1, header(ws)[CODE], "3.1.9")  # 3.1.1's code changed (the rows moved up)

    problems = refused(shanxi, 1, fill(sheet, typed(sheet_for(SHANXI, 80)), edit=damage), unit_actor(1))
    wheres = {p.where: p for p in problems}
    assert set(wheres) == {f"row {_row(sheet, '3.1.1') - 1} (3.1.9)", "criterion 2.1.3", "criterion 3.1.1"}
    assert "has no criterion 3.1.9" in wheres[f"row {_row(sheet, '3.1.1') - 1} (3.1.9)"].what
    assert "no row has 编号 2.1.3" in wheres["criterion 2.1.3"].what and "行被删除" in (wheres["criterion 2.1.3"].zh or "")


def test_another_cases_sheet_is_refused(shanxi: Database, tmp_path: Path) -> None:
    data = fill(blank_sheet(shanxi, 2, tmp_path / "case-2.xlsx"), typed(sheet_for(SHANXI, 80)))
    problems = refused(shanxi, 1, data, unit_actor(1))
    assert [p.where for p in problems] == ["row 2", "row 2"]  # the unit's line, and the case's at its right
    mine, theirs = case_sheets(shanxi, 1).unit_name, case_sheets(shanxi, 2).unit_name
    assert problems[0].what == f"the sheet is of unit {theirs!r}; case 1 is of {mine!r}"
    assert "case 2's, not case 1's" in problems[1].what and "这是案件 2 的评分表" in (problems[1].zh or "")
    with pytest.raises(InvalidInput, match="not the score sheet of case 1"):
        upload(shanxi, 1, data, unit_actor(1))


def test_an_action_the_case_cannot_take_is_refused_before_the_sheet_is_read(shanxi: Database) -> None:
    from workflow.domain.errors import ActionRefused

    with pytest.raises(ActionRefused, match="not possible from registered"):  # nothing submitted to verify
        upload(shanxi, 1, b"not even a workbook", COORDINATOR, "verify")
    with pytest.raises(ActionRefused, match="its own unit's cases"):
        upload(shanxi, 2, b"not even a workbook", unit_actor(1))
    with pytest.raises(InvalidInput, match="kind must be one of self, verify"):
        upload(shanxi, 1, b"", unit_actor(1), "recheck")


def test_a_file_that_is_not_the_sheet_is_refused(shanxi: Database, tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["编号", "points"])  # type: ignore[union-attr]
    other = io.BytesIO()
    book.save(other)
    assert "no header row" in str(refused(shanxi, 1, other.getvalue(), unit_actor(1))[0])
    assert "not a readable .xlsx" in str(refused(shanxi, 1, b"code,points\n1.1.1,9\n", unit_actor(1))[0])
    blank = blank_sheet(shanxi, 1, tmp_path / "blank.xlsx").read_bytes()
    assert "no points entered" in refused(shanxi, 1, blank, unit_actor(1))[0].what


# ---------------------------------------------------------------- through the HTTP API
def test_uploaded_through_the_api(api_client: Any, db: Database, tmp_path: Path) -> None:
    unit = api_client.token("unit", unit_id=1)
    url = "/api/v1/cases/1/score-sheet.xlsx"
    before = api_client.get("/api/v1/cases/1", headers=unit).json()["version"]
    bad = fill(blank_sheet(db, 1, tmp_path / "sheet.xlsx"), typed(sheet_for(SHANXI, 80)) | {"1.1.1": 10})
    r = api_client.post(url, content=bad, params={"filename": "自评表.xlsx"}, headers=unit)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]["zh"].startswith("自评表.xlsx：评分表有误")
    row = _row(tmp_path / "sheet.xlsx", "1.1.1")
    assert error["details"]["problems"][0]["where"] == f"row {row} (1.1.1)"
    assert api_client.get("/api/v1/cases/1", headers=unit).json()["version"] == before
    r = api_client.post(url, files={"file": ("我的自评表.xlsx", bad)}, headers=unit)  # named as it was picked
    assert r.status_code == 422 and r.json()["error"]["message"]["en"].startswith("我的自评表.xlsx: ")
    good = fill(tmp_path / "sheet.xlsx", typed(sheet_for(SHANXI, 85)))
    r = api_client.post(url, files={"file": ("自评表.xlsx", good)}, headers=unit)  # as a browser's form sends it
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "self_assessed" and r.json()["event"]["payload"]["total"] == "85"
    assert api_client.get("/api/v1/cases/1/sheets", headers=unit).json()["self"]["total"] == "85"
    other = api_client.post("/api/v1/cases/2/score-sheet.xlsx", content=good, headers=unit)
    assert other.status_code == 404  # another unit's case does not exist for this unit
    auditor = api_client.token("auditor", jurisdiction_id="shanxi")
    assert api_client.post(url, content=good, headers=auditor).status_code == 403
    # a coordinator's upload is a verification: case 2 has nothing submitted (refused before it is read)
    coordinator = api_client.token("coordinator", jurisdiction_id="shanxi")
    r = api_client.post("/api/v1/cases/2/score-sheet.xlsx", content=good, headers=coordinator)
    assert r.status_code == 409 and r.json()["error"]["code"] == "action_refused", r.text
    r = api_client.post("/api/v1/cases/2/score-sheet.xlsx", content=good, params={"kind": "self"}, headers=coordinator)
    assert r.status_code == 403  # a coordinator does not self-assess
    assert api_client.post(url, content=good, headers=api_client.token("admin")).status_code == 200


# ---------------------------------------------------------------- through the CLI
def test_uploaded_through_the_cli(sqlite_url: str, sqlite_db: Database, tmp_path: Path) -> None:
    from ..support import account_for

    open_shanxi(sqlite_db, NOW)
    login = account_for(sqlite_db, "unit", NOW, unit_id=1, login="sheng-jiwei").login
    sheet = blank_sheet(sqlite_db, 1, tmp_path / "自评表.xlsx")
    (tmp_path / "bad.xlsx").write_bytes(fill(sheet, typed(sheet_for(SHANXI, 80)) | {"2.1.2": "两分"}))
    (tmp_path / "good.xlsx").write_bytes(fill(sheet, typed(sheet_for(SHANXI, "90.5"))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k not in ("COLUMNS", "LINES")}
    env |= {"WORKFLOW_DATABASE_URL": sqlite_url, "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["cases", "upload-sheet", *args, "--actor", login], env, tmp_path)

    p = run("1", str(tmp_path / "bad.xlsx"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"row {_row(sheet, '2.1.2')} (2.1.2)" in p.stderr and "not a number" in p.stderr
    assert read_case(sqlite_db, 1).case.version == 1
    p = run("1", str(tmp_path / "good.xlsx"))
    assert p.returncode == 0, p.stderr
    assert "SelfAssessmentRecorded → self_assessed" in p.stdout and "total 90.5 分" in p.stdout
    assert read_case(sqlite_db, 1).case.self_total == Decimal("90.5")
