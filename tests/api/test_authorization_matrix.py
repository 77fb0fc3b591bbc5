"""The authorization matrix: every endpoint × every role × in scope / out of scope, with the
exact HTTP status each cell must answer.

``TABLE`` is keyed by (method, path template) exactly as FastAPI registers the routes;
``test_every_route_has_an_entry`` fails for a route without an entry (a NEW endpoint must
be added here) and for an entry without a route. Each entry says, for each role, how to
fill the path (and body, query, content) "in scope" and "out of scope" and the status
expected; a few entries add named variants (``in:province``, ``out:subtree``, ...) where
one role meets more than one rule on the same endpoint.

The principals (see ``PRINCIPALS``), on the ``client`` fixture's world (Shanxi 2021: cases
1–35 of provincial units 1–35 directly under ``shanxi``; case 36 of unit 36 under the city
``shanxi-taiyuan``):

* unit — a token of unit 1: in scope unit 1 / case 1; out of scope unit 2 / case 2;
* coordinator, auditor — tokens of ``shanxi-taiyuan``: in scope unit 36 / case 36; out of
  scope unit 1 / case 1, the sibling city ``shanxi-datong``, and the round ``hunan-2021``;
* admin — sees everything: "out of scope" is marked not applicable (``ADMIN_SEES_ALL``).

Rounds are visible to a unit with a case in them and to a coordinator or auditor of their
province (or of a jurisdiction under it); out of scope is a Hunan round (``World.hunan_round``).
The rules (src/workflow/api/app.py): outside its scope a resource answers 404 as if it did
not exist; a visible resource with an action the role may not take answers 403; an auditor
changes nothing; no (valid) token is 401; every error has the shape
``{"error": {"code", "message": {"zh", "en"}, "details"}}``.

Writes are made so their in-scope answer is deterministic (fresh cases are ``registered``
at version 1; spot checks and filings get a certified case first). Cells that document a
bug are ``xfail(strict=True)`` with the reason starting ``BUG:``.

Runtime. A read (GET) changes nothing, so the read cells, the no-token cells and the public
ones share one world per database (``shared``: the ``client`` fixture's world built once per
module, with every read cell's preparation made up front; ``test_the_shared_world_is_the_
client_fixtures`` keeps the two alike); they run on SQLite and, when WORKFLOW_TEST_DATABASE_URL
is set, on PostgreSQL too. Every write cell gets a fresh ``client`` (≈0.1 s each on SQLite,
≈0.3 s on PostgreSQL), so the write cells run on SQLite only, unless
``WORKFLOW_TEST_MATRIX_ALL_DATABASES=1`` (with WORKFLOW_TEST_DATABASE_URL) adds PostgreSQL.
The whole file takes ~20 s (~45 s with the write cells on both databases).
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.routing import Match

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import upgrade
from workflow.adapters.db.store import Database
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.domain.access import ROLES
from workflow.files import import_units
from workflow.service.cases import perform_action, register_case
from workflow.service.evidence import EvidenceQuota, attach_bytes, attach_document_bytes
from workflow.service.oversight import file_round, spot_check
from workflow.service.rounds import open_round

from ..conftest import PG_SKIP_REASON, PG_URL, pg_schema_url
from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    OPERATOR,
    RUBRICS,
    account_for,
    open_shanxi,
    sheet_for,
    token_for,
    unit_actor,
    write_units_csv,
)
from .conftest import NOW

MATRIX_DATABASES = ["sqlite", "postgres"] if os.environ.get("WORKFLOW_TEST_MATRIX_ALL_DATABASES") else ["sqlite"]

# The routes FastAPI adds by itself (docs); not part of the matrix.
FASTAPI_OWN = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

PRINCIPALS: dict[str, dict[str, Any]] = {
    "unit": {"role": "unit", "unit_id": 1},
    "coordinator": {"role": "coordinator", "jurisdiction_id": "shanxi-taiyuan"},
    "auditor": {"role": "auditor", "jurisdiction_id": "shanxi-taiyuan"},
    "admin": {"role": "admin"},
    # for the few cells about the coordinator of a whole province
    "coordinator@hunan": {"role": "coordinator", "jurisdiction_id": "hunan"},
}

# Case (and unit: case n belongs to unit n in the fixture) in and out of each role's scope.
IN_CASE = {"unit": 1, "coordinator": 36, "auditor": 36, "admin": 1}
OUT_CASE = {"unit": 2, "coordinator": 1, "auditor": 1}
SIBLING = "shanxi-datong"  # a city beside the coordinator's and auditor's shanxi-taiyuan
SHANXI, HUNAN = "shanxi-2021", "hunan-2021"



def pdf(*tags: Any) -> bytes:
    """A small PDF, different for different tags (so a different sha256)."""
    return b"%PDF-1.4\n% " + " ".join(map(str, tags)).encode() + b"\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"

CSV_ROW = "name,jurisdiction,category\n{name},{jurisdiction},行政机关\n"
CONTACTS = {"contacts": [{"name": "张三", "phone": "0351-1234567"}]}
QUOTA = EvidenceQuota(1024**3, 2000)  # a case's evidence quota (the settings' defaults)


# ---------------------------------------------------------------- the world of one cell
class World:
    """The ``client`` fixture's data plus what some cells need first (each step at most once)."""

    def __init__(self, client: Any, db: Any) -> None:
        self.client, self.db = client, db
        self.application = client.app.state.application
        self._done: dict[Any, Any] = {}

    def _once(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._done:
            self._done[key] = make()
        return self._done[key]

    def headers(self, principal: str) -> dict[str, str]:
        return self._once(("token", principal), lambda: self.client.token(**PRINCIPALS[principal]))

    def hunan_round(self) -> str:
        """A round nobody but an admin (and Hunan's own people) sees; no Shanxi unit is in it."""
        def make() -> str:
            return open_round(self.db, RUBRICS, CALENDARS, province_id="hunan", year=2021, rubric_id="hunan-2020",
                              calendar_id="hunan", target_share="0.5", actor=ADMIN, now=NOW).round_id
        return self._once("hunan", make)

    def evidence(self, case_id: int) -> str:
        """The sha256 of a PDF its unit attached to the case (unit n owns case n)."""
        def make() -> str:
            results = attach_bytes(self.db, self.application.evidence, case_id, "1.1.1",
                                   [(f"case-{case_id}.pdf", pdf("case", case_id))], unit_actor(case_id), NOW,
                                   quota=QUOTA)
            return results[-1].event.payload["sha256"]
        return self._once(("evidence", case_id), make)

    def contact_on_file(self, unit_id: int) -> None:
        """A contact person on the unit's record (not yet confirmed for the round)."""
        from workflow.service.directory import update_unit

        self._once(("contact", unit_id), lambda: update_unit(self.db, unit_id, CONTACTS, NOW, actor=OPERATOR))

    def certify(self, case_id: int) -> None:
        """Self-assessed at 90 with a stored PDF for every scored criterion (so the evidence
        ZIP can be made), submitted, verified at 90, certified."""
        def make() -> None:
            unit = unit_actor(case_id)
            entries = sheet_for(RUBRICS.get("shanxi-2020"), "90")
            perform_action(self.db, case_id, "self_assess", {"entries": entries}, unit, NOW)
            for code, value in entries.items():
                if value != "0":
                    attach_bytes(self.db, self.application.evidence, case_id, code,
                                 [(f"{code}.pdf", pdf("case", case_id, code))], unit, NOW, quota=QUOTA)
            for document in ("self_report", "score_sheet"):  # stored too: the ZIP carries them first
                attach_document_bytes(self.db, self.application.evidence, case_id, document,
                                      [(f"{document}.pdf", pdf("case", case_id, document))], unit, NOW,
                                      quota=QUOTA)
            perform_action(self.db, case_id, "submit", {}, unit, NOW)
            perform_action(self.db, case_id, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "90")},
                           COORDINATOR, NOW)
            perform_action(self.db, case_id, "certify", {}, COORDINATOR, NOW)
        self._once(("certified", case_id), make)

    def spot_checks(self) -> dict[str, str]:
        """A draw in shanxi-taiyuan and one over the whole province: jurisdiction → draw id."""
        def make() -> dict[str, str]:
            self.certify(36)
            self.certify(1)
            return {j: spot_check(self.db, SHANXI, j, share="1", seed=7, actor=COORDINATOR, now=NOW).id
                    for j in ("shanxi-taiyuan", "shanxi")}
        return self._once("spot_checks", make)

    def filings(self) -> dict[str, str]:
        """Case 36 filed in a shanxi-taiyuan batch, case 1 in a province batch: jurisdiction → batch id."""
        def make() -> dict[str, str]:
            self.certify(36)
            city = file_round(self.db, SHANXI, "shanxi-taiyuan", actor=COORDINATOR, now=NOW).id
            self.certify(1)
            province = file_round(self.db, SHANXI, "shanxi", actor=COORDINATOR, now=NOW).id
            return {"shanxi-taiyuan": city, "shanxi": province}
        return self._once("filings", make)

    def checkpointed(self) -> None:
        """A checkpoint key and directory of this world's own (beside its evidence), and one
        signed checkpoint written."""
        def make() -> None:
            from workflow.adapters.checkpoint_files import generate_key
            from workflow.service.checkpoints import write_checkpoint

            settings = self.application.settings
            folder = settings.evidence_dir.parent / "checkpointing"
            settings.checkpoint_key, settings.checkpoint_dir = folder / "key.pem", folder / "checkpoints"
            generate_key(settings.checkpoint_key)
            write_checkpoint(self.db, self.application.checkpoint_store(), self.application.checkpoint_signer(), NOW)
        self._once("checkpointed", make)

    def prepare(self) -> None:
        """Everything any read cell needs, in an order that works (evidence is attached
        while the cases are still open; draws before the certified cases are filed)."""
        for case_id in (1, 2, 36):
            self.evidence(case_id)
        self.hunan_round()
        self.spot_checks()
        self.filings()
        self.checkpointed()


