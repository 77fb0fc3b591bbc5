"""The API's resources beyond a single case: directory, rounds, reports, spot checks,
filing, evidence, sheets, notifications, audit exports and the audit check, operations."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from workflow.adapters.db.tables import Event, Unit
from workflow.clock import BUSINESS_TZ
from workflow.service.cases import perform_action
from workflow.service.oversight import draw_sample

from ..support import (
    COORDINATOR,
    OPERATOR,
    RUBRICS,
    attach_documents,
    ready_to_submit,
    sheet_for,
    unit_actor,
)
from .conftest import NOW

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def certify(db, case_id: int, total: str = "90") -> None:
    ready_to_submit(db, case_id, case_id, total, NOW)
    attach_documents(db, case_id, unit_actor(case_id), NOW)
    perform_action(db, case_id, "submit", {}, unit_actor(case_id), NOW)
    perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), total)}, COORDINATOR, NOW)
    perform_action(db, case_id, "certify", {}, COORDINATOR, NOW)


def count(db, table) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


# ---------------------------------------------------------------- directory

def test_jurisdictions_are_scoped_and_a_coordinator_adds_under_their_own(client) -> None:
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    seen = client.get("/api/v1/jurisdictions", headers=city).json()
    assert seen and all(j["path"].startswith("/shanxi/shanxi-taiyuan/") for j in seen)
    assert [j["id"] for j in client.get("/api/v1/jurisdictions", headers=client.token("unit", unit_id=36)).json()] \
        == ["shanxi-taiyuan"]
    r = client.post("/api/v1/jurisdictions", json={"id": "ty-new", "name": "新区", "level": "county",
                                                    "parent": "shanxi-taiyuan"}, headers=city)
    assert r.status_code == 201 and r.json()["path"] == "/shanxi/shanxi-taiyuan/ty-new/"
    # a parent outside the coordinator's subtree does not exist for them
    r = client.post("/api/v1/jurisdictions", json={"id": "dt-new", "name": "x", "level": "county",
                                                    "parent": "shanxi-datong"}, headers=city)
    assert r.status_code == 422 and r.json()["error"]["details"]["problems"][0]["where"] == "jurisdiction.parent"
    assert client.post("/api/v1/jurisdictions", json={"id": "ty-new", "name": "新区", "level": "county",
                                                       "parent": "shanxi-taiyuan"}, headers=city).status_code == 409


def test_units_create_change_and_the_contact_form(client, db) -> None:
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    r = client.post("/api/v1/units", json={"name": "太原市机关事务管理局", "jurisdiction": "shanxi-taiyuan",
                                            "category": "行政机关"}, headers=city)
    assert r.status_code == 201, r.text
    unit = r.json()
    assert unit["level"] == "city" and unit["contacts"] == []
    r = client.post("/api/v1/units", json={"name": "省直单位", "jurisdiction": "shanxi", "category": "行政机关"},
                    headers=city)
    assert r.status_code == 422  # the province is outside the city's subtree
    r = client.patch(f"/api/v1/units/{unit['id']}", json={"category": "参公事业单位"}, headers=city)
    assert r.status_code == 200 and r.json()["category"] == "参公事业单位"
    own = client.token("unit", unit_id=unit["id"])
    form = {"contacts": [{"name": "李明", "position": "科长", "phone": "0351-1234567", "email": "li@ty.gov.cn"}]}
    r = client.put(f"/api/v1/units/{unit['id']}/contacts", json=form, headers=own)
    assert r.status_code == 200 and r.json()["contacts"][0]["email"] == "li@ty.gov.cn"
    assert client.patch(f"/api/v1/units/{unit['id']}", json={"category": "x"}, headers=own).status_code == 403
    bad = {"contacts": [{"name": "", "email": "not-an-email"}]}
    r = client.put(f"/api/v1/units/{unit['id']}/contacts", json=bad, headers=own)
    assert r.status_code == 422
    assert {p["where"] for p in r.json()["error"]["details"]["problems"]} >= {"unit.contacts[0].name",
                                                                             "unit.contacts[0].email"}
    assert client.get(f"/api/v1/units/{unit['id']}", headers=own).json()["contacts"][0]["name"] == "李明"


def test_roster_import_xlsx_with_merged_cells_and_scope(client, db) -> None:
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    book = Workbook()
    sheet = book.active
    sheet.append(["序号", "单位名称", "所属地区", "类别"])
    sheet.append([1, "太原市教育局", "shanxi-taiyuan", "行政机关"])
    sheet.append([2, "太原市卫健委", None, None])
    sheet.merge_cells("C2:C3")
    sheet.merge_cells("D2:D3")
    data = io.BytesIO()
    book.save(data)
    before = count(db, Unit)
    r = client.post("/api/v1/units/import", content=data.getvalue(), params={"filename": "ty.xlsx"}, headers=city)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 2, "updated": 0, "unchanged": 0} and count(db, Unit) == before + 2
    # a province unit in a city coordinator's roster: that row is named, nothing imported
    roster = "单位名称,所属地区,类别\n太原市审计局,shanxi-taiyuan,行政机关\n省审计厅,shanxi,行政机关\n".encode("gbk")
    r = client.post("/api/v1/units/import", content=roster, params={"filename": "mixed.csv"}, headers=city)
    assert r.status_code == 422
    assert [p["where"] for p in r.json()["error"]["details"]["problems"]] == ["mixed.csv:3.jurisdiction"]
    assert count(db, Unit) == before + 2


# ---------------------------------------------------------------- rounds

def test_rounds_open_and_roll_over_with_carry_over(client, db) -> None:
    admin = client.token("admin")
    roster = "name,jurisdiction,category\n湖南甲,hunan,行政机关\n湖南乙,hunan-changsha,行政机关\n".encode()
    assert client.post("/api/v1/units/import", content=roster, headers=admin).status_code == 200
    body = {"province": "hunan", "year": 2021, "rubric": "hunan-2020", "calendar": "hunan", "target_share": "0.7"}
    city = client.token("coordinator", jurisdiction_id="hunan-changsha")
    assert client.post("/api/v1/rounds", json=body, headers=city).status_code == 403
    province = client.token("coordinator", jurisdiction_id="hunan")
    r = client.post("/api/v1/rounds", json=body, headers=province)
    assert r.status_code == 201, r.text
    assert r.json()["registered"] == 2 and r.json()["round"]["policy"]["on_fail"] == "not_certified"
    assert client.post("/api/v1/rounds", json=body, headers=province).status_code == 409
    cases = client.get("/api/v1/cases", params={"round": "hunan-2021"}, headers=province).json()["items"]
    failing = cases[0]["id"]
    hunan = RUBRICS.get("hunan-2020")
    ready_to_submit(db, failing, cases[0]["unit"]["id"], "60", NOW, rubric=hunan)
    attach_documents(db, failing, unit_actor(cases[0]["unit"]["id"]), NOW)
    perform_action(db, failing, "submit", {}, unit_actor(cases[0]["unit"]["id"]), NOW)
    perform_action(db, failing, "verify", {"entries": sheet_for(hunan, "60")}, COORDINATOR, NOW)
    perform_action(db, failing, "fail", {}, COORDINATOR, NOW)
    r = client.post("/api/v1/rounds/hunan-2021/rollover", json={}, headers=province)
    assert r.status_code == 201, r.text
    assert r.json()["round"]["id"] == "hunan-2022" and r.json()["carried_over"] == 1
    assert r.json()["round"]["target_share"] == "0.7"
    ids = [rnd["id"] for rnd in client.get("/api/v1/rounds", headers=province).json()]
    assert ids == ["hunan-2021", "hunan-2022"]
    assert client.get("/api/v1/rounds/shanxi-2021", headers=province).status_code == 404


# ---------------------------------------------------------------- reports

def test_progress_counts_states_share_overdue_and_misses(client, db) -> None:
    for case_id in (1, 2, 3):
        certify(db, case_id)
    perform_action(db, 4, "withdraw", {"reason": "merged into another unit"}, COORDINATOR, NOW)
    from workflow.adapters.calendar_files import CalendarCatalog
    from workflow.config import REPO_ROOT
    from workflow.service.deadlines import sweep

    sweep(db, CalendarCatalog(REPO_ROOT / "calendars"), NOW.replace(month=10, day=21))
    province = client.token("auditor", jurisdiction_id="shanxi")
    report = client.get("/api/v1/rounds/shanxi-2021/progress", headers=province).json()
    top, rows = report["jurisdictions"][0], {r["id"]: r for r in report["jurisdictions"]}
    assert top["id"] == "shanxi" and top["cases"] == 36 and top["by_state"]["certified"] == 3
    assert top["by_state"]["withdrawn"] == 1 and top["certified"] == 3
    # the target is a share of ALL agencies in scope certified to date: 3 of 36 (the withdrawn one counts
    # as an agency of Shanxi, not as certified); the round's pass rate (3 of the 35 taking part) beside it
    assert (top["agencies"], top["certified_to_date"], top["certified_share"]) == (36, 3, "0.0833")
    assert top["round_pass_rate"] == "0.0857"
    assert top["target_met"] is False and report["target_share"] == "0.5" and top["target"] == "0.5"
    assert top["by_level"] == {"provincial": {"agencies": 35, "certified_to_date": 3, "share": "0.0857",
                                              "target": "0.5", "target_met": False},
                               "city": {"agencies": 1, "certified_to_date": 0, "share": "0.0000", "target": "0.5",
                                        "target_met": False}}
    assert "every agency in scope" in report["rule"]["en"] and "范围内全部单位数" in report["rule"]["zh"]
    # 32 still registered missed October 20; 35 units gave no contacts by June 5 (the
    # withdrawn case's miss is not recorded); a contact-form miss keeps a case overdue.
    assert top["missed"] == {"self_assessment": 32, "contact_form": 35} and top["overdue"] == 35
    assert rows["shanxi-taiyuan"]["cases"] == 1 and rows["shanxi-taiyuan"]["depth"] == 1
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    mine = client.get("/api/v1/rounds/shanxi-2021/progress", headers=city).json()["jurisdictions"]
    assert mine[0]["id"] == "shanxi-taiyuan" and mine[0]["cases"] == 1
    assert client.get("/api/v1/rounds/shanxi-2021/progress", params={"jurisdiction": "shanxi"},
                      headers=city).status_code == 404
    assert client.get("/api/v1/rounds/shanxi-2021/progress", headers=client.token("unit", unit_id=1)).status_code == 403
    x = client.get("/api/v1/rounds/shanxi-2021/progress.xlsx", headers=province)
    assert x.status_code == 200
    sheet = load_workbook(io.BytesIO(x.content)).active
    assert sheet["A3"].value == "山西省" and sheet["C3"].value == 36
    header = [c.value for c in sheet[2]]
    share = sheet.cell(3, header.index("达标占比") + 1)
    assert share.number_format == "0.00%" and abs(share.value - 3 / 36) < 1e-4   # of all 36 agencies
    rate = sheet.cell(3, header.index("本轮通过率") + 1)
    assert rate.number_format == "0.00%" and abs(rate.value - 3 / 35) < 1e-4     # of the 35 cases taking part
    assert sheet.cell(3, header.index("已建成") + 1).number_format == "General"
    assert {"省级单位", "市级单位", "已认定", "已撤回"} <= set(header)           # headers in Chinese
    texts = [row[0].value for row in sheet.iter_rows() if row[0].value]
    assert any(str(t).startswith("达标占比 = ") for t in texts)                 # the rule it uses


def test_deadlines_at_risk_three_days_before_october_20(client, db) -> None:
    certify(db, 1)
    province = client.token("coordinator", jurisdiction_id="shanxi")
    client.clock.set(NOW.replace(day=17))
    r = client.get("/api/v1/rounds/shanxi-2021/at-risk", params={"days": 3}, headers=province).json()
    owing = {(a["milestone"], a["case_id"]) for a in r["items"]}
    assert r["today"] == "2021-10-17" and ("self_assessment", 2) in owing and ("self_assessment", 1) not in owing
    assert all(a["due_on"] == "2021-10-20" and a["days_left"] == 3 for a in r["items"])
    assert client.get("/api/v1/rounds/shanxi-2021/at-risk", params={"days": 2}, headers=province).json()["items"] == []


# ---------------------------------------------------------------- spot checks and filing

def test_spot_check_is_reproducible_and_recorded_as_events(client, db) -> None:
    for case_id in range(1, 11):
        certify(db, case_id)
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.post("/api/v1/rounds/shanxi-2021/spot-checks", json={"share": "0.3", "seed": 20211130},
                    headers=coordinator)
    assert r.status_code == 201, r.text
    draw = r.json()
    assert draw["population"] == 10 and len(draw["drawn"]) == 3
    assert draw["drawn"] == draw_sample(list(range(1, 11)), Decimal("0.3"), 20211130)
    again = client.post("/api/v1/rounds/shanxi-2021/spot-checks", json={"share": "0.3", "seed": 20211130},
                        headers=coordinator).json()
    assert again["drawn"] == draw["drawn"] and again["id"] != draw["id"]
    for case_id in range(1, 11):
        history = client.get(f"/api/v1/cases/{case_id}/history", headers=coordinator).json()
        draws = [e["payload"]["draw"] for e in history if e["type"] == "SpotCheckDrawn"]
        assert draws == ([draw["id"], again["id"]] if case_id in draw["drawn"] else [])
        assert all(e["payload"]["seed"] == 20211130 for e in history if e["type"] == "SpotCheckDrawn")
    listed = client.get("/api/v1/rounds/shanxi-2021/spot-checks", headers=client.token("auditor", jurisdiction_id="shanxi"))
    assert [s["id"] for s in listed.json()] == [draw["id"], again["id"]]
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    r = client.post("/api/v1/rounds/shanxi-2021/spot-checks", json={"share": "0.5", "seed": 1}, headers=city)
    assert r.status_code == 409  # nothing certified in 太原: refused, nothing recorded
    assert client.get("/api/v1/audit/verify", headers=coordinator).json()["ok"] is True


def test_filing_batch_files_every_certified_case_once(client, db) -> None:
    for case_id in (1, 2, 36):
        certify(db, case_id)
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    events_before = count(db, Event)
    r = client.post("/api/v1/rounds/shanxi-2021/filings", json={"note": "2021年度"}, headers=coordinator)
    assert r.status_code == 201, r.text
    batch = r.json()
    assert [c["case_id"] for c in batch["cases"]] == [1, 2, 36] and batch["totals"]["cases"] == 3
    assert count(db, Event) == events_before + 3
    assert client.get("/api/v1/cases/36", headers=coordinator).json()["state"] == "filed"
    assert client.post("/api/v1/rounds/shanxi-2021/filings", json={}, headers=coordinator).status_code == 409
    exported = client.get(f"/api/v1/filings/{batch['id']}.csv", headers=coordinator)
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["case_id"] for r in rows] == ["1", "2", "36"] and Decimal(rows[0]["score"]) == 90
    city = client.token("auditor", jurisdiction_id="shanxi-taiyuan")
    assert client.get(f"/api/v1/filings/{batch['id']}", headers=city).status_code == 404
    assert client.get("/api/v1/rounds/shanxi-2021/filings", headers=city).json() == []
    assert client.get(f"/api/v1/filings/{batch['id']}", headers=coordinator).json()["filed_by"].endswith(
        ";name=coordinator-x;via=api")


# ---------------------------------------------------------------- evidence, sheets, notifications

def test_evidence_upload_download_and_archive(client, tmp_path) -> None:
    unit1 = client.token("unit", unit_id=1)
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": "实施方案.pdf"},
                    content=PDF, headers=unit1)
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    assert r.json()["type"] == "pdf"
    listed = client.get("/api/v1/cases/1/evidence", headers=unit1).json()
    assert [(e["criterion"], e["filename"]) for e in listed] == [("1.1.1", "实施方案.pdf")]
    got = client.get(f"/api/v1/cases/1/evidence/{sha}", headers=client.token("auditor", jurisdiction_id="shanxi"))
    assert got.status_code == 200 and got.content == PDF
    assert client.get(f"/api/v1/cases/2/evidence/{sha}", headers=client.token("admin")).status_code == 404
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/v1/cases/1/evidence.zip", headers=unit1).content))
    assert [n.split("/")[-1] for n in archive.namelist()] == ["01 实施方案.pdf"]
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": "x.pdf"},
                    content=PDF, headers=client.token("coordinator", jurisdiction_id="shanxi"))
    assert r.status_code == 403


def test_sheets_as_json_and_xlsx(client, db) -> None:
    ready_to_submit(db, 1, 1, "85", NOW)
    unit1 = client.token("unit", unit_id=1)
    sheets = client.get("/api/v1/cases/1/sheets", headers=unit1).json()
    assert Decimal(sheets["self"]["total"]) == 85 and sheets["verified"] is None and sheets["rubric"] == "shanxi-2020"
    x = client.get("/api/v1/cases/1/sheets.xlsx", headers=unit1)
    assert x.status_code == 200 and x.content[:2] == b"PK"


def test_case_notifications_show_delivery_state(client, db) -> None:
    from workflow.adapters.calendar_files import CalendarCatalog
    from workflow.config import REPO_ROOT
    from workflow.service.deadlines import sweep

    sweep(db, CalendarCatalog(REPO_ROOT / "calendars"), NOW.replace(day=13))
    mails = client.get("/api/v1/cases/1/notifications", headers=client.token("unit", unit_id=1)).json()
    assert mails and all(m["status"] == "pending" for m in mails)
    assert {m["milestone"] for m in mails} >= {"self_assessment"}


# ---------------------------------------------------------------- audit

def test_history_exports_and_scoped_audit_check(client, db) -> None:
    ready_to_submit(db, 36, 36, "88", NOW)
    auditor = client.token("auditor", jurisdiction_id="shanxi-taiyuan")
    lines = client.get("/api/v1/cases/36/history.jsonl", headers=auditor).text.splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["type"] == "CaseRegistered" and all(e["hash"] for e in events)
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/units/36/history.csv", headers=auditor)
                                           .content.decode("utf-8-sig"))))
    assert [r["hash"] for r in rows] == [e["hash"] for e in events]
    check = client.get("/api/v1/audit/verify", headers=auditor).json()
    assert check == {"ok": True, "scope": "/shanxi/shanxi-taiyuan/", "cases": 1, "events": len(events),
                     "duty_streams": 0, "duty_events": 0, "operator_streams": 0, "operator_events": 0,
                     "findings": [], "checkpoint": None}  # none written; a city's check has no operator streams
    everything = client.get("/api/v1/audit/verify", headers=client.token("admin")).json()
    assert everything["cases"] == 36 and everything["ok"]
    assert client.get("/api/v1/audit/verify", headers=client.token("unit", unit_id=36)).status_code == 403


def test_audit_check_finds_a_tampered_row(client, db) -> None:
    from sqlalchemy import text

    with db.engine.begin() as conn:
        conn.execute(text("UPDATE cases SET state = 'certified' WHERE id = 36"))
    check = client.get("/api/v1/audit/verify", headers=client.token("auditor", jurisdiction_id="shanxi")).json()
    assert check["ok"] is False and check["findings"][0]["case_id"] == 36
    assert "state" in check["findings"][0]["what"]


# ---------------------------------------------------------------- operations

def test_request_id_metrics_and_unknown_paths(client) -> None:
    r = client.get("/api/v1/cases/1", headers={**client.token("unit", unit_id=1), "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    client.post("/api/v1/cases/1/actions/withdraw", json={"version": 1, "data": {"reason": "x"}},
                headers=client.token("unit", unit_id=1))
    text = client.get("/metrics").text
    assert 'workflow_http_requests_total{method="GET",route="/api/v1/cases/{case_id}",status="200"}' in text
    assert 'workflow_transitions_total{action="withdraw",outcome="forbidden"}' in text
    assert 'workflow_outbox_notifications{status="pending"}' in text
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.delete("/api/v1/cases/1").json()["error"]["code"] == "method_not_allowed"


def test_refusals_are_logged_with_the_actor(client, capsys) -> None:
    import logging

    import structlog

    from workflow.logging import configure_logging

    saved = structlog.get_config()
    configure_logging("INFO")
    try:
        client.post("/api/v1/cases/1/actions/verify", json={"version": 1, "data": {"entries": {}}},
                    headers={**client.token("unit", unit_id=1), "X-Request-ID": "req-42"})
    finally:
        logging.getLogger().handlers[:] = []
        structlog.configure(**saved)  # the product's set-up caches loggers: not for the tests after this one
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    refused = [entry for entry in lines if entry.get("event") == "action refused"]
    assert refused and refused[0]["actor"].split(";")[0] == "unit:1" and refused[0]["request_id"] == "req-42"
    assert refused[0]["case_id"] == 1 and refused[0]["action"] == "verify"


def test_a_retried_action_with_an_idempotency_key_is_taken_once(client, db) -> None:
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    headers = {**coordinator, "Idempotency-Key": "withdraw-case-5-0001"}
    body = {"version": 1, "data": {"reason": "机构撤并"}}
    first = client.post("/api/v1/cases/5/actions/withdraw", json=body, headers=headers)
    again = client.post("/api/v1/cases/5/actions/withdraw", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["event"]["hash"] == again.json()["event"]["hash"]
    assert [e["type"] for e in client.get("/api/v1/cases/5/history", headers=coordinator).json()] == \
        ["CaseRegistered", "CaseWithdrawn"]
    other = client.post("/api/v1/cases/6/actions/withdraw", json=body, headers=headers)
    assert other.status_code == 409 and "was used for withdraw on case 5" in other.json()["error"]["message"]["en"]
    changed = client.post("/api/v1/cases/5/actions/withdraw", json={"version": 1, "data": {"reason": "另一个理由"}},
                          headers=headers)
    assert changed.status_code == 409 and "with other input" in changed.json()["error"]["message"]["en"]


def test_an_unexpected_error_is_a_500_in_the_error_shape_with_the_request_id(client, monkeypatch) -> None:
    import workflow.api.cases as cases

    def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cases, "case_sheets", broken)
    r = client.get("/api/v1/cases/1/sheets", headers={**client.token("unit", unit_id=1), "X-Request-ID": "req-500"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    assert r.json()["error"]["code"] == "internal" and "req-500" in r.json()["error"]["message"]["en"]
    assert "disk on fire" not in r.text  # no internals to the user


def test_target_met_is_exact_not_rounded() -> None:
    from workflow.service.reports import ProgressRow

    row = ProgressRow("shanxi", "山西省", "province", 0, agencies=20001, certified_to_date=10000)
    assert row.certified_share == Decimal("0.5000") and row.target_met(Decimal("0.5")) is False
    row.certified_to_date += 1
    assert row.target_met(Decimal("0.5")) is True


# ---------------------------------------------------------------- the rules of the documents over HTTP

def test_a_case_shows_its_documents_contact_form_and_what_it_waits_for(client, db) -> None:
    """A case waiting for the bureau past the bureau's date shows that it waits on the bureau."""
    unit = client.token("unit", unit_id=1)
    shown = client.get("/api/v1/cases/1", headers=unit).json()
    assert shown["documents"] == [{"id": "self_report", "name": "自评报告", "attached": False},
                                  {"id": "score_sheet", "name": "自评打分表", "attached": False}]
    assert shown["contact_form"] is False and shown["waiting_on"] == []
    r = client.post("/api/v1/cases/1/documents", params={"document": "plan", "filename": "方案.pdf"}, content=PDF,
                    headers=unit)
    assert r.status_code == 422 and "self_report (自评报告)" in r.text and count(db, Event) == 36
    zeros = {c.code: "0" for c in RUBRICS.get("shanxi-2020").criteria()}   # nothing scored: no evidence needed
    perform_action(db, 1, "self_assess", {"entries": zeros}, unit_actor(1), NOW)
    for document in ("self_report", "score_sheet"):
        r = client.post("/api/v1/cases/1/documents", params={"document": document, "filename": f"{document}.pdf"},
                        content=PDF + document.encode(), headers=unit)
        assert r.status_code == 201, r.text
    files = client.get("/api/v1/cases/1/documents", headers=unit).json()
    assert [(d["id"], [f["filename"] for f in d["files"]]) for d in files] == [
        ("self_report", ["self_report.pdf"]), ("score_sheet", ["score_sheet.pdf"])]
    version = client.get("/api/v1/cases/1", headers=unit).json()["version"]
    r = client.post("/api/v1/cases/1/actions/submit", json={"version": version}, headers=unit)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(client.get("/api/v1/cases/1/evidence.zip", headers=unit).content)) as z:
        names = z.namelist()
    assert names == ["00 报送材料/01 自评报告 self_report.pdf", "00 报送材料/02 自评打分表 score_sheet.pdf"]
    client.clock.set(NOW.replace(month=12, day=3))
    waiting = client.get("/api/v1/cases/1", headers=unit).json()["waiting_on"]
    assert waiting == [{"party": "bureau", "duty": "evaluation", "name": "评价验收", "due_on": "2021-11-30",
                        "days_overdue": 3}]


