"""审计 (GET /audit) and a unit's history (GET /units/{id}/history and its CSV), on the demo
world over SQLite, signed in through the console's own sign-in."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from workflow.adapters.checkpoint_files import generate_key
from workflow.bootstrap import App
from workflow.clock import BUSINESS_TZ
from workflow.demo import EXAMPLE_ROUND
from workflow.service.queries import list_cases, unit_history

from .worlds import CHECKPOINTS, DemoTemplate, demo_app, demo_template, signed_in

NOW = datetime(2026, 11, 3, 10, 30, tzinfo=BUSINESS_TZ)


@pytest.fixture(scope="module")
def demo_world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoTemplate:
    """The demo loaded once per module (a database file and its calendars), copied per test."""
    return demo_template(tmp_path_factory, sqlite_template, NOW, name="audit-demo", **CHECKPOINTS)


@pytest.fixture
def world(demo_world: DemoTemplate, tmp_path: Path) -> Iterator[App]:
    with demo_app(demo_world, tmp_path) as application:
        yield application


def live_case_of(application: App, round_id: str, unit_id: int) -> int:
    return next(c.id for c in list_cases(application.db, round_id=round_id, unit_id=unit_id, limit=10))


def tamper(application: App, case_id: int, seq: int) -> None:
    """Change a stored event behind the application's back, as someone with the database
    owner's rights could (the append-only triggers dropped first; tests/integration/test_audit.py)."""
    with application.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER events_no_update")
        conn.exec_driver_sql("DROP TRIGGER events_no_delete")
        changed = conn.exec_driver_sql(
            "UPDATE events SET payload = '{\"note\":\"改过\"}' WHERE case_id = ? AND seq = ?", (case_id, seq))
        assert changed.rowcount == 1


# ---------------------------------------------------------------- /audit