# ---------------------------------------------------------------- the table's vocabulary
Lazy = Any | Callable[[World], Any]  # a value, or made from the world of the cell


def resolve(value: Lazy, world: World) -> Any:
    return value(world) if callable(value) else value


@dataclass(frozen=True)
class Cell:
    """One request and the exact status it must answer."""

    status: int
    path: Lazy = field(default_factory=dict)
    params: Lazy = None
    json: Lazy = None
    content: Lazy = None
    as_: str | None = None  # the principal, when not the role's standard one (see PRINCIPALS)
    setup: Callable[[World], Any] | None = None
    check: Callable[[Any], None] | None = None  # more about a successful answer (e.g. a list's scope)
    bug: str | None = None  # a known bug: the cell is xfail(strict=True)


@dataclass(frozen=True)
class NotApplicable:
    why: str


@dataclass(frozen=True)
class Endpoint:
    cells: Mapping[tuple[str, str], Cell | NotApplicable] = field(default_factory=dict)
    public: bool = False


PUBLIC = Endpoint(public=True)
ADMIN_SEES_ALL = NotApplicable("an admin sees everything: nothing is out of its scope")
NO_RESOURCE = NotApplicable("the endpoint names no resource: its answer is the caller's own scope "
                            "(checked in the in-scope cell)")

Cells = dict[tuple[str, str], Cell | NotApplicable]


def each_case(statuses: Mapping[str, tuple[int, int | None]], *, extra_path: Callable[[World, int], dict] | None = None,
              **request: Callable[[int], Any]) -> Cells:
    """A case endpoint: {role: (in-scope status, out-of-scope status)} on each role's case.
    ``request`` values are functions of the case id (``json=lambda case: {...}``)."""
    cells: Cells = {}
    for role in ROLES:
        status_in, status_out = statuses[role]
        for scope, case_id, status in (("in", IN_CASE[role], status_in), ("out", OUT_CASE.get(role), status_out)):
            if case_id is None:
                cells[(role, scope)] = ADMIN_SEES_ALL
                continue

            def path(world: World, case_id: int = case_id) -> dict:
                return {"case_id": case_id, **(extra_path(world, case_id) if extra_path else {})}

            cells[(role, scope)] = Cell(status, path=path, **{k: f(case_id) for k, f in request.items()})
    return cells


def each_unit(statuses: Mapping[str, tuple[int, int | None]], **request: Any) -> Cells:
    """A unit endpoint: the same cases' units (unit n owns case n)."""
    cells: Cells = {}
    for role in ROLES:
        status_in, status_out = statuses[role]
        cells[(role, "in")] = Cell(status_in, path={"unit_id": IN_CASE[role]}, **request)
        cells[(role, "out")] = (ADMIN_SEES_ALL if role == "admin"
                                else Cell(status_out, path={"unit_id": OUT_CASE[role]}, **request))
    return cells


def hunan(world: World) -> dict:
    return {"round_id": world.hunan_round()}


def each_round(statuses: Mapping[str, tuple[int, int | None]], **request: Any) -> Cells:
    """A round endpoint: shanxi-2021 in scope (unit 1 has a case in it; shanxi-taiyuan is in
    Shanxi), hunan-2021 out of scope."""
    cells: Cells = {}
    for role in ROLES:
        status_in, status_out = statuses[role]
        cells[(role, "in")] = Cell(status_in, path={"round_id": SHANXI}, **request)
        cells[(role, "out")] = ADMIN_SEES_ALL if role == "admin" else Cell(status_out, path=hunan, **request)
    return cells


READ = {"unit": (200, 404), "coordinator": (200, 404), "auditor": (200, 404), "admin": (200, None)}
REPORT = {"unit": (403, 404), "coordinator": (200, 404), "auditor": (200, 404), "admin": (200, None)}


def endpoint(*parts: Cells, **more: Cell | NotApplicable) -> Endpoint:
    """Cells from the builders, plus named ones: ``unit__in__forbidden_action=Cell(...)`` is
    (unit, "in:forbidden-action")."""
    cells: Cells = {}
    for part in parts:
        cells.update(part)
    for name, cell in more.items():
        role, scope, *variant = name.split("__")
        cells[(role, scope + (":" + variant[0].replace("_", "-") if variant else ""))] = cell
    return Endpoint(cells)


# ---------------------------------------------------------------- response checks
def ids(*expected: Any, key: str = "id", items: str | None = "items") -> Callable[[Any], None]:
    def check(r: Any) -> None:
        body = r.json()
        got = [x[key] for x in (body[items] if items else body)]
        assert got == list(expected), f"{key}s in the answer: {got}, expected {list(expected)}"
    return check


def workbook_ids(*expected: int) -> Callable[[Any], None]:
    """The case ids of a case-list workbook (its rows under the title and the header)."""
    def check(r: Any) -> None:
        import io

        from openpyxl import load_workbook

        got = [row[0] for row in load_workbook(io.BytesIO(r.content)).active.iter_rows(min_row=3, values_only=True)]
        assert got == list(expected), f"case ids in the workbook: {got}, expected {list(expected)}"
    return check


