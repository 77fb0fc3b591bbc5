"""Who schedules: one leader among processes (PostgreSQL advisory lock, SQLite lock file),
another takes over when it goes; and when the jobs fire."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from workflow.adapters.db.engine import make_engine
from workflow.adapters.scheduler import LOCK_KEY, LeaderLock, LeaderLoop, build_scheduler, schema_key
from workflow.clock import BUSINESS_TZ


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_one_leader_and_a_takeover(engine) -> None:
    first, second = LeaderLock(engine, "first"), LeaderLock(engine, "second")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.holder() is not None and "first" in first.holder()
    first.release()
    assert second.try_acquire()
    assert "second" in second.holder()
    assert not first.try_acquire()
    second.release()


def test_a_dead_leaders_lock_is_free_postgres(pg_url: str) -> None:
    """The leader's connection dies (process killed): its session lock goes with it."""
    engine = make_engine(pg_url)
    leader, follower = LeaderLock(engine, "leader"), LeaderLock(engine, "follower")
    assert leader.try_acquire()
    with engine.begin() as conn:
        key = schema_key(conn.execute(text("SELECT current_schema()")).scalar())
        killed = conn.execute(text(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' "
            "AND l.classid = :k1 AND l.objid = :k2 AND l.objsubid = 2 AND l.granted"),
            {"k1": LOCK_KEY, "k2": key}).scalar()
    assert killed
    assert not leader.still_held()
    assert follower.try_acquire()
    follower.release()
    engine.dispose()


def test_the_loop_starts_the_scheduler_only_when_leading(engine) -> None:
    holder = LeaderLock(engine, "other")
    assert holder.try_acquire()
    started = threading.Event()

    class FakeScheduler:
        def start(self) -> None:
            started.set()

        def shutdown(self, wait: bool = True) -> None:
            pass

    loop = LeaderLoop(LeaderLock(engine, "me"), FakeScheduler, retry_seconds=0.05)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        assert not started.wait(0.3)  # someone else leads
        holder.release()
        assert started.wait(10)  # takes over at its next try
    finally:
        loop.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_jobs_fire_hourly_at_nine_and_every_thirty_seconds() -> None:
    scheduler = build_scheduler(lambda: None, lambda: None, sweep_minutes=60, dispatch_seconds=30)
    scheduler.start(paused=True)  # job defaults are applied when jobs reach the job store
    jobs = {job.id: job for job in scheduler.get_jobs()}
    scheduler.shutdown(wait=False)
    assert set(jobs) == {"sweep", "sweep-0900", "dispatch"}
    now = datetime(2021, 10, 20, 8, 15, tzinfo=BUSINESS_TZ)
    nine = jobs["sweep-0900"].trigger.get_next_fire_time(None, now)
    assert nine == datetime(2021, 10, 20, 9, 0, tzinfo=BUSINESS_TZ)
    assert jobs["sweep-0900"].trigger.get_next_fire_time(nine, nine + timedelta(seconds=1)) == \
        datetime(2021, 10, 21, 9, 0, tzinfo=BUSINESS_TZ)
    first = jobs["dispatch"].trigger.get_next_fire_time(None, now)
    assert jobs["dispatch"].trigger.get_next_fire_time(first, first) - first == timedelta(seconds=30)
    for job in jobs.values():  # a missed run after downtime runs once, never dropped, never a burst
        assert job.misfire_grace_time is None and job.coalesce and job.max_instances == 1


def test_two_installations_in_one_postgresql_database_each_elect_a_scheduler(pg_url: str) -> None:
    """The lock is keyed by the schema: a second installation (another schema of the same
    database) elects its own leader instead of waiting on the first's."""
    import uuid

    from ..conftest import PG_URL, pg_schema_url

    other = f"wf_lock_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{other}"'))
    mine, theirs = make_engine(pg_url), make_engine(pg_schema_url(other))
    try:
        first, second, rival = LeaderLock(mine, "mine"), LeaderLock(theirs, "theirs"), LeaderLock(mine, "rival")
        assert first.try_acquire() and second.try_acquire()  # both lead, each in its schema
        assert not rival.try_acquire()  # but one per installation
        assert "mine" in (first.holder() or "") and "theirs" in (second.holder() or "")
        first.release()
        second.release()
    finally:
        mine.dispose()
        theirs.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()


