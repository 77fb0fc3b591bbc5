"""Careless or hostile accounts, on SQLite and PostgreSQL: bookkeeping only through its
resource, scope that fails closed, revocations that say who, /metrics behind a setting,
error answers that do not describe the server."""
from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.api.app import create_app
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.domain.access import Principal
from workflow.domain.errors import Forbidden
from workflow.domain.state import Actor
from workflow.service.cases import by_name_only
from workflow.service.tokens import list_tokens, revoke_token

from ..api.test_resources_api import certify
from ..support import OPERATOR, OPERATOR_NOW, token_for

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)


# ---------------------------------------------------------------- bookkeeping through its resource

def test_file_is_refused_as_an_action_and_done_through_a_filing_batch(client, db) -> None:
    certify(db, 1)
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.post("/api/v1/cases/1/actions/file", headers=coordinator,
                    json={"version": 10, "data": {"batch": "made-up-batch"}})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert "file" not in client.get("/api/v1/cases/1", headers=coordinator).json()["allowed_actions"]
    with pytest.raises(Forbidden, match="filing batch"):  # the check of every by-name entry point (CLI, scenarios)
        by_name_only("file")
    assert client.get("/api/v1/cases/1", headers=coordinator).json()["state"] == "certified"
    made = client.post("/api/v1/rounds/shanxi-2021/filings", json={"note": "2021年度"}, headers=coordinator)
    assert made.status_code == 201, made.text
    assert client.get("/api/v1/cases/1", headers=coordinator).json()["state"] == "filed"


def test_a_spot_check_draw_is_refused_as_an_action(client, db) -> None:
    certify(db, 2)
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.post("/api/v1/cases/2/actions/record_spot_check", headers=coordinator,
                    json={"version": 10, "data": {"draw": 999, "seed": 1, "share": "0.1"}})
    assert r.status_code == 403
    with pytest.raises(Forbidden, match="spot check"):
        by_name_only("record_spot_check")
    by_name_only("certify")  # an ordinary action passes
    history = client.get("/api/v1/cases/2/history", headers=coordinator).json()
    assert "SpotCheckDrawn" not in [e["type"] for e in history]


# ---------------------------------------------------------------- scope fails closed

def test_a_principal_without_a_resolvable_scope_sees_nothing() -> None:
    for role in ("coordinator", "auditor"):
        lost = Principal(1, "x", role, jurisdiction_path=None)
        assert lost.unresolved and not lost.sees(1, "/shanxi/") and not lost.sees(1, "/")
    assert not Principal(1, "x", "unit", unit_id=None).sees(1, "/shanxi/")
    assert Principal(1, "x", "admin").sees(1, "/shanxi/")


def _orphan_token(db, token_id: int) -> None:
    """The token's jurisdiction is gone (an operator deleted it in the database, foreign keys
    bypassed): the join that gives its scope finds nothing."""
    if db.engine.dialect.name == "sqlite":  # a plain connection: foreign keys are off unless asked for
        with sqlite3.connect(db.engine.url.database) as conn:
            conn.execute("UPDATE api_tokens SET jurisdiction_id = 'gone' WHERE id = ?", (token_id,))
        return
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE api_tokens SET jurisdiction_id = 'gone' WHERE id = :i"), {"i": token_id})


@pytest.mark.parametrize("role", ["coordinator", "auditor"])
def test_a_token_whose_jurisdiction_cannot_be_resolved_sees_nothing(client, db, role) -> None:
    made = token_for(db, name="失联", role=role, jurisdiction_id="shanxi", now=NOW)
    _orphan_token(db, made.id)
    lost = {"Authorization": f"Bearer {made.secret}"}
    assert client.get("/api/v1/cases", headers=lost).json()["items"] == []
    assert client.get("/api/v1/cases/1", headers=lost).status_code == 404
    assert client.get("/api/v1/cases/1/history", headers=lost).status_code == 404
    assert client.get("/api/v1/units", headers=lost).json()["items"] == []
    assert client.get("/api/v1/jurisdictions", headers=lost).json() == []
    assert client.get("/api/v1/rounds", headers=lost).json() == []
    assert client.get("/api/v1/rounds/shanxi-2021", headers=lost).status_code == 404
    assert client.get("/api/v1/audit/verify", headers=lost).json()["cases"] == 0
    admin = client.token("admin")
    assert len(client.get("/api/v1/cases", headers=admin).json()["items"]) == 36  # the data is there


# ---------------------------------------------------------------- tokens and /metrics

