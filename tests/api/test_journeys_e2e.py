"""End to end over HTTP against `workflow serve` in a subprocess (SQLite, maildir, the
scheduler and the dispatcher running): one unit from registration to filed, and a failing
unit through rectification and recheck. The accounts and their tokens come from the CLI, as an
operator makes them.

The client behaves as a real one: it reads a case's version and, when the scheduler's
sweep moved the case in between (409 conflict), reads it again and retries.
"""
from __future__ import annotations

import csv
import io
import json
import mailbox
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from workflow.demo import ADMIN_LOGIN

from ..serving import cli_account, run_cli, start_serve, stop
from ..support import RUBRICS, sheet_for


def _cli(env: dict[str, str], *args: str) -> str:
    done = run_cli(list(args), env, Path.cwd())
    assert done.returncode == 0, done.stderr
    return done.stdout


def _token(env: dict[str, str], login: str, name: str, role: str, *scope: str) -> dict[str, str]:
    """An account made by the demo's admin and a token for it."""
    secret = cli_account(env, login, name, role, *scope, actor=ADMIN_LOGIN, token=True)
    return {"Authorization": f"Bearer {secret}"}


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{folder}/w.db", WORKFLOW_MAILDIR=str(folder / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(folder / "ev"), WORKFLOW_DISPATCH_INTERVAL_SECONDS="1", COLUMNS="200")
    return env


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    """The demo's example round, a coordinator who receives the digests and the people's tokens,
    made through the CLI once per module (each test serves a copy of the database)."""
    folder = tmp_path_factory.mktemp("e2e")
    env = _env(folder)
    _cli(env, "demo", "--example-only")
    _cli(env, "coordinators", "add", "shanxi", "王科长", "wang@jgswj.shanxi.example",  # receives the digests
         "--actor", ADMIN_LOGIN)
    tokens = {"unit1": _token(env, "sw.bgt", "省委办公厅", "unit", "--unit", "1"),
              "unit2": _token(env, "rd.bgt", "省人大办公厅", "unit", "--unit", "2"),
              "coordinator": _token(env, "wang", "王科长", "coordinator", "--jurisdiction", "shanxi"),
              "auditor": _token(env, "shenji", "审计员", "auditor", "--jurisdiction", "shanxi")}
    return folder, tokens


@pytest.fixture
def system(prepared: tuple[Path, dict[str, dict[str, str]]], tmp_path: Path):
    template, tokens = prepared
    folder = tmp_path / "system"
    shutil.copytree(template, folder)  # the database and whatever the demo wrote beside it
    env = _env(folder)
    proc, base = start_serve(env, folder / "serve.log", "--name", "e2e")
    with httpx.Client(base_url=base, timeout=30) as http:
        yield http, tokens, folder
    stop(proc)


def act(http: httpx.Client, auth: dict[str, str], case_id: int, action: str, data: dict | None = None) -> dict:
    for _ in range(10):
        version = http.get(f"/api/v1/cases/{case_id}", headers=auth).json()["version"]
        r = http.post(f"/api/v1/cases/{case_id}/actions/{action}", headers=auth,
                      json={"version": version, "data": data or {}})
        if r.status_code == 409 and r.json()["error"]["code"] == "conflict":
            continue  # the sweep recorded something in between: read again
        assert r.status_code == 200, f"{action} on case {case_id}: {r.status_code} {r.text}"
        return r.json()
    raise AssertionError(f"{action} on case {case_id}: still conflicting after 10 tries")


def pdf(label: str) -> bytes:
    return b"%PDF-1.4\n% " + label.encode() + b"\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def prepare_submission(http: httpx.Client, auth: dict[str, str], case_id: int, unit_id: int, total: str) -> None:
    """The unit's part: the contact form, the sheet, evidence for every scored criterion, the two
    documents the notice asks for (自评报告, 自评打分表), submit."""
    r = http.put(f"/api/v1/units/{unit_id}/contacts", headers=auth, json={"contacts": [
        {"name": "张三", "position": "处长", "phone": "0351-4040404", "email": f"unit{unit_id}@example.gov.cn"}]})
    assert r.status_code == 200, r.text
    entries = sheet_for(RUBRICS.get("shanxi-2020"), total)
    act(http, auth, case_id, "self_assess", {"entries": entries})
    for code, value in entries.items():
        if value != "0":
            r = http.post(f"/api/v1/cases/{case_id}/evidence", params={"criterion": code, "filename": f"{code} 佐证.pdf"},
                          content=pdf(f"{case_id} {code}"), headers=auth)
            assert r.status_code == 201, r.text
    documents = http.get(f"/api/v1/cases/{case_id}/documents", headers=auth).json()
    assert [d["name"] for d in documents] == ["自评报告", "自评打分表"] and all(not d["files"] for d in documents)
    for d in documents:
        r = http.post(f"/api/v1/cases/{case_id}/documents", params={"document": d["id"], "filename": f"{d['name']}.pdf"},
                      content=pdf(f"{case_id} {d['id']}"), headers=auth)
        assert r.status_code == 201, r.text
    assert all(d["attached"] for d in http.get(f"/api/v1/cases/{case_id}", headers=auth).json()["documents"])
    assert act(http, auth, case_id, "submit")["state"] == "submitted"