def test_the_lock_connects_as_the_engine_does_when_options_hold_spaces(pg_url: str) -> None:
    """A URL whose ``options`` carry several settings (a space between them): the scheduler's own
    connection lands in the installation's schema, keys the lock on it, and ``holder`` sees it."""
    import uuid

    from ..conftest import PG_URL

    other = f"wf_lock_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{other}"'))
    sep = "&" if "?" in PG_URL else "?"
    spaced = make_engine(f"{PG_URL}{sep}options=-csearch_path%3D{other}%20-cstatement_timeout%3D60000")
    try:
        lock = LeaderLock(spaced, "spaced")
        assert lock.try_acquire()
        assert lock._conn.execute("SELECT current_schema()").fetchone()[0] == other
        with admin.connect() as conn:
            held = conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :k1 AND objid = :k2 "
                "AND granted"), {"k1": LOCK_KEY, "k2": schema_key(other)}).scalar()
        assert held == 1
        assert "spaced" in (lock.holder() or "")
        lock.release()
    finally:
        spaced.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()


def test_the_postgresql_pool_is_sized_by_the_settings(pg_url: str, tmp_path) -> None:
    """``WORKFLOW_DB_POOL_SIZE`` / ``WORKFLOW_DB_MAX_OVERFLOW`` reach the engine's pool."""
    from workflow.bootstrap import build
    from workflow.config import Settings

    app = build(Settings(database_url=pg_url, db_pool_size=3, db_max_overflow=1, evidence_dir=tmp_path / "ev",
                         maildir=tmp_path / "mail"))
    try:
        assert app.engine.pool.size() == 3
        assert app.engine.pool._max_overflow == 1  # type: ignore[attr-defined]
    finally:
        app.close()


def test_every_chain_is_checked_at_half_past_two_beijing_time() -> None:
    """The nightly check the console's audit page shows (service/audit_runs), when given."""
    scheduler = build_scheduler(lambda: None, lambda: None, sweep_minutes=60, dispatch_seconds=30,
                                audit=lambda: None)
    scheduler.start(paused=True)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    scheduler.shutdown(wait=False)
    assert set(jobs) == {"sweep", "sweep-0900", "dispatch", "audit-0230"}
    night = jobs["audit-0230"].trigger.get_next_fire_time(None, datetime(2021, 10, 20, 8, 15, tzinfo=BUSINESS_TZ))
    assert night == datetime(2021, 10, 21, 2, 30, tzinfo=BUSINESS_TZ)
    assert jobs["audit-0230"].misfire_grace_time is None and jobs["audit-0230"].coalesce


def test_the_nightly_check_runs_every_chain_and_keeps_its_result(tmp_path) -> None:
    """``App.nightly_audit``: a check of every jurisdiction queued, run and kept (done, ok)."""
    from workflow.bootstrap import build
    from workflow.config import Settings
    from workflow.service.audit_runs import EVERYTHING, SCHEDULER

    application = build(Settings(database_url=f"sqlite:///{tmp_path}/n.db", checkpoint_dir=tmp_path / "cp",
                                 checkpoint_key=tmp_path / "key"))
    from workflow.adapters.db.migrate import upgrade

    upgrade(application.engine)
    ran = application.nightly_audit()
    assert len(ran) == 1
    run = application.db.audit_runs.get(ran[0])
    assert run is not None and run.scope == EVERYTHING and run.requested_by == SCHEDULER
    assert run.status == "done" and run.ok is True and run.result is not None
    assert run.result["counts"]["cases"] == 0 and run.result["checkpoint"] == {"present": False, "ok": None}