def all_under(prefix: str, key: str = "path") -> Callable[[Any], None]:
    def check(r: Any) -> None:
        got = [x[key] for x in r.json()]
        assert got and all(v.startswith(prefix) for v in got), f"{got} not all under {prefix}"
    return check


def includes(*expected: str, key: str = "id") -> Callable[[Any], None]:
    def check(r: Any) -> None:
        got = {x[key] for x in r.json()}
        assert set(expected) <= got, f"{sorted(got)} lacks {sorted(set(expected) - got)}"
    return check


def verify_scope(scope: str, cases: int) -> Callable[[Any], None]:
    def check(r: Any) -> None:
        body = r.json()
        assert (body["scope"], body["cases"]) == (scope, cases), body
    return check


def checkpoint_scope(scope: str, chains: int) -> Callable[[Any], None]:
    def check(r: Any) -> None:
        body = r.json()
        assert (body["scope"], body["signature_ok"]) == (scope, True), body
        assert len([c for c in body["chains"] if c["kind"] == "case"]) == chains, body
    return check


# ---------------------------------------------------------------- requests used by several cells
def act(case_id: int, action: str, **data: Any) -> dict[str, Any]:
    return {"path": {"case_id": case_id, "action": action}, "json": {"version": 1, "data": data}}


SELF_ASSESS = {"entries": {"1.1.1": "9"}}
WITHDRAW = {"reason": "退出本轮创建"}


def upload(case_id: int) -> dict[str, Any]:
    return {"params": {"criterion": "1.1.1", "filename": "plan.pdf"}, "content": pdf("upload", case_id)}


def round_body(province: str) -> dict[str, Any]:
    rubric, calendar = ("hunan-2020", "hunan") if province == "hunan" else ("shanxi-2020", "shanxi-2021")
    return {"province": province, "year": 2021, "rubric": rubric, "calendar": calendar, "target_share": "0.5"}


def new_jurisdiction(parent: str) -> dict[str, Any]:
    return {"id": "new-county", "name": "新区", "level": "county", "parent": parent}


def new_unit(jurisdiction: str) -> dict[str, Any]:
    return {"name": "新设单位", "jurisdiction": jurisdiction, "category": "行政机关"}


def roster(jurisdiction: str) -> dict[str, Any]:
    return {"content": CSV_ROW.format(name="新设单位", jurisdiction=jurisdiction).encode(),
            "params": {"filename": "roster.csv"}}


def certified(*case_ids: int) -> Callable[[World], None]:
    def setup(world: World) -> None:
        for case_id in case_ids:
            world.certify(case_id)
    return setup


def duty_report(round_id: Lazy, jurisdiction: str, duty: str = "city_report") -> dict[str, Any]:
    """Record a jurisdiction's duty with its attachment (the report itself) as the body."""
    def path(world: World) -> dict:
        return {"round_id": resolve(round_id, world), "duty": duty}
    return {"path": path, "params": {"jurisdiction": jurisdiction, "filename": "年度创建总体情况.pdf"},
            "content": pdf("duty", 1, jurisdiction)}


def draw(jurisdiction: str) -> Callable[[World], dict]:
    return lambda world: {"round_id": SHANXI, "check_id": world.spot_checks()[jurisdiction]}


def hunan_draw(world: World) -> dict:
    return {**hunan(world), "check_id": "hunan-2021-spot-1"}


def passed(case_id: int) -> dict[str, Any]:
    return {"outcomes": [{"case_id": case_id, "outcome": "passed"}]}


def national(case_id: int) -> dict[str, Any]:
    return {"document": "国管节能〔2022〕21号", "results": [{"case_id": case_id, "outcome": "passed"}]}


WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=matrix"


def new_channel(jurisdiction: str) -> dict[str, Any]:
    return {"jurisdiction": jurisdiction, "kind": "wecom", "audience": "units", "name": "创建单位群", "url": WECOM}


def a_channel(jurisdiction: str) -> Callable[[World], dict]:
    """A channel of the jurisdiction, added for the cell."""
    def path(world: World) -> dict:
        from workflow.domain.access import Principal
        from workflow.service.channels import add_channel

        admin = Principal(0, "admin", "admin")
        made = add_channel(world.db, admin, NOW, jurisdiction_id=jurisdiction, kind="wecom", url=WECOM,
                           audience="coordinators", name=f"{jurisdiction} 协调群")
        return {"channel_id": made.id}
    return path


def batch(jurisdiction: str) -> Callable[[World], dict]:
    return lambda world: {"batch_id": world.filings()[jurisdiction]}


def account(unit: int) -> Callable[[World], dict]:
    """The path of a new unit account of ``unit`` (never the principal's own: a unit sees only
    its own account, not a colleague's)."""
    def path(world: World) -> dict:
        return {"account_id": account_for(world.db, "unit", NOW, unit_id=unit).id}
    return path


def a_token(world: World) -> dict:
    return {"token_id": token_for(world.db, "unit", NOW, unit_id=3).id}


def filled_sheet(case_id: int) -> Callable[[World], bytes]:
    """The case's own printed 附件3 with 1.1.1 scored 9 in the self-assessment column."""
    def content(world: World) -> bytes:
        import io

        from openpyxl import load_workbook

        from workflow.files import score_sheet_xlsx
        from workflow.service.sheets import case_sheets

        book = load_workbook(io.BytesIO(score_sheet_xlsx(case_sheets(world.db, case_id))))
        ws = book.active
        head = {str(ws.cell(3, c).value): c for c in range(1, ws.max_column + 1) if ws.cell(3, c).value}
        row = next(r for r in range(5, ws.max_row + 1) if ws.cell(r, head["编号"]).value == "1.1.1")
        ws.cell(row, head["自评得分"]).value = 9
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    return content


NEW_ACCOUNT = {"login": "li.new", "name": "李新", "role": "unit", "email": "li@example.gov.cn"}


def accounts_cells(ok: int, method_body: dict[str, Any] | None = None) -> Cells:
    """A change to an account: a coordinator or an admin, in the account's subtree."""
    body = {} if method_body is None else {"json": method_body}
    return endpoint(
        unit__in=Cell(403, path=account(1), **body), unit__out=Cell(403, path=account(2), **body),
        coordinator__in=Cell(ok, path=account(36), **body), coordinator__out=Cell(404, path=account(1), **body),
        auditor__in=Cell(403, path=account(36), **body), auditor__out=Cell(403, path=account(1), **body),
        admin__in=Cell(ok, path=account(1), **body), admin__out=ADMIN_SEES_ALL).cells


