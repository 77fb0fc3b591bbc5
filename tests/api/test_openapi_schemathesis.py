"""Schemathesis against the app's own OpenAPI document (/openapi.json), on SQLite only.

Every operation of the schema is called with generated inputs (schemathesis' coverage
phase, then up to ``MAX_EXAMPLES`` fuzzed examples per operation, positive and negative)
with an admin bearer token; fuzzed examples are sent again with a unit token (unit 1)
and a provincial coordinator token (shanxi). Each answer is checked: no 5xx, a documented
status code, a documented content type, a body that fits the documented schema, and (our
own check) the JSON error shape on every 4xx/5xx.

The database is the ``client`` fixture's (Shanxi 2021, cases 1–36), set up once per
operation and NOT reset between examples: generated writes (a unit added, an action
taken) stay for the following examples of that operation. Path parameters are biased
towards ids that exist (cases 1, 2, 36, units 1, 2, 36, round shanxi-2021, real
action names) so that generated requests get past the 404s.

What the schema does not say (see ``UNDOCUMENTED``) is relaxed for exactly the status
codes listed per operation, and one known server error (ids out of the 64-bit range,
``BUG_INT_PATH``) is left out of generation and pinned by its own strict xfail test.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from workflow.api.app import create_app
from workflow.domain.lifecycle import ACTIONS

MAX_EXAMPLES = 3
CONFIG = schemathesis.Config.from_dict({
    "seed": 2021,  # the same examples every run
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
})
# The OpenAPI document needs no database: it is read from an app built without one, and
# every request goes to the ``client`` fixture's app (test_the_schema_is_the_apps_own
# checks that both serve the same document). Loading the schema at import time gives one
# pytest item per operation.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(None), config=CONFIG)  # type: ignore[arg-type]

# ---------------------------------------------------------------- what the schema leaves out
# FastAPI documents only 200/201 and 422 (the latter only where an operation has
# parameters). These status codes are answered by design (see the module docstring of
# workflow.api.app and workflow.api.common.STATUS) but are not in the OpenAPI responses:
#   401 unauthorized — every /api/v1 operation (no or bad bearer token);
#   403 forbidden — operations that check the role (require() or the action/evidence role check);
#   404 not_found — operations with a path id (outside the caller's scope or absent) and
#       the list/report filters resolved through scope_root()/list_cases (jurisdiction, state);
#   409 conflict / action_refused / already_exists — writes;
#   413 too_large — evidence upload and roster import;
#   400 bad_request — every JSON-body operation when the body is not UTF-8 (FastAPI's
#       "There was an error parsing the body"; a body that is UTF-8 but not JSON is a 422);
#   503 unavailable — /readyz when the database does not answer.
# Only these (operation, status) pairs skip the status-code check; anything else undocumented fails.
_API_READ = {401}
_SCOPED = {401, 404}
_ROLE = {401, 403}
_JSON_WRITE = {400, 401, 403, 409}
UNDOCUMENTED: dict[str, set[int]] = {
    "GET /readyz": {503},
    "GET /api/v1/cases": _SCOPED,
    "GET /api/v1/cases.xlsx": _SCOPED,
    "GET /api/v1/cases/{case_id}": _SCOPED,
    "GET /api/v1/cases/{case_id}/history": _SCOPED,
    "GET /api/v1/cases/{case_id}/due": _SCOPED,
    "GET /api/v1/cases/{case_id}/history.jsonl": _SCOPED,
    "GET /api/v1/cases/{case_id}/history.csv": _SCOPED,
    "POST /api/v1/cases/{case_id}/actions/{action}": _JSON_WRITE | {404},
    "GET /api/v1/cases/{case_id}/sheets": _SCOPED,
    "GET /api/v1/cases/{case_id}/sheets.xlsx": _SCOPED,
    "GET /api/v1/cases/{case_id}/evidence": _SCOPED,
    "POST /api/v1/cases/{case_id}/evidence": _ROLE | {404, 409, 413},
    "GET /api/v1/cases/{case_id}/evidence.zip": _SCOPED,
    "GET /api/v1/cases/{case_id}/evidence/{sha256}": _SCOPED,
    "GET /api/v1/cases/{case_id}/notifications": _SCOPED,
    "GET /api/v1/jurisdictions": _API_READ,
    "POST /api/v1/jurisdictions": _JSON_WRITE,
    "GET /api/v1/units": _SCOPED,
    "POST /api/v1/units": _JSON_WRITE,
    "POST /api/v1/units/import": _ROLE | {413},
    "GET /api/v1/units/{unit_id}": _SCOPED,
    "PATCH /api/v1/units/{unit_id}": _JSON_WRITE | {404},
    "PUT /api/v1/units/{unit_id}/contacts": _JSON_WRITE | {404},
    "GET /api/v1/units/{unit_id}/history": _SCOPED,
    "GET /api/v1/units/{unit_id}/history.jsonl": _SCOPED,
    "GET /api/v1/units/{unit_id}/history.csv": _SCOPED,
    "GET /api/v1/rounds": _API_READ,
    "POST /api/v1/rounds": _JSON_WRITE | {404},
    "GET /api/v1/rounds/{round_id}": _SCOPED,
    "POST /api/v1/rounds/{round_id}/rollover": _JSON_WRITE | {404},
    "POST /api/v1/rounds/{round_id}/cases": _JSON_WRITE | {404},
    "GET /api/v1/rounds/{round_id}/rubric": _SCOPED,
    "GET /api/v1/rounds/{round_id}/reminders": _SCOPED | _ROLE,
    "GET /api/v1/rounds/{round_id}/history.jsonl": _SCOPED | _ROLE,
    "GET /api/v1/rounds/{round_id}/history.csv": _SCOPED | _ROLE,
    "GET /api/v1/rounds/{round_id}/calendar": _SCOPED,
    "GET /api/v1/rounds/{round_id}/progress": _SCOPED | _ROLE,
    "GET /api/v1/rounds/{round_id}/progress.xlsx": _SCOPED | _ROLE,
    "GET /api/v1/rounds/{round_id}/at-risk": _SCOPED | _ROLE,
    "POST /api/v1/rounds/{round_id}/spot-checks": _JSON_WRITE | {404},
    "GET /api/v1/rounds/{round_id}/spot-checks": _SCOPED | _ROLE,
    "POST /api/v1/rounds/{round_id}/filings": _JSON_WRITE | {404},
    "GET /api/v1/rounds/{round_id}/filings": _SCOPED | _ROLE,
    "GET /api/v1/filings/{batch_id}.csv": _SCOPED | _ROLE,
    "GET /api/v1/filings/{batch_id}": _SCOPED | _ROLE,
    "GET /api/v1/audit/verify": _ROLE,
    "POST /api/v1/audit/checkpoints": _ROLE | {409},
    "GET /api/v1/audit/checkpoints/latest": _ROLE | {404},
}


def status_code_documented_or_known(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' status_code_conformance, except for the (operation, status) pairs of UNDOCUMENTED."""
    if response.status_code in UNDOCUMENTED.get(case.operation.label, ()):
        return None
    return status_code_conformance(ctx, response, case)


