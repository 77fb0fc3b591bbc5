"""The console's core over the demo world (SQLite, in-process): signing in (cookie flags, the
lockout page), the guard on forms (no session: nothing read; no CSRF token: nothing changed),
scope (a case of another city is 404), a coordinator's home against the progress report, the
case list and its export, a case verified and certified from its page, a batch with a result
per case, and the API answering as before beside it."""
from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from workflow.api.app import create_app
from workflow.bootstrap import App
from workflow.clock import BUSINESS_TZ
from workflow.demo import DEMO_PASSWORD, DemoResult
from workflow.service.queries import list_cases
from workflow.service.reports import progress

from .worlds import csrf_of, demo_app, demo_template, signed_in

TODAY = datetime(2026, 11, 20, 10, 30, tzinfo=BUSINESS_TZ)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[App, DemoResult]]:
    """The demo, once: one App for every test of the module."""
    template = demo_template(tmp_path_factory, sqlite_template, TODAY, name="console")
    with demo_app(template, tmp_path_factory.mktemp("console-app")) as application:
        yield application, template.result


def client(world, login: str | None = None) -> TestClient:
    application, _ = world
    if login is not None:
        return signed_in(application, login)
    return TestClient(create_app(application), base_url="http://127.0.0.1")


def state_of(world, case_id: int) -> tuple[str, int]:
    application, _ = world
    row = next(r for r in list_cases(application.db, limit=1000) if r.id == case_id)
    return row.state, row.version