def test_a_unit_from_registration_to_filed(system) -> None:
    http, t, tmp_path = system
    assert http.get("/api/v1/cases/1", headers=t["unit1"]).json()["state"] == "registered"
    assert http.get("/api/v1/cases/2", headers=t["unit1"]).status_code == 404
    prepare_submission(http, t["unit1"], 1, 1, "92")
    verified = act(http, t["coordinator"], 1, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "92")})
    assert verified["state"] == "verified" and "certify" in verified["allowed_actions"]
    assert act(http, t["coordinator"], 1, "certify")["state"] == "certified"
    draw = http.post("/api/v1/rounds/shanxi-2021/spot-checks", json={"share": "1", "seed": 7}, headers=t["coordinator"])
    assert draw.status_code == 201 and draw.json()["drawn"] == [1]
    batch = http.post("/api/v1/rounds/shanxi-2021/filings", json={"note": "2021年度第一批"}, headers=t["coordinator"])
    assert batch.status_code == 201, batch.text
    assert [c["case_id"] for c in batch.json()["cases"]] == [1]
    assert http.get("/api/v1/cases/1", headers=t["unit1"]).json()["state"] == "filed"
    rows = list(csv.DictReader(io.StringIO(http.get(f"/api/v1/filings/{batch.json()['id']}.csv",
                                                    headers=t["auditor"]).content.decode("utf-8-sig"))))
    assert [r["unit_id"] for r in rows] == ["1"] and rows[0]["unit_name"]
    history = [json.loads(line) for line in
               http.get("/api/v1/units/1/history.jsonl", headers=t["auditor"]).text.splitlines()]
    types = [e["type"] for e in history]
    assert types[0] == "CaseRegistered" and types[-1] == "CaseFiled"
    assert {"SelfAssessmentSubmitted", "CaseVerified", "CaseCertified", "SpotCheckDrawn"} <= set(types)
    by = {e["type"]: e["actor"] for e in history}  # the account, its display name and the channel
    assert by["SelfAssessmentSubmitted"].startswith("unit:1;account=") and "name=省委办公厅" in by["SelfAssessmentSubmitted"]
    assert by["CaseVerified"].startswith("coordinator:wang;account=") and by["CaseVerified"].endswith(";via=api")
    check = http.get("/api/v1/audit/verify", headers=t["auditor"]).json()
    assert check["ok"] is True and check["cases"] == 35
    progress = http.get("/api/v1/rounds/shanxi-2021/progress", headers=t["auditor"]).json()
    assert progress["jurisdictions"][0]["by_state"]["filed"] == 1
    # the scheduler and the dispatcher run in the same process: the missed 2021 deadlines
    # were swept at start and the coordinator's digest delivered to the maildir
    def delivered() -> list[str]:
        folder = tmp_path / "mail"
        return list(mailbox.Maildir(folder, create=False).keys()) if (folder / "new").is_dir() else []

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not delivered():
        time.sleep(0.5)  # waiting for the dispatcher's next pass, not timing anything
    assert delivered()
    recipients = {m["To"] for m in mailbox.Maildir(tmp_path / "mail", create=False)}
    assert any("wang@jgswj.shanxi.example" in r for r in recipients)
    statuses = {n["status"] for n in http.get("/api/v1/cases/1/notifications", headers=t["auditor"]).json()}
    assert statuses and statuses <= {"pending", "sending", "sent", "failed", "cancelled"}
    assert "workflow_sweep_duration_seconds_count 1.0" in http.get("/metrics").text


def test_a_failing_unit_through_rectification_and_recheck(system) -> None:
    http, t, _ = system
    rubric = RUBRICS.get("shanxi-2020")
    prepare_submission(http, t["unit2"], 2, 2, "70")
    verified = act(http, t["coordinator"], 2, "verify", {"entries": sheet_for(rubric, "70")})
    assert verified["state"] == "verified" and "order_rectification" in verified["allowed_actions"]
    r = http.post("/api/v1/cases/2/actions/certify", headers=t["coordinator"],
                  json={"version": verified["version"]})
    assert r.status_code == 409 and r.json()["error"]["code"] in ("action_refused", "conflict")
    ordered = act(http, t["coordinator"], 2, "order_rectification", {"note": "节水节电制度不健全"})
    assert ordered["state"] == "rectification"
    case = http.get("/api/v1/cases/2", headers=t["unit2"]).json()
    assert case["rectification_due"] and "request_recheck" in case["allowed_actions"]
    assert act(http, t["unit2"], 2, "request_recheck", {"note": "已完成整改"})["state"] == "recheck"
    rechecked = act(http, t["coordinator"], 2, "recheck", {"entries": sheet_for(rubric, "86")})
    assert rechecked["state"] == "certified"
    shown = http.get("/api/v1/cases/2", headers=t["auditor"]).json()
    assert shown["verified_total"] is not None and float(shown["recheck_total"]) == 86
    assert shown["allowed_actions"] == []  # an auditor changes nothing
    sheets = http.get("/api/v1/cases/2/sheets", headers=t["auditor"]).json()
    assert float(sheets["verified"]["total"]) == 70 and float(sheets["recheck"]["total"]) == 86
    types = [e["type"] for e in http.get("/api/v1/cases/2/history", headers=t["auditor"]).json()]
    assert types.index("RectificationOrdered") < types.index("RecheckRequested") < types.index("CaseRechecked")
    assert http.get("/api/v1/audit/verify", headers=t["coordinator"]).json()["ok"] is True
