"""The console without a mouse and without JavaScript.

- Every page of each role (and the two one reaches before signing in) answers 200 and shows
  what it is about with JavaScript disabled (signing in and the case list's filter, forms, work
  too); every form control on it (inputs, selects, textareas, those inside a closed <details>
  as well) has a label (``<label for>``, or ``aria-label``/``aria-labelledby``), every button a
  name, every image an alt text. ``-s`` prints the pages checked and their controls.
- A unit's clerk fills in part of the sheet with the keyboard only: Tab from the top of the page
  into the first score field, type, Tab on to the next criteria, Enter saves.
"""
from __future__ import annotations

import sqlite3

import pytest

from workflow.demo import ADMIN_LOGIN, DEMO_PASSWORD

from .conftest import Console, sign_in
from .test_console_journeys import AUDITOR, COORDINATOR, a_case, go, self_assessed_case, sign_out

# Form controls with no name a screen reader could read; buttons without a name; images without alt.
UNLABELLED = """() => {
  const named = el => (el.labels && el.labels.length > 0) || (el.getAttribute('aria-label') || '').trim()
    || (el.getAttribute('aria-labelledby') || '').split(/\\s+/).some(id => id && document.getElementById(id));
  const short = el => el.outerHTML.slice(0, 160);
  const controls = [...document.querySelectorAll('input, select, textarea')].filter(el => el.type !== 'hidden');
  const buttons = [...document.querySelectorAll('button, input[type=submit], input[type=button]')];
  return {
    controls: controls.length,
    visible: controls.filter(el => el.getClientRects().length > 0).length,
    unlabelled: controls.filter(el => !named(el)).map(short),
    nameless_buttons: buttons.filter(el => !(el.textContent || el.value || el.getAttribute('aria-label') || '').trim()).map(short),
    no_alt: [...document.querySelectorAll('img')].filter(el => !el.hasAttribute('alt')).map(short),
  };
}"""


def pages_of(role: str, console: Console) -> list[tuple[str, str]]:
    """(path, a text the page shows) for every page of the role, on the demo's data."""
    target = self_assessed_case(console)
    submitted = a_case(console, "submitted")
    unit = 1
    with sqlite3.connect(f"file:{console.tmp / 'workflow.db'}?mode=ro", uri=True) as db:
        clerk = db.execute("SELECT id FROM accounts WHERE login = 'unit01'").fetchone()[0]  # in every scope here
    if role == "anonymous":
        return [("/signin", "登录名"), ("/forgot", "发送重置链接")]
    if role == "unit":
        own = target.case_id
        return [("/", "我的任务"), ("/cases", "共"), (f"/cases/{own}", "评分表（自评 · 核查 · 复核）"),
                (f"/cases/{own}/sheet", "节约型机关创建自评打分表"), ("/password", "当前密码")]
    common = [("/cases", "共"), ("/cases?state=submitted&sort=unit", "已报送"),
              (f"/cases/{submitted}", "完整历史"), (f"/cases/{submitted}/sheet", "本页为只读"),
              ("/calendar", "本轮日程"), ("/audit", "哈希链核验"), (f"/units/{unit}/history", "历年创建记录"),
              ("/password", "当前密码")]
    if role == "coordinator":
        return [("/", "创建进度"), ("/?jurisdiction=shanxi-taiyuan", "太原"), *common, ("/people", "个账号"),
                (f"/people/{clerk}", "unit01")]
    if role == "auditor":
        return [("/", "核验本范围的哈希链"), ("/?view=progress", "创建进度"), *common]
    return [("/", "创建进度"), *common, ("/people", "个账号"), (f"/people/{clerk}", "unit01")]  # admin


LOGINS = {"unit": None, "coordinator": COORDINATOR, "auditor": AUDITOR, "admin": ADMIN_LOGIN}


@pytest.mark.parametrize("role", ["anonymous", "unit", "coordinator", "auditor", "admin"])
def test_every_page_reads_without_javascript_and_labels_its_controls(console, page_without_js, role) -> None:
    page = page_without_js
    if role != "anonymous":
        login = LOGINS[role] or self_assessed_case(console).login
        sign_in(page, console.base, login, DEMO_PASSWORD)  # the form works without JavaScript
        assert page.url == f"{console.base}/"
    checked = []
    for path, text in pages_of(role, console):
        go(page, console.base, path)
        assert page.locator("h1").first.is_visible(), path
        main = page.inner_text("main")
        assert text in main, (path, text, main[:500])
        assert page.locator("link[rel=stylesheet]").count() >= 1
        found = page.evaluate(UNLABELLED)
        assert found["unlabelled"] == [], (path, found["unlabelled"])
        assert found["nameless_buttons"] == [], (path, found["nameless_buttons"])
        assert found["no_alt"] == [], (path, found["no_alt"])
        checked.append(f"{path} ({found['visible']}/{found['controls']} controls visible)")
    # a GET form (the case list's filter) works without JavaScript too
    if role in ("coordinator", "auditor", "admin"):
        go(page, console.base, "/cases")
        page.select_option("#f-state", "certified")
        with page.expect_navigation():
            page.get_by_role("button", name="筛选").click()
        assert "state=certified" in page.url
        states = page.locator("table.list tbody td span.state").all_inner_texts()
        assert states and set(states) == {"已认定"}
    if role != "anonymous":
        sign_out(page)
    print(f"{role}: " + "; ".join(checked))


def test_the_sheet_with_the_keyboard_only(console, page) -> None:
    target = self_assessed_case(console)
    sign_in(page, console.base, target.login, DEMO_PASSWORD)
    go(page, console.base, f"/cases/{target.case_id}/sheet")

    def focused() -> dict:
        return page.evaluate("() => { const el = document.activeElement; return {tag: el.tagName, "
                             "name: el.getAttribute('name') || '', text: (el.innerText || '').trim(), "
                             "id: el.id, value: el.value || ''}; }")

    def tab_to_score(limit: int = 40) -> dict:
        """Tab until a score field (``e_<code>``) has the focus; what was passed on the way."""
        for _ in range(limit):
            page.keyboard.press("Tab")
            now = focused()
            if now["name"].startswith("e_"):
                return now
        raise AssertionError(f"no score field within {limit} tabs (at {focused()})")

    # the first Tab from the top reaches the skip link
    page.keyboard.press("Tab")
    assert focused()["text"] == "跳到正文"
    total = page.locator("table[data-sheet] output[data-total]")
    before = total.inner_text()
    typed = {}
    for value in ("7.5", "1", "1.5"):
        field = tab_to_score()
        page.keyboard.press("Control+A")  # (Tab selects a field's text already; this is the clerk's habit)
        page.keyboard.type(value)
        typed[field["name"]] = value
        assert focused()["value"] == value
    assert len(typed) == 3
    assert total.inner_text() != before
    # Enter in a field sends the sheet's form (its only submit button is 保存自评表; the upload
    # buttons in the table belong to their own forms)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/cases/{target.case_id}/sheet?saved=1")
    assert page.inner_text("[data-testid=notice]") == "已保存自评表。"
    for name, value in typed.items():
        assert page.input_value(f"#sheet-form input[name='{name}']") == value