def check_now(client, expect_new: bool = True) -> str:
    """Press 立即核验: the check is queued and run after the response (TestClient runs the
    background task before it returns); the page it leads to."""
    from .worlds import csrf_of

    page = client.get("/audit")
    answer = client.post("/audit/run", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert f"new={int(expect_new)}" in answer.headers["location"]
    return client.get("/audit").text


@pytest.mark.parametrize("login", ["audit-shanxi", "coord-shanxi", "demo-admin"])
def test_the_clean_demo_has_no_findings_and_no_checkpoint_yet(world: App, login: str) -> None:
    client = signed_in(world, login)
    page = client.get("/audit")
    assert page.status_code == 200, page.text
    assert 'data-testid="audit-none"' in page.text  # nothing checked yet: the page never checks itself
    assert 'data-testid="audit-ok"' not in page.text and 'data-testid="audit-findings"' not in page.text
    assert "/units/单位编号/history.csv" in page.text
    html = check_now(client)
    assert 'data-testid="audit-ok"' in html and "未发现问题" in html
    assert 'data-testid="audit-findings"' not in html and 'data-testid="audit-waiting"' not in html
    assert 'data-testid="no-checkpoint"' in html and "尚未生成签名检查点" in html
    assert 'http-equiv="refresh"' not in html  # nothing waiting: no refresh


def test_a_unit_is_refused_the_audit_page_with_403(world: App) -> None:
    client = signed_in(world, "unit01")
    assert client.get("/audit").status_code == 403
    from .worlds import csrf_of

    token = csrf_of(client.get("/").text)
    assert client.post("/audit/run", data={"csrf": token}).status_code == 403
    assert world.db.audit_runs.queued() == [] and world.db.audit_runs.runs(["", "/shanxi/"], 10) == []


def test_a_check_without_the_csrf_token_is_refused_and_queues_nothing(world: App) -> None:
    client = signed_in(world, "audit-shanxi")
    assert client.post("/audit/run", data={"csrf": "forged"}).status_code == 403
    assert world.db.audit_runs.runs(["", "/shanxi/"], 10) == []


def test_a_tampered_event_is_a_finding_in_the_scope_that_holds_it(world: App, demo_world: DemoTemplate) -> None:
    case_id = live_case_of(world, demo_world.round_id, 3)
    tamper(world, case_id, 2)
    page = check_now(signed_in(world, "audit-shanxi"))
    assert 'data-testid="audit-findings"' in page and "发现 1 处问题" in page
    assert f"案件 {case_id} · 第 2 条事件" in page and f'href="/cases/{case_id}"' in page
    assert 'data-testid="audit-ok"' not in page
    # 太原's coordinator sees the province's check, which covers 太原: the provincial unit's case is not in 太原
    taiyuan = signed_in(world, "coord-taiyuan").get("/audit").text
    assert 'data-testid="audit-ok"' in taiyuan and "另有 1 处问题属于其他地区" in taiyuan
    assert f"案件 {case_id}" not in taiyuan
    # and a check of 太原's own subtree finds nothing
    own = check_now(signed_in(world, "coord-taiyuan"))
    assert 'data-testid="audit-ok"' in own and "另有" not in own and "/shanxi/shanxi-taiyuan/" in own


def test_the_nightly_check_of_everything_covers_every_scope(world: App, demo_world: DemoTemplate) -> None:
    """The scheduler's check (scope: every jurisdiction) is what a page shows until a newer one of
    the person's own scope; its findings shown by where they are."""
    from workflow.service.audit_runs import EVERYTHING, SCHEDULER, request_check, run_queued

    case_id = live_case_of(world, demo_world.round_id, 3)
    tamper(world, case_id, 2)
    run, new = request_check(world.db, EVERYTHING, SCHEDULER, world.clock.now())
    assert new and request_check(world.db, EVERYTHING, SCHEDULER, world.clock.now()) == (run, False)
    waiting = signed_in(world, "coord-taiyuan").get("/audit").text
    assert 'data-testid="audit-waiting"' in waiting and "全库的核验排队等候" in waiting
    assert '<meta http-equiv="refresh" content="5; url=/audit">' in waiting
    assert run_queued(world.db, world.clock.now) == [run.id]
    assert run_queued(world.db, world.clock.now) == []  # nothing left: a run is run once
    admin = signed_in(world, "demo-admin").get("/audit").text
    assert "发现 1 处问题" in admin and f"案件 {case_id}" in admin
    province = signed_in(world, "audit-shanxi").get("/audit").text
    assert "发现 1 处问题" in province and "全库或上级范围的核验" in province
    assert 'data-testid="audit-ok"' in signed_in(world, "coord-taiyuan").get("/audit").text


def test_a_second_request_while_one_waits_is_the_same_check(world: App) -> None:
    from workflow.service.audit_runs import request_check

    first, new = request_check(world.db, "/shanxi/", "audit-shanxi", world.clock.now())
    again, new_again = request_check(world.db, "/shanxi/", "coord-shanxi", world.clock.now())
    assert new and not new_again and again.id == first.id
    page = signed_in(world, "audit-shanxi").get("/audit").text
    assert 'data-testid="audit-waiting"' in page and 'data-testid="audit-run" disabled' in page


def test_a_check_that_fails_says_so_and_a_stale_one_is_interrupted(world: App) -> None:
    from datetime import timedelta

    from workflow.service.audit_runs import STALE_AFTER, run_queued

    with world.db.unit_of_work(core=True) as uow:
        stale = uow.audit_runs.add(scope="/shanxi/", requested_by="audit-shanxi",
                                   requested_at=world.clock.now() - STALE_AFTER - timedelta(hours=1))
        assert uow.audit_runs.claim(stale, world.clock.now() - STALE_AFTER - timedelta(minutes=1))
        uow.commit()

    def broken() -> object:
        raise OSError("/srv/secret/path unreadable")

    with world.db.unit_of_work(core=True) as uow:
        failing = uow.audit_runs.add(scope="/shanxi/", requested_by="audit-shanxi", requested_at=world.clock.now())
        uow.commit()
    assert run_queued(world.db, world.clock.now, broken) == [failing]  # type: ignore[arg-type]
    assert world.db.audit_runs.get(stale).status == "failed"  # type: ignore[union-attr]
    page = signed_in(world, "audit-shanxi").get("/audit").text
    assert 'data-testid="audit-failed"' in page and "未能完成" in page and "OSError" in page
    assert "/srv/secret" not in page  # never a server path


def test_the_latest_signed_checkpoint_is_shown_and_checked(world: App, demo_world: DemoTemplate) -> None:
    from workflow.service.checkpoints import write_checkpoint

    generate_key(world.settings.checkpoint_key)
    done = write_checkpoint(world.db, world.checkpoint_store(), world.checkpoint_signer(), world.clock.now())
    client = signed_in(world, "audit-shanxi")
    assert 'data-testid="checkpoint-newer"' in client.get("/audit").text  # no check has compared it yet
    page = check_now(client)
    assert f"#{done.checkpoint.sequence}" in page and "签名有效" in page and "与检查点记录一致" in page
    assert done.checkpoint.merkle_root[:16] in page and "尚未生成签名检查点" not in page
    assert 'data-testid="checkpoint-newer"' not in page
    tamper(world, live_case_of(world, demo_world.round_id, 3), 2)
    page = check_now(client)
    assert "与检查点记录不一致" in page and 'data-testid="audit-findings"' in page


def test_the_audit_form_opens_a_units_history(world: App) -> None:
    client = signed_in(world, "audit-shanxi")
    answer = client.get("/audit/unit?unit=3", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/units/3/history"
    bad = client.get("/audit/unit?unit=abc")
    assert bad.status_code == 422 and "单位编号" in bad.text


# ---------------------------------------------------------------- a unit's history

@pytest.mark.parametrize("login", ["audit-shanxi", "coord-shanxi", "demo-admin", "unit03"])
def test_a_units_history_across_rounds(world: App, login: str, demo_world: DemoTemplate) -> None:
    result = demo_world.result
    live, example = live_case_of(world, result.round_id, 3), live_case_of(world, EXAMPLE_ROUND, 3)
    client = signed_in(world, login)
    page = client.get("/units/3/history")
    assert page.status_code == 200, page.text
    html = page.text
    for case_id, round_id in ((live, result.round_id), (example, EXAMPLE_ROUND)):
        assert f'href="/cases/{case_id}"' in html and round_id in html
    assert "登记" in html and "评价验收" in html and "本轮结束未认定" in html  # event names in Chinese
    assert "2021年5月26日 10:00" in html  # the example round opened on the notice's day, Beijing time
    event = next(e for e in unit_history(world.db, 3)[1] if e.case_id == example)
    assert f'title="{event.hash}">{event.hash[:12]}</code>' in html  # short, the whole on hover
    assert 'href="/units/3/history.csv"' in html

    only = client.get(f"/units/3/history?round={EXAMPLE_ROUND}").text
    rows = re.findall(r'href="/cases/(\d+)"', only.split('data-testid="unit-history"', 1)[1])
    assert rows and set(rows) == {str(example)}


def test_a_units_history_outside_the_scope_is_404(world: App) -> None:
    assert signed_in(world, "coord-taiyuan").get("/units/3/history").status_code == 404  # a provincial unit
    assert signed_in(world, "coord-taiyuan").get("/units/3/history.csv").status_code == 404
    unit = signed_in(world, "unit03")
    assert unit.get("/units/4/history").status_code == 404  # another unit
    assert unit.get("/units/4/history.csv").status_code == 404
    assert unit.get("/units/999999/history").status_code == 404
    assert unit.get("/units/3/history?round=nowhere-2026").status_code == 404


def test_a_units_history_as_csv(world: App) -> None:
    answer = signed_in(world, "audit-shanxi").get("/units/3/history.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "unit-3.csv" in answer.headers["content-disposition"]
    lines = answer.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("case_id,seq,event,type") and len(lines) > 10
    assert any("登记" in line and "CaseRegistered" in line for line in lines)
