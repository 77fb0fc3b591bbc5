"""The console's people pages (账号): who sees which accounts, a new account and its invitation
(mailed to the Maildir, the link opened, a password set, signed in with it, the link spent), an
expired invitation, a reset by the coordinator above, disabling (the person's session ends), and
the refusals: another city's coordinator (404), a form without its CSRF token (403), a bad login
(422, nothing written), a unit or an auditor (403).

The world: ``workflow demo`` on SQLite (made once per module and copied for each test), with one
unit of 太原 added (the demo's units are all provincial); the clock is a ManualClock.
"""
from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from workflow.bootstrap import App
from workflow.clock import BUSINESS_TZ, ManualClock
from workflow.demo import DEMO_PASSWORD
from workflow.files import import_units
from workflow.service.ports import AccountRecord

from ..support import OPERATOR, write_units_csv
from .worlds import DemoTemplate, csrf_of, demo_app, demo_template, signed_in

NOW = datetime(2026, 11, 3, 10, 30, tzinfo=BUSINESS_TZ)
TAIYUAN_UNIT = "太原市机关事务管理局"
NEW_PASSWORD = "new-secret-pass-42"
LINK = re.compile(r"https?://[^\s]+/link/([A-Za-z0-9_-]{20,100})")


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoTemplate:
    """The demo, once per module, with a unit of 太原."""
    folder = tmp_path_factory.mktemp("people")

    def taiyuan(application: App) -> None:
        import_units(application.db, write_units_csv(folder / "ty.csv", [(TAIYUAN_UNIT, "shanxi-taiyuan", "行政机关")]),
                     NOW, actor=OPERATOR)

    return demo_template(folder, sqlite_template, NOW, after=taiyuan)


@pytest.fixture
def application(world: DemoTemplate, tmp_path: Path) -> Iterator[App]:
    with demo_app(world, tmp_path, console_url=None) as application:
        yield application


