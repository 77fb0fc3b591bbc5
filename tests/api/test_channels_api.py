"""Channels over HTTP (decision 53): every problem of a new channel at once in both languages,
nothing written; the address answered masked and the secret never; disabled by id."""
from __future__ import annotations

from typing import Any

from sqlalchemy import text

KEY = "0123456789abcdef"
WECOM = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"


def count(db: Any) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM channels")).scalar_one()


def test_a_coordinator_adds_lists_and_disables_a_channel(client: Any, db: Any) -> None:
    headers = client.token("coordinator", jurisdiction_id="shanxi-taiyuan")
    bad = client.post("/api/v1/channels", headers=headers, json={
        "kind": "fax", "audience": "everyone", "name": "", "url": "http://example.com/hook"})
    assert bad.status_code == 422, bad.text
    error = bad.json()["error"]
    assert {p["where"] for p in error["details"]["problems"]} == {"kind", "audience", "name", "url"}
    assert all(p.get("zh") for p in error["details"]["problems"]) and error["message"]["zh"]
    assert count(db) == 0

    made = client.post("/api/v1/channels", headers=headers, json={
        "kind": "dingtalk", "audience": "coordinators", "name": "太原市协调群",
        "url": "https://oapi.dingtalk.com/robot/send?access_token=tok123456789", "secret": "SECabcdef"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["jurisdiction"] == "shanxi-taiyuan"  # the caller's, when not given
    assert (body["kind_zh"], body["audience_zh"], body["signed"], body["enabled"]) == (
        "钉钉群机器人", "本地区协调人员", True, True)
    assert "tok123456789" not in made.text and "SECabcdef" not in made.text
    listed = client.get("/api/v1/channels", headers=client.token("auditor", jurisdiction_id="shanxi"))
    assert [c["id"] for c in listed.json()] == [body["id"]] and "tok123456789" not in listed.text
    # the province's channel is not the city's to add
    other = client.post("/api/v1/channels", headers=headers, json={
        "jurisdiction": "shanxi", "kind": "wecom", "audience": "units", "name": "省直单位群", "url": WECOM})
    assert other.status_code == 404
    off = client.post(f"/api/v1/channels/{body['id']}/disable", headers=headers)
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["disabled_at"]


def test_an_admin_names_the_jurisdiction(client: Any, db: Any) -> None:
    admin = client.token("admin")
    missing = client.post("/api/v1/channels", headers=admin, json={
        "kind": "wecom", "audience": "units", "name": "省直单位群", "url": WECOM})
    assert missing.status_code == 422 and missing.json()["error"]["details"]["problems"][0]["where"] == "jurisdiction"
    made = client.post("/api/v1/channels", headers=admin, json={
        "jurisdiction": "shanxi", "kind": "wecom", "audience": "units", "name": "省直单位群", "url": WECOM})
    assert made.status_code == 201 and KEY not in made.text
