"""The console end to end: Chromium driving a real ``workflow serve`` with the demo's data, as
each person uses it. Every test ends with the ``page`` fixture's check that no request left the
host (no font, script or style from elsewhere, even on error pages).

- signing in and out, a wrong password refused in Chinese, a login locked after 5 failures;
- a unit's journey: 我的任务 → its sheet → every criterion typed (the live total follows) →
  saved → two evidence files uploaded at once to one criterion → the required documents → the
  checklist empty → submitted (已报送);
- the coordinator's journey on that case: found by the unit's name, verified below the pass mark
  shown on the page, ordered to rectify; the unit asks for the recheck; the recheck with passing
  scores certifies it; the auditor reads the unit's history (each step in order, its actor and
  hash) and runs the audit check (no findings);
- a form whose CSRF token was changed is refused (403, in Chinese) and changes nothing;
- outside one's scope a case is 404 (a city's coordinator, another unit);
- (slow) the pages over 100,000 cases.

With WORKFLOW_SCREENSHOTS=1 the journeys write the screenshots of docs/console.md
(docs/console/<role>-<page>.png, viewport-sized).
"""
from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from workflow.demo import DEMO_PASSWORD

from ..serving import start_serve, stop
from .conftest import REPO, Console, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

COORDINATOR, AUDITOR, CITY_COORDINATOR = "coord-shanxi", "audit-shanxi", "coord-taiyuan"
LOCKED_LOGIN = "unit34"  # used by no other test: its lockout would refuse them
SCREENSHOTS = REPO / "docs" / "console"


# ---------------------------------------------------------------- helpers