def test_every_page_needs_a_session_and_comes_back_after_sign_in(world) -> None:
    c = client(world)
    r = c.get("/cases?state=submitted", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=%2Fcases%3Fstate%3Dsubmitted"
    r = c.post("/signin", data={"login": "coord-shanxi", "password": DEMO_PASSWORD, "next": "/cases?state=submitted"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/cases?state=submitted"
    cookie = r.headers["set-cookie"]
    assert "wf_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http on this host; TLS below
    page = c.get("/")
    assert page.status_code == 200 and "王科长" in page.text and "协调人员" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    # never back to another host after signing in
    r = client(world).post("/signin", data={"login": "coord-shanxi", "password": DEMO_PASSWORD,
                                            "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_the_cookie_is_secure_behind_tls(world) -> None:
    c = client(world)
    r = c.post("/signin", data={"login": "coord-shanxi", "password": DEMO_PASSWORD},
               headers={"x-forwarded-proto": "https"}, follow_redirects=False)
    assert "Secure" in r.headers["set-cookie"]


def test_a_wrong_password_is_a_page_in_chinese_and_nothing_else(world) -> None:
    r = client(world).post("/signin", data={"login": "coord-datong", "password": "not-the-password"})
    assert r.status_code == 401 and "登录名或密码不正确" in r.text and "wf_session" not in r.headers.get("set-cookie", "")
    assert 'value="coord-datong"' in r.text  # the login is kept, the password is not


def test_a_form_without_a_session_is_not_read(world) -> None:
    r = client(world).post("/cases/1/act/verify", data={"csrf": "x", "version": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert r.headers.get("connection") == "close"


def test_a_form_without_the_sessions_token_changes_nothing(world) -> None:
    c = client(world, "coord-shanxi")
    page = c.get("/cases?state=submitted")
    case_id = int(re.findall(r'href="/cases/(\d+)"', page.text)[0])
    before = state_of(world, case_id)
    for token in ("", "forged-token"):
        r = c.post(f"/cases/{case_id}/act/return", data={"csrf": token, "version": before[1], "reason": "补材料"})
        assert r.status_code == 403 and "CSRF" in r.text
    assert state_of(world, case_id) == before
    # another session's token is not this one's
    other = client(world, "coord-shanxi")
    token = csrf_of(other.get("/").text)
    assert token != csrf_of(c.get("/").text)
    r = c.post(f"/cases/{case_id}/act/return", data={"csrf": token, "version": before[1], "reason": "补材料"})
    assert r.status_code == 403 and state_of(world, case_id) == before


def test_a_case_outside_the_scope_does_not_exist(world) -> None:
    application, _ = world
    # the demo's cases are the province's own units: outside a city coordinator's subtree
    provincial = next(r for r in list_cases(application.db, limit=1000) if r.unit_id != 1)
    taiyuan = client(world, "coord-taiyuan")
    for path in (f"/cases/{provincial.id}", f"/cases/{provincial.id}/sheets.xlsx",
                 f"/cases/{provincial.id}/history.csv", "/cases/999999", "/?jurisdiction=shanxi-datong"):
        r = taiyuan.get(path)
        assert r.status_code == 404, path
        assert "未找到" in r.text
    listed = taiyuan.get("/cases")
    assert listed.status_code == 200 and f'href="/cases/{provincial.id}"' not in listed.text
    assert client(world, "coord-shanxi").get(f"/cases/{provincial.id}").status_code == 200
    unit = client(world, "unit01")
    assert unit.get(f"/cases/{provincial.id}").status_code == 404  # another unit's case
    own = next(r for r in list_cases(application.db, limit=1000) if r.unit_id == 1)
    assert unit.get(f"/cases/{own.id}").status_code == 200


def test_a_coordinators_home_shows_the_progress_report(world) -> None:
    application, result = world
    report = progress(application.db, result.round_id, "/shanxi/")
    root = report.rows[0]
    html = client(world, "coord-shanxi").get("/").text
    assert f"{root.certified_to_date} / {root.agencies} 家" in html
    for child in (r for r in report.rows if r.depth == 1):
        assert f"jurisdiction={child.jurisdiction_id}\">{child.name}</a>" in html
    assert "接下来的截止日期" in html and "年" in html and "月" in html


def test_the_case_list_filters_and_its_export_is_exactly_the_list(world) -> None:
    application, result = world
    c = client(world, "coord-shanxi")
    r = c.get(f"/cases?round={result.round_id}&state=submitted")
    shown = sorted({int(i) for i in re.findall(r'href="/cases/(\d+)"', r.text)})
    expected = sorted(x.id for x in list_cases(application.db, round_id=result.round_id, state="submitted"))
    assert shown == expected and shown
    book = c.get(f"/cases.xlsx?round={result.round_id}&state=submitted")
    assert book.status_code == 200 and "spreadsheetml" in book.headers["content-type"]
    sheet = load_workbook(io.BytesIO(book.content), read_only=True).active
    ids = [row[0] for row in sheet.iter_rows(values_only=True) if isinstance(row[0], int)]
    assert sorted(ids) == expected
    r = c.get("/cases?state=nonsense")
    assert r.status_code == 422 and "状态" in r.text


def test_a_case_is_verified_and_certified_from_its_page(world) -> None:
    application, result = world
    c = client(world, "coord-shanxi")
    case_id = next(x.id for x in list_cases(application.db, round_id=result.round_id, state="submitted"))
    page = c.get(f"/cases/{case_id}").text
    codes = list(dict.fromkeys(re.findall(r'name="e_([0-9.]+)"', page)))
    state, version = state_of(world, case_id)
    assert state == "submitted" and codes
    bad = c.post(f"/cases/{case_id}/act/verify", data={"csrf": csrf_of(page), "version": version, "e_1.1.1": "99"})
    assert bad.status_code == 422 and "1.1.1" in bad.text and "99" in bad.text
    assert state_of(world, case_id) == (state, version)  # nothing written
    caps = dict(re.findall(r'name="e_([0-9.]+)"[^>]*?data-cap="([0-9.]+)"', page.replace("\n", " ")))
    full = {f"e_{code}": caps.get(code, "0") for code in codes}
    r = c.post(f"/cases/{case_id}/act/verify", data={"csrf": csrf_of(page), "version": version, **full},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]
    assert state_of(world, case_id)[0] == "verified"
    page = c.get(f"/cases/{case_id}").text
    assert 'data-action="certify"' in page
    stale = c.post(f"/cases/{case_id}/act/certify", data={"csrf": csrf_of(page), "version": version})
    assert stale.status_code == 409  # the form of the version before
    r = c.post(f"/cases/{case_id}/act/certify", data={"csrf": csrf_of(page), "version": state_of(world, case_id)[1]},
               follow_redirects=False)
    assert r.status_code == 303 and state_of(world, case_id)[0] == "certified"
    history = c.get(f"/cases/{case_id}").text
    assert "认定为节约型机关" in history and "via=console" in history


def test_a_batch_gives_each_case_its_result(world) -> None:
    application, result = world
    c = client(world, "coord-shanxi")
    verified = [x.id for x in list_cases(application.db, round_id=result.round_id, state="verified")]
    registered = [x.id for x in list_cases(application.db, round_id=result.round_id, state="registered")][:1]
    token = csrf_of(c.get("/cases").text)
    r = c.post("/cases/batch", data={"csrf": token, "action": "certify", "case": verified + registered})
    assert r.status_code == 200
    rows = re.findall(r'<tr class="(ok|late)"><td><a href="/cases/(\d+)">', r.text)
    assert {int(i) for _, i in rows} == set(verified + registered)
    assert all(kind == "late" for kind, i in rows if int(i) in registered)
    for case_id in verified:
        state = state_of(world, case_id)[0]
        assert ("ok", str(case_id)) in rows if state == "certified" else ("late", str(case_id)) in rows
    unit = client(world, "unit01")
    r = unit.post("/cases/batch", data={"csrf": csrf_of(unit.get("/").text), "action": "certify", "case": verified})
    assert r.status_code == 403


def test_the_api_answers_as_before_beside_the_console(world) -> None:
    c = client(world)
    r = c.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert c.post("/api/v1/cases/1/actions/verify", json={}).status_code == 401
    assert c.get("/healthz").status_code == 200
    assert c.get("/nothing-here").status_code == 404 and "未找到" in c.get("/nothing-here").text


def test_no_page_refers_to_another_host(world) -> None:
    c = client(world, "coord-shanxi")
    for path in ("/", "/cases", "/cases/1", "/signin", "/password"):
        html = c.get(path).text
        outside = re.findall(r'(?:src|href|action)="((?:https?:)?//[^"]*)"', html)
        assert outside == [], (path, outside)
    css = c.get("/static/console/console.css")
    assert css.status_code == 200 and "url(" not in css.text


def test_signing_out_ends_the_session(world) -> None:
    c = client(world, "coord-shanxi")
    token = csrf_of(c.get("/").text)
    assert c.post("/signout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert c.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("login", ["coord-shanxi", "coord-taiyuan", "audit-shanxi", "unit01", "demo-admin"])
def test_each_roles_pages_answer_without_javascript(world, login: str) -> None:
    c = client(world, login)
    for path in ("/", "/cases", "/password"):
        r = c.get(path)
        assert r.status_code == 200, (login, path, r.text[:500])
        assert "<noscript>" in r.text or "<form" in r.text or "<table" in r.text
    labels = set(re.findall(r'<label for="([^"]+)"', c.get("/cases").text))
    inputs = set(re.findall(r'<(?:input|select|textarea) id="([^"]+)"', c.get("/cases").text))
    assert inputs <= labels, inputs - labels


def test_an_unknown_path_under_the_console_and_a_body_too_large(world) -> None:
    c = client(world, "coord-shanxi")
    token = csrf_of(c.get("/").text)
    r = c.post("/cases/1/act/return", content=b"csrf=" + token.encode() + b"&reason=" + b"x" * (2 * 1024 * 1024),
               headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "超过了此处的上限" in r.text and r.headers["content-type"].startswith("text/html")


def test_the_pages_paths_in_the_repository_match(world) -> None:
    """The console ships its assets in the package (nothing to build)."""
    static = Path(__file__).resolve().parents[2] / "src" / "workflow" / "web" / "static"
    assert (static / "console.css").exists() and (static / "console.js").exists()


def test_the_list_searches_by_name_sorts_and_pages(world) -> None:
    application, result = world
    c = client(world, "coord-shanxi")
    rows = list_cases(application.db, round_id=result.round_id, limit=1000)
    part = rows[3].unit_name[2:5]
    r = c.get(f"/cases?round={result.round_id}&name={part}")
    shown = {int(i) for i in re.findall(r'href="/cases/(\d+)">\d+</a>', r.text)}
    assert shown == {x.id for x in rows if part in x.unit_name}
    assert f'data-testid="total">{len(shown)}<' in r.text
    r = c.get(f"/cases?round={result.round_id}&sort=-self_total")
    totals = [x.self_total for x in sorted(rows, key=lambda x: x.id)]
    assert r.status_code == 200 and totals
    first = int(re.findall(r'href="/cases/(\d+)">\d+</a>', r.text)[0])
    best = max((x for x in rows if x.self_total is not None), key=lambda x: (x.self_total, -x.id))
    assert first == best.id
    r = c.get(f"/cases?round={result.round_id}&sort=sideways")
    assert r.status_code == 422 and "排序" in r.text


@pytest.mark.parametrize("today", ["2026-06-01", "2026-10-14", "2026-11-10", "2026-11-20"])
@pytest.mark.parametrize("path", ["/shanxi/", "/shanxi/shanxi-taiyuan/"])
def test_the_homes_counts_and_first_rows_agree_with_the_full_at_risk_list(world, today: str, path: str) -> None:
    """``owed_ahead``, ``at_risk_count`` and ``at_risk(limit=)`` count and cut in SQL what the
    full list (every owing case materialised) gives, on any day of the year."""
    from collections import Counter
    from datetime import date

    from workflow.service.reports import at_risk, at_risk_count, owed_ahead

    application, result = world
    db, calendars, day = application.db, application.calendars, date.fromisoformat(today)
    full = at_risk(db, calendars, result.round_id, path, day, 45)
    counted = Counter((a.milestone, a.due_on) for a in full)
    assert {(o.milestone, o.due_on): o.cases for o in owed_ahead(db, calendars, result.round_id, path, day, 45)} \
        == counted
    for within in (3, 7, 45):
        listed = at_risk(db, calendars, result.round_id, path, day, within)
        assert at_risk_count(db, calendars, result.round_id, path, day, within) == len({a.case_id for a in listed})
        for limit in (1, 2, 30):
            assert at_risk(db, calendars, result.round_id, path, day, within, limit=limit) == listed[:limit]


def test_the_list_of_who_still_owes_a_milestone(world) -> None:
    """/cases?owes=… lists exactly the cases the milestone's rule says owe it (the home page's
    and the calendar's links); an unknown milestone is a 422 naming the field."""
    application, result = world
    c = client(world, "coord-shanxi")
    calendar = application.calendars.get(application.db.rounds.round(result.round_id).calendar_id)
    checked = 0
    for m in calendar.milestones:
        if m.informational or m.by_level:
            continue
        expected = [o.case_id for o in application.db.read.owing_cases(result.round_id, m.owing, "/shanxi/")]
        r = c.get(f"/cases?round={result.round_id}&owes={m.id}")
        assert r.status_code == 200, r.text
        shown = sorted({int(i) for i in re.findall(r'href="/cases/(\d+)"', r.text)})
        assert shown == expected[:50], m.id
        assert f'共 <strong data-testid="total">{len(expected)}</strong> 件' in r.text, m.id
        checked += bool(expected)
    assert checked >= 2  # the demo has cases owing at least two milestones
    r = c.get(f"/cases?round={result.round_id}&owes=nonsense")
    assert r.status_code == 422 and "仍欠报的事项" in r.text


def test_the_header_names_the_persons_scope(world) -> None:
    """Who is signed in and their scope by name (the jurisdiction's, the unit's), not an id."""
    application, _ = world
    directory = application.db.directory
    expected = {"coord-shanxi": directory.jurisdiction("shanxi").name,
                "coord-taiyuan": directory.jurisdiction("shanxi-taiyuan").name,
                "unit01": directory.unit(1).name, "demo-admin": "全部"}
    for login, name in expected.items():
        html = client(world, login).get("/").text
        assert f'<span class="scope" title="权限范围">范围：{name}</span>' in html, login


def test_the_verify_forms_fields_say_what_they_take(world) -> None:
    """A criterion scored per occurrence takes a count (its label says 次数 and how much each is
    worth); any other takes points up to its cap (its label says so)."""
    application, result = world
    case_id = next(x.id for x in list_cases(application.db, round_id=result.round_id, state="submitted"))
    page = client(world, "coord-shanxi").get(f"/cases/{case_id}").text.replace("\n", " ")
    fields = re.findall(r'<label class="sr" for="verify-([0-9.]+)">([^<]*)</label>\s*<input id="verify-\1"([^>]*)>',
                        page)
    assert fields
    counted = [(code, label) for code, label, attrs in fields if "data-count" in attrs]
    scored = [(code, label) for code, label, attrs in fields if "data-count" not in attrs]
    assert counted and scored  # the rubric has both kinds
    for code, label in counted:
        assert label.startswith(f"{code} 核查") and "数（每" in label and "得分" not in label, label
    for code, label in scored:
        assert label.startswith(f"{code} 核查得分（最高 ") and label.endswith(" 分）"), label


def test_a_certified_title_is_revoked_from_the_case_page(world) -> None:
    application, result = world
    c = client(world, "coord-shanxi")
    case_id = next(x.id for x in list_cases(application.db, round_id=result.round_id, state="certified"))
    page = c.get(f"/cases/{case_id}").text
    assert 'data-action="revoke"' in page and 'name="decided_by"' in page and 'name="evidence"' in page
    _, version = state_of(world, case_id)
    bare = c.post(f"/cases/{case_id}/act/revoke", data={"csrf": csrf_of(page), "version": version})
    assert bare.status_code == 422 and "reason" in bare.text and state_of(world, case_id)[0] == "certified"
    done = c.post(f"/cases/{case_id}/act/revoke", data={
        "csrf": csrf_of(page), "version": version, "reason": "回头看发现问题", "decided_by": "national",
        "evidence": "国管局通报"}, follow_redirects=False)
    assert done.status_code == 303, done.text[:1000]
    assert state_of(world, case_id)[0] == "revoked"
    history = c.get(f"/cases/{case_id}").text
    assert "撤销节约型机关称号" in history and "已撤销称号" in history and "回头看发现问题" in history