def test_a_revocation_records_who_revoked(client, db) -> None:
    made = token_for(db, name="李科员", role="unit", unit_id=1, now=NOW)
    by = Actor("admin", "wang", 7, "王科长", "cli")
    revoke_token(db, made.id, NOW, by=by)
    token = next(t for t in list_tokens(db) if t.id == made.id)
    assert token.revoked_at == NOW and token.revoked_by == "admin:wang;account=7;name=王科长;via=cli"
    assert client.get("/api/v1/cases/1", headers={"Authorization": f"Bearer {made.secret}"}).status_code == 401
    assert [e.type for e in db.operator.events("tokens")][-1] == "TokenRevoked"
    with pytest.raises(Exception, match="no active token"):  # revoked already
        revoke_token(db, made.id, NOW, by=by)


def _app(db, db_url, tmp_path, **settings) -> TestClient:
    st = Settings(database_url=db_url, evidence_dir=tmp_path / "ev", maildir=tmp_path / "mail", **settings)
    return TestClient(create_app(App(settings=st, engine=db.engine, db=db, clock=ManualClock(NOW),
                                     calendars=CalendarCatalog(REPO_ROOT / "calendars"))))


def test_metrics_can_be_restricted_or_turned_off(db, db_url, tmp_path) -> None:
    assert _app(db, db_url, tmp_path).get("/metrics").status_code == 200  # open by default (a private port)
    guarded = _app(db, db_url, tmp_path, metrics_token="scrape-secret-1")
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = guarded.get("/metrics", headers={"Authorization": "Bearer scrape-secret-1"})
    assert ok.status_code == 200 and "workflow_http_requests_total" in ok.text
    assert _app(db, db_url, tmp_path, metrics_enabled=False).get("/metrics").status_code == 404


# ---------------------------------------------------------------- errors do not describe the server

_SERVER_DETAILS = re.compile(r"127\.0\.0\.1|[A-Za-z0-9\]]:\d{2,5}\b|psycopg|sqlite3?\b|OperationalError|/tmp/|/work/|\.py\b|"
                             r"Traceback|postgres", re.IGNORECASE)


def test_a_database_that_is_down_is_503_without_host_port_or_driver(db, db_url, tmp_path) -> None:
    down_url = "postgresql+psycopg://postgres@127.0.0.1:9/test" if db_url.startswith("postgresql") \
        else f"sqlite:///{tmp_path}/missing-dir/x.db"
    engine = make_engine(down_url)
    st = Settings(database_url=down_url, evidence_dir=tmp_path / "ev", maildir=tmp_path / "mail")
    down = TestClient(create_app(App(settings=st, engine=engine, db=Database(engine), clock=ManualClock(NOW),
                                     calendars=CalendarCatalog(REPO_ROOT / "calendars"))))
    r = down.get("/api/v1/cases", headers={"Authorization": "Bearer wf_anything"})
    assert r.status_code == 503, r.text
    assert not _SERVER_DETAILS.search(r.text), r.text
    assert "数据库" in r.json()["error"]["message"]["zh"]
    # a request with a body is authenticated before it is read (api/guard.py): the same 503 there
    posted = down.post("/api/v1/cases/1/actions/withdraw", headers={"Authorization": "Bearer wf_anything"},
                       json={"version": 1, "data": {"reason": "x"}})
    assert posted.status_code == 503 and not _SERVER_DETAILS.search(posted.text), posted.text
    engine.dispose()


def test_storage_errors_do_not_name_server_paths(client, tmp_path, plain_tracebacks) -> None:
    """The evidence folder cannot be created (a file is in its way): 507, and the answer does
    not name the folder."""
    application = client.app.state.application
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the evidence folder should be")
    application.settings.evidence_dir = blocked / "evidence"
    application.__dict__.pop("evidence", None)  # rebuilt from the new setting if cached
    unit = client.token("unit", unit_id=1)
    r = client.post("/api/v1/cases/1/evidence?criterion=1.1.1&filename=a.pdf", headers=unit,
                    content=b"%PDF-1.4\n%%EOF\n")
    assert r.status_code in (500, 507), r.text
    assert not _SERVER_DETAILS.search(r.text) and str(tmp_path) not in r.text, r.text


def test_error_lists_are_capped_with_a_count(client) -> None:
    """A sheet with 300 unknown criteria: the first 100 problems are listed, and the count."""
    unit = client.token("unit", unit_id=1)
    entries = {f"9.9.{i}": "1" for i in range(300)}
    r = client.post("/api/v1/cases/1/actions/self_assess", headers=unit, json={"version": 1, "data": {"entries": entries}})
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert len(details["problems"]) == 100
    assert details["problem_count"] == 300 and details["problems_listed"] == 100


@pytest.mark.parametrize("path", [
    "/api/v1/filings/" + "x" * 121, "/api/v1/filings/-leading-dash", "/api/v1/filings/a%20b.csv",
    "/api/v1/rounds/shanxi-2021/duties/" + "j" * 65 + "/history", "/api/v1/rounds/shanxi-2021/duties/TAIYUAN/history",
    "/api/v1/rounds/" + "r" * 81])