def test_the_contact_form_over_http_records_it_on_the_open_cases(client, db) -> None:
    unit = client.token("unit", unit_id=2)
    r = client.post("/api/v1/units/2/contacts/confirm", headers=unit)
    assert r.status_code == 422 and r.json()["error"]["message"]["zh"].startswith("尚无联系人信息")
    form = {"contacts": [{"name": "李明", "position": "科长", "phone": "0351-1234567", "email": "li@sx.gov.cn"}]}
    r = client.put("/api/v1/units/2/contacts", json=form, headers=unit)
    assert r.status_code == 200 and r.json()["recorded_on_cases"] == [2]
    assert client.get("/api/v1/cases/2", headers=unit).json()["contact_form"] is True
    assert client.post("/api/v1/units/2/contacts/confirm", headers=unit).status_code == 422   # already given
    r = client.post("/api/v1/cases/2/actions/give_contact_form",
                    json={"version": 2, "data": {"how": "confirmed", "contacts": 1}}, headers=unit)
    assert r.status_code == 403   # only through the unit's contact form


def test_duties_over_http(client, db) -> None:
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    board = client.get("/api/v1/rounds/shanxi-2021/duties", headers=city).json()
    assert {(d["duty"], d["jurisdiction"]["id"], d["status"]) for d in board["items"]} == {
        ("city_report", "shanxi-taiyuan", "owed"), ("evaluation", "shanxi-taiyuan", "clear")}
    r = client.post("/api/v1/rounds/shanxi-2021/duties/city_report", params={"jurisdiction": "shanxi-taiyuan"},
                    headers=city)
    assert r.status_code == 422 and r.json()["error"]["details"]["problems"][0]["where"] == "attachment"
    r = client.post("/api/v1/rounds/shanxi-2021/duties/city_report", content=PDF, headers=city,
                    params={"jurisdiction": "shanxi-taiyuan"})
    assert r.status_code == 422 and "filename" in r.text   # the body's file name is needed
    r = client.post("/api/v1/rounds/shanxi-2021/duties/city_report", content=PDF, headers=city,
                    params={"jurisdiction": "shanxi-taiyuan", "filename": "太原市2021年创建总体情况.pdf",
                            "note": "报省局"})
    assert r.status_code == 201, r.text
    event = r.json()
    assert (event["type"], event["payload"]["duty"]) == ("DutyDone", "city_report")
    assert event["actor"].startswith("coordinator:") and event["actor"].endswith(";name=coordinator-x;via=api")
    history = client.get("/api/v1/rounds/shanxi-2021/duties/shanxi-taiyuan/history", headers=city).json()
    assert [e["hash"] for e in history] == [event["hash"]]
    board = client.get("/api/v1/rounds/shanxi-2021/duties", headers=city).json()["items"]
    assert [d["status"] for d in board if d["duty"] == "city_report"] == ["done"]
    assert client.get("/api/v1/audit/verify", headers=city).json()["duty_events"] == 1


