"""The people of the console (账号): the accounts a coordinator or an admin may see, a new
account with its invitation, a new invitation or password reset link, disabling and enabling.

Only coordinators and admins reach these pages (anyone else: 403, as the API's account
routes answer); an account outside the person's subtree is 404 (``get_account``). What may be
done to an account is the service's rule (``manages``, ``create_account``, ``issue_link``,
``set_enabled``): the pages show its answer. A link's secret is shown once, on the page that
made it (it is never stored, only its hash), so that it can be handed over when the mail fails.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..bootstrap import App
from ..domain.access import ROLES, Principal
from ..domain.errors import Forbidden, InvalidInput, Problem
from ..domain.state import Actor
from ..service.accounts import create_account, get_account, list_accounts, manages, set_enabled
from ..service.ports import AccountRecord
from ..service.sign_in import PURPOSES, issue_link
from .common import PageError, Signed, Viewer, app_of, check_csrf, page, redirect
from .mail import link_url, mail_link

router = APIRouter(include_in_schema=False)
AccountId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Text = Annotated[str, Form(max_length=200)]
SHOWN = 300  # accounts the list shows at most (filter to find the others)
UNITS_SELECT = 500  # more units than this in the subtree: the unit is typed as its number
STATES = {"active": "已设置密码", "pending": "待激活", "disabled": "已停用"}
FIELDS = ("login", "name", "role", "unit_id", "jurisdiction_id", "email", "phone")


def _operator(me: Viewer) -> Principal:
    """Coordinators and admins manage accounts; anyone else is refused (403)."""
    if me.who.role not in ("coordinator", "admin"):
        raise PageError(403, "only coordinators and admins manage accounts",
                        "只有协调人员和管理员可以管理账号")
    return me.who


def _state(account: AccountRecord) -> str:
    if account.disabled_at is not None:
        return "disabled"
    return "active" if account.password_hash is not None else "pending"


def _scopes(application: App, accounts: list[AccountRecord]) -> dict[int, str]:
    """Each account's scope as a person reads it: its unit's name, its jurisdiction's, or 全部."""
    units = {u.id: u.name for u in application.db.directory.units_of(
        sorted({a.unit_id for a in accounts if a.unit_id is not None}))}
    places: dict[str, str] = {}
    out = {}
    for a in accounts:
        if a.unit_id is not None:
            out[a.id] = units.get(a.unit_id, f"单位 {a.unit_id}")
        elif a.jurisdiction_id is not None:
            if a.jurisdiction_id not in places:
                found = application.db.directory.jurisdiction(a.jurisdiction_id)
                places[a.jurisdiction_id] = found.name if found else a.jurisdiction_id
            out[a.id] = places[a.jurisdiction_id]
        else:
            out[a.id] = "全部"
    return out


def _label(actor: str | None) -> str:
    """Who did it, as a person reads it (the display name and the account)."""
    if not actor:
        return "—"
    try:
        return Actor.parse(actor).label
    except InvalidInput:
        return actor


def _my_scope(application: App, who: Principal) -> str:
    if who.role == "admin" or not who.jurisdiction_path:
        return "全部"
    found = application.db.directory.jurisdiction(who.jurisdiction_path.strip("/").rsplit("/", 1)[-1])
    return found.name if found else who.jurisdiction_path


def _form_choices(application: App, who: Principal) -> dict[str, Any]:
    """What the new-account form offers: the roles, and the units and jurisdictions of the subtree."""
    path = None if who.role == "admin" else who.jurisdiction_path
    units = application.db.directory.units(path, limit=UNITS_SELECT + 1)
    return {"roles": [r for r in ROLES if r != "admin" or who.role == "admin"],
            "units": None if len(units) > UNITS_SELECT else sorted(units, key=lambda u: (u.path, u.id)),
            "jurisdictions": sorted(application.db.directory.jurisdictions(path), key=lambda j: j.path)}


def _list_page(request: Request, me: Viewer, *, status: int = 200, values: dict[str, str] | None = None,
               problems: list[Problem] | None = None, role: str = "", q: str = "", state: str = "") -> HTMLResponse:
    application = app_of(request)
    who = _operator(me)
    role = role if role in ROLES else ""
    state = state if state in STATES else ""
    needle = q.strip().lower()[:50]
    order = {r: i for i, r in enumerate(("admin", "coordinator", "auditor", "unit"))}
    found = [a for a in list_accounts(application.db, who)
             if (not role or a.role == role) and (not state or _state(a) == state)
             and (not needle or needle in a.login.lower() or needle in a.name.lower())]
    found.sort(key=lambda a: (a.path or "", order.get(a.role, 9), a.unit_id or 0, a.login))
    shown = found[:SHOWN]
    return page(request, "people.html", status=status, accounts=shown, total=len(found),
                scopes=_scopes(application, shown), STATES=STATES, role=role, q=q[:50], state=state,
                my_scope=_my_scope(application, who), values=values or {}, problems=problems or [],
                errors=_by_field(problems or []), **_form_choices(application, who))


def _by_field(problems: list[Problem]) -> dict[str, list[Problem]]:
    """The problems by the field they are about (the service names ``unit`` and ``jurisdiction``)."""
    out: dict[str, list[Problem]] = {}
    for p in problems:
        for where in p.where.split(", "):
            out.setdefault(where, []).append(p)
    return out


@router.get("/people")
def people(request: Request, me: Signed, role: str = Query("", max_length=16), q: str = Query("", max_length=50),
           state: str = Query("", max_length=16)) -> HTMLResponse:
    """The accounts the person may see, filtered; the form for a new account."""
    return _list_page(request, me, role=role, q=q, state=state)


