"""Conflicting writers on one case: exactly one wins, the others get a conflict, the chain stays intact."""
from __future__ import annotations

import multiprocessing
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.domain.errors import ConflictError, DomainError
from workflow.service.audit import verify
from workflow.service.cases import perform_action

from ..support import COORDINATOR, OPERATOR, RUBRICS, open_shanxi, ready_to_submit, sheet_for, unit_actor
from .workers import fire_action

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
RUBRIC = RUBRICS.get("shanxi-2020")
# Conflicting things people may do to a self-assessed case at the same moment.
MOVES = [("submit", {}, "unit"), ("self_assess", {"entries": {"1.1.1": "8"}}, "unit"),
         ("withdraw", {"reason": "merged into another unit"}, "coordinator"),
         ("close", {"reason": "round ended"}, "coordinator")]


def _actor(kind: str, unit_id: int):
    return unit_actor(unit_id) if kind == "unit" else COORDINATOR


def _prepared_case(db: Database) -> tuple[int, int, int]:
    open_shanxi(db, NOW)
    case_id, unit_id = 1, 1
    ready_to_submit(db, case_id, unit_id, "85", NOW)
    with db.unit_of_work() as uow:
        return case_id, unit_id, uow.get(case_id).version


def test_twenty_threads_one_winner(db: Database) -> None:
    case_id, unit_id, version = _prepared_case(db)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        action, data, kind = MOVES[i % len(MOVES)]
        barrier.wait(timeout=30)
        try:
            perform_action(db, case_id, action, data, _actor(kind, unit_id), NOW, expected_version=version)
            outcome = "ok"
        except ConflictError:
            outcome = "conflict"
        except DomainError as exc:
            outcome = f"other: {exc}"
        except Exception as exc:  # a database error leaking through is a failure of the store
            outcome = f"error: {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Counter(outcomes) == {"ok": 1, "conflict": 19}, outcomes
    with db.unit_of_work() as uow:
        case = uow.get(case_id)
        events = uow.events(case_id)
    assert case.version == version + 1 == len(events)
    report = verify(db)
    assert report.ok, report.findings


def test_several_processes_one_winner(db_url: str) -> None:
    engine = make_engine(db_url)
    db = Database(engine)
    case_id, unit_id, version = _prepared_case(db)
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = []
    for i in range(n):
        action, data, kind = MOVES[i % len(MOVES)]
        actor = f"unit:{unit_id}" if kind == "unit" else str(COORDINATOR)
        procs.append(ctx.Process(target=fire_action,
                                 args=(db_url, case_id, action, data, actor, version, barrier, results)))
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert Counter(o[0] for o in outcomes) == {"ok": 1, "conflict": n - 1}, outcomes
    with db.unit_of_work() as uow:
        assert uow.get(case_id).version == version + 1
    assert verify(db).ok
    engine.dispose()


@pytest.mark.parametrize("writers", [4])
def test_threads_on_different_cases_all_succeed(db: Database, writers: int) -> None:
    """No false conflicts: writers on different cases never refuse each other."""
    open_shanxi(db, NOW)
    errors: list[str] = []

    def walk(case_id: int) -> None:
        try:
            unit = unit_actor(case_id)  # the example units are registered in order: case i is unit i
            ready_to_submit(db, case_id, case_id, "90", NOW)
            for action, data, actor in (("submit", {}, unit), ("verify", {"entries": sheet_for(RUBRIC, "91")},
                                                                COORDINATOR), ("certify", {}, COORDINATOR)):
                perform_action(db, case_id, action, data, actor, NOW)
        except Exception as exc:
            errors.append(f"case {case_id}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=walk, args=(i,)) for i in range(1, writers * 3 + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    certified = [c for c in db.all_cases() if c.state == "certified"]
    assert len(certified) == writers * 3
    assert verify(db).ok


def test_readers_do_not_wait_for_a_writer_on_sqlite(sqlite_db: Database) -> None:
    """A coordinator's `cases show` answers while a sweep holds the write lock."""
    import sqlite3

    from workflow.service.queries import show_case

    open_shanxi(sqlite_db, NOW)
    writer = sqlite3.connect(sqlite_db.engine.url.database, isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    try:
        detail = show_case(sqlite_db, 1, NOW)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert detail.case.id == 1 and detail.allowed


def test_the_same_unit_registered_twice_at_once_is_one_case(db: Database) -> None:
    from workflow.domain.errors import AlreadyExists
    from workflow.files import import_units
    from workflow.service.cases import register_case

    from ..support import ADMIN, write_units_csv

    open_shanxi(db, NOW)
    import_units(db, write_units_csv(Path(tempfile.mkdtemp()) / "late.csv", [("省新设局", "shanxi", "行政机关")]),
                 NOW, actor=OPERATOR)
    with db.engine.connect() as conn:
        unit_id = conn.exec_driver_sql("SELECT id FROM units WHERE name = '省新设局'").scalar()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def register() -> None:
        barrier.wait(timeout=30)
        try:
            register_case(db, "shanxi-2021", unit_id, ADMIN, NOW)
            outcome = "ok"
        except AlreadyExists:
            outcome = "exists"
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Counter(outcomes) == {"ok": 1, "exists": 7}, outcomes
    assert verify(db).ok
