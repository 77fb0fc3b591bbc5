"""What every endpoint shares: the error shape, the caller (bearer token), scope checks."""
from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ..adapters.db.tables import Case, Jurisdiction, Round, Unit
from ..bootstrap import App
from ..domain.access import Principal

ZH = {
    "not_found": "未找到", "already_exists": "已存在", "action_refused": "当前状态不允许该操作",
    "conflict": "数据已被他人修改，请刷新后重试", "invalid_input": "输入有误", "incomplete": "材料不完整",
    "unauthorized": "未认证或令牌无效", "forbidden": "无权执行该操作", "config": "配置有误",
    "unavailable": "服务暂不可用", "too_large": "文件过大", "internal": "服务器内部错误",
    "not_migrated": "数据库结构需要升级", "storage_unavailable": "文件存储空间不足或不可用",
    "database_unavailable": "数据库暂不可用，请稍后重试", "corrupt_blob": "存储的文件已损坏", "method_not_allowed": "不支持该请求方法",
}
STATUS = {"not_found": 404, "already_exists": 409, "action_refused": 409, "conflict": 409, "invalid_input": 422,
          "incomplete": 422, "unauthorized": 401, "forbidden": 403, "too_large": 413, "config": 500,
          "unavailable": 503, "internal": 500, "not_migrated": 503, "corrupt_blob": 500, "method_not_allowed": 405,
          "storage_unavailable": 507, "database_unavailable": 503}

log = structlog.get_logger("workflow.api")


def error(code: str, message: str, status: int | None = None, zh: str | None = None, **details: Any) -> JSONResponse:
    return JSONResponse(status_code=status or STATUS.get(code, 400), content={"error": {
        "code": code, "message": {"zh": zh or ZH.get(code, "请求有误"), "en": message}, "details": details}})


class ApiError(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def app_of(request: Request) -> App:
    return request.app.state.application


async def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The holder of the request's bearer token (401 without a valid one). Async so that the
    actor it binds to the log context stays bound for the rest of the request."""
    from starlette.concurrency import run_in_threadpool

    from ..service.tokens import authenticate

    application = app_of(request)
    scheme, _, secret = (authorization or "").partition(" ")
    found = await run_in_threadpool(authenticate, application.db, secret.strip(), application.clock.now()) \
        if scheme.lower() == "bearer" else None
    if found is None:
        raise ApiError("unauthorized", "a valid bearer token is needed (workflow tokens create)")
    structlog.contextvars.bind_contextvars(actor=str(found.actor), token_id=found.token_id)
    return found


Caller = Annotated[Principal, Depends(principal)]
# Ids are 32-bit in the database: anything larger does not exist (and must not reach a query).
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a case id")]
UnitId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a unit id")]
Application = Annotated[App, Depends(app_of)]


def require(who: Principal, *roles: str, doing: str) -> None:
    """403 unless the caller has one of ``roles``."""
    if who.role not in roles:
        raise ApiError("forbidden", f"a {who.role} may not {doing}", role=who.role, allowed_roles=list(roles))


def visible_case(application: App, case_id: int, who: Principal) -> Any:
    """The case's unit and jurisdiction path, or 404 when it is outside the caller's scope."""
    with application.engine.connect() as conn:
        row = conn.execute(select(Case.id, Case.unit_id, Case.round_id, Unit.name, Jurisdiction.path)
                           .join(Unit, Unit.id == Case.unit_id)
                           .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
                           .where(Case.id == case_id)).first()
    if row is None or not who.sees(row.unit_id, row.path):
        raise ApiError("not_found", f"case {case_id} does not exist", case_id=case_id)
    structlog.contextvars.bind_contextvars(case_id=case_id)
    return row


def visible_unit(application: App, unit_id: int, who: Principal) -> Any:
    with application.engine.connect() as conn:
        row = conn.execute(select(Unit.__table__, Jurisdiction.path.label("path"))
                           .join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
                           .where(Unit.id == unit_id)).mappings().first()
    if row is None or not who.sees(row["id"], row["path"]):
        raise ApiError("not_found", f"unit {unit_id} does not exist", unit_id=unit_id)
    return row


def jurisdiction_path(application: App, jurisdiction_id: str) -> str | None:
    with application.engine.connect() as conn:
        return conn.execute(select(Jurisdiction.path).where(Jurisdiction.id == jurisdiction_id)).scalar()


def scope_root(application: App, who: Principal, jurisdiction_id: str | None, default: str = "/") -> tuple[str, str]:
    """(jurisdiction id, path) a coordinator's, auditor's or admin's request is about: the
    one asked for (404 when outside the caller's subtree), else the caller's own."""
    if jurisdiction_id is None:
        if who.jurisdiction_path is not None:
            return who.jurisdiction_path.rstrip("/").rsplit("/", 1)[-1], who.jurisdiction_path
        return default.strip("/").rsplit("/", 1)[-1], default
    path = jurisdiction_path(application, jurisdiction_id)
    if path is None or (who.jurisdiction_path is not None and not path.startswith(who.jurisdiction_path)):
        raise ApiError("not_found", f"jurisdiction {jurisdiction_id!r} does not exist", jurisdiction_id=jurisdiction_id)
    return jurisdiction_id, path


def visible_round(application: App, round_id: str, who: Principal) -> Any:
    """The round, or 404 when the caller has nothing in its province."""
    with application.engine.connect() as conn:
        row = conn.execute(select(Round.__table__, Jurisdiction.path.label("province_path"))
                           .join(Jurisdiction, Jurisdiction.id == Round.province_id)
                           .where(Round.id == round_id)).mappings().first()
        if row is not None and who.role == "unit":
            mine = conn.execute(select(Case.id).where(Case.round_id == round_id, Case.unit_id == who.unit_id)).first()
            if mine is None:
                row = None
    if row is None or (who.jurisdiction_path is not None and not (
            who.jurisdiction_path.startswith(row["province_path"]) or
            row["province_path"].startswith(who.jurisdiction_path))):
        raise ApiError("not_found", f"round {round_id} does not exist", round_id=round_id)
    return row


def num(value: Any) -> Any:
    return None if value is None else format(value, "f")


def iso(value: Any) -> Any:
    return None if value is None else value.isoformat()