class Person:
    """A browser signed in as one account (its cookie jar), with the CSRF token of its session."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict[str, str], csrf: bool = True):  # type: ignore[no-untyped-def]
        return self.client.post(path, data={**data, "csrf": self.csrf} if csrf else data, follow_redirects=False)


@pytest.fixture
def sign_in(application: App):  # type: ignore[no-untyped-def]
    from workflow.api.app import create_app

    api = create_app(application)

    def signed(login: str, password: str = DEMO_PASSWORD) -> Person:
        client = signed_in(application, login, password, api=api)
        home = client.get("/people" if login.startswith(("coord-", "demo-admin")) else "/")
        return Person(client, csrf_of(home.text))

    return signed


def account(application: App, login: str) -> AccountRecord:
    found = application.db.accounts.by_login(login)
    assert found is not None, login
    return found


def taiyuan_unit(application: App) -> int:
    (unit,) = application.db.directory.units("/shanxi/shanxi-taiyuan/")
    return unit.id


def logins(html: str) -> set[str]:
    return set(re.findall(r'<tr data-login="([^"]+)"', html))


def mails(application: App) -> list[email.message.EmailMessage]:
    path = application.settings.maildir
    if not path.exists():
        return []
    box = mailbox.Maildir(path, create=False)
    return [email.message_from_bytes(bytes(m), policy=email.policy.default) for m in box]


def link_in(message: email.message.EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def link_count(application: App) -> int:
    with application.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM account_links")).scalar_one())


def can_sign_in(application: App, login: str, password: str) -> bool:
    from workflow.api.app import create_app

    r = TestClient(create_app(application)).post("/signin", data={"login": login, "password": password},
                                                 follow_redirects=False)
    assert r.status_code in (303, 401), r.status_code
    return r.status_code == 303


# ---------------------------------------------------------------- who sees what

def test_the_province_coordinator_sees_the_province_and_filters(application: App, sign_in) -> None:
    shanxi = sign_in("coord-shanxi")
    r = shanxi.get("/people")
    assert r.status_code == 200
    seen = logins(r.text)
    expected = {a.login for a in application.db.accounts.all() if (a.path or "").startswith("/shanxi/")}
    assert seen == expected and {"coord-taiyuan", "coord-shanxi", "audit-shanxi", "unit01", "unit35"} <= seen
    assert "demo-admin" not in seen
    assert "已设置密码" in r.text and "协调人员" in r.text and "省纪委监委机关" in r.text  # a unit's name as scope
    assert "太原市" in r.text  # a jurisdiction's name as scope
    units = logins(shanxi.get("/people", params={"role": "unit"}).text)
    assert units and all(x.startswith("unit") for x in units)
    assert logins(shanxi.get("/people", params={"q": "TAIYUAN"}).text) == {"coord-taiyuan"}
    assert logins(shanxi.get("/people", params={"q": "张主任"}).text) == {"coord-taiyuan"}
    # the form offers the province's units and jurisdictions, never the admin role
    assert 'value="shanxi-datong"' in r.text and f">{taiyuan_unit(application)} · {TAIYUAN_UNIT}<" in r.text
    assert '<option value="admin"' not in r.text
    # one account's page
    page = shanxi.get(f"/people/{account(application, 'coord-taiyuan').id}")
    assert page.status_code == 200 and "taiyuan@jgswj.shanxi.example" in page.text and "停用账号" in page.text


def test_a_city_coordinator_sees_only_the_city(application: App, sign_in) -> None:
    taiyuan = sign_in("coord-taiyuan")
    r = taiyuan.get("/people")
    assert r.status_code == 200
    assert logins(r.text) == {"coord-taiyuan"}
    assert 'value="shanxi-datong"' not in r.text and 'value="shanxi"' not in r.text
    assert f">{taiyuan_unit(application)} · {TAIYUAN_UNIT}<" in r.text
    # another city's account, or the province's: not found
    assert taiyuan.get(f"/people/{account(application, 'coord-datong').id}").status_code == 404
    assert taiyuan.get(f"/people/{account(application, 'unit01').id}").status_code == 404
    # their own: seen, but nothing to change on it
    own = taiyuan.get(f"/people/{account(application, 'coord-taiyuan').id}")
    assert own.status_code == 200 and "/disable" not in own.text and "/link" not in own.text


def test_units_and_auditors_are_refused(application: App, sign_in) -> None:
    for login in ("unit01", "audit-shanxi"):
        person = sign_in(login)
        assert person.get("/people").status_code == 403
        assert person.get(f"/people/{account(application, 'unit02').id}").status_code == 403
        before = len(application.db.accounts.all())
        r = person.post("/people", {"login": "x-new", "name": "某人", "role": "unit", "unit_id": "2"})
        assert r.status_code == 403 and len(application.db.accounts.all()) == before


# ---------------------------------------------------------------- an invitation

def test_an_invitation_is_mailed_opened_used_once_and_signs_in(application: App, sign_in) -> None:
    taiyuan = sign_in("coord-taiyuan")
    unit_id = taiyuan_unit(application)
    r = taiyuan.post("/people", {"login": "ty.jgj", "name": "太原李科员", "role": "unit", "unit_id": str(unit_id),
                                 "jurisdiction_id": "shanxi-taiyuan",  # (the field the unit role does not take)
                                 "email": "li@ty.example", "phone": "0351-1234567"})
    assert r.status_code == 200, r.text[:2000]
    assert "账号已创建" in r.text and 'data-delivered="1"' in r.text and "li@ty.example" in r.text
    made = account(application, "ty.jgj")
    assert (made.role, made.unit_id, made.jurisdiction_id, made.password_hash) == ("unit", unit_id, None, None)
    assert "coord-taiyuan" in made.created_by
    # the mail carries the link the page showed once, with its expiry (7 days, Beijing time)
    (mail,) = mails(application)
    assert mail["To"].addresses[0].addr_spec == "li@ty.example"
    secret = link_in(mail)
    assert f"/link/{secret}" in r.text and "2026年11月10日 10:30" in r.text
    # the city's list now shows it, waiting for its password
    listed = taiyuan.get("/people")
    assert logins(listed.text) == {"coord-taiyuan", "ty.jgj"} and "待激活" in listed.text
    # the person opens it, sets a password, signs in with it
    anon = TestClient(taiyuan.client.app)
    assert anon.get(f"/link/{secret}").status_code == 200
    done = anon.post(f"/link/{secret}", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 200 and "密码已设置" in done.text
    assert account(application, "ty.jgj").password_hash is not None
    person = sign_in("ty.jgj", NEW_PASSWORD)
    assert person.get("/").status_code == 200
    # the link works once
    assert anon.get(f"/link/{secret}").status_code == 410
    assert anon.post(f"/link/{secret}", data={"password": "another-pass-99", "password2": "another-pass-99"}
                     ).status_code == 410
    assert can_sign_in(application, "ty.jgj", NEW_PASSWORD)


def test_an_account_without_email_gets_its_link_on_the_page(application: App, sign_in) -> None:
    shanxi = sign_in("coord-shanxi")
    r = shanxi.post("/people", {"login": "dt.audit", "name": "大同审计员", "role": "auditor",
                                "jurisdiction_id": "shanxi-datong", "unit_id": "1"})
    assert r.status_code == 200, r.text[:2000]
    assert 'data-delivered="0"' in r.text and "没有电子邮箱" in r.text
    secret = re.search(r"/link/([A-Za-z0-9_-]{20,100})", r.text)
    assert secret and mails(application) == []
    made = account(application, "dt.audit")
    assert (made.role, made.jurisdiction_id, made.unit_id) == ("auditor", "shanxi-datong", None)
    assert TestClient(shanxi.client.app).get(f"/link/{secret.group(1)}").status_code == 200


def test_an_expired_invitation_is_gone(application: App, sign_in) -> None:
    taiyuan = sign_in("coord-taiyuan")
    r = taiyuan.post("/people", {"login": "ty.late", "name": "迟到的人", "role": "unit",
                                 "unit_id": str(taiyuan_unit(application)), "email": "late@ty.example"})
    assert r.status_code == 200
    secret = link_in(mails(application)[0])
    anon = TestClient(taiyuan.client.app)
    assert anon.get(f"/link/{secret}").status_code == 200
    clock = application.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(days=7, seconds=1))
    gone = anon.get(f"/link/{secret}")
    assert gone.status_code == 410 and "已过期" in gone.text
    assert anon.post(f"/link/{secret}", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
                     ).status_code == 410
    assert account(application, "ty.late").password_hash is None


# ---------------------------------------------------------------- refusals of the form

def test_a_bad_login_is_named_and_nothing_is_made(application: App, sign_in) -> None:
    taiyuan = sign_in("coord-taiyuan")
    before = len(application.db.accounts.all())
    r = taiyuan.post("/people", {"login": "Bad Login!", "name": "保留的名字", "role": "unit",
                                 "unit_id": str(taiyuan_unit(application)), "email": "kept@ty.example"})
    assert r.status_code == 422
    assert 'id="e-login"' in r.text and "登录名须为" in r.text and 'aria-invalid="true"' in r.text
    assert 'value="保留的名字"' in r.text and 'value="kept@ty.example"' in r.text and 'value="Bad Login!"' in r.text
    assert len(application.db.accounts.all()) == before and link_count(application) == 0 and mails(application) == []
    # several problems at once, each at its field
    r = taiyuan.post("/people", {"login": "ok.login", "name": "", "role": "unit", "unit_id": "",
                                 "email": "not-an-address"})
    assert r.status_code == 422
    assert all(f'id="e-{field}"' in r.text for field in ("name", "unit", "email"))
    assert len(application.db.accounts.all()) == before
    # a taken login
    r = taiyuan.post("/people", {"login": "unit01", "name": "重名", "role": "unit",
                                 "unit_id": str(taiyuan_unit(application))})
    assert r.status_code == 422 and "已被使用" in r.text


def test_a_coordinator_cannot_make_accounts_outside_or_above_the_city(application: App, sign_in) -> None:
    taiyuan = sign_in("coord-taiyuan")
    before = len(application.db.accounts.all())
    for form in ({"login": "x.admin", "name": "管理员甲", "role": "admin"},
                 {"login": "x.unit", "name": "省单位甲", "role": "unit", "unit_id": "1"},
                 {"login": "x.coord", "name": "大同协调", "role": "coordinator", "jurisdiction_id": "shanxi-datong"},
                 {"login": "x.peer", "name": "太原同级", "role": "coordinator", "jurisdiction_id": "shanxi-taiyuan"}):
        r = taiyuan.post("/people", form)
        assert r.status_code == 403, (form, r.status_code)
        assert f'value="{form["login"]}"' in r.text  # the form again, with what was typed
    assert len(application.db.accounts.all()) == before and link_count(application) == 0


def test_forms_without_the_csrf_token_change_nothing(application: App, sign_in) -> None:
    shanxi = sign_in("coord-shanxi")
    target = account(application, "coord-taiyuan").id
    before = len(application.db.accounts.all())
    r = shanxi.post("/people", {"login": "no.csrf", "name": "无令牌", "role": "auditor",
                                "jurisdiction_id": "shanxi-taiyuan"}, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert shanxi.post(f"/people/{target}/link", {"purpose": "reset"}, csrf=False).status_code == 403
    wrong = shanxi.client.post(f"/people/{target}/link", data={"purpose": "reset", "csrf": "x" * 43},
                               follow_redirects=False)
    assert wrong.status_code == 403
    assert shanxi.post(f"/people/{target}/disable", {"reason": "离职"}, csrf=False).status_code == 403
    assert len(application.db.accounts.all()) == before and link_count(application) == 0 and mails(application) == []
    assert account(application, "coord-taiyuan").disabled_at is None


# ---------------------------------------------------------------- resets and other cities

def test_a_reset_by_the_coordinator_above_keeps_the_old_password_until_the_new_is_set(application: App,
                                                                                         sign_in) -> None:
    shanxi = sign_in("coord-shanxi")
    target = account(application, "coord-taiyuan")
    r = shanxi.post(f"/people/{target.id}/link", {"purpose": "reset"})
    assert r.status_code == 200, r.text[:2000]
    assert "重置密码链接已生成" in r.text and 'data-delivered="1"' in r.text
    assert "2026年11月4日 10:30" in r.text  # a reset lasts 24 hours
    (mail,) = mails(application)
    assert mail["To"].addresses[0].addr_spec == "taiyuan@jgswj.shanxi.example"
    secret = link_in(mail)
    assert f"/link/{secret}" in r.text
    # the link does not change the password: the old one works until the new one is set
    assert can_sign_in(application, "coord-taiyuan", DEMO_PASSWORD)
    session = sign_in("coord-taiyuan")
    anon = TestClient(shanxi.client.app)
    assert anon.post(f"/link/{secret}", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
                     ).status_code == 200
    assert not can_sign_in(application, "coord-taiyuan", DEMO_PASSWORD)
    assert can_sign_in(application, "coord-taiyuan", NEW_PASSWORD)
    assert session.get("/people").status_code == 303  # the sessions of before ended with the new password
    # an invitation can be sent again too
    again = shanxi.post(f"/people/{target.id}/link", {"purpose": "invitation"})
    assert again.status_code == 200 and "邀请链接已生成" in again.text and len(mails(application)) == 2
    assert shanxi.post(f"/people/{target.id}/link", {"purpose": "nonsense"}).status_code == 422


def test_another_citys_coordinator_gets_not_found(application: App, sign_in) -> None:
    datong = sign_in("coord-datong")
    target = account(application, "coord-taiyuan").id
    assert datong.post(f"/people/{target}/link", {"purpose": "reset"}).status_code == 404
    assert datong.post(f"/people/{target}/link", {"purpose": "invitation"}).status_code == 404
    assert datong.post(f"/people/{target}/disable", {"reason": "离职"}).status_code == 404
    assert datong.post(f"/people/{target}/enable", {}).status_code == 404
    assert datong.post("/people/999999/link", {"purpose": "reset"}).status_code == 404
    assert link_count(application) == 0 and mails(application) == []
    assert account(application, "coord-taiyuan").disabled_at is None
    # the coordinator above a city cannot send a link to their own account, nor to the province's peer
    shanxi = sign_in("coord-shanxi")
    assert shanxi.post(f"/people/{account(application, 'coord-shanxi').id}/link",
                       {"purpose": "reset"}).status_code == 403
    assert link_count(application) == 0


# ---------------------------------------------------------------- disabling

def test_disabling_ends_the_session_and_enabling_restores_sign_in(application: App, sign_in) -> None:
    clerk = sign_in("unit01")
    assert clerk.get("/").status_code == 200
    shanxi = sign_in("coord-shanxi")
    target = account(application, "unit01").id
    # a reason is needed
    r = shanxi.post(f"/people/{target}/disable", {"reason": "  "})
    assert r.status_code == 422 and "理由" in r.text and account(application, "unit01").disabled_at is None
    assert clerk.get("/").status_code == 200
    r = shanxi.post(f"/people/{target}/disable", {"reason": "人员调动"})
    assert r.status_code == 303 and r.headers["location"] == f"/people/{target}?done=disabled&revoked=0"
    assert account(application, "unit01").disabled_at is not None
    shown = shanxi.get(r.headers["location"])
    assert shown.status_code == 200 and "账号已停用" in shown.text and "重新启用" in shown.text
    assert "王科长（账号" in shown.text  # who disabled it, as a person reads it
    assert "已停用" in shanxi.get("/people", params={"state": "disabled"}).text
    assert logins(shanxi.get("/people", params={"state": "disabled"}).text) == {"unit01"}
    # the clerk's next page sends them to sign in, and signing in is refused
    gone = clerk.get("/")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
    assert not can_sign_in(application, "unit01", DEMO_PASSWORD)
    # no link to a disabled account
    assert shanxi.post(f"/people/{target}/link", {"purpose": "reset"}).status_code == 404
    assert link_count(application) == 0
    # enabled again: they sign in again
    r = shanxi.post(f"/people/{target}/enable", {})
    assert r.status_code == 303 and account(application, "unit01").disabled_at is None
    assert can_sign_in(application, "unit01", DEMO_PASSWORD)


def test_an_admin_may_make_an_admin(application: App, sign_in) -> None:
    admin = sign_in("demo-admin")
    r = admin.get("/people")
    assert r.status_code == 200 and "demo-admin" in logins(r.text) and '<option value="admin"' in r.text
    made = admin.post("/people", {"login": "second.admin", "name": "第二管理员", "role": "admin",
                                  "email": "admin2@example.gov.cn", "unit_id": "3", "jurisdiction_id": "shanxi"})
    assert made.status_code == 200, made.text[:2000]
    found = account(application, "second.admin")
    assert (found.role, found.unit_id, found.jurisdiction_id) == ("admin", None, None)
    assert "全部" in made.text and len(mails(application)) == 1