def test_a_rollover_past_the_schedule_says_it_needs_a_target(client, db) -> None:
    province = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.post("/api/v1/rounds/shanxi-2021/rollover", json={}, headers=province)
    assert r.status_code == 422
    [problem] = r.json()["error"]["details"]["problems"]
    assert problem["where"] == "target_share" and "2022" in problem["what"] and "2022" in problem["zh"]
    r = client.post("/api/v1/rounds/shanxi-2021/rollover", json={"target_share": "0.6"}, headers=province)
    assert r.status_code == 201 and r.json()["round"]["calendar"] == "shanxi", r.text


def test_csv_exports_read_as_a_clerk_reads_them(client, db) -> None:
    """Times in Beijing time with their offset; each event's Chinese name beside its code."""
    certify(db, 1)
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/cases/1/history.csv", headers=coordinator)
                                           .content.decode("utf-8-sig"))))
    assert [(r["type"], r["event"]) for r in rows][:1] == [("CaseRegistered", "登记")]
    assert ("CaseCertified", "认定为节约型机关") in [(r["type"], r["event"]) for r in rows]
    assert all(r["occurred_at"].endswith("+08:00") for r in rows)
    assert rows[0]["occurred_at"] == NOW.astimezone(BUSINESS_TZ).isoformat(timespec="seconds")
    batch = client.post("/api/v1/rounds/shanxi-2021/filings", json={}, headers=coordinator).json()
    filed = list(csv.DictReader(io.StringIO(client.get(f"/api/v1/filings/{batch['id']}.csv", headers=coordinator)
                                            .content.decode("utf-8-sig"))))
    assert filed[0]["filed_at"].endswith("+08:00") and filed[0]["rechecked"] == "否"


