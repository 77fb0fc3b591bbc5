"""No export runs: every XLSX and CSV the system writes shows user text that starts like a
formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) as text, with a leading apostrophe.

The world here is the Shanxi 2021 round opened with a copy of its rubric whose title, a
section, an item and criteria start like formulas, on SQLite and PostgreSQL; units and a
jurisdiction get such names through the API. Every export is read back (openpyxl, csv) and
checked cell by cell: no formula cell anywhere (the writers have no formulas of their own),
and no text cell starting like one — so a writer added later that bypasses ``safe_cell``
fails ``test_every_export_is_inert`` as soon as it carries such a text.
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.rubric_files import RubricCatalog
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.domain.events import Event
from workflow.domain.text import FORMULA_STARTS
from workflow.files import import_units
from workflow.service.cases import perform_action
from workflow.service.histories import events_csv
from workflow.service.oversight import filing_csv
from workflow.service.ports import FilingRecord
from workflow.service.rounds import open_round

from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    EXAMPLES,
    OPERATOR,
    attach_documents,
    ready_to_submit,
    seed_jurisdictions,
    sheet_for,
    token_for,
    unit_actor,
)

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
EVIL = '=HYPERLINK("http://x","y")'
# Texts a spreadsheet would run, one per way a formula starts.
STARTS = {"=": EVIL, "+": "+1+2", "-": "-2+3", "@": "@SUM(1,1)", "tab": "\t=1+1", "cr": "\r=1+1"}
# Names of units and jurisdictions are stored stripped: a leading tab or CR does not survive them.
NAMES = {k: v for k, v in STARTS.items() if k not in ("tab", "cr")}


# ---------------------------------------------------------------- reading exports back
def xlsx_cells(data: bytes) -> list[Any]:
    book = load_workbook(io.BytesIO(data))
    return [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value is not None]


def csv_cells(data: bytes) -> list[str]:
    text = data.decode("utf-8-sig")
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def assert_inert(data: bytes, kind: str) -> list[str]:
    """The export's text cells, after checking that none is or starts like a formula."""
    if kind == "xlsx":
        cells = xlsx_cells(data)
        formulas = [(c.coordinate, c.value) for c in cells if c.data_type == "f"]
        assert formulas == [], f"formula cells: {formulas}"
        texts = [c.value for c in cells if isinstance(c.value, str)]
        assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))
    else:
        texts = csv_cells(data)
    live = [t for t in texts if t.startswith(FORMULA_STARTS)]
    assert live == [], f"cells a spreadsheet would run: {live}"
    return texts


def neutralised(text: str) -> str:
    return "'" + text


