"""What every route shares: the error shape, the caller, and what the caller may see.

A request is authenticated once (one token lookup, which also reads the token's scope) by the
``Caller`` dependency; the case, unit or round a path names is looked up once, and answered
404 when it is outside the caller's scope, by ``SeenCase``, ``SeenUnit`` and ``SeenRound``; the
role check is ``role_in`` (one place, one message). FastAPI solves each dependency once per
request, in the order a route declares them: scope (404) before role (403).
"""
from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import Depends, Path, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile as StarletteUpload

from ..bootstrap import App
from ..domain.access import Principal
from ..domain.lifecycle import ACTOR_NAMES
from ..service.ports import CaseScope, RoundRecord, UnitRecord
from ..service.tokens import authenticate

ROLE_ZH = ACTOR_NAMES  # what a bureau calls each role (one table, the domain's)
ZH = {
    "not_found": "未找到", "already_exists": "已存在", "action_refused": "当前状态不允许该操作",
    "conflict": "数据已被他人修改，请刷新后重试", "invalid_input": "输入有误", "incomplete": "材料不完整",
    "unauthorized": "未认证或令牌无效", "forbidden": "无权执行该操作", "config": "配置有误",
    "unavailable": "服务暂不可用", "too_large": "文件过大", "internal": "服务器内部错误",
    "not_migrated": "数据库结构需要升级", "storage_unavailable": "文件存储空间不足或不可用",
    "database_unavailable": "数据库暂不可用，请稍后重试", "corrupt_blob": "存储的文件已损坏",
    "method_not_allowed": "不支持该请求方法", "request_timeout": "请求体传输超时，请重新发送",
}
STATUS = {"not_found": 404, "already_exists": 409, "action_refused": 409, "conflict": 409, "invalid_input": 422,
          "incomplete": 422, "unauthorized": 401, "forbidden": 403, "too_large": 413, "config": 500,
          "unavailable": 503, "internal": 500, "not_migrated": 503, "corrupt_blob": 500, "method_not_allowed": 405,
          "storage_unavailable": 507, "database_unavailable": 503,
          "request_timeout": 408}
CODE = r"^[a-z0-9][a-z0-9_-]*$"  # jurisdiction, rubric and calendar ids
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

log = structlog.get_logger("workflow.api")


def error(code: str, message: str, status: int | None = None, zh: str | None = None, **details: Any) -> JSONResponse:
    return JSONResponse(status_code=status or STATUS.get(code, 400), content={"error": {
        "code": code, "message": {"zh": zh or ZH.get(code, "请求有误"), "en": message}, "details": details}})


class ApiError(Exception):
    """A refusal of the API itself; ``zh`` says the same in Chinese, as specifically (else the
    code's general Chinese message is shown)."""

    def __init__(self, code: str, message: str, *, zh: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.zh, self.details = code, message, zh, details


async def app_of(request: Request) -> App:
    """Async, as every dependency here: a sync one is run in the thread pool, a hand-off that
    costs more than the work (the lookups below are one indexed query each, done on the loop;
    the endpoint's own work goes to the pool once)."""
    application: App = request.app.state.application
    return application


Application = Annotated[App, Depends(app_of)]

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="an API token (`workflow tokens create`): `Authorization: Bearer wf_…`")


