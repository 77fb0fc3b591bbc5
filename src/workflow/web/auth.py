"""Signing in and out, a forgotten password, the one-time links, changing one's password."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..domain.errors import InvalidInput
from ..service.sign_in import (
    LinkInvalid,
    SignInRefused,
    change_own_password,
    open_link,
    reset_for_login,
    sign_in,
    sign_out,
    use_link,
)
from .common import SESSION_COOKIE, Signed, app_of, back_to, check_csrf, log, page, redirect
from .mail import mail_link

router = APIRouter(include_in_schema=False)
Secret = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
Text = Annotated[str, Form(max_length=200)]


def _address(request: Request) -> str | None:
    return request.client.host[:64] if request.client else None


def _secure(request: Request) -> bool:
    setting = app_of(request).settings.cookie_secure
    if setting is not None:
        return bool(setting)
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


@router.get("/signin")
def signin_form(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "signin.html", next=back_to(next), login="", error=None)


@router.post("/signin")
def signin(request: Request, login: Text = "", password: Text = "", next: Text = "/") -> Response:
    application = app_of(request)
    try:
        done = sign_in(application.db, login, password, application.clock.now(), application.sign_in_policy(),
                       address=_address(request))
    except SignInRefused as exc:
        log.warning("sign-in refused", login=login[:64], reason=exc.message)
        return page(request, "signin.html", status=401, next=back_to(next), login=login[:64],
                    error=(exc.message_zh, exc.message))
    log.info("signed in", login=done.account.login, session=done.session.id)
    response = RedirectResponse(back_to(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, done.secret, max_age=int((done.session.expires_at
                                                                  - done.session.created_at).total_seconds()),
                        httponly=True, samesite="strict", secure=_secure(request), path="/")
    return response


@router.post("/signout")
def signout(request: Request, me: Signed, csrf: Text = "") -> Response:
    check_csrf(me, csrf)
    sign_out(app_of(request).db, me.session, me.who, app_of(request).clock.now())
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/forgot")
def forgot_form(request: Request) -> HTMLResponse:
    return page(request, "forgot.html", sent=False)


@router.post("/forgot")
async def forgot(request: Request, login: Text = "") -> HTMLResponse:
    application = app_of(request)
    link = reset_for_login(application.db, login, application.clock.now(), application.sign_in_policy())
    if link is not None:
        await mail_link(application, request, link)
    # the same answer whether or not the login exists (it does not tell who has an account)
    return page(request, "forgot.html", sent=True)


@router.get("/link/{secret}")
def link_form(request: Request, secret: Secret) -> HTMLResponse:
    application = app_of(request)
    try:
        link, account = open_link(application.db, secret, application.clock.now())
    except LinkInvalid as exc:
        return page(request, "message.html", status=410, title="链接不可用", zh=exc.message_zh, message=exc.message)
    return page(request, "link.html", link=link, account=account, secret=secret, problems=[])


@router.post("/link/{secret}")
def link_use(request: Request, secret: Secret, password: Text = "", password2: Text = "") -> HTMLResponse:
    application = app_of(request)
    try:
        account = use_link(application.db, secret, password, password2, application.clock.now())
    except LinkInvalid as exc:
        return page(request, "message.html", status=410, title="链接不可用", zh=exc.message_zh, message=exc.message)
    except InvalidInput as exc:
        link, account = open_link(application.db, secret, application.clock.now())
        return page(request, "link.html", status=422, link=link, account=account, secret=secret,
                    problems=exc.problems)
    return page(request, "message.html", title="密码已设置", zh=f"账号 {account.login} 的密码已设置，请登录。",
                message="Your password is set: sign in.", link_to=("/signin", "前往登录"))


@router.get("/password")
def password_form(request: Request, me: Signed) -> HTMLResponse:
    return page(request, "password.html", problems=[])


@router.post("/password")
def password_change(request: Request, me: Signed, csrf: Text = "", current: Text = "", password: Text = "",
                    password2: Text = "") -> Response:
    check_csrf(me, csrf)
    try:
        change_own_password(app_of(request).db, me.who, current, password, password2, app_of(request).clock.now())
    except InvalidInput as exc:
        return page(request, "password.html", status=422, problems=exc.problems)
    response = redirect("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
