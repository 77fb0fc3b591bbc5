"""Chain checks in the background (``service/audit_runs.py`` over the ``AuditRunStore`` port):
the same answers from the memory store, SQLite and PostgreSQL — a check asked for once while it
waits, claimed once, kept with its result, the stale ones failed, and what each scope sees."""
from __future__ import annotations

from datetime import timedelta

from workflow.domain.access import Principal
from workflow.service.audit_runs import (
    EVERYTHING,
    STALE_AFTER,
    audit_view,
    covering,
    in_scope,
    request_check,
    run_queued,
)
from workflow.service.ports import Storage

from .worlds import NOW, rich_world

CITY = "/shanxi/shanxi-taiyuan/"


def now() -> object:
    return NOW


def test_the_scopes_that_cover_a_scope() -> None:
    assert covering(EVERYTHING) == [EVERYTHING]
    assert covering("/shanxi/") == ["", "/shanxi/"]
    assert covering(CITY) == ["", "/shanxi/", CITY]


def test_a_check_is_asked_for_once_while_it_waits_and_claimed_once(storage: Storage) -> None:
    first, new = request_check(storage, "/shanxi/", "a", NOW)
    again, new_again = request_check(storage, "/shanxi/", "b", NOW)
    other, new_other = request_check(storage, CITY, "c", NOW)
    assert new and not new_again and again == first and new_other and other.id != first.id
    assert first.status == "queued" and first.requested_at == NOW and first.requested_by == "a"
    assert [r.id for r in storage.audit_runs.queued()] == [first.id, other.id]
    with storage.unit_of_work(core=True) as uow:
        assert uow.audit_runs.claim(first.id, NOW)
        assert not uow.audit_runs.claim(first.id, NOW)  # taken already
        uow.commit()
    running = storage.audit_runs.get(first.id)
    assert running is not None and running.status == "running" and running.started_at == NOW
    assert [r.id for r in storage.audit_runs.queued()] == [other.id]
    # newest first, only the scopes asked for
    assert [r.id for r in storage.audit_runs.runs(["/shanxi/", CITY], 10)] == [other.id, first.id]
    assert [r.id for r in storage.audit_runs.runs([CITY], 10)] == [other.id]
    assert storage.audit_runs.runs([], 10) == [] and storage.audit_runs.get(99_999) is None


def test_a_check_runs_and_keeps_its_counts(storage: Storage) -> None:
    rich_world(storage)
    run, _ = request_check(storage, "/shanxi/", "a", NOW)
    assert run_queued(storage, now) == [run.id]  # type: ignore[arg-type]
    assert run_queued(storage, now) == []  # type: ignore[arg-type]
    done = storage.audit_runs.get(run.id)
    assert done is not None and done.status == "done" and done.ok is True and done.finished_at == NOW
    assert done.result is not None and done.result["findings"] == [] and done.result["findings_total"] == 0
    counted = sum(1 for c in storage.all_cases() if storage.read.case_scope(c.id).path.startswith("/shanxi/"))
    assert counted and done.result["counts"]["cases"] == counted and done.result["checkpoint"] is None


def test_a_result_is_kept_as_json_and_a_failure_with_its_reason(storage: Storage) -> None:
    run, _ = request_check(storage, EVERYTHING, "scheduler", NOW)
    result = {"counts": {"cases": 2}, "findings": [{"kind": "case", "key": 7, "seq": None, "what": "x",
                                                    "path": CITY}], "findings_total": 1, "checkpoint": None}
    with storage.unit_of_work(core=True) as uow:
        uow.audit_runs.claim(run.id, NOW)
        uow.audit_runs.finish(run.id, NOW + timedelta(seconds=3), ok=False, result=result, error=None)
        uow.commit()
    kept = storage.audit_runs.get(run.id)
    assert kept is not None and kept.status == "done" and kept.ok is False and kept.result == result
    failing, _ = request_check(storage, EVERYTHING, "scheduler", NOW)
    with storage.unit_of_work(core=True) as uow:
        uow.audit_runs.claim(failing.id, NOW)
        uow.audit_runs.finish(failing.id, NOW, ok=None, result=None, error="x" * 500)
        uow.commit()
    failed = storage.audit_runs.get(failing.id)
    assert failed is not None and failed.status == "failed" and failed.error == "x" * 400


def test_a_check_left_running_by_a_stopped_process_is_failed(storage: Storage) -> None:
    old, _ = request_check(storage, "/shanxi/", "a", NOW - STALE_AFTER - timedelta(hours=1))
    with storage.unit_of_work(core=True) as uow:
        uow.audit_runs.claim(old.id, NOW - STALE_AFTER - timedelta(minutes=1))
        uow.commit()
    young, _ = request_check(storage, CITY, "a", NOW)
    with storage.unit_of_work(core=True) as uow:
        uow.audit_runs.claim(young.id, NOW - timedelta(minutes=5))
        assert uow.audit_runs.interrupt(NOW - STALE_AFTER, NOW, "stopped") == 1
        uow.commit()
    assert storage.audit_runs.get(old.id).status == "failed"  # type: ignore[union-attr]
    assert storage.audit_runs.get(young.id).status == "running"  # type: ignore[union-attr]


def test_what_a_scope_sees_of_a_broader_check() -> None:
    findings = [{"kind": "case", "key": 1, "path": CITY}, {"kind": "case", "key": 2, "path": "/shanxi/shanxi-datong/"},
                {"kind": "operator", "key": "operator/accounts", "path": None}]
    city = in_scope(findings, 3, EVERYTHING, CITY)
    assert [f["key"] for f in city.shown] == [1] and city.outside == 1 and city.unplaced == 1
    everything = in_scope(findings, 3, EVERYTHING, EVERYTHING)
    assert len(everything.shown) == 3 and everything.outside == everything.unplaced == 0
    own = in_scope(findings, 3, CITY, CITY)  # a check of the scope itself: all of it is the scope's
    assert len(own.shown) == 3


def test_a_page_shows_the_latest_check_covering_the_scope(storage: Storage) -> None:
    city = Principal(1, "wang", "coordinator", jurisdiction_path=CITY)
    assert audit_view(storage, city).latest is None and audit_view(storage, city).ok is None
    broad, _ = request_check(storage, EVERYTHING, "scheduler", NOW)
    view = audit_view(storage, city)
    assert view.waiting is not None and view.waiting.id == broad.id and view.latest is None
    run_queued(storage, now)  # type: ignore[arg-type]
    view = audit_view(storage, city)
    assert view.latest is not None and view.latest.id == broad.id and view.waiting is None and view.ok is True
    # another city's check does not cover this one
    other, _ = request_check(storage, "/shanxi/shanxi-datong/", "zhao", NOW)
    run_queued(storage, now)  # type: ignore[arg-type]
    assert audit_view(storage, city).latest.id == broad.id  # type: ignore[union-attr]
    assert other.id not in [r.id for r in audit_view(storage, city).recent]