# ---------------------------------------------------------------- the table
TABLE: dict[tuple[str, str], Endpoint] = {
    ("POST", "/api/v1/cases/{case_id}/score-sheet.xlsx"): endpoint(
        unit__in=Cell(200, path={"case_id": 1}, content=filled_sheet(1)),
        unit__out=Cell(404, path={"case_id": 2}, content=filled_sheet(2)),
        # a coordinator's upload is the verification sheet: a registered case cannot be verified yet
        coordinator__in=Cell(409, path={"case_id": 36}, content=filled_sheet(36)),
        coordinator__out=Cell(404, path={"case_id": 1}, content=filled_sheet(1)),
        auditor__in=Cell(403, path={"case_id": 36}, content=filled_sheet(36)),
        auditor__out=Cell(404, path={"case_id": 1}, content=filled_sheet(1)),
        admin__in=Cell(200, path={"case_id": 1}, content=filled_sheet(1)), admin__out=ADMIN_SEES_ALL),
    # ------------------------------------------------------------ accounts and the operator log
    ("GET", "/api/v1/accounts"): endpoint(
        unit__in=Cell(200), unit__out=NO_RESOURCE, coordinator__in=Cell(200), coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200), auditor__out=NO_RESOURCE, admin__in=Cell(200), admin__out=ADMIN_SEES_ALL),
    ("GET", "/api/v1/accounts/me"): endpoint(
        unit__in=Cell(200), unit__out=NO_RESOURCE, coordinator__in=Cell(200), coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200), auditor__out=NO_RESOURCE, admin__in=Cell(200), admin__out=ADMIN_SEES_ALL),
    ("POST", "/api/v1/accounts"): endpoint(
        unit__in=Cell(403, json={**NEW_ACCOUNT, "unit_id": 1}), unit__out=Cell(403, json={**NEW_ACCOUNT, "unit_id": 2}),
        coordinator__in=Cell(201, json={**NEW_ACCOUNT, "unit_id": 36}),
        coordinator__out=Cell(403, json={**NEW_ACCOUNT, "unit_id": 1}),
        auditor__in=Cell(403, json={**NEW_ACCOUNT, "unit_id": 36}),
        auditor__out=Cell(403, json={**NEW_ACCOUNT, "unit_id": 1}),
        admin__in=Cell(201, json={**NEW_ACCOUNT, "unit_id": 1}), admin__out=ADMIN_SEES_ALL),
    ("GET", "/api/v1/accounts/{account_id}"): endpoint(
        unit__in=Cell(404, path=account(1)), unit__out=Cell(404, path=account(2)),
        coordinator__in=Cell(200, path=account(36)), coordinator__out=Cell(404, path=account(1)),
        auditor__in=Cell(200, path=account(36)), auditor__out=Cell(404, path=account(1)),
        admin__in=Cell(200, path=account(1)), admin__out=ADMIN_SEES_ALL),
    ("PATCH", "/api/v1/accounts/{account_id}"): Endpoint(accounts_cells(200, {"phone": "0351-1234567"})),
    ("POST", "/api/v1/accounts/{account_id}/disable"): Endpoint(accounts_cells(200, {"reason": "调离岗位"})),
    ("POST", "/api/v1/accounts/{account_id}/enable"): Endpoint(accounts_cells(200)),
    ("POST", "/api/v1/accounts/{account_id}/tokens"): endpoint(
        unit__in=Cell(404, path=account(1), json={}), unit__out=Cell(404, path=account(2), json={}),
        coordinator__in=Cell(201, path=account(36), json={}), coordinator__out=Cell(404, path=account(1), json={}),
        auditor__in=Cell(403, path=account(36), json={}), auditor__out=Cell(404, path=account(1), json={}),
        admin__in=Cell(201, path=account(1), json={}), admin__out=ADMIN_SEES_ALL),
    ("DELETE", "/api/v1/tokens/{token_id}"): endpoint(
        unit__in=Cell(403, path=a_token), unit__out=NO_RESOURCE, coordinator__in=Cell(403, path=a_token),
        coordinator__out=NO_RESOURCE, auditor__in=Cell(403, path=a_token), auditor__out=NO_RESOURCE,
        admin__in=Cell(204, path=a_token), admin__out=ADMIN_SEES_ALL),
    # channels (decision 53): the city's coordinator configures the city's, not the province's
    ("GET", "/api/v1/channels"): endpoint(
        unit__in=Cell(403), unit__out=NO_RESOURCE, coordinator__in=Cell(200), coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200), auditor__out=NO_RESOURCE, admin__in=Cell(200), admin__out=ADMIN_SEES_ALL),
    ("POST", "/api/v1/channels"): endpoint(
        unit__in=Cell(403, json=new_channel("shanxi")), unit__out=Cell(403, json=new_channel("hunan")),
        coordinator__in=Cell(201, json=new_channel("shanxi-taiyuan")),
        coordinator__out=Cell(404, json=new_channel("shanxi")),
        auditor__in=Cell(403, json=new_channel("shanxi-taiyuan")), auditor__out=Cell(403, json=new_channel("shanxi")),
        admin__in=Cell(201, json=new_channel("shanxi")), admin__out=ADMIN_SEES_ALL),
    ("POST", "/api/v1/channels/{channel_id}/disable"): endpoint(
        unit__in=Cell(403, path=a_channel("shanxi")), unit__out=Cell(403, path=a_channel("hunan")),
        coordinator__in=Cell(200, path=a_channel("shanxi-taiyuan")),
        coordinator__out=Cell(404, path=a_channel("shanxi")),
        auditor__in=Cell(403, path=a_channel("shanxi-taiyuan")), auditor__out=Cell(403, path=a_channel("shanxi")),
        admin__in=Cell(200, path=a_channel("shanxi")), admin__out=ADMIN_SEES_ALL),
    ("GET", "/api/v1/audit/operator-events"): endpoint(
        unit__in=Cell(403), unit__out=NO_RESOURCE, coordinator__in=Cell(403), coordinator__out=NO_RESOURCE,
        auditor__in=Cell(403), auditor__out=NO_RESOURCE, admin__in=Cell(200), admin__out=ADMIN_SEES_ALL),

    # ------------------------------------------------------------ operations (no token)
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,

    # ------------------------------------------------------------ cases
    ("GET", "/api/v1/cases"): endpoint(
        unit__in=Cell(200, check=ids(1)),
        unit__out=Cell(404, params={"jurisdiction": "shanxi-taiyuan"}, check=ids()),
        coordinator__in=Cell(200, check=ids(36)),
        coordinator__out=Cell(404, params={"jurisdiction": SIBLING}, check=ids()),
        auditor__in=Cell(200, check=ids(36)),
        auditor__out=Cell(404, params={"jurisdiction": SIBLING}, check=ids()),
        admin__in=Cell(200, check=ids(*range(1, 37))),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/cases.xlsx"): endpoint(
        unit__in=Cell(200, check=workbook_ids(1)),
        unit__out=Cell(404, params={"jurisdiction": "shanxi-taiyuan"}),
        coordinator__in=Cell(200, check=workbook_ids(36)),
        coordinator__out=Cell(404, params={"jurisdiction": SIBLING}),
        auditor__in=Cell(200, check=workbook_ids(36)),
        auditor__out=Cell(404, params={"jurisdiction": SIBLING}),
        admin__in=Cell(200, check=workbook_ids(*range(1, 37))),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/cases/{case_id}"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/history"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/due"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/history.jsonl"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/history.csv"): endpoint(each_case(READ)),
    ("POST", "/api/v1/cases/{case_id}/actions/{action}"): endpoint(
        # a unit takes its own actions, not a coordinator's
        unit__in=Cell(200, **act(1, "self_assess", **SELF_ASSESS)),
        unit__in__coordinator_action=Cell(403, **act(1, "withdraw", **WITHDRAW)),
        unit__out=Cell(404, **act(2, "self_assess", **SELF_ASSESS)),
        # a coordinator takes coordinators' actions, not a unit's
        coordinator__in=Cell(200, **act(36, "withdraw", **WITHDRAW)),
        coordinator__in__unit_action=Cell(403, **act(36, "submit")),
        coordinator__out=Cell(404, **act(1, "withdraw", **WITHDRAW)),
        # an auditor changes nothing
        auditor__in=Cell(403, **act(36, "withdraw", **WITHDRAW)),
        auditor__in__unknown_action=Cell(404, **act(36, "no_such_action")),  # no such action: 404 for everyone
        # evidence is attached by uploading its bytes, never by naming a stored file's hash
        unit__in__attach_by_hash=Cell(403, **act(1, "attach_evidence", data={
            "criterion": "1.1.1", "sha256": "0" * 64, "filename": "x.pdf", "size": 10, "type": "pdf"})),
        auditor__out=Cell(404, **act(1, "withdraw", **WITHDRAW)),
        # an admin takes anything but the system's actions
        admin__in=Cell(200, **act(1, "withdraw", **WITHDRAW)),
        admin__in__system_action=Cell(403, **act(1, "expire_rectification")),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/cases/{case_id}/sheets"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/sheets.xlsx"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/evidence"): endpoint(each_case(READ)),
    # attach_evidence is a unit's action (and an admin's); coordinators and auditors: 403
    ("POST", "/api/v1/cases/{case_id}/evidence"): endpoint(each_case(
        {"unit": (201, 404), "coordinator": (403, 404), "auditor": (403, 404), "admin": (201, None)},
        params=lambda case: upload(case)["params"], content=lambda case: upload(case)["content"])),
    ("GET", "/api/v1/cases/{case_id}/evidence.zip"): endpoint(each_case(READ)),
    # the file is attached to the case asked for, in and out of scope alike
    ("GET", "/api/v1/cases/{case_id}/evidence/{sha256}"): endpoint(
        each_case(READ, extra_path=lambda world, case_id: {"sha256": world.evidence(case_id)}),
        # a visible case serves only its own files
        unit__out__other_case_file=Cell(404, path=lambda w: {"case_id": 1, "sha256": w.evidence(2)}),
    ),
    ("GET", "/api/v1/cases/{case_id}/notifications"): endpoint(each_case(READ)),
    ("GET", "/api/v1/cases/{case_id}/documents"): endpoint(each_case(READ)),
    # attach_document is a unit's action (and an admin's), like evidence
    ("POST", "/api/v1/cases/{case_id}/documents"): endpoint(each_case(
        {"unit": (201, 404), "coordinator": (403, 404), "auditor": (403, 404), "admin": (201, None)},
        params=lambda case: {"document": "self_report", "filename": "自评报告.pdf"},
        content=lambda case: pdf("report", case))),

    # ------------------------------------------------------------ directory
    ("GET", "/api/v1/jurisdictions"): endpoint(
        unit__in=Cell(200, check=ids("shanxi", items=None)),
        unit__out=NO_RESOURCE,
        coordinator__in=Cell(200, check=all_under("/shanxi/shanxi-taiyuan/")),
        coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200, check=all_under("/shanxi/shanxi-taiyuan/")),
        auditor__out=NO_RESOURCE,
        admin__in=Cell(200, check=includes("shanxi", "shanxi-taiyuan", "hunan")),
        admin__out=ADMIN_SEES_ALL,
    ),
    # a coordinator adds under their own jurisdiction; a parent outside it is unknown (422,
    # as for a parent that does not exist)
    ("POST", "/api/v1/jurisdictions"): endpoint(
        unit__in=Cell(403, json=new_jurisdiction("shanxi")),
        unit__out=Cell(403, json=new_jurisdiction("shanxi-taiyuan")),
        coordinator__in=Cell(201, json=new_jurisdiction("shanxi-taiyuan")),
        coordinator__out=Cell(422, json=new_jurisdiction(SIBLING)),
        auditor__in=Cell(403, json=new_jurisdiction("shanxi-taiyuan")),
        auditor__out=Cell(403, json=new_jurisdiction(SIBLING)),
        admin__in=Cell(201, json=new_jurisdiction("shanxi-taiyuan")),
        admin__out=ADMIN_SEES_ALL,
    ),
    # a unit's token lists its own unit whatever it asks for; a jurisdiction outside a
    # coordinator's or auditor's subtree is 404
    ("GET", "/api/v1/units"): endpoint(
        unit__in=Cell(200, check=ids(1)),
        unit__out=Cell(200, params={"jurisdiction": "shanxi-taiyuan"}, check=ids(1)),
        coordinator__in=Cell(200, check=ids(36)),
        coordinator__out=Cell(404, params={"jurisdiction": SIBLING}),
        auditor__in=Cell(200, check=ids(36)),
        auditor__out=Cell(404, params={"jurisdiction": SIBLING}),
        admin__in=Cell(200, check=ids(*range(1, 37))),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("POST", "/api/v1/units"): endpoint(
        unit__in=Cell(403, json=new_unit("shanxi")),
        unit__out=Cell(403, json=new_unit("shanxi-taiyuan")),
        coordinator__in=Cell(201, json=new_unit("shanxi-taiyuan")),
        coordinator__out=Cell(422, json=new_unit(SIBLING)),
        auditor__in=Cell(403, json=new_unit("shanxi-taiyuan")),
        auditor__out=Cell(403, json=new_unit(SIBLING)),
        admin__in=Cell(201, json=new_unit("shanxi")),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("POST", "/api/v1/units/import"): endpoint(
        unit__in=Cell(403, **roster("shanxi")),
        unit__out=Cell(403, **roster("shanxi-taiyuan")),
        coordinator__in=Cell(200, **roster("shanxi-taiyuan")),
        coordinator__out=Cell(422, **roster(SIBLING)),
        auditor__in=Cell(403, **roster("shanxi-taiyuan")),
        auditor__out=Cell(403, **roster(SIBLING)),
        admin__in=Cell(200, **roster("shanxi")),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/units/{unit_id}"): endpoint(each_unit(READ)),
    ("PATCH", "/api/v1/units/{unit_id}"): endpoint(each_unit(
        {"unit": (403, 404), "coordinator": (200, 404), "auditor": (403, 404), "admin": (200, None)},
        json=CONTACTS)),
    ("PUT", "/api/v1/units/{unit_id}/contacts"): endpoint(each_unit(
        {"unit": (200, 404), "coordinator": (200, 404), "auditor": (403, 404), "admin": (200, None)},
        json=CONTACTS)),
    ("POST", "/api/v1/units/{unit_id}/contacts/confirm"): endpoint(
        each_unit({"unit": (200, 404), "coordinator": (200, 404), "auditor": (403, 404), "admin": (200, None)}),
        # the unit has a contact on file from an earlier round or a roster: confirmed for this one
        unit__in=Cell(200, path={"unit_id": 1}, setup=lambda w: w.contact_on_file(1)),
        coordinator__in=Cell(200, path={"unit_id": 36}, setup=lambda w: w.contact_on_file(36)),
        admin__in=Cell(200, path={"unit_id": 1}, setup=lambda w: w.contact_on_file(1)),
    ),
    ("GET", "/api/v1/units/{unit_id}/history"): endpoint(each_unit(READ)),
    ("GET", "/api/v1/units/{unit_id}/history.jsonl"): endpoint(each_unit(READ)),
    ("GET", "/api/v1/units/{unit_id}/history.csv"): endpoint(each_unit(READ)),

    # ------------------------------------------------------------ rounds
    ("GET", "/api/v1/rounds"): endpoint(
        unit__in=Cell(200, setup=World.hunan_round, check=ids(SHANXI, items=None)),
        unit__out=NO_RESOURCE,
        coordinator__in=Cell(200, setup=World.hunan_round, check=ids(SHANXI, items=None)),
        coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200, setup=World.hunan_round, check=ids(SHANXI, items=None)),
        auditor__out=NO_RESOURCE,
        admin__in=Cell(200, setup=World.hunan_round, check=ids(HUNAN, SHANXI, items=None)),
        admin__out=ADMIN_SEES_ALL,
    ),
    # only a coordinator of the whole province (or an admin) opens its rounds: a city
    # coordinator is refused for its own province as for another (403 both)
    ("POST", "/api/v1/rounds"): endpoint(
        unit__in=Cell(403, json=round_body("shanxi")),
        unit__out=Cell(403, json=round_body("hunan")),
        coordinator__in=Cell(403, json=round_body("shanxi")),
        coordinator__in__province=Cell(201, json=round_body("hunan"), as_="coordinator@hunan"),
        coordinator__out=Cell(403, json=round_body("hunan")),
        auditor__in=Cell(403, json=round_body("shanxi")),
        auditor__out=Cell(403, json=round_body("hunan")),
        admin__in=Cell(201, json=round_body("hunan")),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/rounds/{round_id}"): endpoint(each_round(READ)),
    ("POST", "/api/v1/rounds/{round_id}/rollover"): endpoint(
        each_round({"unit": (403, 404), "coordinator": (403, 404), "auditor": (403, 404), "admin": (201, None)},
                   json={}),
        # the province's own coordinator rolls it over (Hunan's calendar serves every year)
        coordinator__in__province=Cell(201, path=hunan, json={}, as_="coordinator@hunan"),
        admin__in=Cell(201, path=hunan, json={}),
    ),
    ("POST", "/api/v1/rounds/{round_id}/cases"): endpoint(
        # unit 36 (太原) has its case already: in the coordinator's subtree the registration is
        # refused as a duplicate (409); unit 1 is outside the city's subtree (404)
        each_round({"unit": (403, 404), "coordinator": (409, 404), "auditor": (403, 404), "admin": (409, None)},
                   json={"unit_id": 36}),
        coordinator__in__outside_unit=Cell(404, path={"round_id": SHANXI}, json={"unit_id": 1}),
    ),
    ("GET", "/api/v1/rounds/{round_id}/rubric"): endpoint(each_round(READ)),
    ("GET", "/api/v1/rounds/{round_id}/reminders"): endpoint(each_round(REPORT)),
    ("GET", "/api/v1/rounds/{round_id}/history.jsonl"): endpoint(each_round(REPORT)),
    ("GET", "/api/v1/rounds/{round_id}/history.csv"): endpoint(each_round(REPORT)),
    ("GET", "/api/v1/rounds/{round_id}/calendar"): endpoint(each_round(READ)),
    ("GET", "/api/v1/rounds/{round_id}/progress"): endpoint(
        each_round(REPORT),
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
        auditor__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
    ),
    ("GET", "/api/v1/rounds/{round_id}/progress.xlsx"): endpoint(
        each_round(REPORT),
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
        auditor__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
    ),
    ("GET", "/api/v1/rounds/{round_id}/duties"): endpoint(
        each_round(REPORT),
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
        auditor__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
    ),
    # a city's report is recorded by its coordinators (or one above): another city's is unknown to them
    ("POST", "/api/v1/rounds/{round_id}/duties/{duty}"): endpoint(
        unit__in=Cell(403, **duty_report(SHANXI, "shanxi-taiyuan")),
        unit__out=Cell(404, **duty_report(hunan, "hunan-changsha", "city_filing")),
        coordinator__in=Cell(201, **duty_report(SHANXI, "shanxi-taiyuan")),
        coordinator__out=Cell(404, **duty_report(hunan, "hunan-changsha", "city_filing")),
        coordinator__out__subtree=Cell(404, **duty_report(SHANXI, SIBLING)),
        auditor__in=Cell(403, **duty_report(SHANXI, "shanxi-taiyuan")),
        auditor__out=Cell(404, **duty_report(hunan, "hunan-changsha", "city_filing")),
        admin__in=Cell(201, **duty_report(SHANXI, "shanxi-taiyuan")),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/rounds/{round_id}/duties/{jurisdiction}/history"): endpoint(
        unit__in=Cell(403, path={"round_id": SHANXI, "jurisdiction": "shanxi-taiyuan"}),
        unit__out=Cell(404, path=lambda w: {**hunan(w), "jurisdiction": "hunan"}),
        coordinator__in=Cell(200, path={"round_id": SHANXI, "jurisdiction": "shanxi-taiyuan"}),
        coordinator__out=Cell(404, path=lambda w: {**hunan(w), "jurisdiction": "hunan"}),
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI, "jurisdiction": SIBLING}),
        auditor__in=Cell(200, path={"round_id": SHANXI, "jurisdiction": "shanxi-taiyuan"}),
        auditor__out=Cell(404, path=lambda w: {**hunan(w), "jurisdiction": "hunan"}),
        auditor__out__subtree=Cell(404, path={"round_id": SHANXI, "jurisdiction": SIBLING}),
        admin__in=Cell(200, path={"round_id": SHANXI, "jurisdiction": "shanxi"}),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/rounds/{round_id}/at-risk"): endpoint(
        each_round(REPORT),
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
        auditor__out__subtree=Cell(404, path={"round_id": SHANXI}, params={"jurisdiction": SIBLING}),
    ),
    # drawing needs certified cases in the subtree (else 409): the in-scope cells certify one
    ("POST", "/api/v1/rounds/{round_id}/spot-checks"): endpoint(
        each_round({"unit": (403, 404), "coordinator": (201, 404), "auditor": (403, 404), "admin": (201, None)},
                   json={"share": "1", "seed": 7}),
        coordinator__in=Cell(201, path={"round_id": SHANXI}, json={"share": "1", "seed": 7}, setup=certified(36)),
        admin__in=Cell(201, path={"round_id": SHANXI}, json={"share": "1", "seed": 7}, setup=certified(1)),
        # a jurisdiction outside the subtree: 404 for a coordinator; an auditor is refused first
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI},
                                       json={"share": "1", "seed": 7, "jurisdiction": SIBLING}),
        auditor__out__subtree=Cell(403, path={"round_id": SHANXI},
                                   json={"share": "1", "seed": 7, "jurisdiction": SIBLING}),
    ),
    ("GET", "/api/v1/rounds/{round_id}/spot-checks"): endpoint(
        each_round(REPORT),
        # a draw over the whole province is not the city's
        coordinator__in=Cell(200, path={"round_id": SHANXI}, setup=World.spot_checks,
                             check=ids("shanxi-taiyuan", key="jurisdiction", items=None)),
        auditor__in=Cell(200, path={"round_id": SHANXI}, setup=World.spot_checks,
                         check=ids("shanxi-taiyuan", key="jurisdiction", items=None)),
        admin__in=Cell(200, path={"round_id": SHANXI}, setup=World.spot_checks,
                       check=ids("shanxi-taiyuan", "shanxi", key="jurisdiction", items=None)),
    ),
    # a draw of the city (case 36) and of the province (case 1, and 36)
    ("POST", "/api/v1/rounds/{round_id}/spot-checks/{check_id}/outcomes"): endpoint(
        unit__in=Cell(403, path=draw("shanxi-taiyuan"), json=passed(36)),
        unit__out=Cell(404, path=hunan_draw, json=passed(36)),
        coordinator__in=Cell(201, path=draw("shanxi-taiyuan"), json=passed(36)),
        coordinator__out=Cell(404, path=hunan_draw, json=passed(36)),
        coordinator__out__subtree=Cell(404, path=draw("shanxi"), json=passed(1)),
        auditor__in=Cell(403, path=draw("shanxi-taiyuan"), json=passed(36)),
        auditor__out=Cell(404, path=hunan_draw, json=passed(36)),
        admin__in=Cell(201, path=draw("shanxi"), json=passed(1)),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/rounds/{round_id}/spot-checks/{check_id}/outcomes"): endpoint(
        unit__in=Cell(403, path=draw("shanxi-taiyuan")),
        unit__out=Cell(404, path=hunan_draw),
        coordinator__in=Cell(200, path=draw("shanxi-taiyuan")),
        coordinator__out=Cell(404, path=hunan_draw),
        coordinator__out__subtree=Cell(404, path=draw("shanxi")),
        auditor__in=Cell(200, path=draw("shanxi-taiyuan")),
        auditor__out=Cell(404, path=hunan_draw),
        auditor__out__subtree=Cell(404, path=draw("shanxi")),
        admin__in=Cell(200, path=draw("shanxi")),
        admin__out=ADMIN_SEES_ALL,
    ),
    # filing needs certified cases in the subtree (else 409): the in-scope cells certify one
    ("POST", "/api/v1/rounds/{round_id}/filings"): endpoint(
        each_round({"unit": (403, 404), "coordinator": (201, 404), "auditor": (403, 404), "admin": (201, None)},
                   json={}),
        coordinator__in=Cell(201, path={"round_id": SHANXI}, json={}, setup=certified(36)),
        admin__in=Cell(201, path={"round_id": SHANXI}, json={}, setup=certified(1)),
        coordinator__out__subtree=Cell(404, path={"round_id": SHANXI}, json={"jurisdiction": SIBLING}),
        auditor__out__subtree=Cell(403, path={"round_id": SHANXI}, json={"jurisdiction": SIBLING}),
    ),
    ("GET", "/api/v1/rounds/{round_id}/filings"): endpoint(
        each_round(REPORT),
        coordinator__in=Cell(200, path={"round_id": SHANXI}, setup=World.filings,
                             check=ids("shanxi-taiyuan", key="jurisdiction", items=None)),
        auditor__in=Cell(200, path={"round_id": SHANXI}, setup=World.filings,
                         check=ids("shanxi-taiyuan", key="jurisdiction", items=None)),
        admin__in=Cell(200, path={"round_id": SHANXI}, setup=World.filings,
                       check=ids("shanxi-taiyuan", "shanxi", key="jurisdiction", items=None)),
    ),
    # a filing batch: the city's (case 36) and the province's (case 1); a unit never reads
    # batches (403 before any look-up, so nothing is told about them)
    ("GET", "/api/v1/filings/{batch_id}"): endpoint(
        unit__in=Cell(403, path=batch("shanxi")),
        unit__out=Cell(403, path=batch("shanxi-taiyuan")),
        coordinator__in=Cell(200, path=batch("shanxi-taiyuan")),
        coordinator__out=Cell(404, path=batch("shanxi")),
        auditor__in=Cell(200, path=batch("shanxi-taiyuan")),
        auditor__out=Cell(404, path=batch("shanxi")),
        admin__in=Cell(200, path=batch("shanxi")),
        admin__out=ADMIN_SEES_ALL,
    ),
    # the national bureau's results: the role is checked before the batch is looked up
    ("POST", "/api/v1/filings/{batch_id}/national-results"): endpoint(
        unit__in=Cell(403, path=batch("shanxi"), json=national(1)),
        unit__out=Cell(403, path=batch("shanxi-taiyuan"), json=national(36)),
        coordinator__in=Cell(201, path=batch("shanxi-taiyuan"), json=national(36)),
        coordinator__out=Cell(404, path=batch("shanxi"), json=national(1)),
        auditor__in=Cell(403, path=batch("shanxi-taiyuan"), json=national(36)),
        auditor__out=Cell(403, path=batch("shanxi"), json=national(1)),
        admin__in=Cell(201, path=batch("shanxi"), json=national(1)),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/filings/{batch_id}/national-results"): endpoint(
        unit__in=Cell(403, path=batch("shanxi")),
        unit__out=Cell(403, path=batch("shanxi-taiyuan")),
        coordinator__in=Cell(200, path=batch("shanxi-taiyuan")),
        coordinator__out=Cell(404, path=batch("shanxi")),
        auditor__in=Cell(200, path=batch("shanxi-taiyuan")),
        auditor__out=Cell(404, path=batch("shanxi")),
        admin__in=Cell(200, path=batch("shanxi")),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/filings/{batch_id}.csv"): endpoint(
        unit__in=Cell(403, path=batch("shanxi")),
        unit__out=Cell(403, path=batch("shanxi-taiyuan")),
        coordinator__in=Cell(200, path=batch("shanxi-taiyuan")),
        coordinator__out=Cell(404, path=batch("shanxi")),
        auditor__in=Cell(200, path=batch("shanxi-taiyuan")),
        auditor__out=Cell(404, path=batch("shanxi")),
        admin__in=Cell(200, path=batch("shanxi")),
        admin__out=ADMIN_SEES_ALL,
    ),

    # ------------------------------------------------------------ audit
    ("GET", "/api/v1/audit/verify"): endpoint(
        unit__in=Cell(403),
        unit__out=NO_RESOURCE,
        coordinator__in=Cell(200, check=verify_scope("/shanxi/shanxi-taiyuan/", 1)),
        coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200, check=verify_scope("/shanxi/shanxi-taiyuan/", 1)),
        auditor__out=NO_RESOURCE,
        admin__in=Cell(200, check=verify_scope("/", 36)),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("POST", "/api/v1/audit/checkpoints"): endpoint(  # an admin only: it signs for the whole database
        unit__in=Cell(403, setup=World.checkpointed),
        unit__out=NO_RESOURCE,
        coordinator__in=Cell(403, setup=World.checkpointed),
        coordinator__out=NO_RESOURCE,
        auditor__in=Cell(403, setup=World.checkpointed),
        auditor__out=NO_RESOURCE,
        admin__in=Cell(201, setup=World.checkpointed),
        admin__out=ADMIN_SEES_ALL,
    ),
    ("GET", "/api/v1/audit/checkpoints/latest"): endpoint(  # the heads of the caller's scope's chains
        unit__in=Cell(403, setup=World.checkpointed),
        unit__out=NO_RESOURCE,
        coordinator__in=Cell(200, setup=World.checkpointed, check=checkpoint_scope("/shanxi/shanxi-taiyuan/", 1)),
        coordinator__out=NO_RESOURCE,
        auditor__in=Cell(200, setup=World.checkpointed, check=checkpoint_scope("/shanxi/shanxi-taiyuan/", 1)),
        auditor__out=NO_RESOURCE,
        admin__in=Cell(200, setup=World.checkpointed, check=checkpoint_scope("/", 36)),
        admin__out=ADMIN_SEES_ALL,
    ),
}