# ---------------------------------------------------------------- the world
def evil_rubric(folder: Path) -> Path:
    """The Shanxi rubric with formula-like texts: title, a section, an item, criteria."""
    data = yaml.safe_load((REPO_ROOT / "rubrics" / "shanxi-2020.yaml").read_text(encoding="utf-8"))
    data["title"] = EVIL
    first, second = data["sections"][0], data["sections"][1]
    first["name"] = STARTS["+"]
    first["items"][0]["name"] = STARTS["@"]
    first["items"][0]["criteria"][0]["text"] = STARTS["-"]   # printed without a number (label null)
    second["name"] = STARTS["tab"]
    second["items"][0]["name"] = STARTS["cr"]
    unlabelled = data["sections"][2]["items"][0]["criteria"][0]
    unlabelled["label"], unlabelled["text"] = None, STARTS["="]  # printed as its bare text
    folder.mkdir()
    (folder / "shanxi-2020.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return folder


@pytest.fixture
def world(db, db_url, tmp_path) -> Any:
    rubrics = evil_rubric(tmp_path / "rubrics")
    settings = Settings(database_url=db_url, evidence_dir=tmp_path / "evidence", maildir=tmp_path / "mail",
                        rubrics_dir=rubrics, evidence_max_bytes=1024 * 1024)
    application = App(settings=settings, engine=db.engine, db=db, clock=ManualClock(NOW),
                      calendars=CalendarCatalog(REPO_ROOT / "calendars"))
    seed_jurisdictions(db)
    import_units(db, EXAMPLES / "shanxi-2021-units.csv", NOW, actor=OPERATOR)
    open_round(db, RubricCatalog(rubrics), CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
               calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=NOW)
    from workflow.api.app import create_app

    client = TestClient(create_app(application))

    def token(role: str, **scope: Any) -> dict[str, str]:
        made = token_for(db, name=f"{role}-x", role=role, now=NOW, **scope)
        return {"Authorization": f"Bearer {made.secret}"}

    client.token = token  # type: ignore[attr-defined]
    client.db = db  # type: ignore[attr-defined]
    return client


def certify(db: Any, case_id: int) -> None:
    rubric = db.rubric_of("shanxi-2021")
    ready_to_submit(db, case_id, case_id, "90", NOW, rubric)
    attach_documents(db, case_id, unit_actor(case_id), NOW)
    perform_action(db, case_id, "submit", {}, unit_actor(case_id), NOW)
    perform_action(db, case_id, "verify", {"entries": sheet_for(rubric, "90")}, COORDINATOR, NOW)
    perform_action(db, case_id, "certify", {}, COORDINATOR, NOW)


def rename_units(world: Any) -> dict[int, str]:
    """Units 1–4 renamed, through the API, to a formula-like text each."""
    names = dict(zip(range(1, 5), NAMES.values()))
    admin = world.token("admin")
    for unit_id, name in names.items():
        r = world.patch(f"/api/v1/units/{unit_id}", json={"name": name}, headers=admin)
        assert r.status_code == 200, r.text
    return names


# ---------------------------------------------------------------- each export
def test_score_sheet_shows_formula_like_rubric_texts_as_text(world) -> None:
    unit = world.token("unit", unit_id=1)
    r = world.get("/api/v1/cases/1/sheets.xlsx", headers=unit)
    assert r.status_code == 200, r.text
    texts = assert_inert(r.content, "xlsx")
    expected = [neutralised(EVIL + "自评表"), neutralised(STARTS["+"] + " (9分)"),
                neutralised(STARTS["@"] + " (9分)"), neutralised(STARTS["-"]), neutralised(STARTS["="])]
    for text in expected:
        assert text in texts
    assert any(t.startswith("'" + STARTS["tab"]) for t in texts)
    assert any(t.startswith("'\n=1+1") for t in texts)  # XML reads a written CR back as LF


def test_score_sheet_keeps_scores_numbers(world) -> None:
    rubric = world.db.rubric_of("shanxi-2021")
    r = world.post("/api/v1/cases/1/actions/self_assess", headers=world.token("unit", unit_id=1),
                   json={"version": 1, "data": {"entries": sheet_for(rubric, "85")}})
    assert r.status_code == 200, r.text
    cells = xlsx_cells(world.get("/api/v1/cases/1/sheets.xlsx", headers=world.token("admin")).content)
    numbers = [c.value for c in cells if c.data_type == "n"]
    assert 85 in numbers and 100 in numbers  # the self-assessed total and the rubric's, as numbers


def test_progress_workbook_shows_a_formula_like_jurisdiction_name_as_text(world) -> None:
    admin = world.token("admin")
    for n, text in enumerate(NAMES.values()):
        r = world.post("/api/v1/jurisdictions", headers=admin,
                       json={"id": f"shanxi-x{n}", "name": text, "level": "city", "parent": "shanxi"})
        assert r.status_code == 201, r.text
    x = world.get("/api/v1/rounds/shanxi-2021/progress.xlsx", headers=world.token("coordinator",
                                                                                  jurisdiction_id="shanxi"))
    assert x.status_code == 200, x.text
    texts = assert_inert(x.content, "xlsx")
    for text in NAMES.values():
        assert neutralised(text) in texts
    sheet = load_workbook(io.BytesIO(x.content)).active
    assert sheet["C3"].data_type == "n"  # counts stay numbers


def test_filing_csv_shows_formula_like_unit_names_as_text(world) -> None:
    names = rename_units(world)
    for case_id in names:
        certify(world.db, case_id)
    coordinator = world.token("coordinator", jurisdiction_id="shanxi")
    batch = world.post("/api/v1/rounds/shanxi-2021/filings", json={"note": "-备注"}, headers=coordinator)
    assert batch.status_code == 201, batch.text
    exported = world.get(f"/api/v1/filings/{batch.json()['id']}.csv", headers=coordinator)
    assert exported.status_code == 200
    assert_inert(exported.content, "csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    assert {int(r["case_id"]): r["unit_name"] for r in rows} == {i: neutralised(n) for i, n in names.items()}
    assert all(Decimal(r["score"]) == 90 for r in rows)  # the score is still a plain number


def test_history_csv_of_a_case_and_a_unit_are_inert(world) -> None:
    coordinator = world.token("coordinator", jurisdiction_id="shanxi")
    r = world.post("/api/v1/cases/1/actions/withdraw", headers=coordinator,
                   json={"version": 1, "data": {"reason": STARTS["+"]}})
    assert r.status_code == 200, r.text
    pdf = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
    up = world.post("/api/v1/cases/2/evidence", params={"criterion": "2.1.1", "filename": "@附件.pdf"}, content=pdf,
                    headers=world.token("unit", unit_id=2))
    assert up.status_code == 201, up.text
    for url, needle in (("/api/v1/cases/1/history.csv", STARTS["+"]), ("/api/v1/units/2/history.csv", "@附件.pdf")):
        got = world.get(url, headers=world.token("admin"))
        assert got.status_code == 200, got.text
        texts = assert_inert(got.content, "csv")
        assert any(needle in t for t in texts)  # the user text is there, inside the payload's JSON


def test_the_writers_neutralise_every_way_a_formula_starts() -> None:
    """The CSV writers themselves, fed records whose every text starts like a formula."""
    when = datetime(2021, 12, 1, tzinfo=UTC)
    batch = FilingRecord(STARTS["@"], "shanxi-2021", "shanxi",
                         [{"case_id": i, "unit_id": i, "unit_name": text, "score": "-1.5" if i == 1 else "90",
                           "rechecked": False} for i, text in enumerate(STARTS.values(), start=1)],
                         {"cases": 6}, when, STARTS["tab"], "/shanxi/")
    cells = csv_cells(filing_csv(batch).encode())
    for text in STARTS.values():
        assert neutralised(text) in cells
    assert "-1.5" in cells  # a score is a number, not text: no apostrophe even when negative
    event = Event(case_id=1, seq=1, type=STARTS["="], actor=STARTS["cr"], occurred_at=when, payload={"x": 1},
                  prev_hash="0" * 64, hash="1" * 64)
    cells = csv_cells(events_csv([event]).encode())
    assert neutralised(STARTS["="]) in cells and neutralised(STARTS["cr"]) in cells


def test_every_export_is_inert(world) -> None:
    """Every export at once, in a world holding every kind of formula-like text: a writer that
    bypasses safe_cell shows up here."""
    rename_units(world)
    admin, coordinator = world.token("admin"), world.token("coordinator", jurisdiction_id="shanxi")
    assert world.post("/api/v1/jurisdictions", headers=admin, json={
        "id": "shanxi-evil", "name": EVIL, "level": "city", "parent": "shanxi"}).status_code == 201
    certify(world.db, 1)
    batch = world.post("/api/v1/rounds/shanxi-2021/filings", json={}, headers=coordinator).json()["id"]
    exports = {"/api/v1/cases/1/sheets.xlsx": "xlsx", "/api/v1/rounds/shanxi-2021/progress.xlsx": "xlsx",
               f"/api/v1/filings/{batch}.csv": "csv", "/api/v1/cases/1/history.csv": "csv",
               "/api/v1/units/1/history.csv": "csv"}
    for url, kind in exports.items():
        got = world.get(url, headers=admin)
        assert got.status_code == 200, (url, got.text)
        texts = assert_inert(got.content, kind)
        assert any(t.startswith("'") for t in texts) or (kind == "csv" and "history" in url), url
