"""The first endpoints of the HTTP API: tokens, scope (404 outside it), 403, 409, the error shape."""
from __future__ import annotations

from datetime import timedelta

from workflow.service.tokens import revoke_token

from ..support import OPERATOR, ready_to_submit, token_for
from .conftest import NOW


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_no_or_bad_token_is_401_in_the_error_shape(client) -> None:
    for headers in ({}, {"Authorization": "Bearer wf_nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/api/v1/cases/1", headers=headers)
        assert r.status_code == 401
        body = r.json()["error"]
        assert body["code"] == "unauthorized" and body["message"]["zh"] and body["message"]["en"]


def test_scope_outside_is_404_inside_is_200(client) -> None:
    unit1, city = client.token("unit", unit_id=1), client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    province = client.token("auditor", jurisdiction_id="shanxi")
    assert client.get("/api/v1/cases/1", headers=unit1).status_code == 200
    assert client.get("/api/v1/cases/2", headers=unit1).status_code == 404
    assert client.get("/api/v1/cases/1", headers=city).status_code == 404
    assert client.get("/api/v1/cases/36", headers=city).status_code == 200
    assert client.get("/api/v1/cases/36", headers=province).status_code == 200
    assert client.get("/api/v1/cases/9999", headers=province).json()["error"]["code"] == "not_found"


def test_actions_with_version_role_and_state(client, db) -> None:
    unit1, coordinator = client.token("unit", unit_id=1), client.token("coordinator", jurisdiction_id="shanxi")
    auditor = client.token("auditor", jurisdiction_id="shanxi")
    ready_to_submit(db, 1, 1, "90", NOW)
    case = client.get("/api/v1/cases/1", headers=unit1).json()
    assert "submit" in case["allowed_actions"]
    stale = case["version"] - 1
    r = client.post("/api/v1/cases/1/actions/submit", json={"version": stale}, headers=unit1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = client.post("/api/v1/cases/1/actions/submit", json={"version": case["version"]}, headers=coordinator)
    assert r.status_code == 403
    r = client.post("/api/v1/cases/1/actions/withdraw", json={"version": case["version"], "data": {"reason": "x"}},
                    headers=auditor)
    assert r.status_code == 403
    r = client.post("/api/v1/cases/1/actions/submit", json={"version": case["version"]}, headers=unit1)
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    r = client.post("/api/v1/cases/1/actions/submit", json={"version": r.json()["version"]}, headers=unit1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "action_refused"
    history = client.get("/api/v1/cases/1/history", headers=auditor).json()
    assert history[-1]["type"] == "SelfAssessmentSubmitted" and history[-1]["actor"].split(";")[0] == "unit:1"
    assert history[-1]["actor"].endswith(";name=unit-x;via=api")  # the account, its name and the channel


def test_bad_bodies_list_every_field(client) -> None:
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.post("/api/v1/cases/1/actions/withdraw", json={"version": 0, "colour": "red"}, headers=coordinator)
    assert r.status_code == 422
    where = {p["where"] for p in r.json()["error"]["details"]["problems"]}
    assert {"body.version", "body.colour"} <= where
    r = client.post("/api/v1/cases/1/actions/withdraw", json={"version": 1, "data": {}}, headers=coordinator)
    assert r.status_code == 422 and r.json()["error"]["details"]["problems"][0]["where"] == "reason"


def test_revoked_and_expired_tokens_stop_working(client, db) -> None:
    made = token_for(db, name="short", role="admin", now=NOW,
                        expires_at=NOW + timedelta(hours=1))
    headers = {"Authorization": f"Bearer {made.secret}"}
    assert client.get("/api/v1/cases/1", headers=headers).status_code == 200
    client.clock.advance(timedelta(hours=2))
    assert client.get("/api/v1/cases/1", headers=headers).status_code == 401
    other = token_for(db, name="other", role="admin", now=client.clock.now())
    revoke_token(db, other.id, client.clock.now(), by=OPERATOR)
    assert client.get("/api/v1/cases/1", headers={"Authorization": f"Bearer {other.secret}"}).status_code == 401


def test_case_lists_are_scoped_filtered_and_paged(client) -> None:
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    province = client.token("auditor", jurisdiction_id="shanxi")
    unit2 = client.token("unit", unit_id=2)
    assert [c["id"] for c in client.get("/api/v1/cases", headers=city).json()["items"]] == [36]
    assert [c["id"] for c in client.get("/api/v1/cases", headers=unit2).json()["items"]] == [2]
    first = client.get("/api/v1/cases", params={"limit": 20}, headers=province).json()
    assert len(first["items"]) == 20 and first["next"] == 20
    rest = client.get("/api/v1/cases", params={"limit": 20, "after": first["next"]}, headers=province).json()
    assert [c["id"] for c in rest["items"]] == list(range(21, 37)) and rest["next"] is None
    assert client.get("/api/v1/cases", params={"level": "city"}, headers=province).json()["items"][0]["id"] == 36
    people = client.get("/api/v1/cases", params={"category": "人民团体"}, headers=province).json()["items"]
    assert people and all(c["category"] == "人民团体" for c in people)
    assert client.get("/api/v1/cases", params={"limit": 0}, headers=province).status_code == 422


def test_unit_history_is_scoped(client) -> None:
    unit1, city = client.token("unit", unit_id=1), client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    history = client.get("/api/v1/units/1/history", headers=unit1).json()
    assert [e["type"] for e in history] == ["CaseRegistered"] and history[0]["hash"]
    assert client.get("/api/v1/units/1/history", headers=city).status_code == 404
    assert client.get("/api/v1/units/999/history", headers=unit1).status_code == 404


def test_what_a_case_owes_and_by_when(client, db) -> None:
    """On 2021-10-12 (Beijing), a Shanxi case just registered owes its self-assessment by
    October 20 (the contact form of June 5 was missed long ago, still owed), with the reminders
    still to come, and lists what stands between it and submission."""
    unit = client.token("unit", unit_id=1)
    r = client.get("/api/v1/cases/1/due", headers=unit)
    assert r.status_code == 200, r.text
    due = r.json()
    assert due["state"] == "registered" and due["today"] == "2021-10-12"
    owed = {o["id"]: o for o in due["owed"]}
    assert "self_assessment" in owed and owed["self_assessment"]["due_on"] == "2021-10-20"
    assert owed["self_assessment"]["days_left"] == 8
    assert all(rm["on"] >= "2021-10-12" and rm["on"] <= "2021-10-20" for rm in owed["self_assessment"]["reminders"])
    assert owed["self_assessment"]["reminders"] and "unit" in owed["self_assessment"]["reminders"][0]["to"]
    assert [o["due_on"] for o in due["owed"]] == sorted(o["due_on"] for o in due["owed"])
    assert any(o["days_left"] < 0 for o in due["owed"])  # the June contact form, overdue and still owed
    assert any(m["where"].startswith("documents.") for m in due["missing"])
    assert client.get("/api/v1/cases/2/due", headers=unit).status_code == 404  # another unit's case


def test_the_filtered_case_list_as_a_workbook(client, db) -> None:
    """Exactly the cases GET /cases gives for the same filters, every one (not a page), with
    Chinese headers and state names beside their codes."""
    import io

    from openpyxl import load_workbook

    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.get("/api/v1/cases.xlsx", params={"round": "shanxi-2021", "state": "registered"}, headers=coordinator)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(r.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][:3] == ("案件编号", "轮次", "单位") and rows[1][5:7] == ("状态", "状态代码")
    listed = [i["id"] for i in client.get("/api/v1/cases", params={"round": "shanxi-2021", "state": "registered",
                                                                   "limit": 1000}, headers=coordinator).json()["items"]]
    assert [row[0] for row in rows[2:]] == listed and len(listed) == 36
    assert {row[5] for row in rows[2:]} == {"已登记"} and {row[6] for row in rows[2:]} == {"registered"}
    assert sheet.print_title_rows == "$2:$2" and sheet.page_setup.orientation == "landscape"
    city = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    city_rows = list(load_workbook(io.BytesIO(client.get("/api/v1/cases.xlsx", headers=city).content)).active
                     .iter_rows(values_only=True))
    assert [row[0] for row in city_rows[2:]] == [36]  # the caller's scope, as GET /cases
    assert client.get("/api/v1/cases.xlsx", params={"round": "nowhere-2021"}, headers=city).status_code == 404