def test_every_event_has_a_chinese_name() -> None:
    from workflow.domain.case import REGISTERED
    from workflow.domain.lifecycle import ACTIONS, EVENT_NAMES

    assert set(EVENT_NAMES) == {spec.event for spec in ACTIONS.values()} | {REGISTERED}


def test_at_risk_includes_rectification_deadlines(client, db) -> None:
    ready_to_submit(db, 2, 2, "70", NOW)
    attach_documents(db, 2, unit_actor(2), NOW)
    perform_action(db, 2, "submit", {}, unit_actor(2), NOW)
    perform_action(db, 2, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "70")}, COORDINATOR, NOW)
    perform_action(db, 2, "order_rectification", {}, COORDINATOR, NOW)
    province = client.token("coordinator", jurisdiction_id="shanxi")
    due = date.fromisoformat(client.get("/api/v1/cases/2", headers=province).json()["rectification_due"])
    client.clock.set(datetime.combine(due - timedelta(days=2), time(2, 0), tzinfo=UTC))
    items = client.get("/api/v1/rounds/shanxi-2021/at-risk", params={"days": 3}, headers=province).json()["items"]
    rect = [a for a in items if a["milestone"] == "rectification"]
    assert [(a["case_id"], a["days_left"], a["due_on"]) for a in rect] == [(2, 2, due.isoformat())]
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")  # case 2 is not in the city's subtree
    assert not [a for a in client.get("/api/v1/rounds/shanxi-2021/at-risk", params={"days": 3},
                                      headers=city).json()["items"] if a["milestone"] == "rectification"]
    assert not [a for a in client.get("/api/v1/rounds/shanxi-2021/at-risk", params={"days": 1},
                                      headers=province).json()["items"] if a["milestone"] == "rectification"]
    client.clock.set(NOW)  # three weeks before: tier 7, and tiers 3 and 1 moved back to the same Friday (one mail)
    coming = client.get("/api/v1/rounds/shanxi-2021/reminders", params={"days": 30}, headers=province).json()["items"]
    rect = [i for i in coming if i["milestone"] == "rectification"]
    assert len(rect) == 2 and all(i["case_ids"] == [2] and i["due_on"] == due.isoformat() for i in rect)