def error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is {"error": {"code", "message": {"zh", "en"}, "details"}} (the schema cannot say so)."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"]["zh"], str) and error["message"]["zh"], body
    assert isinstance(error["message"]["en"], str) and error["message"]["en"], body
    assert isinstance(error["details"], dict), body
    return None


CHECKS = [not_a_server_error, status_code_documented_or_known, content_type_conformance,
          response_schema_conformance, error_shape]

# ---------------------------------------------------------------- generation
EXISTING: dict[str, tuple[Any, ...]] = {
    "case_id": (1, 2, 36), "unit_id": (1, 2, 36), "round_id": ("shanxi-2021",), "action": tuple(ACTIONS),
}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Now and then swap a generated id for one that exists (same type only, so negative
    examples stay negative where they were typed wrong)."""
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries({
        name: st.sampled_from([value, *(v for v in EXISTING.get(name, ()) if type(v) is type(value))])
        for name, value in path_parameters.items()})


# BUG_INT_PATH: an integer path id outside what the database can bind (SQLite: 64 bits;
# PostgreSQL: 32 bits, cases.id and units.id are INTEGER) is a 500, not a 404/422:
# `case_id: int` / `unit_id: int` have no bounds (unlike `after`, which has le=2**31-1).
# Pinned by test_int_path_ids_out_of_range_are_not_5xx (and, on both databases, by
# tests/api/test_bad_input.py::test_path_ids_out_of_range_are_4xx); left out of the generated
# run so that the rest of every such operation is still checked.
INT_PATH_PARAMS = ("case_id", "unit_id")
_INT = re.compile(r"^[+-]?\d+$")


def _binds_in_sqlite(case: Any) -> bool:
    for name in INT_PATH_PARAMS:
        value = (case.path_parameters or {}).get(name)
        if isinstance(value, bool) or value is None:
            continue
        if (isinstance(value, int) or (isinstance(value, str) and _INT.match(value.strip()))) \
                and not -(2**63) <= int(value) < 2**63:
            return False
    return True


class Served:
    """The app as a server runs it: an unhandled exception is the 500 the app already sent
    (Starlette re-raises after answering; uvicorn would log it), not an exception in the test."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if not started:
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"unhandled exception"})