def snap(page: Page, name: str, at: str | None = None) -> None:
    """With WORKFLOW_SCREENSHOTS set: the viewport (scrolled to ``at``'s top when given) as
    docs/console/<name>.png; a full page of a long table would weigh megabytes."""
    if not os.environ.get("WORKFLOW_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if at is not None:
        page.locator(at).first.evaluate("el => el.scrollIntoView({block: 'start'})")
    else:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def sign_out(page: Page) -> None:
    """The header's 退出 button (a form with the session's CSRF token)."""
    with page.expect_navigation():
        page.locator("[data-testid=who] button", has_text="退出").click()
    assert page.url.endswith("/signin")


def go(page: Page, base: str, path: str, status: int = 200) -> None:
    response = page.goto(base + path)
    assert response is not None and response.status == status, (path, response and response.status)


def state(page: Page) -> str:
    return page.inner_text("[data-testid=state]").strip()


def version(page: Page) -> str:
    return page.locator("input[name=version]").first.get_attribute("value") or ""


def submit(page: Page, button: Locator) -> None:
    with page.expect_navigation():
        button.click()


def open_action(page: Page, action: str) -> Locator:
    """The form of an action on a case's page, its <details> opened as a person opens it."""
    details = page.locator(f"details.action:has(form[data-action={action}])")
    assert details.count() == 1, f"no {action} form on {page.url}"
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    form = details.locator("form")
    assert form.is_visible()
    return form


def fill_scores(form: Locator, less: Decimal = Decimal(0)) -> Decimal:
    """Type into every criterion's field (``e_<code>``) its full marks (for a criterion scored per
    occurrence, as many occurrences as reach its cap), less ``less`` points taken a step at a
    time from one criterion after another, as an assessor marks down; returns the total typed."""
    fields = form.locator("input[name^=e_]")
    assert fields.count() > 10
    specs = []
    for i in range(fields.count()):
        field = fields.nth(i)
        cap, step, points = (Decimal(field.get_attribute(a) or "0") for a in ("data-cap", "data-step", "data-points"))
        specs.append((field, cap, step, points, field.get_attribute("data-count") is not None))
    scores = [cap for _, cap, _, _, _ in specs]
    left = less
    while left > 0:
        before = left
        for i, (_, _, step, _, count) in enumerate(specs):
            if not count and step <= left and scores[i] >= step:
                scores[i] -= step
                left -= step
        assert left < before, f"cannot take {less} points off the sheet"
    for (field, cap, _, points, count), score in zip(specs, scores, strict=True):
        field.fill(str((cap / points).to_integral_value(ROUND_FLOOR)) if count else format(score.normalize(), "f"))
    return sum(scores, Decimal(0))


def live_total(form: Locator) -> str:
    return form.locator("output[data-total]").inner_text()


def png_1x1() -> bytes:
    """A valid 1×1 PNG (signature, IHDR, IDAT, IEND, each chunk with its CRC)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x2e\x8b\x57")) + chunk(b"IEND", b""))


MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
               b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")


@dataclass
class Target:
    """The demo's case the unit journey submits, and what the coordinator's journey needs of it."""
    case_id: int
    unit_id: int
    unit_name: str
    login: str


def self_assessed_case(console: Console) -> Target:
    """The live round's first self-assessed case (the demo leaves three): the unit's journey's."""
    with sqlite3.connect(f"file:{console.tmp / 'workflow.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT c.id, c.unit_id, u.name FROM cases c JOIN units u ON u.id = c.unit_id "
                         "JOIN rounds r ON r.id = c.round_id WHERE c.state = 'self_assessed' "
                         "ORDER BY r.year DESC, c.unit_id LIMIT 1").fetchone()
    assert row is not None, "the demo has no self-assessed case"
    return Target(row[0], row[1], row[2], f"unit{row[1]:02d}")


def a_case(console: Console, state_: str) -> int:
    with sqlite3.connect(f"file:{console.tmp / 'workflow.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT c.id FROM cases c JOIN rounds r ON r.id = c.round_id WHERE c.state = ? "
                         "ORDER BY r.year DESC, c.id LIMIT 1", (state_,)).fetchone()
    assert row is not None, f"the demo has no {state_} case"
    return int(row[0])


# ---------------------------------------------------------------- 1. signing in and out

def test_sign_in_wrong_password_lockout_and_sign_out(console, page) -> None:
    # a page before signing in: the sign-in form, and back to the page after it
    go(page, console.base, "/cases?state=submitted")
    assert page.url == f"{console.base}/signin?next=%2Fcases%3Fstate%3Dsubmitted"
    assert page.title().startswith("登录")
    snap(page, "signin")

    for attempt in range(1, 6):
        page.fill("#login", LOCKED_LOGIN)
        page.fill("#password", f"wrong-{attempt}")
        with page.expect_response(lambda r: r.url.endswith("/signin") and r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 401
        alert = page.inner_text("[role=alert]")
        if attempt < 5:
            assert "登录名或密码不正确" in alert, alert
        else:  # the fifth failure locks the login
            assert "登录失败次数过多，此登录名已锁定" in alert, alert
        assert page.input_value("#login") == LOCKED_LOGIN  # the login is kept, the password is not
        assert page.input_value("#password") == ""
    # locked: the right password is refused too
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/signin") and r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    assert "已锁定" in page.inner_text("[role=alert]")
    assert all(c["name"] != "wf_session" for c in page.context.cookies())

    # another login signs in on the same form, and goes on to the page it asked for
    page.fill("#login", COORDINATOR)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{console.base}/cases?state=submitted"
    who = page.inner_text("[data-testid=who]")
    assert "王科长" in who and "协调人员" in who
    sign_out(page)
    # the session has ended: a page asks for signing in again
    go(page, console.base, "/")
    assert "/signin" in page.url


# ---------------------------------------------------------------- 2. the unit's journey

def unit_submits(page: Page, console: Console, tmp: Path) -> Target:
    """The unit of the demo's first self-assessed case fills in, uploads and submits its sheet."""
    target = self_assessed_case(console)
    sign_in(page, console.base, target.login, DEMO_PASSWORD)
    assert page.url == f"{console.base}/"
    assert page.locator("h1").inner_text().startswith("我的任务")
    task = page.locator(f"section.task[data-case='{target.case_id}']")
    assert "已自评" in task.inner_text()
    snap(page, "unit-home")
    submit(page, task.get_by_role("link", name="填写自评表、上传佐证材料"))
    assert page.url == f"{console.base}/cases/{target.case_id}/sheet"
    assert state(page) == "已自评"

    form = page.locator("#sheet-form")
    table = page.locator("table[data-sheet]")
    pass_mark = Decimal(table.get_attribute("data-pass") or "")
    before = live_total(table)
    # a value over the cap: marked at once, counted as an error in the live total
    first = form.locator("input[name^=e_]").first
    first.fill(str(Decimal(first.get_attribute("data-cap") or "0") + 1))
    assert first.get_attribute("aria-invalid") == "true"
    assert "1 处有误" in live_total(table)
    # every criterion, typed within its cap: full marks
    typed = fill_scores(form)
    assert first.get_attribute("aria-invalid") == "false"
    after = live_total(table)
    assert after != before and after.startswith(f"{typed.normalize():f} 分"), (before, after)
    assert typed >= pass_mark and "合格" in after and "有误" not in after
    snap(page, "unit-sheet", at="#sheet")
    submit(page, page.get_by_role("button", name="保存自评表"))
    assert page.url.endswith(f"/cases/{target.case_id}/sheet?saved=1")
    assert page.inner_text("[data-testid=notice]") == "已保存自评表。"
    assert f"已保存：{typed.normalize():f}" in table.inner_text()

    # two evidence files at once to one criterion (what the store checks is their content)
    code = (first.get_attribute("name") or "")[2:]
    photo, scan = tmp / "节水器具照片.png", tmp / "节能管理制度.pdf"
    photo.write_bytes(png_1x1())
    scan.write_bytes(MINIMAL_PDF)
    page.set_input_files(f"input[type=file][id='file-{code}']", [str(photo), str(scan)])
    submit(page, page.locator(f"button[form='up-{code}']"))
    assert page.inner_text("[data-testid=notice]") == "已上传 2 个文件。"
    row = page.locator(f"tr[id='c-{code}']").inner_text()
    assert photo.name in row and scan.name in row

    # the required documents (自评报告, 自评打分表 ...), each its own upload
    missing = page.locator("[data-testid=missing]").inner_text()
    docs = page.locator("#documents tbody tr[id^=doc-]")
    assert docs.count() >= 1
    for i in range(docs.count()):
        doc = docs.nth(i)
        name = doc.locator("th").inner_text()
        assert name in missing, (name, missing)
        report = tmp / f"{name}.pdf"
        report.write_bytes(MINIMAL_PDF)
        doc.locator("input[type=file]").set_input_files(str(report))
        submit(page, doc.get_by_role("button", name="上传"))
        assert page.inner_text("[data-testid=notice]") == "已上传 1 个文件。"
        assert report.name in page.locator("#documents tbody tr[id^=doc-]").nth(i).inner_text()

    # nothing missing any more: the checklist is gone and the submission is open
    assert page.locator("[data-testid=missing]").count() == 0
    assert "可以报送" in page.inner_text("#submit")
    button = page.get_by_role("button", name="报送自评材料")
    assert button.is_enabled()
    page.fill("#submit-note", "自评材料已齐全")
    submit(page, button)
    assert page.url.endswith(f"/cases/{target.case_id}?done=submit")
    assert state(page) == "已报送"
    assert "已完成：报送自评材料" in page.inner_text("[role=status]")
    sign_out(page)
    return target


SUBMITTED: dict[str, Target] = {}  # server → the case its unit journey submitted (tests may run apart)


def test_unit_fills_uploads_and_submits(console, page, tmp_path: Path) -> None:
    SUBMITTED[console.base] = unit_submits(page, console, tmp_path)


# ---------------------------------------------------------------- 3. the coordinator, the unit, the auditor

def test_coordinator_verifies_rectification_recheck_and_auditor_reads_history(console, page, tmp_path) -> None:
    target = SUBMITTED.get(console.base) or unit_submits(page, console, tmp_path)
    case_path = f"/cases/{target.case_id}"
    note = "节水器具的佐证材料不足，请于20日内整改"

    sign_in(page, console.base, COORDINATOR, DEMO_PASSWORD)
    assert "创建进度" in page.locator("h1").inner_text()
    snap(page, "coordinator-home")

    # the case list; the case found by the unit's name
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="案件").click()
    page.wait_for_url(f"{console.base}/cases")
    assert int(page.inner_text("[data-testid=total]")) >= 35
    snap(page, "coordinator-cases")
    page.fill("#f-name", target.unit_name)
    submit(page, page.get_by_role("button", name="筛选"))
    assert page.inner_text("[data-testid=total]") == "1"
    assert "已报送" in page.locator("table.list tbody tr").inner_text()
    submit(page, page.locator("table.list tbody").get_by_role("link", name=target.unit_name))
    assert page.url == console.base + case_path and state(page) == "已报送"

    # 评价验收 below the pass mark the page shows
    form = open_action(page, "verify")
    foot = form.locator("tfoot").inner_text()
    shown = re.search(r"(\d+(?:\.\d+)?) 分及以上为合格", foot)
    assert shown is not None, foot
    pass_mark = Decimal(shown.group(1))
    assert Decimal(form.locator("table[data-sheet]").get_attribute("data-pass") or "") == pass_mark
    failing = fill_scores(form, less=Decimal(25))
    assert failing < pass_mark
    assert live_total(form).startswith(f"{failing.normalize():f} 分") and "未达合格线" in live_total(form)
    form.locator("#verify-note").fill("实地核查：部分佐证材料不足")
    snap(page, "coordinator-case-verify", at="details.action:has(form[data-action=verify])")
    submit(page, form.get_by_role("button", name="评价验收"))
    assert page.url.endswith(f"{case_path}?done=verify")
    assert state(page) == "已评价验收"
    sheet_foot = page.locator("section.card table.sheet tfoot").last.inner_text()
    assert f"{failing.normalize():f}" in sheet_foot, sheet_foot

    # 通知整改, with a note
    form = open_action(page, "order_rectification")
    form.locator("#order_rectification-note").fill(note)
    submit(page, form.get_by_role("button", name="通知整改"))
    assert state(page) == "整改中"
    assert "整改截止" in page.inner_text(".bar-top")
    assert f"备注：{note}" in page.inner_text("ol.timeline")
    sign_out(page)

    # the unit reports its rectification done and asks for the recheck
    sign_in(page, console.base, target.login, DEMO_PASSWORD)
    go(page, console.base, case_path)
    assert state(page) == "整改中"
    form = open_action(page, "request_recheck")
    form.locator("#request_recheck-note").fill("已完成整改，申请复核验收")
    submit(page, form.get_by_role("button", name="申请复核验收"))
    assert state(page) == "待复核验收"
    sign_out(page)

    # 复核验收 with passing scores: it certifies by itself
    sign_in(page, console.base, COORDINATOR, DEMO_PASSWORD)
    go(page, console.base, case_path)
    assert state(page) == "待复核验收"
    form = open_action(page, "recheck")
    passing = fill_scores(form, less=Decimal(8))
    assert passing >= pass_mark and live_total(form).endswith("合格")
    submit(page, form.get_by_role("button", name="复核验收"))
    assert state(page) == "已认定"
    assert page.locator("details.action form[data-action=recheck]").count() == 0

    # the coordinator's other pages: the calendar and the people
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="日程与通知").click()
    page.wait_for_url(f"{console.base}/calendar")
    assert "本轮日程" in page.inner_text("#timeline")
    snap(page, "coordinator-calendar")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="账号").click()
    page.wait_for_url(f"{console.base}/people")
    assert page.locator(f"tr[data-login='{target.login}']").count() == 1
    snap(page, "coordinator-people")
    sign_out(page)

    # the auditor: the unit's history, every step in order with its actor and hash; the audit check
    sign_in(page, console.base, AUDITOR, DEMO_PASSWORD)
    assert page.locator("h1").inner_text().startswith("审计")
    assert page.locator("form[method=post]:not([action='/signout'])").count() == 0  # reads, changes nothing
    go(page, console.base, f"/units/{target.unit_id}/history")
    rows = page.locator("table[data-testid=unit-history] tbody tr")
    events = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        if cells.nth(3).inner_text().strip() != f"#{target.case_id}":
            continue
        events.append({"what": cells.nth(1).locator("strong").inner_text(), "who": cells.nth(2).inner_text(),
                       "seq": int(cells.nth(5).inner_text()), "hash": cells.nth(6).locator("code").inner_text(),
                       "full": cells.nth(6).locator("code").get_attribute("title") or ""})
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True) and seqs == list(range(len(seqs), 0, -1)), seqs  # newest first, none missing
    events.reverse()
    assert events[0]["what"] == "登记"
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["full"]) and e["full"].startswith(e["hash"]) for e in events)
    assert len({e["full"] for e in events}) == len(events)
    documents = sum(1 for e in events if e["what"] == "上传报送材料")  # the demo attached none to this case
    assert documents >= 1
    unit, coordinator = "创建单位", "协调人员"
    expected = [("填写自评", unit), ("上传佐证材料", unit), ("上传佐证材料", unit), *[("上传报送材料", unit)] * documents,
                ("报送自评材料", unit), ("评价验收", coordinator), ("通知整改", coordinator),
                ("申请复核验收", unit), ("复核验收", coordinator)]
    assert [(e["what"], e["who"].split()[-1]) for e in events[-len(expected):]] == expected, events
    snap(page, "auditor-unit-history")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="审计核验").click()
    page.wait_for_url(f"{console.base}/audit")
    # the check runs in the background: the page says it waits, refreshes itself, then shows the result
    page.get_by_test_id("audit-run").click()
    page.locator("[data-testid=audit-ok]").wait_for(timeout=30_000)
    assert page.locator("[data-testid=audit-findings]").count() == 0
    assert page.locator("[data-testid=audit-waiting]").count() == 0
    snap(page, "auditor-audit")