async def principal(request: Request, application: Application,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
    """The holder of the request's bearer token (401 without a valid one); a request with a
    body was authenticated before it was read (``api/guard.py``), and is not looked up again.
    Async so that the actor it binds to the log context stays bound for the rest of the request."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None and credentials is not None and credentials.scheme.lower() == "bearer":
        found = authenticate(application.db, credentials.credentials.strip(), application.clock.now())
    if found is None:
        raise ApiError("unauthorized", "a valid bearer token is needed (workflow tokens create)",
                       zh="需要有效的访问令牌（由管理员用 workflow tokens create 发放）")
    structlog.contextvars.bind_contextvars(actor=str(found.actor), token_id=found.token_id)
    return found


Caller = Annotated[Principal, Depends(principal)]
# Ids are 32-bit in the database: anything larger does not exist (and must not reach a query).
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a case id")]
UnitId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a unit id")]
RoundId = Annotated[str, Path(min_length=1, max_length=80, description="a round id, e.g. shanxi-2021")]
# Every path parameter is bounded before anything looks it up (a malformed one is 422).
DutyName = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE,
                               description="a duty of the round's calendar, e.g. summary_report")]
JurisdictionCode = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE, description="a jurisdiction id")]
BatchId = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                              description="a filing batch id, e.g. shanxi-2021-filing-1")]
CheckId = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                              description="a spot check's id (e.g. shanxi-2021-spot-1)")]


def role_in(*roles: str, doing: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if their role is one of ``roles`` (else 403)."""
    async def check(who: Caller) -> Principal:
        if who.role not in roles:
            raise ApiError("forbidden", f"a {who.role} may not {doing}",
                           zh=f"{ROLE_ZH.get(who.role, who.role)}无权执行此操作", role=who.role,
                           allowed_roles=list(roles))
        return who

    return check


def writer(doing: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: any caller but an auditor (who reads only)."""
    return role_in("unit", "coordinator", "admin", doing=doing)


async def seen_case(case_id: CaseId, who: Caller, application: Application) -> CaseScope:
    """The case, or 404 when it does not exist or is outside the caller's scope. Async so that
    the case id it binds to the log context stays bound."""
    scope = application.db.read.case_scope(case_id)
    if scope is None or not who.sees(scope.unit_id, scope.path):
        raise ApiError("not_found", f"case {case_id} does not exist", zh=f"案件 {case_id} 不存在", case_id=case_id)
    structlog.contextvars.bind_contextvars(case_id=case_id)
    return scope


async def seen_unit(unit_id: UnitId, who: Caller, application: Application) -> UnitRecord:
    unit = application.db.directory.unit(unit_id)
    if unit is None or not who.sees(unit.id, unit.path):
        raise ApiError("not_found", f"unit {unit_id} does not exist", zh=f"单位 {unit_id} 不存在", unit_id=unit_id)
    return unit


def visible_round(application: App, round_id: str, who: Principal) -> RoundRecord | None:
    """The round if the caller has something in its province (a unit: a case in it)."""
    rnd = application.db.rounds.round(round_id)
    if rnd is None:
        return None
    if who.role == "unit":
        return rnd if who.unit_id is not None and application.db.read.has_case_in(round_id, who.unit_id) else None
    mine = who.jurisdiction_path
    if mine is not None and not (mine.startswith(rnd.province_path) or rnd.province_path.startswith(mine)):
        return None
    return rnd


async def seen_round(round_id: RoundId, who: Caller, application: Application) -> RoundRecord:
    return round_or_404(application, round_id, who)


def round_or_404(application: App, round_id: str, who: Principal) -> RoundRecord:
    """The round the caller may see, or 404 naming the nearest ids among those they may see."""
    rnd = visible_round(application, round_id, who)
    if rnd is None:
        seen = [r.id for r in application.db.rounds.rounds() if visible_round(application, r.id, who) is not None]
        near = difflib.get_close_matches(round_id, seen, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        zh_hint = f"；是否要找 {'、'.join(near)}？" if near else ""
        raise ApiError("not_found", f"round {round_id} does not exist{hint}", zh=f"轮次 {round_id} 不存在{zh_hint}",
                       round_id=round_id, did_you_mean=near)
    return rnd


SeenCase = Annotated[CaseScope, Depends(seen_case)]
SeenUnit = Annotated[UnitRecord, Depends(seen_unit)]
SeenRound = Annotated[RoundRecord, Depends(seen_round)]


def scope_root(application: App, who: Principal, jurisdiction_id: str | None, default: str = "/") -> tuple[str, str]:
    """(jurisdiction id, path) a request is about: the one asked for (404 when outside the
    caller's subtree; for a unit, when its unit is not in it), else the caller's own."""
    if jurisdiction_id is None:
        if who.jurisdiction_path is not None:
            return who.jurisdiction_path.rstrip("/").rsplit("/", 1)[-1], who.jurisdiction_path
        return default.strip("/").rsplit("/", 1)[-1], default
    found = application.db.directory.jurisdiction(jurisdiction_id)
    path = None if found is None else found.path
    if path is None or (who.jurisdiction_path is not None and not path.startswith(who.jurisdiction_path)) or \
            (who.role == "unit" and not (who.unit_path or "").startswith(path)):
        raise ApiError("not_found", f"jurisdiction {jurisdiction_id!r} does not exist",
                       zh=f"地区 {jurisdiction_id} 不存在", jurisdiction_id=jurisdiction_id)
    return jurisdiction_id, path


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes as it streams in."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError("too_large", f"{declared} bytes; the limit is {limit}", limit=limit)
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise ApiError("too_large", f"more than {limit} bytes; the limit is {limit}", limit=limit)
    return bytes(data)


async def uploaded_files(request: Request, filename: str | None, *, max_file_bytes: int,
                         max_files: int) -> list[tuple[str, bytes]]:
    """The files of an upload: the raw body, named by ``filename``; or every file part of a
    ``multipart/form-data`` body, named as the client's file picker named them (a browser
    sends several files at once this way). Each file is bounded by ``max_file_bytes``, the
    request by the guard; file parts are spooled to disk as they arrive, not held whole."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        if filename is None:
            raise ApiError("invalid_input", "a raw upload needs ?filename=...; or send multipart/form-data",
                           problems=[{"where": "query.filename", "what": "required for a raw upload",
                                      "zh": "直接上传文件内容时须提供 filename 参数"}])
        return [(filename, await read_body(request, max_file_bytes))]
    form = await request.form(max_files=max_files, max_fields=max_files + 10, max_part_size=64 * 1024)
    files: list[tuple[str, bytes]] = []
    try:
        for _, part in form.multi_items():
            if not isinstance(part, StarletteUpload):
                continue
            if part.size is not None and part.size > max_file_bytes:
                raise ApiError("too_large", f"{part.filename}: {part.size} bytes; the limit is {max_file_bytes}",
                               limit=max_file_bytes, filename=part.filename)
            files.append((part.filename or "", await part.read()))
    finally:
        await form.close()
    if not files:
        raise ApiError("invalid_input", "the multipart body holds no file",
                       problems=[{"where": "body", "what": "no file part", "zh": "未包含任何文件"}])
    if filename is not None:  # ?filename= renames the one file uploaded; with several it names none
        if len(files) > 1:
            raise ApiError("invalid_input", f"?filename= names one file; this upload has {len(files)}",
                           problems=[{"where": "query.filename", "what": f"{len(files)} files uploaded",
                                      "zh": "上传多个文件时不能指定 filename"}])
        files = [(filename, files[0][1])]
    return files


def attachment(filename: str) -> dict[str, str]:
    """Headers of a download: ``Content-Disposition: attachment`` with the name as an ASCII
    fallback (anything else replaced by ``_``, quotes and backslashes too) and as RFC 5987
    ``filename*`` in UTF-8 (a Chinese name survives), and never sniffed as another type."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename) or "download"
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}",
            "X-Content-Type-Options": "nosniff"}


def binary_body(required: bool = True, *types: str, several: bool = False) -> dict[str, Any]:
    """The OpenAPI of a route whose body is a file's bytes (``several``: or several files as
    multipart/form-data, each in a part named ``file``)."""
    content: dict[str, Any] = {t: {"schema": {"type": "string", "format": "binary"}}
                               for t in types or ("application/octet-stream",)}
    if several:
        content["multipart/form-data"] = {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}
    return {"requestBody": {"required": required, "content": content}}
