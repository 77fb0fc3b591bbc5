"""Who schedules, and when: one elected leader runs APScheduler 3.11 jobs.

On PostgreSQL the leader holds a session advisory lock on a dedicated connection (never
through a pooler): when the process dies, its connection closes and the lock is free for
another process, which takes over at its next try. On SQLite a lock file beside the
database plays the same part for the processes of one machine.

The scheduler only decides *when* to sweep and dispatch; deadlines live in the data files
and the database, so a restart or a week of downtime loses nothing.
"""
from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from ..clock import BUSINESS_TZ

log = structlog.get_logger(__name__)
LOCK_KEY = 0x6A_6E_6A_67  # "jnjg" (节能机关): the advisory lock every scheduler process asks for


def schema_key(schema: str) -> int:
    """The lock's second key: the schema the installation lives in, so that two installations
    in one PostgreSQL database (each in its schema) each elect their own scheduler."""
    return zlib.crc32(schema.encode("utf-8")) & 0x7FFF_FFFF


class LeaderLock:
    """Try to become the scheduling process; ``holder`` says who holds it, for /readyz."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self._conn: Any = None
        self._file: Any = None

    @property
    def is_leader(self) -> bool:
        return self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        if self.is_leader:
            return self.still_held()
        if self.engine.dialect.name == "postgresql":
            import psycopg

            # A dedicated connection with exactly the engine's parameters, as the dialect reads
            # them from the URL (never the URL re-rendered: a space in ``options`` would come out
            # as ``+``, which libpq does not decode, and the lock would key on the wrong schema).
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            params = {**cparams, "autocommit": True, "application_name": f"workflow-scheduler {self.name}"}
            conn = psycopg.connect(*cargs, **params)
            schema = conn.execute("SELECT current_schema()").fetchone()
            key = schema_key(str(schema[0] if schema else ""))
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_KEY, key)).fetchone()
            got = row is not None and bool(row[0])
            if got:
                self._conn = conn
            else:
                conn.close()
            return bool(got)
        path = Path(self.engine.url.database or "workflow.db").with_suffix(".scheduler.lock")
        handle = open(path, "a+")  # noqa: SIM115 - held open while the lock is held; closed by release()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.name} pid {os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        """A leader checks its lock is still there (its connection may have been cut)."""
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return True
            except Exception:
                self.release()
                return False
        return self._file is not None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def holder(self) -> str | None:
        """Which process holds the lock (PostgreSQL: its application name), or None."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy import text

            with self.engine.connect() as conn:
                key = schema_key(str(conn.execute(text("SELECT current_schema()")).scalar() or ""))
                row = conn.execute(text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.classid = :k1 AND l.objid = :k2 AND l.objsubid = 2 "
                    "AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                    {"k1": LOCK_KEY, "k2": key}).first()
            return None if row is None else row[0]
        path = Path(self.engine.url.database or "workflow.db").with_suffix(".scheduler.lock")
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None


class CheckpointJob:
    """Write a signed checkpoint of the audit chain (``write``), when a key is there: without
    one, warn once (``workflow audit keygen`` makes one) and skip, until a key appears. A failure
    is logged, never raised: the other jobs go on."""

    def __init__(self, write: Callable[[], Any], key: Path, after: Callable[[Any], Any] | None = None) -> None:
        self.write = write
        self.key = key
        self.after = after  # e.g. the day's anchor mail, given what was written (or kept)
        self._warned = False

    def __call__(self) -> Any:
        if not self.key.is_file():
            if not self._warned:
                log.warning("no checkpoint key: signed checkpoints of the audit chain are not written",
                            key=str(self.key), hint="workflow audit keygen")
                self._warned = True
            return None
        self._warned = False
        try:
            done = self.write()
            if done.written:
                log.info("checkpoint written", sequence=done.checkpoint.sequence, file=done.name,
                         merkle_root=done.checkpoint.merkle_root)
            if self.after is not None:
                self.after(done)
        except Exception as exc:
            log.error("checkpoint failed", error=str(exc))
            return None
        return done


def build_scheduler(sweep: Callable[[], Any], dispatch: Callable[[], Any], *, sweep_minutes: int,
                    dispatch_seconds: int, checkpoint: Callable[[], Any] | None = None,
                    checkpoint_minutes: int = 60, audit: Callable[[], Any] | None = None) -> BackgroundScheduler:
    """Sweep hourly and at 09:00 Asia/Shanghai (morning reminders), dispatch every N seconds,
    (given ``checkpoint``, e.g. a ``CheckpointJob``) checkpoint the audit chain every N minutes,
    and (given ``audit``) check every chain at 02:30 Asia/Shanghai. A missed run (the process
    was down) runs once when it comes back, never in a burst."""
    scheduler = BackgroundScheduler(timezone=BUSINESS_TZ, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
    if checkpoint is not None:
        scheduler.add_job(checkpoint, IntervalTrigger(minutes=checkpoint_minutes, timezone=BUSINESS_TZ),
                          id="checkpoint", name="checkpoint of the audit chain")
    if audit is not None:
        scheduler.add_job(audit, CronTrigger(hour=2, minute=30, timezone=BUSINESS_TZ), id="audit-0230",
                          name="check of every hash chain (02:30 Asia/Shanghai)")
    scheduler.add_job(sweep, IntervalTrigger(minutes=sweep_minutes, timezone=BUSINESS_TZ), id="sweep",
                      name="sweep (interval)")
    scheduler.add_job(sweep, CronTrigger(hour=9, minute=0, timezone=BUSINESS_TZ), id="sweep-0900",
                      name="sweep (09:00 Asia/Shanghai)")
    scheduler.add_job(dispatch, IntervalTrigger(seconds=dispatch_seconds, timezone=BUSINESS_TZ), id="dispatch",
                      name="dispatch")
    return scheduler


class LeaderLoop:
    """Keep trying to lead; while leading run the scheduler; on losing the lock, stop it."""

    def __init__(self, lock: LeaderLock, make_scheduler: Callable[[], BackgroundScheduler], *,
                 retry_seconds: float = 5.0, on_lead: Callable[[], None] | None = None) -> None:
        self.lock = lock
        self.make_scheduler = make_scheduler
        self.retry_seconds = retry_seconds
        self.on_lead = on_lead
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            if self.scheduler is None:
                try:
                    leading = self.lock.try_acquire()
                except Exception as exc:  # the database is unreachable: try again, do not exit
                    log.warning("scheduler election failed; retrying", process=self.lock.name, error=str(exc))
                    leading = False
                if leading:
                    log.info("scheduler leader elected", process=self.lock.name)
                    if self.on_lead is not None:
                        try:
                            self.on_lead()
                        except Exception as exc:  # the catch-up sweep failed; the jobs will try again
                            log.error("first sweep failed", process=self.lock.name, error=str(exc))
                    self.scheduler = self.make_scheduler()
                    self.scheduler.start()
            elif not self.lock.still_held():
                log.warning("scheduler leadership lost", process=self.lock.name)
                self.scheduler.shutdown(wait=False)
                self.scheduler = None
            self._stop.wait(self.retry_seconds)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        self.lock.release()

    def stop(self) -> None:
        self._stop.set()