# ---------------------------------------------------------------- 4. CSRF

def test_a_form_with_another_csrf_token_is_refused_and_changes_nothing(console, page) -> None:
    case_id = a_case(console, "submitted")
    sign_in(page, console.base, COORDINATOR, DEMO_PASSWORD)
    go(page, console.base, f"/cases/{case_id}")
    before = (state(page), version(page), page.locator("ol.timeline li").count())
    form = open_action(page, "return")
    form.locator("textarea[name=reason]").fill("请补充佐证材料")
    form.evaluate("f => { f.querySelector('input[name=csrf]').value = 'forged-' + 'x'.repeat(40); }")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.get_by_role("button", name="退回修改").click()
    assert answer.value.status == 403
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "无权操作"
    alert = page.inner_text("[role=alert]")
    assert "CSRF 校验未通过" in alert and "请刷新页面后重新提交" in alert
    assert "未作任何修改" in page.inner_text("main")
    go(page, console.base, f"/cases/{case_id}")
    assert (state(page), version(page), page.locator("ol.timeline li").count()) == before

    # signing out without the token does not end the session either
    page.locator("form[action='/signout'] input[name=csrf]").evaluate("i => i.remove()")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("[data-testid=who] button", has_text="退出").click()
    assert answer.value.status == 403
    go(page, console.base, f"/cases/{case_id}")
    assert page.url == f"{console.base}/cases/{case_id}" and state(page) == before[0]


