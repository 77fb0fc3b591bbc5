"""The HTTP API (FastAPI) under /api/v1: scoped bearer tokens, one JSON error shape.

A unit acts on its own cases; a coordinator runs a jurisdiction subtree; an auditor reads
one, history included, and changes nothing; an admin does anything. Outside a token's
scope a resource answers 404 as if it did not exist; a visible resource with an action the
role may not take answers 403. Every answer carries an ``X-Request-ID``; every request is
one JSON log line (request id, actor, case id, status, duration) and counted in /metrics.
"""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..bootstrap import App
from ..domain.errors import MAX_PROBLEMS, DomainError
from ..metrics import LATENCY, REQUESTS
from ..web.common import PageError, SignInNeeded, error_page, is_console_path
from . import accounts, audit, cases, channels, directory, operations, rounds, sheets
from .common import ApiError, error, log
from .guard import BodyTooLarge, Guard, closing, database_errors, database_unavailable, security_headers
from .schemas import ErrorBody

# Errors that are the server's, not the caller's: the caller reads what happened, the log why.
_SERVER_SIDE = {
    "config": "the server is misconfigured; an operator has to fix it (logged)",
    "corrupt_blob": "a stored file is damaged; an operator has to restore it (logged)",
    "not_migrated": "the database schema is older than this version; an operator has to run workflow db upgrade",
}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LOGGED_IDS = ("case_id", "unit_id", "round_id", "batch_id")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    """Pure ASGI middleware: request id, one log line per request, metrics by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # No id, code or filter of this API contains NUL (PostgreSQL text cannot hold one).
            response = error("invalid_input", "the path or query contains a NUL character",
                             problems=[{"where": "url", "what": "contains a NUL character"}])
            response.headers.update({k.decode(): v.decode() for k, v in security_headers([], scope["path"])})
            await response(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode()),
                                      *security_headers(message["headers"], scope["path"])]
            await send(message)

        started_response = False

        async def send_tracked(message: Message) -> None:
            nonlocal started_response
            started_response = started_response or message["type"] == "http.response.start"
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            log.error("unexpected error", error_type=type(exc).__name__, error=str(exc), exc_info=exc)
            if started_response:
                raise
            await error("internal", f"an unexpected error; it has been logged with request id {request_id}",
                        status=500)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"  # labels from a fixed set
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            if route not in ("/healthz", "/metrics"):
                ids = {k: v for k, v in (scope.get("path_params") or {}).items() if k in _LOGGED_IDS}
                (log.warning if status >= 400 else log.info)(
                    "request", method=scope["method"], path=scope["path"], route=route, status=status,
                    ms=round(elapsed * 1000, 2), **ids)
            structlog.contextvars.clear_contextvars()


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what} for status, what in (
        (400, "malformed request"), (401, "no valid bearer token"), (403, "the caller's role may not do this"),
        (404, "does not exist, or is outside the caller's scope"),
        (409, "the case changed since the given version, the state refuses the action, or it exists already"),
        (413, "the upload is larger than allowed"), (422, "invalid input: every problem is listed"),
        (500, "an unexpected error (logged with the request id)"),
        (503, "the database is unavailable; nothing was changed"),
        (507, "evidence could not be stored (disk full); nothing was attached"))}


def create_app(application: App, lifespan: Any = None) -> FastAPI:
    """The API over ``application``; ``lifespan``: what starts and stops with it (the scheduler
    loop of a ``serve --workers`` worker)."""
    api = FastAPI(lifespan=lifespan, title="节约型机关创建 case tracker", version="1", responses=ERRORS,
                  description="Cases of the yearly conservation-oriented agency rounds (节约型机关创建): "
                              "units, rounds, cases and their actions, sheets, evidence, reports, spot checks, "
                              "filing and the audit trail. Authenticate with `Authorization: Bearer <token>` "
                              "(`workflow tokens create`).",
                  docs_url=None, redoc_url=None)  # /docs is served offline below; no ReDoc
    api.state.application = application
    api.add_middleware(Guard, application=application)
    api.add_middleware(RequestContext)
    _caller_errors(api)
    _server_errors(api)
    for module in (operations, cases, directory, rounds, audit, accounts, sheets, channels):
        api.include_router(module.router)
    _offline_docs(api)
    from ..web import install

    install(api)  # the console at / (after the API: its routes never shadow one)
    return api


DOCS_ASSETS = "/docs/assets"


def _offline_docs(api: FastAPI) -> None:
    """``/docs``: Swagger UI with every file served from here (``DOCS_ASSETS``: the Swagger UI 5
    build the ``fastapi-offline`` package ships), so the page works on a network without the
    internet, and it says so to the browser: a Content-Security-Policy that lets it load
    nothing from another host (its one inline script allowed by its hash)."""
    import base64
    import hashlib
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    api.mount(DOCS_ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"),
              name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(openapi_url=f"{root}{api.openapi_url}", title=f"{api.title} — API",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge from swagger.io
        inline = re.findall(rb"<script>(.*?)</script>", bytes(page.body), re.S)
        hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in inline)
        page.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        return page


def _caller_errors(api: FastAPI) -> None:
    """What the caller did wrong: said, with every problem (the first MAX_PROBLEMS and a count)."""

    @api.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if exc.code in _SERVER_SIDE:  # the server's fault: its details (paths, settings) go to the log only
            log.error("server-side error", code=exc.code, error=exc.message)
            return _answer(request, error(exc.code, _SERVER_SIDE[exc.code]))
        return _answer(request, error(exc.code, exc.message, zh=exc.message_zh, **_jsonable(exc.details)))

    @api.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if exc.code in ("forbidden", "unauthorized"):
            log.warning("refused", code=exc.code, reason=exc.message)
        return _answer(request, error(exc.code, exc.message, zh=exc.zh, **exc.details))

    @api.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        if exc.status in (403, 404):
            log.warning("refused", status=exc.status, reason=exc.message)
        return error_page(request, exc.status, exc.message, exc.zh, exc.problems)

    @api.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, _: SignInNeeded) -> Response:
        from urllib.parse import quote

        if request.method != "GET":
            return error_page(request, 401, "your session has ended: sign in again, then send the form again",
                              "登录已失效：请重新登录后再提交")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "what": e["msg"]} for e in errors[:MAX_PROBLEMS]]
        counted: dict[str, Any] = {"problem_count": len(errors), "problems_listed": len(problems)} \
            if len(errors) > len(problems) else {}
        return _answer(request, error("invalid_input", f"{len(errors)} invalid field(s)", problems=problems,
                                      **counted))

    @api.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> Response:
        return _answer(request, closing(error("too_large", str(exc.detail), limit=exc.limit)))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large",
                408: "request_timeout"}.get(exc.status_code, "bad_request")
        response = error(code, str(exc.detail), status=exc.status_code)
        return _answer(request, closing(response) if exc.status_code in (408, 413) else response)


_ZH = {"not_found": "页面或记录不存在，或不在您的权限范围内", "method_not_allowed": "不支持此请求方式",
       "too_large": "提交的内容超过了大小限制", "request_timeout": "提交的内容长时间未到达，请重新提交",
       "invalid_input": "填写的内容有误", "conflict": "案件已被他人修改：请刷新页面查看最新情况后再操作",
       "database_unavailable": "数据库暂时不可用，未作任何修改，请稍后重试",
       "internal": "发生了意外错误（已记录日志），未作任何修改"}


def _answer(request: Request, response: JSONResponse) -> Response:
    """The API's JSON answer, or for the console the same refusal as a page (its message, in
    Chinese first, and each problem where it is)."""
    if not is_console_path(request.url.path):
        return response
    import json

    body = json.loads(bytes(response.body))["error"]
    code, message = body.get("code", ""), body.get("message", {})
    page = error_page(request, response.status_code, message.get("en", ""), message.get("zh") or _ZH.get(code),
                      body.get("details", {}).get("problems"))
    for name in ("connection", "retry-after"):
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page


def _server_errors(api: FastAPI) -> None:
    """What went wrong on the server: the caller reads what happened and that nothing was
    changed; hosts, paths and driver messages go to the log only."""

    async def database_down(request: Request, exc: Exception) -> Response:
        return _answer(request, database_unavailable(exc))

    for kind in database_errors():
        api.add_exception_handler(kind, database_down)

    @api.exception_handler(IntegrityError)
    async def concurrent_write(request: Request, exc: IntegrityError) -> Response:
        # a unique key taken by a concurrent request between our check and our write
        log.warning("concurrent write", error=str(exc.orig))  # the driver's text names tables: log only
        return _answer(request, error("conflict", "a concurrent request wrote the same record; nothing was changed, "
                                                  "reload and retry", status=409))

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", error_type=type(exc).__name__, error=str(exc), exc_info=exc)
        return _answer(request, error("internal", "an unexpected error; it has been logged with this request's id",
                                      status=500))


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    """Domain error details as JSON (problems as where/what; dates and decimals as text)."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = [v if isinstance(v, (str, int, float, bool, dict)) or v is None else str(v) for v in value]
        else:
            out[key] = str(value)
    return out