# Path parameters for the no-token cells (401 comes before any look-up).
PLACEHOLDERS = {"case_id": "1", "unit_id": "1", "round_id": SHANXI, "batch_id": "shanxi-2021-filing-1",
                "check_id": "shanxi-2021-spot-1", "channel_id": "1",
                "sha256": "0" * 64, "action": "withdraw", "duty": "city_report",
                "jurisdiction": "shanxi-taiyuan", "account_id": "1", "token_id": "1"}
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "invalid_input"}


# ---------------------------------------------------------------- helpers of the tests
def registered_routes(app: Any) -> set[tuple[str, str]]:
    return {(method, route.path) for route in iter_route_contexts(app.routes)
            if isinstance(route.original_route, APIRoute) and route.path not in FASTAPI_OWN
            and not route.original_route.endpoint.__module__.startswith("workflow.web.")  # the console's pages
            for method in route.methods}


def route_of(app: Any, method: str, path: str) -> str | None:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in iter_route_contexts(app.routes):
        if route.matches(scope)[0] == Match.FULL:
            return route.path
    return None


def assert_error_shape(r: Any) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert set(error["message"]) == {"zh", "en"}, error
    assert all(isinstance(text, str) and text for text in error["message"].values()), error
    assert isinstance(error["details"], dict), error
    return error