def test_a_unit_added_after_the_round_opened_is_registered_through_the_api(client, db, tmp_path) -> None:
    from workflow.files import import_units

    from ..support import write_units_csv

    import_units(db, write_units_csv(tmp_path / "new.csv", [("太原市新设局", "shanxi-taiyuan", "行政机关")]), NOW, actor=OPERATOR)
    unit_id = max(u.id for u in db.directory.units("/"))
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    r = client.post("/api/v1/rounds/shanxi-2021/cases", json={"unit_id": unit_id}, headers=city)
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    assert r.json()["state"] == "registered" and r.json()["version"] == 1
    assert client.get(f"/api/v1/cases/{case_id}/due", headers=city).json()["owed"]
    again = client.post("/api/v1/rounds/shanxi-2021/cases", json={"unit_id": unit_id}, headers=city)
    assert again.status_code == 409


def test_a_rounds_rubric_and_dated_calendar(client) -> None:
    unit = client.token("unit", unit_id=1)
    rubric = client.get("/api/v1/rounds/shanxi-2021/rubric", headers=unit)
    assert rubric.status_code == 200 and rubric.json()["rubric"] == "shanxi-2020"
    assert rubric.json()["data"]["sections"][0]["items"][0]["criteria"]  # 附件3, as the round snapshot keeps it
    assert rubric.json()["data"]["pass_mark"] == "80"
    calendar = client.get("/api/v1/rounds/shanxi-2021/calendar", headers=unit).json()
    dated = {m["id"]: m for m in calendar["milestones"]}
    assert dated["contact_form"]["due_on"] == "2021-06-05" and "contact_form" in dated["contact_form"]["owes"]
    self_assessment = dated["self_assessment"]
    assert self_assessment["due_on"] == "2021-10-20" and self_assessment["owed_by"] == "unit"
    assert all(r["on"] < "2021-10-20" and "unit" in r["to"] for r in self_assessment["reminders"])
    assert [m["due_on"] for m in calendar["milestones"]] == sorted(m["due_on"] for m in calendar["milestones"])
    assert calendar["rectification_days"] == 20
    assert client.get("/api/v1/rounds/hunan-2021/calendar", headers=unit).status_code == 404