# ---------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _plain(plain_tracebacks: None) -> None:
    """Plain tracebacks for the 500s these tests provoke (tests/api/conftest.py)."""


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only here (keeps the run short); test_bad_input.py covers PostgreSQL."""
    return sqlite_url


@pytest.fixture
def tokens(client: Any) -> dict[str, dict[str, str]]:
    return {"admin": client.token("admin"), "unit": client.token("unit", unit_id=1),
            "coordinator": client.token("coordinator", jurisdiction_id="shanxi")}


@pytest.fixture
def served(client: Any) -> Served:
    return Served(client.app)


# ---------------------------------------------------------------- tests
def test_the_schema_is_the_apps_own(client: Any) -> None:
    assert client.get("/openapi.json").json() == schema.raw_schema


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.large_base_example])
def test_every_operation_answers_as_documented(case: Any, tokens: dict, served: Served) -> None:
    if not _binds_in_sqlite(case):
        return  # BUG_INT_PATH, pinned below
    roles = ["admin"]
    if case.meta is None or case.meta.phase.name.value == "fuzzing":
        roles += ["unit", "coordinator"]
    for role in roles:
        case.headers = {**(case.headers or {}), **tokens[role]}
        response = case.call(app=served)
        case.validate_response(response, checks=CHECKS)


def _int_path_operations() -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, methods in schema.raw_schema["paths"].items()
            for method in methods if any(f"{{{p}}}" in path for p in INT_PATH_PARAMS)]


# A valid request for every operation with an integer path id, so that only the id is out of range.
_VALID = {
    "POST /api/v1/cases/{case_id}/actions/{action}": {"json": {"version": 1, "data": {}}},
    "POST /api/v1/cases/{case_id}/evidence": {"params": {"criterion": "1.1", "filename": "a.pdf"},
                                              "content": b"%PDF-1.4\n%%EOF\n"},
    "PATCH /api/v1/units/{unit_id}": {"json": {"name": "新名称"}},
    "PUT /api/v1/units/{unit_id}/contacts": {"json": {"contacts": [{"name": "张三", "phone": "0351-1234567"}]}},
}


def test_int_path_ids_out_of_range_are_not_5xx(client: Any, tokens: dict, served: Served) -> None:
    from fastapi.testclient import TestClient

    server = TestClient(served)
    answers = {}
    for method, path in _int_path_operations():
        url = (path.replace("{case_id}", str(2**63)).replace("{unit_id}", str(2**63))
               .replace("{action}", "withdraw").replace("{sha256}", "0" * 64))
        answers[f"{method} {path}"] = server.request(method, url, headers=tokens["admin"],
                                                     **_VALID.get(f"{method} {path}", {})).status_code
    assert {"GET /api/v1/cases/{case_id}", "GET /api/v1/units/{unit_id}"} <= set(answers)  # 18 operations today
    assert {op: s for op, s in answers.items() if s >= 500} == {}
