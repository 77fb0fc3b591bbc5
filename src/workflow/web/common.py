"""What every page of the console shares: the templates and their filters (Chinese names, dates
as 2021年10月20日 in Beijing time, points as printed), who is signed in (the session cookie),
the CSRF check of every form, and the answers a page gives when something is refused.

No rule lives here or in a template: pages call the same services as the API and show what
they return (the actions a case allows, its scores, its deadlines).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..bootstrap import App
from ..domain.access import Principal
from ..domain.dates import BUSINESS_TZ
from ..domain.lifecycle import ACTOR_NAMES, EVENT_NAMES, STATE_NAMES, action_zh
from ..domain.units import UNIT_LEVEL_NAMES
from ..service.ports import SessionRecord
from ..service.sign_in import session_of

HERE = Path(__file__).parent
SESSION_COOKIE = "wf_session"
STATIC = "/static/console"
# The paths a person reaches before signing in (everything else needs a session).
PUBLIC = ("/signin", "/forgot", "/link/")
log = structlog.get_logger("workflow.web")


# ---------------------------------------------------------------- formatting

def zh_date(value: date | datetime | str | None) -> str:
    """2021年10月20日 (a time: its day in Beijing)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.astimezone(BUSINESS_TZ).date()
    return f"{value.year}年{value.month}月{value.day}日"


def zh_time(value: datetime | str | None) -> str:
    """2021年10月20日 09:30 in Beijing time (of a time, or of one in ISO 8601 with its offset)."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(BUSINESS_TZ)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def points(value: Decimal | str | None) -> str:
    """Points as the official form prints them (no trailing zeros beyond the half point)."""
    if value is None or value == "":
        return "—"
    text = format(Decimal(str(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def share(value: Decimal | None) -> str:
    return "—" if value is None else f"{(value * 100).quantize(Decimal('0.1'))}%"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(zh_date=zh_date, zh_time=zh_time, points=points, share=share,
                       state_zh=lambda s: STATE_NAMES.get(s, s), action_zh=action_zh,
                       event_zh=lambda e: EVENT_NAMES.get(e, e), role_zh=lambda r: ACTOR_NAMES.get(r, r),
                       level_zh=lambda lv: UNIT_LEVEL_NAMES.get(lv, lv), urlq=lambda s: quote(str(s), safe=""))
    env.globals.update(STATIC=STATIC, STATE_NAMES=STATE_NAMES, LEVEL_NAMES=UNIT_LEVEL_NAMES)
    return env


TEMPLATES = _env()


# ---------------------------------------------------------------- who is signed in

@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their principal (role and scope) and their session."""

    who: Principal
    session: SessionRecord

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def scope_zh(self) -> str:
        who = self.who
        if who.role == "admin":
            return "全部"
        if who.role == "unit":
            return f"单位 {who.unit_id}"
        return (who.jurisdiction_path or "").strip("/").rsplit("/", 1)[-1]


class SignInNeeded(Exception):
    """No live session: the page sends the browser to the sign-in page (and back after it)."""


class PageError(Exception):
    """A refusal a page answers with its own status and text (404 outside the scope, 403, 409)."""

    def __init__(self, status: int, message: str, zh: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.zh, self.problems = status, message, zh, problems or []


def app_of(request: Request) -> App:
    application: App = request.app.state.application
    return application


async def viewer(request: Request) -> Viewer:
    """The person of the request's session cookie (checked once: the guard may have done it)."""
    found = getattr(request.state, "viewer", None)
    if isinstance(found, Viewer):
        return found
    application = app_of(request)
    got = session_of(application.db, request.cookies.get(SESSION_COOKIE, ""), application.clock.now())
    if got is None:
        raise SignInNeeded()
    found = Viewer(*got)
    request.state.viewer = found
    structlog.contextvars.bind_contextvars(actor=str(found.who.actor))
    return found


Signed = Annotated[Viewer, Depends(viewer)]


def check_csrf(me: Viewer, given: str | None) -> None:
    """Every form carries the session's CSRF token; a form without it, or with another session's,
    changes nothing (403)."""
    if not given or not hmac.compare_digest(given.encode(), me.csrf.encode()):
        log.warning("csrf refused", actor=str(me.who.actor))
        raise PageError(403, "this form is not from your current session (CSRF check failed): reload the page and "
                             "send it again",
                        "表单已失效或不是来自当前登录会话（CSRF 校验未通过）：请刷新页面后重新提交")


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    me = getattr(request.state, "viewer", None)
    application = app_of(request)
    html = TEMPLATES.get_template(template).render(request=request, me=me, now=application.clock.now(),
                                                   status=status, scope_name=_scope_name(application, me), **context)
    return HTMLResponse(html, status_code=status, headers=page_headers())


def _scope_name(application: App, me: Viewer | None) -> str:
    """What the header says the person's scope is: 全部, the unit's name, the jurisdiction's name."""
    if me is None:
        return ""
    who = me.who
    try:
        if who.role == "unit" and who.unit_id is not None:
            unit = application.db.directory.unit(who.unit_id)
            return unit.name if unit is not None else me.scope_zh
        if who.role != "admin" and who.jurisdiction_path:
            found = application.db.directory.jurisdiction(who.jurisdiction_path.strip("/").rsplit("/", 1)[-1])
            return found.name if found is not None else me.scope_zh
    except Exception as exc:  # a header must not cost the page (logged)
        log.error("scope name unreadable", error=str(exc))
    return me.scope_zh


def page_headers() -> dict[str, str]:
    """Pages load nothing from another host, run only the console's own scripts, are never
    framed, and are not kept by caches (they hold a bureau's data)."""
    # (style attributes only: the progress bars' widths; no inline <style> or script)
    return {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                                       "style-src-attr 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
                                       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            "Cache-Control": "no-store"}


def back_to(path: str, default: str = "/") -> str:
    """A local path to return to after an action (never another host)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else default


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(back_to(path), status_code=303)


def is_console_path(path: str) -> bool:
    """Whether a request is the console's (not the API's, its docs or the operations endpoints)."""
    return not path.startswith(("/api/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics"))


def error_page(request: Request, status: int, message: str, zh: str | None,
               problems: list[dict[str, Any]] | None = None) -> HTMLResponse:
    """A refusal as a page: what is wrong, in Chinese and English, each problem where it is."""
    try:
        return page(request, "error.html", status=status, message=message, zh=zh, problems=problems or [])
    except Exception as exc:  # a page must answer even when its template cannot (logged)
        log.error("error page failed", error=str(exc))
        return HTMLResponse(f"<p>{status}</p>", status_code=status, headers=page_headers())