def test_upcoming_reminders_of_a_subtree(client, db) -> None:
    """On 2021-10-12 the self-assessment reminders before October 20 are still to come, for the
    cases that owe it; a case that has submitted is not among them."""
    certify(db, 1)
    province = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.get("/api/v1/rounds/shanxi-2021/reminders", params={"days": 10}, headers=province)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    coming = [i for i in items if i["milestone"] == "self_assessment"]
    assert coming and all("2021-10-12" <= i["on"] <= "2021-10-20" and i["due_on"] == "2021-10-20" for i in coming)
    assert all(1 not in i["case_ids"] and 2 in i["case_ids"] for i in coming)
    assert [i["on"] for i in items] == sorted(i["on"] for i in items)
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    city_items = client.get("/api/v1/rounds/shanxi-2021/reminders", params={"days": 10}, headers=city).json()["items"]
    assert all(i["case_ids"] == [36] for i in city_items if i["milestone"] == "self_assessment")
    assert client.get("/api/v1/rounds/shanxi-2021/reminders", params={"days": 0}, headers=province).json()["items"] \
        == [i for i in items if i["on"] == "2021-10-12"]


def test_a_whole_round_or_subtree_history_streams_as_json_lines_and_csv(client, db) -> None:
    certify(db, 36)
    auditor = client.token("auditor", jurisdiction_id="shanxi-taiyuan")
    lines = client.get("/api/v1/rounds/shanxi-2021/history.jsonl", headers=auditor).text.splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["case_id"] for e in events} == {36} and events[-1]["type"] == "CaseCertified"
    assert events == [json.loads(x) for x in client.get("/api/v1/cases/36/history.jsonl", headers=auditor)
                      .text.splitlines()]  # the same events as the case's own export
    province = client.token("auditor", jurisdiction_id="shanxi")
    every = client.get("/api/v1/rounds/shanxi-2021/history.csv", headers=province)
    rows = list(csv.DictReader(io.StringIO(every.content.decode("utf-8-sig"))))
    assert len({r["case_id"] for r in rows}) == 36 and all(r["occurred_at"].endswith("+08:00") for r in rows)
    assert [r["hash"] for r in rows if r["case_id"] == "36"] == [e["hash"] for e in events]
    city_only = client.get("/api/v1/rounds/shanxi-2021/history.csv", params={"jurisdiction": "shanxi-taiyuan"},
                           headers=province)
    assert {r["case_id"] for r in csv.DictReader(io.StringIO(city_only.content.decode("utf-8-sig")))} == {"36"}


