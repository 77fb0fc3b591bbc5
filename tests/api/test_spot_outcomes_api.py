"""Spot checks' outcomes and the national bureau's results over HTTP: recorded all or nothing,
every problem of the request listed in both languages, the answers in the one shape, and the
case's state following the round's policy (Shanxi's calendar: rectification within 20 days)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import text

from workflow.service.cases import perform_action

from ..support import COORDINATOR, RUBRICS, ready_to_submit, sheet_for, unit_actor
from .conftest import NOW


def certify(db: Any, case_id: int) -> None:
    ready_to_submit(db, case_id, case_id, "90", NOW)
    perform_action(db, case_id, "submit", {}, unit_actor(case_id), NOW)
    perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "90")}, COORDINATOR, NOW)
    perform_action(db, case_id, "certify", {}, COORDINATOR, NOW)


def rows(db: Any) -> tuple[int, int]:
    with db.engine.connect() as conn:
        return (conn.execute(text("SELECT COUNT(*) FROM spot_check_outcomes")).scalar_one(),
                conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one())


def test_outcomes_of_a_draw_and_the_national_results_of_a_batch(client: Any, db: Any) -> None:
    for case_id in (1, 2, 3):
        certify(db, case_id)
    headers = client.token("coordinator", jurisdiction_id="shanxi")
    drawn = client.post("/api/v1/rounds/shanxi-2021/spot-checks", json={"share": "1", "seed": 3}, headers=headers)
    assert drawn.status_code == 201, drawn.text
    url = f"/api/v1/rounds/shanxi-2021/spot-checks/{drawn.json()['id']}/outcomes"

    before = rows(db)
    bad = client.post(url, json={"outcomes": [{"case_id": 1, "outcome": "problems"},
                                              {"case_id": 2, "outcome": "maybe", "note": "x"},
                                              {"case_id": 36, "outcome": "passed"}]}, headers=headers)
    assert bad.status_code == 422, bad.text
    error = bad.json()["error"]
    assert error["code"] == "invalid_input" and error["message"]["zh"].startswith("抽查结果有误")
    assert [(p["where"], bool(p.get("zh"))) for p in error["details"]["problems"]] == [
        ("outcomes[0].findings", True), ("outcomes[1].note", True), ("outcomes[1].outcome", True)]
    assert rows(db) == before  # nothing written

    done = client.post(url, json={"outcomes": [
        {"case_id": 1, "outcome": "passed"},
        {"case_id": 2, "outcome": "problems", "findings": "能耗统计台账缺失", "evidence": "晋直管函〔2021〕60号"}]},
        headers=headers)
    assert done.status_code == 201, done.text
    assert [(o["case_id"], o["consequence"], o["consequence_zh"], o["due_on"]) for o in done.json()] == [
        (1, "none", "称号保留", None), (2, "rectification", "限期整改（称号暂停）", "2021-11-01")]
    case = client.get("/api/v1/cases/2", headers=headers).json()
    assert (case["state"], case["rectification_due"], case["held_title"]) == ("rectification", "2021-11-01", "certified")
    listed = client.get(url, headers=client.token("auditor", jurisdiction_id="shanxi"))
    assert [o["case_id"] for o in listed.json()] == [1, 2]
    again = client.post(url, json={"outcomes": [{"case_id": 1, "outcome": "passed"}]}, headers=headers)
    assert again.status_code == 422 and "already has an outcome" in again.text

    # the national bureau's results for the batch the province files
    batch = client.post("/api/v1/rounds/shanxi-2021/filings", json={}, headers=headers).json()
    assert [c["case_id"] for c in batch["cases"]] == [1, 3]  # case 2's title is held: not filed
    results = client.post(f"/api/v1/filings/{batch['id']}/national-results", headers=headers, json={
        "document": "国管节能〔2022〕21号",
        "results": [{"case_id": 3, "outcome": "problems", "findings": "实地抽查：垃圾分类未落实"}]})
    assert results.status_code == 201, results.text
    assert [(o["decided_by"], o["consequence"], o["evidence"]) for o in results.json()] == [
        ("national", "revoked", "国管节能〔2022〕21号")]
    assert client.get("/api/v1/cases/3", headers=headers).json()["state"] == "revoked"
    not_in_batch = client.post(f"/api/v1/filings/{batch['id']}/national-results", headers=headers, json={
        "document": "国管节能〔2022〕21号", "results": [{"case_id": 2, "outcome": "passed"}]})
    assert not_in_batch.status_code == 422 and "results[0].case_id" in not_in_batch.text


def test_a_spot_checks_outcome_is_not_an_action_by_name(client: Any, db: Any) -> None:
    certify(db, 1)
    headers = client.token("coordinator", jurisdiction_id="shanxi")
    for action, body in (("pass_spot_check", {"draw": "x"}),
                         ("order_spot_rectification", {"draw": "x", "findings": "能耗台账缺失"})):
        version = client.get("/api/v1/cases/1", headers=headers).json()["version"]
        r = client.post(f"/api/v1/cases/1/actions/{action}", json={"version": version, "data": body}, headers=headers)
        assert r.status_code == 403, r.text
        assert "spot-checks/{check}/outcomes" in r.json()["error"]["message"]["en"]
    assert client.get("/api/v1/cases/1", headers=headers).json()["state"] == "certified"