# ---------------------------------------------------------------- 5. scope

def test_outside_ones_scope_a_case_is_not_found(console, page) -> None:
    sign_in(page, console.base, CITY_COORDINATOR, DEMO_PASSWORD)
    go(page, console.base, "/cases")
    assert page.inner_text("[data-testid=total]") == "0"  # the demo's cases are all provincial
    for path in ("/cases/1", "/cases/1/sheet", "/units/1/history"):
        go(page, console.base, path, status=404)
        assert page.locator("h1").inner_text() == "未找到"
        assert "不存在" in page.inner_text("[role=alert]")
    sign_out(page)

    sign_in(page, console.base, "unit01", DEMO_PASSWORD)
    go(page, console.base, "/cases/1")
    assert state(page)  # its own case
    for path in ("/cases/2", "/cases/2/sheet", "/cases/2/history.csv"):
        go(page, console.base, path, status=404)
        assert page.locator("h1").inner_text() == "未找到"
        assert "案件 2 不存在" in page.inner_text("[role=alert]")


# ---------------------------------------------------------------- 6. 100,000 cases (slow)

def bench_console() -> ModuleType:
    """bench/console.py (its people) and through it bench/api.py (its seeding), from their files."""
    if "bench_console" in sys.modules:
        return sys.modules["bench_console"]
    spec = importlib.util.spec_from_file_location("bench_console", REPO / "bench" / "console.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_console"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_pages_over_100000_cases(page, tmp_path: Path) -> None:
    """bench/api.py's database (a province of 11 cities × 10 counties, a unit and a case per unit,
    2 events each, the progress counts repaired), bench/console.py's people with a password,
    ``workflow serve`` on it (no scheduler: it holds the lock), and the pages in the browser."""
    bench = bench_console()
    n = 100_000
    started = time.monotonic()
    db = tmp_path / "big.db"
    bench.api.build(db, n, 2)
    url = f"sqlite:///{db}"
    people = bench.make_people(url, bench.datetime.now(bench.UTC), n, 0)
    seeded = time.monotonic() - started
    lock = bench.api.hold_scheduler_lock(db)  # serve never sweeps 100,000 cases of a past round here
    env = dict(os.environ, WORKFLOW_DATABASE_URL=url, WORKFLOW_EVIDENCE_DIR=str(tmp_path / "evidence"),
               WORKFLOW_MAILDIR=str(tmp_path / "mail"))
    env.pop("WORKFLOW_SMTP_HOST", None)
    proc, base = start_serve(env, tmp_path / "serve.log", cwd=tmp_path)
    try:
        timings = {"seed": seeded}
        t = time.monotonic()
        sign_in(page, base, people["province"]["login"], bench.PASSWORD)
        assert page.url == f"{base}/"
        timings["home"] = time.monotonic() - t
        assert "创建进度" in page.locator("h1").inner_text()
        assert f"{n}" in page.inner_text(".grid3")  # 本轮案件 100000

        t = time.monotonic()
        go(page, base, "/cases")
        timings["cases"] = time.monotonic() - t
        assert page.inner_text("[data-testid=total]") == str(n)
        assert page.locator("table.list tbody tr").count() == 50
        t = time.monotonic()
        submit(page, page.get_by_role("link", name="下一页"))
        timings["cases page 2"] = time.monotonic() - t
        assert page.locator("table.list tbody tr").first.locator("td").nth(1).inner_text() == "51"

        t = time.monotonic()
        go(page, base, f"/cases/{n}")
        timings["case"] = time.monotonic() - t
        assert page.locator("h1").inner_text().startswith(f"单位{n:06d}")
        assert state(page) in ("已自评", "已登记")
        sign_out(page)

        sign_in(page, base, people["unit"]["login"], bench.PASSWORD)
        assert page.locator("h1").inner_text().startswith("我的任务")
        print("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    finally:
        stop(proc)
        lock.close()