def matrix_cells(reads: bool) -> list[Any]:
    """The cells of GET endpoints (``reads``) or of the others, one test id each."""
    params = []
    for (method, path), entry in TABLE.items():
        if (method == "GET") != reads:
            continue
        for (role, scope), cell in entry.cells.items():
            if isinstance(cell, NotApplicable):
                continue
            marks = [pytest.mark.xfail(strict=True, reason=cell.bug)] if cell.bug else []
            params.append(pytest.param(method, path, role, scope, marks=marks,
                                       id=f"{method} {path} :: {role} :: {scope}"))
    return params


def endpoints(public: bool) -> list[Any]:
    return [pytest.param(method, path, id=f"{method} {path}")
            for (method, path), entry in TABLE.items() if entry.public == public]


def make_client(db: Database, db_url: str, folder: Any) -> TestClient:
    """What tests/api/conftest.py's ``client`` fixture builds, once."""
    from workflow.api.app import create_app

    settings = Settings(database_url=db_url, evidence_dir=folder / "evidence", maildir=folder / "mail",
                        evidence_max_bytes=1024 * 1024)
    application = App(settings=settings, engine=db.engine, db=db, clock=ManualClock(NOW),
                      calendars=CalendarCatalog(REPO_ROOT / "calendars"))
    open_shanxi(db, NOW)
    import_units(db, write_units_csv(folder / "ty.csv", [("太原市财政局", "shanxi-taiyuan", "行政机关")]), NOW, actor=OPERATOR)
    register_case(db, SHANXI, 36, ADMIN, NOW)

    def token(role: str, **scope: Any) -> dict[str, str]:
        made = token_for(db, name=f"{role}-x", role=role, now=NOW, **scope)
        return {"Authorization": f"Bearer {made.secret}"}

    client = TestClient(create_app(application))
    client.token = token  # type: ignore[attr-defined]
    return client


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world for every read cell of a database: nothing a read does changes it."""
    folder = tmp_path_factory.mktemp("authorization-matrix")
    schema = None
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        schema = f"wf_authz_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = pg_schema_url(schema)
        migrating = make_engine(url)
        upgrade(migrating)
        migrating.dispose()
    else:
        shutil.copy(request.getfixturevalue("sqlite_template"), folder / "workflow.db")
        url = f"sqlite:///{folder / 'workflow.db'}"
    engine = make_engine(url)
    try:
        db = Database(engine)
        world = World(make_client(db, url, folder), db)
        world.prepare()
        yield world
    finally:
        engine.dispose()
        if schema is not None:
            admin = make_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def run(world: World, method: str, path: str, role: str, scope: str) -> None:
    cell = TABLE[(method, path)].cells[(role, scope)]
    assert isinstance(cell, Cell)
    if cell.setup is not None:
        cell.setup(world)
    url = path.format(**resolve(cell.path, world))
    assert route_of(world.client.app, method, url) == path, f"{url} does not reach {method} {path}"
    r = world.client.request(method, url, headers=world.headers(cell.as_ or role), params=resolve(cell.params, world),
                             json=resolve(cell.json, world), content=resolve(cell.content, world))
    assert r.status_code == cell.status, (
        f"{method} {url} as {cell.as_ or role} ({scope} scope): expected {cell.status}, got {r.status_code}: "
        f"{r.text[:500]}")
    if r.status_code >= 400:
        code = assert_error_shape(r)["code"]
        if r.status_code in ERROR_CODES:
            assert code == ERROR_CODES[r.status_code], r.text
    elif cell.check is not None:
        cell.check(r)


# ---------------------------------------------------------------- the tests
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_route_has_an_entry(client) -> None:
    routes = registered_routes(client.app)
    missing = sorted(routes - TABLE.keys())
    stale = sorted(TABLE.keys() - routes)
    assert not missing, f"endpoints without an entry in the authorization matrix (add them to TABLE): {missing}"
    assert not stale, f"entries of the authorization matrix without an endpoint (remove them): {stale}"


def test_every_entry_covers_every_role_in_and_out_of_scope() -> None:
    problems = []
    for key, entry in TABLE.items():
        if entry.public:
            if entry.cells:
                problems.append(f"{key}: public, yet has role cells")
            continue
        for role in ROLES:
            for scope in ("in", "out"):
                if (role, scope) not in entry.cells:
                    problems.append(f"{key}: no ({role}, {scope}) cell")
        if not isinstance(entry.cells.get(("admin", "out")), NotApplicable):
            problems.append(f"{key}: an admin has no out of scope; mark it ADMIN_SEES_ALL")
        for (role, scope), cell in entry.cells.items():
            if role not in ROLES or scope.split(":")[0] not in ("in", "out"):
                problems.append(f"{key}: unknown cell ({role}, {scope})")
            if isinstance(cell, NotApplicable) and scope == "in":
                problems.append(f"{key}: ({role}, in) cannot be not applicable")
            if isinstance(cell, Cell) and cell.bug is not None and not cell.bug.startswith("BUG: "):
                problems.append(f"{key}: ({role}, {scope}) bug reasons start with 'BUG: '")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_shared_world_is_the_client_fixtures(client, shared: World) -> None:
    admin = client.token("admin")

    def world(c: Any, headers: dict[str, str]) -> Any:
        cases = c.get("/api/v1/cases", headers=headers).json()["items"]
        units = c.get("/api/v1/units", headers=headers).json()["items"]
        return ([(x["id"], x["round_id"], x["unit"], x["jurisdiction"]) for x in cases],
                [(u["id"], u["name"], u["jurisdiction"]) for u in units])

    assert world(shared.client, shared.headers("admin")) == world(client, admin)


@pytest.mark.parametrize(("method", "path"), endpoints(public=True))
def test_public_endpoint_answers_without_a_token(shared: World, method: str, path: str) -> None:
    r = shared.client.request(method, path)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("method", "path"), endpoints(public=False))
def test_no_or_bad_token_is_401_in_the_error_shape(shared: World, method: str, path: str) -> None:
    url = path.format(**PLACEHOLDERS)
    assert route_of(shared.client.app, method, url) == path
    for headers in ({}, {"Authorization": "Bearer wf_not-a-token"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        r = shared.client.request(method, url, headers=headers)
        assert r.status_code == 401, f"{method} {url} with {headers or 'no token'}: {r.status_code} {r.text[:300]}"
        assert assert_error_shape(r)["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "role", "scope"), matrix_cells(reads=True))
def test_read_cell(shared: World, method: str, path: str, role: str, scope: str) -> None:
    run(shared, method, path, role, scope)


@pytest.mark.parametrize("db_url", MATRIX_DATABASES, indirect=True)
@pytest.mark.parametrize(("method", "path", "role", "scope"), matrix_cells(reads=False))
def test_write_cell(client, db, method: str, path: str, role: str, scope: str) -> None:
    run(World(client, db), method, path, role, scope)