def test_path_parameters_are_bounded_before_any_lookup(client, path: str) -> None:
    r = client.get(path, headers=client.token("admin"))
    assert r.status_code == 422, (path, r.text)
    assert r.json()["error"]["code"] == "invalid_input"


def test_a_malformed_duty_in_an_upload_path_is_422(client) -> None:
    coordinator = client.token("coordinator", jurisdiction_id="shanxi")
    r = client.post("/api/v1/rounds/shanxi-2021/duties/Bad Duty?jurisdiction=shanxi&filename=a.pdf",
                    headers=coordinator, content=b"%PDF-1.4\n%%EOF\n")
    assert r.status_code == 422, r.text


# ---------------------------------------------------------------- found by a red-team pass

def test_metrics_labels_come_from_a_fixed_set_of_methods(client) -> None:
    """A client inventing methods cannot grow /metrics (one label set per invented method)."""
    for n in range(20):
        client.request(f"X{n:04d}" + "A" * 200, "/nowhere")
    text = client.get("/metrics").text
    assert "X0001" not in text and 'method="other"' in text


def test_one_evidence_file_is_downloaded_under_the_type_of_its_content(client) -> None:
    unit = client.token("unit", unit_id=1)
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": "整改通知.bat"},
                    content=b"start calc.exe\r\n", headers=unit)
    assert r.status_code == 201, r.text
    got = client.get(f"/api/v1/cases/1/evidence/{r.json()['sha256']}", headers=unit)
    disposition = unquote(got.headers["content-disposition"])
    assert got.status_code == 200 and "整改通知.txt" in disposition and ".bat" not in disposition


def test_a_unit_token_whose_unit_cannot_be_resolved_sees_nothing(client, db) -> None:
    made = token_for(db, name="失联单位", role="unit", unit_id=1, now=NOW)
    if db.engine.dialect.name == "sqlite":
        with sqlite3.connect(db.engine.url.database) as conn:
            conn.execute("UPDATE api_tokens SET unit_id = NULL WHERE id = ?", (made.id,))
    else:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE api_tokens SET unit_id = NULL WHERE id = :i"), {"i": made.id})
    lost = {"Authorization": f"Bearer {made.secret}"}
    assert client.get("/api/v1/cases", headers=lost).json()["items"] == []
    assert client.get("/api/v1/cases/1", headers=lost).status_code == 404


def test_not_found_answers_do_not_name_server_folders(client, tmp_path) -> None:
    unit, admin = client.token("unit", unit_id=1), client.token("admin")
    r = client.post("/api/v1/cases/1/evidence", params={"criterion": "1.1.1", "filename": "a.pdf"},
                    content=b"%PDF-1.4\n%%EOF\n", headers=unit)
    sha = r.json()["sha256"]
    for blob in (client.app.state.application.settings.evidence_dir).rglob(sha):
        blob.unlink()
    gone = client.get(f"/api/v1/cases/1/evidence/{sha}", headers=unit)
    assert gone.status_code == 404 and not _SERVER_DETAILS.search(gone.text), gone.text
    bad = client.post("/api/v1/rounds", headers=admin, json={"province": "shanxi", "year": 2030, "rubric": "nope"})
    assert bad.status_code in (404, 422) and not _SERVER_DETAILS.search(bad.text), bad.text
    assert "rubrics" not in bad.text or "/rubrics" not in bad.text


def test_answers_made_before_any_route_carry_the_security_headers(client) -> None:
    for r in (client.get("/api/v1/cases/%00"), client.get("/healthz"), client.get("/nowhere")):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert client.get("/api/v1/cases/%00").headers["cache-control"] == "no-store"


def test_a_coordinator_address_is_one_coordinator_however_it_is_typed(db) -> None:
    from workflow.domain.errors import AlreadyExists
    from workflow.service.directory import add_coordinator

    from ..support import seed_jurisdictions

    seed_jurisdictions(db)
    first = add_coordinator(db, "shanxi", "王科长", "Wang@EXAMPLE.CN", actor=OPERATOR, now=OPERATOR_NOW)
    assert first.email == "Wang@example.cn"  # the normal form: the domain lower-cased
    for again in ("Wang@example.cn", " Wang@example.cn ", "wang@example.cn"):
        with pytest.raises(AlreadyExists):
            add_coordinator(db, "shanxi", "王科长", again, actor=OPERATOR, now=OPERATOR_NOW)


def test_names_that_hide_their_ending_or_overflow_a_file_system_are_refused() -> None:
    from workflow.domain.text import filename_problem

    assert filename_problem("报告\u3164\u3164\u3164.pdf") is not None  # invisible filler letters
    assert filename_problem("报" * 67 + ".pdf") is not None  # 205 bytes in UTF-8
    assert filename_problem("报" * 60 + ".pdf") is None

