"""The HTTP API (FastAPI) under /api/v1: scoped bearer tokens, one JSON error shape.

So far: health, readiness, a case with its allowed actions, its history, and taking an
action with the version the client saw (409 when it changed). Outside a token's scope a
case answers 404 as if it did not exist; a visible case with an action the role may not
take answers 403.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text

from ..adapters.db.tables import Case, Jurisdiction, Unit
from ..bootstrap import App
from ..domain.access import Principal
from ..domain.case import allowed_actions
from ..domain.errors import DomainError
from ..domain.lifecycle import ACTIONS

ZH = {
    "not_found": "未找到", "already_exists": "已存在", "action_refused": "当前状态不允许该操作",
    "conflict": "数据已被他人修改，请刷新后重试", "invalid_input": "输入有误", "incomplete": "材料不完整",
    "unauthorized": "未认证或令牌无效", "forbidden": "无权执行该操作", "config": "配置有误",
    "unavailable": "服务暂不可用",
}
STATUS = {"not_found": 404, "already_exists": 409, "action_refused": 409, "conflict": 409, "invalid_input": 422,
          "incomplete": 422, "unauthorized": 401, "forbidden": 403}


def error(code: str, message: str, status: int | None = None, **details: Any) -> JSONResponse:
    return JSONResponse(status_code=status or STATUS.get(code, 400), content={"error": {
        "code": code, "message": {"zh": ZH.get(code, "请求有误"), "en": message}, "details": details}})


class ApiError(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class ActionRequest(BaseModel):
    """An action on a case: its input, and the version of the case the client saw."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, description="the case version the client saw; 409 if it changed")
    data: dict[str, Any] = Field(default_factory=dict)


def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The holder of the request's bearer token (401 without a valid one)."""
    from ..service.tokens import authenticate

    application: App = request.app.state.application
    scheme, _, secret = (authorization or "").partition(" ")
    found = authenticate(application.db, secret.strip(), application.clock.now()) \
        if scheme.lower() == "bearer" else None
    if found is None:
        raise ApiError("unauthorized", "a valid bearer token is needed (workflow tokens create)")
    return found


Caller = Annotated[Principal, Depends(principal)]


def create_app(application: App) -> FastAPI:
    api = FastAPI(title="节约型机关创建 case tracker", version="1",
                  description="Cases of the yearly conservation-oriented agency rounds.")
    api.state.application = application

    @api.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return error(exc.code, exc.message, **exc.details)

    @api.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error(exc.code, exc.message, **exc.details)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "what": e["msg"]} for e in exc.errors()]
        return error("invalid_input", f"{len(problems)} invalid field(s)", problems=problems)

    def visible_case(case_id: int, who: Principal) -> Any:
        with application.engine.connect() as conn:
            row = conn.execute(select(Case.id, Case.unit_id, Unit.name, Jurisdiction.path)
                               .join(Unit, Unit.id == Case.unit_id)
                               .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
                               .where(Case.id == case_id)).first()
        if row is None or not who.sees(row.unit_id, row.path):
            raise ApiError("not_found", f"case {case_id} does not exist")
        return row

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        """The database answers; which process holds the scheduler."""
        from ..adapters.scheduler import LeaderLock

        try:
            with application.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            holder = LeaderLock(application.engine, "readyz").holder()
        except Exception as exc:
            return error("unavailable", f"database unreachable: {type(exc).__name__}: {exc}", status=503)
        return JSONResponse({"database": "ok", "scheduler": holder})

    @api.get("/api/v1/cases")
    def cases(who: Caller, round: str | None = None, state: str | None = None, jurisdiction: str | None = None,
              overdue: bool | None = None, category: str | None = None, level: str | None = None,
              after: int = Query(0, ge=0, description="cursor: cases with an id above this"),
              limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """Cases the caller may see, filtered, in pages (``next`` is the cursor of the next page)."""
        from ..service.queries import list_cases

        rows = list_cases(application.db, round_id=round, state=state, jurisdiction_id=jurisdiction, after_id=after,
                          limit=limit, overdue=overdue, category=category, level=level,
                          unit_id=who.unit_id if who.role == "unit" else None,
                          within_path=who.jurisdiction_path if who.role in ("coordinator", "auditor") else None)
        items = [{"id": r.id, "round_id": r.round_id, "unit": {"id": r.unit_id, "name": r.unit_name},
                  "jurisdiction": r.jurisdiction_id, "category": r.category, "state": r.state,
                  "version": r.version, "self_total": _num(r.self_total), "verified_total": _num(r.verified_total),
                  "recheck_total": _num(r.recheck_total),
                  "rectification_due": r.rectification_due.isoformat() if r.rectification_due else None}
                 for r in rows]
        return {"items": items, "next": rows[-1].id if len(rows) == limit else None}

    @api.get("/api/v1/units/{unit_id}/history")
    def unit_history(unit_id: int, who: Caller) -> list[dict[str, Any]]:
        """Every event of every case of a unit, all years."""
        from ..service.queries import unit_history as history

        try:
            unit, events = history(application.db, unit_id)
        except DomainError:
            raise ApiError("not_found", f"unit {unit_id} does not exist") from None
        if not who.sees(unit.id, unit.path):
            raise ApiError("not_found", f"unit {unit_id} does not exist")
        return [e.to_dict() for e in events]

    @api.get("/api/v1/cases/{case_id}")
    def get_case(case_id: int, who: Caller) -> dict[str, Any]:
        """A case: state, version, scores, and what this caller may do next."""
        from ..service.queries import show_case

        row = visible_case(case_id, who)
        detail = show_case(application.db, case_id, application.clock.now())
        c = detail.case
        return {"id": c.id, "round_id": c.round_id, "unit": {"id": c.unit_id, "name": row.name},
                "state": c.state, "version": c.version, "overdue": c.overdue,
                "self_total": _num(c.self_total), "verified_total": _num(c.verified_total),
                "recheck_total": _num(c.recheck_total), "passed": c.passed,
                "rectification_due": c.rectification_due.isoformat() if c.rectification_due else None,
                "carried_over_from": c.carried_over_from,
                "allowed_actions": [] if who.read_only else allowed_actions(
                    c, _ctx(application, c.round_id), application.clock.now(), actor=who.actor)}

    @api.get("/api/v1/cases/{case_id}/history")
    def case_history(case_id: int, who: Caller) -> list[dict[str, Any]]:
        """Every event of the case, with actor, time and hash."""
        visible_case(case_id, who)
        with application.db.reader() as uow:
            return [e.to_dict() for e in uow.events(case_id)]

    @api.post("/api/v1/cases/{case_id}/actions/{action}")
    def act(case_id: int, action: str, body: ActionRequest, who: Caller) -> dict[str, Any]:
        """Take an action; ``version`` is the version the client saw (409 if it changed)."""
        from ..service.cases import perform_action

        visible_case(case_id, who)
        if action in ACTIONS and (who.read_only or not who.actor.may(action)):
            raise ApiError("forbidden", f"a {who.role} may not {action}", action=action)
        result = perform_action(application.db, case_id, action, body.data, who.actor, application.clock.now(),
                                expected_version=body.version)
        return {"id": case_id, "state": result.case.state, "version": result.case.version,
                "event": result.event.to_dict()}

    return api


def _ctx(application: App, round_id: str) -> Any:
    with application.db.reader() as uow:
        return uow.round_context(round_id)


def _num(value: Any) -> Any:
    return None if value is None else format(value, "f")