def test_the_progress_workbook_lists_the_lagging_units(client, db) -> None:
    """After the October sweep the workbook's 滞后单位 sheet names every overdue case of the
    subtree and what it missed, by its Chinese name and due date."""
    from openpyxl import load_workbook

    from workflow.adapters.calendar_files import CalendarCatalog
    from workflow.config import REPO_ROOT
    from workflow.service.deadlines import sweep

    certify(db, 1)
    sweep(db, CalendarCatalog(REPO_ROOT / "calendars"), NOW.replace(month=10, day=21))
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    book = load_workbook(io.BytesIO(client.get("/api/v1/rounds/shanxi-2021/progress.xlsx", headers=city).content))
    assert book.sheetnames == ["进度", "滞后单位"]
    rows = list(book["滞后单位"].iter_rows(min_row=3, values_only=True))
    assert {r[0] for r in rows} == {36} and {r[5] for r in rows} >= {"自评报告、自评打分表和佐证材料报送"}
    assert all(r[4] == "已登记" for r in rows)
    province = client.token("coordinator", jurisdiction_id="shanxi")
    everyone = load_workbook(io.BytesIO(client.get("/api/v1/rounds/shanxi-2021/progress.xlsx",
                                                   headers=province).content))["滞后单位"]
    ids = {r[0] for r in everyone.iter_rows(min_row=3, values_only=True)}
    overdue = client.get("/api/v1/rounds/shanxi-2021/progress", headers=province).json()["jurisdictions"][0]["overdue"]
    assert 36 in ids and len(ids) == overdue  # the same cases the report counts as overdue