def _optional_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 10 else None


@router.post("/people")
async def create(request: Request, me: Signed, csrf: Text = "", login: Text = "", name: Text = "", role: Text = "",
                 unit_id: Text = "", jurisdiction_id: Text = "", email: Text = "", phone: Text = "") -> Response:
    """A new account (no password) and its invitation, mailed; the link shown once."""
    check_csrf(me, csrf)
    who = _operator(me)
    application = app_of(request)
    values = {"login": login, "name": name, "role": role, "unit_id": unit_id, "jurisdiction_id": jurisdiction_id,
              "email": email, "phone": phone}
    # the form has both a unit and a jurisdiction field: the one the role takes is sent on
    unit = _optional_int(unit_id) if role == "unit" else None
    place = (jurisdiction_id.strip() or None) if role in ("coordinator", "auditor") else None
    if role == "unit" and unit_id.strip() and unit is None:
        problems = [Problem("unit", f"a unit number is a whole number; got {unit_id[:20]!r}",
                            f"单位编号须为整数；收到 {unit_id[:20]!r}")]
        return _list_page(request, me, status=422, values=values, problems=problems)
    try:
        made = create_account(application.db, by=who, login=login.strip(), name=name, role=role, unit_id=unit,
                              jurisdiction_id=place, email=email.strip() or None, phone=phone.strip() or None,
                              now=application.clock.now())
    except InvalidInput as exc:
        return _list_page(request, me, status=422, values=values, problems=list(exc.problems) or [
            Problem("account", exc.message, exc.message_zh)])
    except Forbidden as exc:
        return _list_page(request, me, status=403, values=values, problems=[
            Problem({"unit": "unit", "coordinator": "jurisdiction", "auditor": "jurisdiction"}.get(role, "role"),
                    exc.message, exc.message_zh)])
    return await _send_link(request, me, made, "invitation", created=True)


async def _send_link(request: Request, me: Viewer, account: AccountRecord, purpose: str, *,
                     created: bool = False) -> HTMLResponse:
    application = app_of(request)
    link = issue_link(application.db, account.id, purpose, by=me.who, now=application.clock.now(),
                      policy=application.sign_in_policy())
    delivered, why_not = await mail_link(application, request, link)
    return page(request, "people_link.html", account=account, link=link.record, purpose_zh=PURPOSES[purpose],
                url=link_url(application, request, link), delivered=delivered, why_not=why_not, created=created,
                scope=_scopes(application, [account])[account.id])


@router.get("/people/{account_id}")
def account_page(request: Request, me: Signed, account_id: AccountId, done: str = Query("", max_length=16),
                 revoked: int = Query(0, ge=0, le=10_000)) -> HTMLResponse:
    """One account: who, scope, contact, state; the links and the disabling the person may do."""
    return _account_page(request, me, account_id, done=done, revoked=revoked)


def _account_page(request: Request, me: Viewer, account_id: int, *, status: int = 200, done: str = "",
                  revoked: int = 0, problems: list[Problem] | None = None, reason: str = "") -> HTMLResponse:
    application = app_of(request)
    who = _operator(me)
    account = get_account(application.db, account_id, who)
    return page(request, "people_account.html", status=status, account=account, state=_state(account),
                STATES=STATES, created_by=_label(account.created_by), disabled_by=_label(account.disabled_by),
                scope=_scopes(application, [account])[account.id], can=manages(who, account),
                done=done if done in ("disabled", "enabled") else "", revoked=revoked, problems=problems or [],
                reason=reason)


@router.post("/people/{account_id}/link")
async def send_link(request: Request, me: Signed, account_id: AccountId, csrf: Text = "",
                    purpose: Text = "") -> Response:
    """A new invitation or reset link for an account the person manages, mailed; shown once."""
    check_csrf(me, csrf)
    who = _operator(me)
    application = app_of(request)
    account = get_account(application.db, account_id, who)  # 404 outside the subtree
    if purpose not in PURPOSES:
        raise PageError(422, f"purpose must be one of {', '.join(PURPOSES)}; got {purpose[:20]!r}",
                        f"链接用途须为 {'、'.join(PURPOSES.values())} 之一",
                        [{"where": "purpose", "what": f"one of {', '.join(PURPOSES)}"}])
    return await _send_link(request, me, account, purpose)


@router.post("/people/{account_id}/disable")
def disable(request: Request, me: Signed, account_id: AccountId, csrf: Text = "",
            reason: Annotated[str, Form(max_length=600)] = "") -> Response:
    """Disable an account: it cannot sign in, its sessions end and its tokens are revoked."""
    check_csrf(me, csrf)
    who = _operator(me)
    application = app_of(request)
    get_account(application.db, account_id, who)  # 404 outside the subtree
    try:
        _, revoked = set_enabled(application.db, account_id, False, by=who, now=application.clock.now(),
                                 reason=reason)
    except InvalidInput as exc:
        return _account_page(request, me, account_id, status=422, reason=reason[:500], problems=list(
            exc.problems) or [Problem("reason", exc.message, exc.message_zh)])
    return redirect(f"/people/{account_id}?done=disabled&revoked={revoked}")


@router.post("/people/{account_id}/enable")
def enable(request: Request, me: Signed, account_id: AccountId, csrf: Text = "") -> Response:
    check_csrf(me, csrf)
    who = _operator(me)
    application = app_of(request)
    get_account(application.db, account_id, who)  # 404 outside the subtree
    set_enabled(application.db, account_id, True, by=who, now=application.clock.now())
    return redirect(f"/people/{account_id}?done=enabled")
